"""Argument checks shared by the public functions.

Each helper checks one value and returns it (converted where that is the
point of the check), so a public function validates at its boundary in a
single line per argument.  Messages name the argument, quote what was
received and say what would be accepted.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

import numpy as np

__all__ = [
    "check_callable",
    "check_choice",
    "check_finite_array",
    "check_int",
    "check_interval",
    "check_jacobian",
    "check_positive",
    "check_real",
    "check_t_eval",
    "check_t_span",
    "checked_rhs",
    "floor_rtol",
    "real_array",
]

#: The smallest relative tolerance, in units of the precision's epsilon (SciPy's rule).
RTOL_FLOOR = 100


def check_callable(name: str, value: Any) -> Callable:
    """Return ``value`` if it is callable, else raise ``TypeError``."""
    if not callable(value):
        raise TypeError(f"`{name}` must be callable; got {type(value).__name__} {value!r:.60}.")
    return value


def check_real(name: str, value: Any, *, finite: bool = True) -> float:
    """Return ``value`` as a float; reject non-numbers, booleans and non-finite values.

    A 0-d NumPy array of a real dtype (``np.array(1e-6)``) counts as its number.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value[()]
    if isinstance(value, bool) or not isinstance(value, Real | np.floating | np.integer):
        raise TypeError(
            f"`{name}` must be a real number; got {type(value).__name__} {value!r:.60}."
        )
    value = float(value)
    if finite and not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite; got {value}.")
    return value


def check_positive(
    name: str, value: Any, *, allow_inf: bool = False, allow_zero: bool = False
) -> float:
    """Return ``value`` as a float if it is positive (or zero when ``allow_zero``)."""
    value = check_real(name, value, finite=not allow_inf)
    if math.isnan(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "non-negative" if allow_zero else "positive"
        raise ValueError(f"`{name}` must be {bound}; got {value}.")
    return value


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer no smaller than ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"`{name}` must be an integer; got {type(value).__name__} {value!r:.60}.")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value}.")
    return value


def check_choice(name: str, value: Any, choices: Any) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` listing them."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in sorted(choices, key=str))
        raise ValueError(f"`{name}` must be one of {listed}; got {value!r}.")
    return value


def real_array(name: str, value: Any, *, returned: bool = False, where: str = "") -> np.ndarray:
    """Return ``value`` as a float64 array, or raise ``TypeError`` saying why it is not one.

    Complex values are refused rather than cast (NumPy would silently drop the imaginary
    part); strings, ``None``, dicts and other objects are refused rather than turned into
    NaN or parsed.  ``returned`` words the message for the output of a callable ``name``;
    ``where`` (e.g. " at t = 0") is appended to it.
    """
    verb = "return" if returned else "be"
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError):
        raw = None  # ragged nested sequences
    if raw is not None and raw.dtype.kind == "c":
        raise TypeError(
            f"`{name}` must {verb} real numbers; got complex {value!r:.60}{where}. odecourse "
            "works with real numbers: write a complex z = x + iy as the real pair (x, y)."
        )
    if raw is not None and raw.dtype.kind == "O" and any(x is None for x in raw.flat):
        raw = None  # NumPy would turn None into NaN
    if raw is not None and raw.dtype.kind in "biufO":
        try:
            return np.asarray(raw, dtype=float)
        except (TypeError, ValueError):
            pass
    raise TypeError(f"`{name}` must {verb} an array of real numbers; got {value!r:.60}{where}.")


def check_finite_array(
    name: str, value: Any, *, ndim: int | tuple[int, ...] | None = None
) -> np.ndarray:
    """Return ``value`` as a float64 array, checking that it is finite and of the given rank."""
    array = real_array(name, value)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if array.ndim not in allowed:
            raise ValueError(
                f"`{name}` must have {' or '.join(map(str, allowed))} dimension(s); "
                f"got shape {array.shape}."
            )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must contain only finite values; got {array!r:.80}.")
    return array


def check_t_span(
    name: str,
    value: Any,
    *,
    allow_reversed: bool = True,
    allow_empty: bool = False,
    allow_infinite_end: bool = False,
) -> tuple[float, float]:
    """Return ``(t0, t1)`` as floats.

    The interval must be finite and non-empty unless ``allow_infinite_end`` (``t1`` may be
    ``inf`` or ``-inf``: integrate until an event or a failure stops it) or
    ``allow_empty`` (``t0 == t1``) say otherwise, as SciPy's ``solve_ivp`` allows both.
    """
    try:
        t0, t1 = value
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be a pair (t0, t1); got {value!r:.60}.") from exc
    t0 = check_real(f"{name}[0]", t0)
    t1 = check_real(f"{name}[1]", t1, finite=not allow_infinite_end)
    if math.isnan(t1):
        raise ValueError(f"`{name}[1]` must be a number; got {t1}.")
    if t0 == t1 and not allow_empty:
        raise ValueError(f"`{name}` must be a non-empty interval; got ({t0}, {t1}).")
    if t1 < t0 and not allow_reversed:
        raise ValueError(f"`{name}` must be increasing (t0 < t1); got ({t0}, {t1}).")
    return t0, t1


def check_t_eval(name: str, value: Any, t_span: tuple[float, float]) -> np.ndarray | None:
    """Return output times as a float64 array inside ``t_span``, strictly monotone its way.

    ``None`` passes through.  The direction is that of ``t_span[0]`` to ``t_span[1]``.
    """
    if value is None:
        return None
    t_eval = check_finite_array(name, value, ndim=1)
    t0, t1 = t_span
    low, high = min(t0, t1), max(t0, t1)
    outside = t_eval[(t_eval < low) | (t_eval > high)]
    if outside.size:
        raise ValueError(
            f"`{name}` must lie within `t_span` = ({t0}, {t1}); got {outside[0]} outside it."
        )
    steps = np.diff(t_eval) * np.sign(t1 - t0)
    if np.any(steps <= 0):
        direction = "increasing" if t1 > t0 else "decreasing"
        k = int(np.flatnonzero(steps <= 0)[0])
        raise ValueError(
            f"`{name}` must be strictly {direction} (the direction of integration); "
            f"got {t_eval[k]} followed by {t_eval[k + 1]}."
        )
    return t_eval


def checked_rhs(name: str, fun: Callable, n: int) -> Callable[[float, np.ndarray], np.ndarray]:
    """Wrap ``fun(t, y)`` to return a float64 array of shape (n,), or to say why not.

    Non-finite values pass through: a trial step may overflow, and the integrator
    answers by rejecting it, shrinking the step, or ending with ``status = -1`` and a
    message naming the time; only a wrong shape or type is an error of ``fun`` itself.
    """

    shape = (n,)

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        dy = fun(t, y)
        if type(dy) is not np.ndarray or dy.dtype != np.float64:  # else real_array keeps it
            dy = real_array(name, dy, returned=True, where=f" at t = {t:.6g}")
        if dy.shape != shape:
            raise ValueError(
                f"`{name}` must return an array of shape ({n},) like `y0`; "
                f"got shape {dy.shape} at t = {t:.6g}."
            )
        return dy

    return rhs


def check_jacobian(what: str, value: Any, n: int) -> np.ndarray:
    """Return a Jacobian as a real float64 (n, n) array; ``what`` names it (``"`jac(t, y)`"``).

    Non-finite entries pass: the caller decides whether they are an error or a failed step.
    A SciPy sparse matrix is accepted, as SciPy accepts it, and made dense: the course's
    implicit solvers factorise dense matrices, which is what the small systems they are
    taught on need.
    """
    if hasattr(value, "toarray"):  # a scipy.sparse matrix, recognised without importing it
        value = value.toarray()
    try:
        matrix = real_array("jac", value)
    except TypeError:
        raise TypeError(
            f"{what} must be an array of real numbers of shape ({n}, {n}); got "
            f"{type(value).__name__} {value!r:.60}."
        ) from None
    if matrix.shape != (n, n):
        raise ValueError(f"{what} must be an array of shape ({n}, {n}); got shape {matrix.shape}.")
    return matrix


def check_interval(name: str, value: Any) -> tuple[float, float]:
    """Return ``(low, high)`` as floats if ``value`` is an increasing pair of finite numbers."""
    try:
        low, high = value
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be a pair (low, high); got {value!r:.60}.") from exc
    low, high = check_real(f"{name}[0]", low), check_real(f"{name}[1]", high)
    if not low < high:
        raise ValueError(f"`{name}` must be increasing (low < high); got ({low}, {high}).")
    return low, high


def floor_rtol(rtol: Any, eps: float = float(np.finfo(float).eps)) -> Any:
    """Raise a relative tolerance below ``100 * eps`` to that floor, with a warning.

    No step can be controlled to a relative error below a few units of rounding: asking
    for it only makes the controller reject steps for rounding noise.  SciPy's
    ``solve_ivp`` applies the same floor.  ``rtol`` may be a float or an array; ``eps``
    is the epsilon of the state's precision.
    """
    floor = RTOL_FLOOR * eps
    if np.any(np.asarray(rtol) < floor):
        warnings.warn(
            ("At least one element of `rtol` is too small: " if np.ndim(rtol) else "")
            + f"`rtol` = {rtol} is below {RTOL_FLOOR} * eps = {floor:.3g} for this precision, "
            f"where rounding errors dominate; using rtol = max(rtol, {floor:.3g}).",
            UserWarning,
            stacklevel=3,
        )
        rtol = np.maximum(rtol, floor) if np.ndim(rtol) else max(float(rtol), floor)
    return rtol
