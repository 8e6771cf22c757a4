"""Argument checks and the tuple-state layout of the torch front ends (``odeint``, the adjoint).

Private: :mod:`odecourse.odeint` re-exports the public constants.  Each check
validates one argument at the public boundary and says what is accepted.

Taught in Chapter 7.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from odecourse._validation import (
    check_callable,
    check_choice,
    check_int,
    check_positive,
    check_real,
)
from odecourse.runge_kutta import TABLEAUS, ButcherTableau, resolve_tableau

__all__ = [
    "ADAPTIVE_METHODS",
    "ADAPTIVE_OPTIONS",
    "FIXED_METHODS",
    "FIXED_OPTIONS",
    "NO_LIMIT",
    "STATE_DTYPES",
    "UNSUPPORTED_METHODS",
    "Norm",
    "Settings",
    "TupleLayout",
    "check_options",
    "check_t",
    "check_tolerance",
    "check_y0",
    "checked_norm",
    "constructed_grid",
    "first_non_finite",
    "nextafter_in",
    "resolve_method",
    "rms",
    "scalar",
]

#: Adaptive (embedded-pair) methods, by torchdiffeq's names.
ADAPTIVE_METHODS = tuple(n for n, t in TABLEAUS.items() if t.explicit and t.adaptive)
#: Fixed-step methods: torchdiffeq's ``euler``, ``midpoint``, ``rk4`` and ours.
FIXED_METHODS = tuple(n for n, t in TABLEAUS.items() if t.explicit and not t.adaptive)
#: torchdiffeq methods that odecourse does not implement.
UNSUPPORTED_METHODS = (
    "dopri8",
    "adaptive_heun",
    "fehlberg2",
    "heun3",
    "explicit_adams",
    "implicit_adams",
    "fixed_adams",
    "scipy_solver",
)
#: Options of the adaptive methods (torchdiffeq's names).
ADAPTIVE_OPTIONS = (
    "first_step",
    "max_num_steps",
    "max_step",
    "min_step",
    "norm",
    "safety",
    "ifactor",
    "dfactor",
    "step_t",
    "jump_t",
    "dtype",
)
#: Options of the fixed-step methods.
FIXED_OPTIONS = ("step_size", "grid_constructor", "perturb", "interp")
NO_LIMIT = 2**31 - 1  # torchdiffeq's default `max_num_steps`
#: Floating dtypes accepted for the state; float16 and bfloat16 are refused (see ``odeint``).
STATE_DTYPES = (torch.float32, torch.float64)

Norm = Callable[[Any], Any]
#: torchdiffeq's ``grid_constructor(func, y0, t) -> grid``.
GridConstructor = Callable[[Any, Any, Tensor], Tensor]


@dataclass(frozen=True)
class TupleLayout:
    """How a tuple state is packed into one flat tensor for the core, and unpacked."""

    shapes: tuple[torch.Size, ...]

    @property
    def sizes(self) -> list[int]:
        return [math.prod(shape) for shape in self.shapes]

    def flatten(self, parts: Any, name: str) -> Tensor:
        if not isinstance(parts, tuple) or len(parts) != len(self.shapes):
            raise TypeError(
                f"`{name}` must return a tuple of {len(self.shapes)} tensors like `y0`; "
                f"got {type(parts).__name__}."
            )
        for i, (part, shape) in enumerate(zip(parts, self.shapes, strict=True)):
            if not isinstance(part, Tensor) or part.shape != shape:
                got = tuple(part.shape) if isinstance(part, Tensor) else type(part).__name__
                raise ValueError(f"`{name}` output {i} must have shape {tuple(shape)}; got {got}.")
        return torch.cat([part.reshape(-1) for part in parts])

    def unflatten(self, flat: Tensor) -> tuple[Tensor, ...]:
        chunks = flat.split(self.sizes)
        return tuple(c.view(s) for c, s in zip(chunks, self.shapes, strict=True))

    def unstack(self, stacked: Tensor) -> tuple[Tensor, ...]:
        n = stacked.shape[0]
        chunks = stacked.split(self.sizes, dim=1)
        return tuple(c.reshape(n, *s) for c, s in zip(chunks, self.shapes, strict=True))

    def mixed_norm(self, flat: Tensor) -> Tensor:
        """torchdiffeq's default for tuples: the largest RMS norm over the components."""
        return max(rms(part) for part in self.unflatten(flat))  # an empty part counts 0

    def tuple_norm(self, norm: Norm) -> Norm:
        """A user norm of the tuple of components, as a norm of the flat state."""
        return lambda flat: norm(self.unflatten(flat))

    def flat_norm(self, norm: Norm | None) -> Norm:
        """The norm of the flat state: the user's tuple ``norm``, or :meth:`mixed_norm`."""
        return self.mixed_norm if norm is None else self.tuple_norm(norm)


def rms(x: Tensor) -> Tensor:
    """The root mean square of the entries of ``x`` (0 for an empty tensor)."""
    return x.pow(2).mean().sqrt() if x.numel() else x.new_zeros(())


def checked_norm(norm: Norm) -> Norm:
    """Wrap a user ``norm`` so that a vector or a NaN for a finite input is a clear error."""

    def wrapped(x: Any) -> Any:
        value = norm(x)
        if isinstance(value, Tensor) and value.numel() != 1:
            raise ValueError(
                f"`norm` must return a scalar; got a tensor of shape {tuple(value.shape)} "
                "(reduce it, e.g. with .abs().max() or .pow(2).mean().sqrt())."
            )
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"`norm` must return a real scalar; got {type(value).__name__} {value!r:.60}."
            ) from None
        if math.isnan(number) and _all_finite(x):
            raise ValueError(
                "`norm` returned NaN for a finite input; it must return a finite, "
                "non-negative scalar."
            )
        return value

    return wrapped


def _all_finite(x: Any) -> bool:
    parts = x if isinstance(x, tuple) else (x,)
    return all(bool(torch.isfinite(p).all()) for p in parts)


def _check_tensor(
    name: str, value: Any, accepted: str = "a torch.Tensor", *, state: bool = False
) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"`{name}` must be {accepted}; got {type(value).__name__} {value!r:.60}.")
    if not value.is_floating_point():
        raise TypeError(
            f"`{name}` must have a floating dtype (float32 or float64); got {value.dtype}."
        )
    if state and value.dtype not in STATE_DTYPES:
        raise TypeError(
            f"`{name}` must be float32 or float64; got {value.dtype}, whose few digits "
            f"(eps = {torch.finfo(value.dtype).eps:.1g}) cannot meet the tolerances of the "
            f"error control. Convert with `{name}.float()` (and the module with .float())."
        )
    return value


def check_y0(y0: Any) -> tuple[Tensor, TupleLayout | None]:
    """Validate ``y0``; return it (tuples packed flat) and the tuple layout or None."""
    if isinstance(y0, tuple):
        if not y0:
            raise ValueError("`y0` must be a tensor or a non-empty tuple of tensors; got ().")
        parts = [_check_tensor(f"y0[{i}]", part, state=True) for i, part in enumerate(y0)]
        kinds = {(p.dtype, p.device) for p in parts}
        if len(kinds) > 1:
            raise ValueError(
                "the tensors of `y0` must share one dtype and device; "
                f"got {sorted(map(str, kinds))}."
            )
        layout = TupleLayout(tuple(p.shape for p in parts))
        flat = torch.cat([p.reshape(-1) for p in parts])
    else:
        flat = _check_tensor("y0", y0, "a torch.Tensor or a tuple of tensors", state=True)
        layout = None
    if not bool(torch.isfinite(flat).all()):
        raise ValueError("`y0` must contain only finite values.")
    return flat, layout


def check_t(t: Any, y0: Tensor) -> list[float]:
    """Validate the output times and return their values as Python floats.

    The core runs on these floats; when ``t`` requires grad, ``odeint`` also uses the
    tensor itself (:mod:`odecourse._time_grad`) and ``odeint_adjoint`` its own formula.
    """
    t = _check_tensor("t", t)
    if t.ndim != 1 or t.numel() < 1:
        raise ValueError(
            f"`t` must be a 1-D tensor with at least one time; got shape {tuple(t.shape)}."
        )
    if t.device != y0.device:
        raise ValueError(f"`t` must be on the device of `y0` ({y0.device}); got {t.device}.")
    times = t.detach().tolist()
    if not all(math.isfinite(s) for s in times):
        raise ValueError(f"`t` must contain only finite times; got {times!r:.80}.")
    steps = [b - a for a, b in itertools.pairwise(times)]
    if steps and not (all(d > 0 for d in steps) or all(d < 0 for d in steps)):
        raise ValueError(
            f"`t` must be strictly increasing or strictly decreasing; got {times!r:.80}."
        )
    return times


def scalar(value: Any) -> Any:
    """A one-element tensor as its Python number (torchdiffeq accepts those); else ``value``."""
    if isinstance(value, Tensor) and value.numel() == 1:
        return value.detach().item()
    return value


def check_tolerance(name: str, value: Any, y0: Tensor | None = None) -> float | Tensor:
    """Validate a tolerance: a non-negative real or one-element tensor, or a tensor per entry.

    A tensor with more than one element (torchdiffeq accepts those) must broadcast to the
    shape of ``y0`` (not for tuple states, where ``y0`` is None); it is returned detached,
    in ``y0``'s dtype and on its device.
    """
    if isinstance(value, Tensor) and value.numel() != 1:
        if y0 is None:
            raise TypeError(
                f"`{name}` must be a number here; got a tensor of shape {tuple(value.shape)} "
                "(per-entry tolerances are accepted by odeint for a tensor `y0` only)."
            )
        tol = value.detach().to(dtype=y0.dtype, device=y0.device)
        if torch.broadcast_shapes(tol.shape, y0.shape) != y0.shape:
            raise ValueError(
                f"`{name}` must be a number or a tensor that broadcasts to the shape of `y0` "
                f"{tuple(y0.shape)}; got shape {tuple(value.shape)}."
            )
        if not bool((torch.isfinite(tol) & (tol >= 0)).all()):
            raise ValueError(f"`{name}` must be finite and non-negative; got {value!r:.80}.")
        return tol
    return check_positive(name, scalar(value), allow_zero=True)


def resolve_method(method: Any) -> ButcherTableau:
    """Return the explicit tableau named by ``method`` (None means dopri5)."""
    if method is None:
        return TABLEAUS["dopri5"]
    if method in UNSUPPORTED_METHODS:
        accepted = ", ".join(map(repr, ADAPTIVE_METHODS + FIXED_METHODS))
        raise ValueError(
            f"method {method!r} is a torchdiffeq method that odecourse does not implement; "
            f"supported methods: {accepted}."
        )
    return resolve_tableau(
        method, "method", explicit=True, choices=ADAPTIVE_METHODS + FIXED_METHODS
    )


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Settings:
    """Validated options of one call.

    ``step_t`` and ``jump_t`` hold the times as sorted Python floats; ``grid`` is not
    an option: it is the grid that ``grid_constructor`` returned, once called.
    """

    step_size: float | None = None
    first_step: float | None = None
    max_num_steps: int = NO_LIMIT
    max_step: float = math.inf
    min_step: float = 0.0
    norm: Norm | None = None
    safety: float = 0.9
    ifactor: float = 10.0
    dfactor: float = 0.2
    step_t: tuple[float, ...] = ()
    jump_t: tuple[float, ...] = ()
    dtype: torch.dtype = torch.float64
    grid_constructor: GridConstructor | None = None
    perturb: bool = False
    interp: str | None = None
    grid: tuple[float, ...] | None = None


_DEFAULT_SETTINGS = Settings()


def _check_factor(name: str, value: Any, low: float, high: float, why: str) -> float:
    """A controller factor in ``[low, high]`` (an open end where the bound is excluded)."""
    value = check_positive(name, scalar(value))
    if not low <= value <= high:
        raise ValueError(f"`{name}` must be {why}; got {value}.")
    return value


def _check_times(name: str, value: Any) -> tuple[float, ...]:
    """``step_t`` or ``jump_t``: a 1-D tensor or a sequence of finite real times.

    Returns the distinct times, sorted, as Python floats (a tensor is read detached:
    no gradient reaches these times).  A 1-D NumPy array counts as a tensor.
    """
    accepted = "a 1-D tensor or a list or tuple of real numbers (times)"
    if isinstance(value, np.ndarray) and value.dtype.kind in "iuf":
        value = torch.from_numpy(value)
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"`{name}` must have a real dtype; got {value.dtype}.")
        if value.ndim > 1:
            raise ValueError(f"`{name}` must be {accepted}; got shape {tuple(value.shape)}.")
        times = [float(s) for s in value.detach().reshape(-1).tolist()]
    elif isinstance(value, list | tuple):
        times = [check_real(f"{name}[{i}]", scalar(s), finite=False) for i, s in enumerate(value)]
    else:
        raise TypeError(f"`{name}` must be {accepted}; got {type(value).__name__} {value!r:.60}.")
    bad = [s for s in times if not math.isfinite(s)]
    if bad:
        raise ValueError(f"`{name}` must contain only finite times; got {bad[0]}.")
    return tuple(sorted(set(times)))


def _check_time_dtype(name: str, value: Any) -> torch.dtype:
    """torchdiffeq's ``dtype`` of times and step sizes: float64, which is all odecourse has."""
    if not isinstance(value, torch.dtype):
        raise TypeError(
            f"`{name}` must be a torch.dtype; got {type(value).__name__} {value!r:.60}."
        )
    if value != torch.float64:
        raise ValueError(
            f"`{name}` must be torch.float64; got {value}. odecourse keeps every time and step "
            "size in float64 (Python floats), so torchdiffeq's default torch.float64 is "
            "accepted and changes nothing, and other dtypes are refused."
        )
    return value


def _check_bool(name: str, value: Any) -> bool:
    value = scalar(value)
    if not isinstance(value, bool):
        raise TypeError(
            f"`{name}` must be True or False; got {type(value).__name__} {value!r:.60}."
        )
    return value


# The controller's factors: with safety > 1 or dfactor >= 1 a rejected step need not
# shrink (an endless loop), with ifactor < 1 every accepted step shrinks (about 1e15 steps).
_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "step_size": lambda name, v: check_positive(name, scalar(v)),
    "first_step": lambda name, v: check_positive(name, scalar(v)),
    "max_num_steps": lambda name, v: check_int(name, scalar(v), minimum=1),
    "max_step": lambda name, v: check_positive(name, scalar(v), allow_inf=True),
    "min_step": lambda name, v: check_positive(name, scalar(v), allow_zero=True),
    "norm": lambda name, v: checked_norm(check_callable(name, v)),
    "safety": lambda name, v: _check_factor(name, v, 0.0, 1.0, "in (0, 1]"),
    "ifactor": lambda name, v: _check_factor(name, v, 1.0, math.inf, ">= 1"),
    "dfactor": lambda name, v: _check_factor(
        name, v, 0.0, math.nextafter(1.0, 0.0), "in (0, 1) so that a rejected step shrinks"
    ),
    "step_t": _check_times,
    "jump_t": _check_times,
    "dtype": _check_time_dtype,
    "grid_constructor": check_callable,
    "perturb": _check_bool,
    "interp": lambda name, v: check_choice(name, v, ("linear", "cubic")),
}


def check_options(options: Any, tableau: ButcherTableau) -> Settings:
    """Validate ``options`` against the options that ``tableau``'s kind of method accepts."""
    if options is None:
        return _DEFAULT_SETTINGS
    if not isinstance(options, Mapping):
        raise TypeError(f"`options` must be a dict or None; got {type(options).__name__}.")
    accepted = ADAPTIVE_OPTIONS if tableau.adaptive else FIXED_OPTIONS
    kind, other = ("adaptive", "fixed-step") if tableau.adaptive else ("fixed-step", "adaptive")
    for key in options:
        if key not in accepted:
            why = f" (an option of the {other} methods)" if key in _CHECKS else ""
            raise ValueError(
                f"unknown option {key!r} for the {kind} method {tableau.name!r}{why}; "
                f"accepted options: {', '.join(map(repr, accepted))}."
            )
    settings = Settings(**{key: _CHECKS[key](key, value) for key, value in options.items()})
    if settings.min_step > settings.max_step:
        raise ValueError(
            f"`min_step` ({settings.min_step}) must not exceed `max_step` ({settings.max_step})."
        )
    if settings.step_size is not None and settings.grid_constructor is not None:
        raise ValueError(
            "`step_size` and `grid_constructor` are mutually exclusive (as in torchdiffeq): "
            "pass one of them."
        )
    return settings


def constructed_grid(
    settings: Settings, func: Any, y0: Any, t: Tensor, times: list[float]
) -> Settings:
    """Call ``grid_constructor(func, y0, t)`` and return ``settings`` with its grid, checked.

    The grid must be a 1-D real tensor of finite times, strictly monotone in the
    direction of ``t``, that starts at ``t[0]`` and ends at ``t[-1]`` exactly.
    """
    grid = settings.grid_constructor(func, y0, t)
    name = "the grid returned by `grid_constructor`"
    if not isinstance(grid, Tensor) or grid.is_complex() or grid.dtype == torch.bool:
        got = grid.dtype if isinstance(grid, Tensor) else f"{type(grid).__name__} {grid!r:.60}"
        raise TypeError(f"{name} must be a 1-D tensor of real times; got {got}.")
    if grid.ndim != 1 or grid.numel() < 2:
        raise ValueError(
            f"{name} must be a 1-D tensor of at least two times; got shape {tuple(grid.shape)}."
        )
    points = [float(s) for s in grid.detach().tolist()]
    if not all(math.isfinite(s) for s in points):
        raise ValueError(f"{name} must contain only finite times; got {points!r:.80}.")
    if points[0] != times[0] or points[-1] != times[-1]:
        raise ValueError(
            f"{name} must start at t[0] = {times[0]!r} and end at t[-1] = {times[-1]!r} "
            f"exactly; it goes from {points[0]!r} to {points[-1]!r}."
        )
    direction = 1.0 if times[-1] > times[0] else -1.0
    if not all(direction * (b - a) > 0 for a, b in itertools.pairwise(points)):
        order = "increasing" if direction > 0 else "decreasing"
        raise ValueError(f"{name} must be strictly {order}, like `t`; got {points!r:.80}.")
    return dataclasses.replace(settings, grid=tuple(points))


def nextafter_in(dtype: torch.dtype) -> Callable[[float, float], float]:
    """``nextafter(t, toward)`` in the precision ``func`` sees its time in (``y0``'s dtype).

    The core's times are float64 numbers; a float32 ``func`` receives them rounded, so
    the neighbour of a time must be a float32 neighbour, or the rounding would undo it.
    """
    return math.nextafter if dtype == torch.float64 else _nextafter_float32


def _nextafter_float32(t: float, toward: float) -> float:
    """The float32 number next to ``t`` in the direction of ``toward`` (``t`` if they are equal)."""
    if toward == t:
        return t
    up = toward > t
    nearest = np.float32(t)
    if nearest != t and (nearest > t) == up:  # rounding alone moves past t
        return float(nearest)
    return float(np.nextafter(nearest, np.float32(math.inf if up else -math.inf)))


def first_non_finite(values: Tensor, n_times: int) -> int | None:
    """Index of the first output time whose slice of ``values`` is not finite, or None."""
    finite = torch.isfinite(values.detach().reshape(n_times, -1)).all(dim=1)
    return None if bool(finite.all()) else int((~finite).nonzero()[0, 0])
