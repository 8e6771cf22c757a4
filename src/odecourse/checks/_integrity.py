"""Make the answer checks harder to fool from inside a notebook kernel.

Two safeguards, both described in the appendix "Using this book in a course":

- the check modules are *read-only*: ``odecourse.checks.check_close = ...``
  (or the same on a submodule) raises :class:`AttributeError` instead of
  replacing the check for the rest of the session;
- :func:`verify` compares every function of the check modules, and every
  function they import from :mod:`odecourse`, with the installed source files,
  and raises :class:`~odecourse.checks.CheckFailed` naming the first one that
  was replaced, re-coded (``__code__``) or given other default arguments.
  Each check runs it before it prints a passing verdict.

Neither is a sandbox: code in the same kernel can always get round them (the
appendix lists how); they turn the easy ways of faking a pass into errors.
"""

from __future__ import annotations

import ast
import contextlib
import sys
import types
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["verify"]

_PACKAGE = "odecourse"
_CHECKS = "odecourse.checks"
_ROOT = Path(__file__).resolve().parent.parent  # src/odecourse
_MISSING = object()
_STDLIB = Path(contextlib.__file__).resolve().parent


class _ReadOnlyModule(types.ModuleType):
    """A module whose functions, classes and constants cannot be rebound or deleted."""

    def __setattr__(self, name: str, value: Any) -> None:
        _refuse_rebinding(self, name)
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        _refuse_rebinding(self, name)
        super().__delattr__(name)


def _refuse_rebinding(module: types.ModuleType, name: str) -> None:
    current = module.__dict__.get(name, _MISSING)
    if name.startswith("__") or current is _MISSING or isinstance(current, types.ModuleType):
        return
    raise AttributeError(
        f"`{module.__name__}.{name}` is read-only: the answer checks cannot be replaced in a "
        "notebook. Restart the kernel to undo any other change to them."
    )


def _protect() -> None:
    """Make every loaded module of :mod:`odecourse.checks` read-only."""
    for name, module in list(sys.modules.items()):
        if (name == _CHECKS or name.startswith(_CHECKS + ".")) and isinstance(
            module, types.ModuleType
        ):
            module.__class__ = _ReadOnlyModule


def _source_file(module_name: str) -> Path:
    parts = module_name.split(".")[1:]
    base = _ROOT.joinpath(*parts)
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


@cache
def _compiled(path: Path) -> tuple[dict[str, types.CodeType], ast.Module] | None:
    """Code objects by qualified name, and the syntax tree, of an installed source file."""
    try:
        source = path.read_text(encoding="utf-8")
    except OSError:  # no source installed: nothing to compare with
        return None
    tree = ast.parse(source, str(path))
    code = compile(tree, str(path), "exec", dont_inherit=True, optimize=sys.flags.optimize)
    codes: dict[str, types.CodeType] = {}
    stack = [code]
    while stack:
        for const in stack.pop().co_consts:
            if isinstance(const, types.CodeType):
                codes[const.co_qualname] = const
                stack.append(const)
    return codes, tree


def _function_problem(function: types.FunctionType, where: str) -> str | None:
    """Why ``function`` differs from its installed source, or None if it does not."""
    wrapped = getattr(function, "__wrapped__", None)
    if isinstance(wrapped, types.FunctionType):  # a decorator of the standard library
        if Path(function.__code__.co_filename).resolve().parent != _STDLIB:
            return f"{where} is wrapped by {function.__code__.co_filename}"
        function = wrapped
    module_name = getattr(function, "__module__", None) or ""
    if module_name != _PACKAGE and not module_name.startswith(_PACKAGE + "."):
        return f"{where} is {function!r}, which does not come from {_PACKAGE}"
    compiled = _compiled(_source_file(module_name))
    if compiled is None:
        return None
    codes, tree = compiled
    if codes.get(function.__qualname__) != function.__code__:
        return f"{where} is not the code of {module_name}.{function.__qualname__} as installed"
    module = sys.modules.get(module_name)
    if module is None or function.__globals__ is not module.__dict__:
        return f"{where} runs with other globals than {module_name}"
    expected = _literal_defaults(tree, function.__qualname__)
    if expected is not None and expected != (function.__defaults__, function.__kwdefaults__):
        return f"{where} has other default arguments than {module_name}.{function.__qualname__}"
    return None


def _literal_defaults(tree: ast.Module, qualname: str) -> tuple[Any, Any] | None:
    """The defaults of a top-level function as written, if they are all literals."""
    if "." in qualname:
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == qualname:
            try:
                positional = tuple(ast.literal_eval(d) for d in node.args.defaults) or None
                keyword = {
                    arg.arg: ast.literal_eval(d)
                    for arg, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True)
                    if d is not None
                } or None
            except ValueError:
                return None
            return positional, keyword
    return None


def _module_problem(module_name: str) -> str | None:
    """The first sign that a check module was changed in this kernel, or None."""
    module = sys.modules.get(module_name)
    if not isinstance(module, _ReadOnlyModule):
        return f"sys.modules[{module_name!r}] is not the installed module"
    compiled = _compiled(_source_file(module_name))
    if compiled is None:
        return None
    _, tree = compiled
    names = module.__dict__
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            value = names.get(node.name, _MISSING)
            where = f"{module_name}.{node.name}"
            if node.decorator_list and isinstance(node, ast.FunctionDef):
                value = getattr(value, "__wrapped__", value)  # functools.cache, contextmanager
            if isinstance(node, ast.ClassDef):
                problem = _class_problem(value, where, module_name)
            elif isinstance(value, types.FunctionType):
                problem = _function_problem(value, where)
            else:
                problem = f"{where} is no longer the function the package defines"
            if problem:
                return problem
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            source = _resolve(module_name, node)
            if source is None:
                continue
            for alias in node.names:
                bound = alias.asname or alias.name
                problem = _import_problem(
                    names.get(bound, _MISSING), source, alias.name, f"{module_name}.{bound}"
                )
                if problem:
                    return problem
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            problem = _constant_problem(node, names, module_name)
            if problem:
                return problem
    return None


def _class_problem(value: Any, where: str, module_name: str) -> str | None:
    if not isinstance(value, type) or value.__module__ != module_name:
        return f"{where} is no longer the class the package defines"
    for attribute in vars(value).values():
        if isinstance(attribute, types.FunctionType):
            problem = _function_problem(attribute, f"{where}.{attribute.__name__}")
            if problem:
                return problem
    return None


def _resolve(module_name: str, node: ast.ImportFrom) -> str | None:
    """The absolute name of an ``odecourse`` module imported from, or None for others."""
    if node.level:
        package = module_name if module_name == _CHECKS else module_name.rsplit(".", 1)[0]
        for _ in range(node.level - 1):
            package = package.rsplit(".", 1)[0]
        return f"{package}.{node.module}" if node.module else package
    if node.module == _PACKAGE or (node.module or "").startswith(_PACKAGE + "."):
        return node.module
    return None


def _import_problem(value: Any, source: str, name: str, where: str) -> str | None:
    module = sys.modules.get(source)
    original = getattr(module, name, _MISSING) if module is not None else _MISSING
    if isinstance(original, types.ModuleType):
        return None
    if value is not original:
        return f"{where} is no longer {source}.{name}"
    if isinstance(value, types.FunctionType):
        return _function_problem(value, where)
    return None


def _constant_problem(
    node: ast.Assign | ast.AnnAssign, names: dict, module_name: str
) -> str | None:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    if node.value is None or len(targets) != 1 or not isinstance(targets[0], ast.Name):
        return None
    try:
        expected = ast.literal_eval(node.value)
    except ValueError:
        return None
    name = targets[0].id
    if names.get(name, _MISSING) != expected:
        return f"{module_name}.{name} is no longer {expected!r}"
    return None


def _check_module_names() -> list[str]:
    """The package and those of its modules that are loaded.

    A module the package imports but that was taken out of ``sys.modules`` is
    caught by the comparison of the package's own imports.
    """
    names = [_CHECKS]
    for path in sorted(_ROOT.joinpath("checks").glob("*.py")):
        name = f"{_CHECKS}.{path.stem}"
        if path.stem != "__init__" and name in sys.modules:
            names.append(name)
    return names


def _tampering() -> str | None:
    """The first change found in the check modules, or None."""
    for module_name in _check_module_names():
        problem = _module_problem(module_name)
        if problem:
            return problem
    return None


def verify() -> None:
    """Check that the answer checks in this kernel are the installed ones.

    Every function and class of :mod:`odecourse.checks` and its modules, and
    every function they import from :mod:`odecourse`, is compared with the
    installed source: the same code, globals and default arguments, bound to
    the same names.  Silent when all is well.

    Raises
    ------
    CheckFailed
        Naming the first check or helper that was replaced in this kernel.

    Examples
    --------
    >>> from odecourse.checks import verify
    >>> verify()

    Taught in the appendix "Using this book in a course".
    """
    from ._verdict import _failure

    problem = _tampering()
    if problem:
        raise _failure(
            f"the answer checks were changed in this kernel ({problem}).",
            "restart the kernel and run all cells; the grader runs your notebook with the "
            "original checks.",
        )
