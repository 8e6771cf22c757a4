"""Answer checks for network code (Chapters 5 and 6): residual blocks.

See :mod:`odecourse.checks` for how the checks report.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

from odecourse._validation import check_choice, check_int, check_positive

from ._verdict import _failure, _passed, _student_code

__all__ = ["check_residual_block"]


def _build_block(block: Any, width: int, hint: str) -> Any:
    import torch

    if isinstance(block, type):
        with _student_code(f"{block.__name__}({width})", hint):
            block = block(width)
    if not callable(block):
        raise TypeError(f"`block` must be a torch.nn.Module, a class or a callable; got {block!r}.")
    return block if isinstance(block, torch.nn.Module) else _FunctionBlock(block)


class _FunctionBlock:
    """A plain function ``x -> y`` seen as a block without parameters."""

    def __init__(self, function: Callable) -> None:
        self.function = function

    def __call__(self, x: Any) -> Any:
        return self.function(x)

    def parameters(self) -> Iterator[Any]:
        return iter(())

    def modules(self) -> Iterator[Any]:
        return iter(())


def _run_block(block: Any, x: Any, hint: str) -> Any:
    import torch

    with _student_code("your block", hint):
        y = block(x)
    if not isinstance(y, torch.Tensor):
        raise _failure(f"the block returned {type(y).__name__}, not a torch.Tensor.", hint)
    if not bool(torch.isfinite(y).all()):
        raise _failure(
            "the block's output is not finite (it contains nan or inf).",
            "look for a division by zero, a log of a non-positive number, or an overflow "
            "in the residual branch.",
        )
    if tuple(y.shape) != tuple(x.shape):
        raise _failure(
            f"the block maps shape {tuple(x.shape)} to {tuple(y.shape)}; a residual block "
            "keeps the shape (batch, width).",
            hint,
        )
    return y


def _linear_layer(module: Any, width: int, hint: str) -> Any:
    """The block's layer ``torch.nn.Linear(width, width)`` (``W``, ``b``); None if parameterless."""
    import torch

    linear = getattr(module, "linear", None)
    if not isinstance(linear, torch.nn.Linear):
        candidates = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
        linear = candidates[0] if len(candidates) == 1 else None
    if linear is None:
        if any(True for _ in module.parameters()):
            raise _failure(
                "the check cannot find the layer that holds W and b.",
                "keep them in one torch.nn.Linear(width, width), stored as self.linear.",
            )
        return None
    if tuple(linear.weight.shape) != (width, width) or linear.bias is None:
        raise _failure(
            f"the block's linear layer has weight shape {tuple(linear.weight.shape)} and "
            f"{'a' if linear.bias is not None else 'no'} bias; the branch needs "
            f"torch.nn.Linear({width}, {width}) with a bias.",
            hint,
        )
    return linear


def _step_size(module: Any, h: float | None, hint: str) -> float:
    if h is not None:
        return h
    if isinstance(module, _FunctionBlock):
        return 1.0
    value = getattr(module, "h", 1.0)
    try:
        return check_positive("h", value)
    except (TypeError, ValueError) as exc:
        raise _failure(
            f"the block's step size self.h = {value!r:.40} is not a positive number.", hint
        ) from exc


def _mistakes(x: Any, W: Any, b: Any, h: float, activation: str) -> dict[str, Any]:
    """Outputs of the usual wrong blocks, each with a description of the mistake."""
    from odecourse.networks import ACTIVATIONS

    sigma = ACTIVATIONS[activation]()
    s = sigma(x)
    branch = s @ W.T + b
    wrong = {
        "the block returns its input unchanged: the branch h F(x) is missing.": x,
        f"the block computes x + h {activation}(W x + b): the activation is applied after "
        f"the linear layer instead of to x before it.": x + h * sigma(x @ W.T + b),
        "the block computes x + W sigma(x) + b: the step size h is missing.": x + branch,
        "the block computes x - h F(x): the branch is subtracted.": x - h * branch,
        "the block computes x + h (W x + b): the activation is missing.": x + h * (x @ W.T + b),
        "the block computes h F(x) without x: the shortcut is missing.": h * branch,
        "the block computes x + h (W^T sigma(x) + b): W is transposed.": x + h * (s @ W + b),
        "the block computes x + h W sigma(x): the bias b is missing.": x + h * (s @ W.T),
        "the block computes x + h W sigma(x) + b: h multiplies W sigma(x) but not b.": x
        + h * (s @ W.T)
        + b,
        "the block computes sigma(x) + h F(x): the shortcut must add x itself.": s + h * branch,
    }
    for name, other in ACTIVATIONS.items():
        if name != activation:
            candidate = x + h * (other()(x) @ W.T + b)
            wrong[f"the block uses {name} where the branch needs {activation}."] = candidate
    return {reason: value.detach() for reason, value in wrong.items()}


def check_residual_block(
    block: Any,
    width: int,
    *,
    activation: str = "tanh",
    h: float | None = None,
    batch: int = 5,
    hint: str | None = None,
) -> None:
    r"""Check a residual block :math:`x \mapsto x + h\,(W \sigma(x) + b)` on a batch.

    The block is built (if a class is passed), its linear layer ``W, b`` is
    given fresh random values, and its output on a random batch of shape
    ``(batch, width)`` must equal :math:`x + h\,(W\sigma(x) + b)` row by row,
    with the step size ``h`` read from the block's attribute ``h``. The block
    must leave its input unchanged (no in-place update), and its output must
    depend on ``W`` and ``b`` through autograd, with the gradient of the
    formula, so that training can change them.  A wrong answer that matches a
    common mistake (activation after the linear layer, ``h`` missing, a minus
    sign, another activation, ``W`` transposed, no bias, no shortcut) is named
    in the verdict.

    Parameters
    ----------
    block : torch.nn.Module, class, or callable
        A block, a class whose constructor takes ``width``, or a function
        ``x -> y``.  A module keeps ``W`` and ``b`` in one
        ``torch.nn.Linear(width, width)`` (as ``self.linear``, or as its only
        linear layer); a module or function without parameters is checked
        with :math:`W = I` and :math:`b = 0`.
    width : int
        The width ``w`` of the hidden state.
    activation : str
        The activation :math:`\sigma` the branch should use, a key of
        :data:`odecourse.networks.ACTIVATIONS`: ``"relu"``, ``"tanh"``,
        ``"sigmoid"``, ``"gelu"``, ``"softplus"`` or ``"elu"``.
    h : float, optional
        The step size; by default the block's attribute ``h`` (1 for a plain
        function or a block without one).
    batch : int
        Number of random inputs, at least 2.
    hint : str, optional
        Replaces the default hint.

    Raises
    ------
    CheckFailed
        If the block computes anything else, modifies its input, or cuts the
        gradient to its parameters.

    Examples
    --------
    >>> from odecourse.networks import ResidualBlock
    >>> check_residual_block(ResidualBlock, width=4, activation="relu")
    ✓ the block computes x + h (W relu(x) + b) on a (5, 4) batch, with h = 1, and its gradient.

    Taught in Chapter 5.
    """
    import torch

    from odecourse.networks import ACTIVATIONS

    width = check_int("width", width, minimum=1)
    batch = check_int("batch", batch, minimum=2)
    check_choice("activation", activation, ACTIVATIONS)
    if h is not None:
        h = check_positive("h", h)
    function = (
        f"torch.{activation}"
        if activation in ("relu", "tanh", "sigmoid")
        else (f"torch.nn.functional.{activation}")
    )
    hint = hint or (
        f"return x + self.h * self.linear({function}(x)): the activation acts on x, "
        "the linear layer on its result, h scales the whole branch, and x itself is added."
    )
    module = _build_block(block, width, hint)
    linear = _linear_layer(module, width, hint)
    h = _step_size(module, h, hint)
    if linear is not None:  # fresh, seeded parameters: non-symmetric W, non-zero b
        module = copy.deepcopy(module)
        linear = _linear_layer(module, width, hint)
        dtype = linear.weight.dtype
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            linear.weight.copy_(torch.randn(width, width, generator=generator, dtype=dtype))
            linear.bias.copy_(torch.randn(width, generator=generator, dtype=dtype))
        W, b = linear.weight.detach().clone(), linear.bias.detach().clone()
    else:
        dtype = torch.get_default_dtype()
        W, b = torch.eye(width, dtype=dtype), torch.zeros(width, dtype=dtype)
    generator = torch.Generator().manual_seed(0)
    x = 1.5 * torch.randn(batch, width, generator=generator, dtype=dtype)
    x_before = x.clone()
    y = _run_block(module, x, hint)
    if not torch.equal(x, x_before):
        raise _failure(
            "the block changed its input x in place.",
            "build a new tensor (x + ...) instead of updating x with += or an in-place method.",
        )
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    expected = x + h * (ACTIVATIONS[activation]()(x) @ W.T + b)
    if not torch.allclose(y.detach(), expected, rtol=tol, atol=tol):
        for reason, candidate in _mistakes(x, W, b, h, activation).items():
            if candidate.shape == y.shape and torch.allclose(
                y.detach(), candidate, rtol=tol, atol=tol
            ):
                raise _failure(reason.replace("sigma", activation), hint)
        if not torch.allclose(_run_block(module, x[:1], hint).detach(), y[:1].detach(), atol=tol):
            raise _failure("row 0 of the output depends on the other rows of the batch.", hint)
        error = (y.detach() - expected).abs()
        row, column = divmod(int(error.argmax()), width)
        raise _failure(
            f"with h = {h:g} and the check's W and b, output[{row}, {column}] is "
            f"{float(y[row, column]):.6f} but x + h (W {activation}(x) + b) gives "
            f"{float(expected[row, column]):.6f}.",
            hint,
        )
    if linear is not None:
        _check_parameter_gradient(module, linear, x, h, activation, hint)
    _passed(
        f"the block computes x + h (W {activation}(x) + b) on a {tuple(x.shape)} batch, "
        f"with h = {h:g}{', and its gradient' if linear is not None else ''}."
    )


def _check_parameter_gradient(
    module: Any, linear: Any, x: Any, h: float, activation: str, hint: str
) -> None:
    """The output must reach ``W`` and ``b`` through autograd, with the formula's gradient."""
    import torch

    from odecourse.networks import ACTIVATIONS

    for parameter in module.parameters():
        parameter.grad = None
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=x.dtype)
    with torch.enable_grad():
        y = _run_block(module, x, hint)
        if not y.requires_grad:
            raise _failure(
                "the output does not depend on W and b through autograd, so training could "
                "not change them.",
                "compute the branch with torch operations on the layer's output; no .detach(), "
                "torch.no_grad() or NumPy round trip inside forward.",
            )
        with _student_code("backpropagating through your block", hint):
            (y * v).sum().backward()
    s = ACTIVATIONS[activation]()(x)
    grad_W, grad_b = linear.weight.grad, linear.bias.grad
    expected_W, expected_b = h * v.T @ s, h * v.sum(dim=0)
    tol = 1e-4 if x.dtype == torch.float32 else 1e-9
    if (
        grad_W is None
        or grad_b is None
        or not torch.allclose(grad_W, expected_W, rtol=tol, atol=tol)
        or not torch.allclose(grad_b, expected_b, rtol=tol, atol=tol)
    ):
        raise _failure(
            "the gradient of the output with respect to W and b is not that of "
            f"x + h (W {activation}(x) + b).",
            "use the layer's parameters only through self.linear(...) in forward, with no "
            ".detach() or copies of W and b.",
        )
