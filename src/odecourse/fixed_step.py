r"""The fixed-step loop: a one-step method with constant step :math:`h` across an interval.

:func:`integrate_fixed` advances any fixed-step method, given as an explicit
Butcher tableau or as a :data:`FixedStep` callable (an implicit Runge-Kutta
step, a multistep method with its own history, ...), on the grid of
:func:`fixed_grid`, and places requested output times by each step's dense
output.  Like :func:`odecourse.adaptive.integrate_adaptive` it is
array-generic and returns an :class:`~odecourse.adaptive.IntegrationResult`.

Taught in Chapter 2.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from odecourse._arrays import all_finite
from odecourse._loop import (
    SUCCESS_MESSAGE,
    TERMINATION_MESSAGE,
    Counted,
    IntegrationResult,
    Recorder,
    too_many_steps,
)
from odecourse._validation import check_positive, check_t_span
from odecourse.dense_output import HermiteInterpolant, make_interpolant
from odecourse.newton import NewtonConvergenceError
from odecourse.runge_kutta import ButcherTableau, rk_step

__all__ = ["FixedStep", "StepOutcome", "fixed_grid", "integrate_fixed", "rk_stepper"]


@dataclass(frozen=True)
class StepOutcome:
    """One step of a fixed-step method: the new state, ``f`` there, and its dense output."""

    y: Any
    f: Any
    interpolant: Callable[[float], Any]


#: A fixed-step method: ``step(f, t, y, f_t, h) -> StepOutcome`` with ``f_t = f(t, y)``.
FixedStep = Callable[[Callable[[float, Any], Any], float, Any, Any, float], StepOutcome]


def rk_stepper(tableau: ButcherTableau) -> FixedStep:
    """Wrap an explicit tableau as a fixed-step method for :func:`integrate_fixed`.

    The returned step reuses ``f_t`` as the first stage, evaluates ``f`` at the
    new point (free for FSAL tableaus; it is the next step's first stage
    otherwise), and builds the tableau's dense output or a cubic Hermite one.
    Taught in Chapter 2.
    """

    def step(f: Callable[[float, Any], Any], t: float, y: Any, f_t: Any, h: float) -> StepOutcome:
        result = rk_step(f, t, y, h, tableau, k0=f_t)
        f_new = result.k[-1] if tableau.fsal else f(t + h, result.y)
        dense = make_interpolant(tableau, t, t + h, y, result.y, f_t, f_new, result.k, f)
        return StepOutcome(result.y, f_new, dense)

    return step


def fixed_grid(t_span: tuple[float, float], h: float) -> list[float]:
    r"""The grid of :func:`integrate_fixed`: :math:`t_k = t_0 + k h`, last step shortened.

    The number of steps is :math:`N = \lceil |t_1 - t_0| / h \rceil`, except that a
    ratio within :math:`10^{-9}` (relative) of an integer counts as that integer,
    so ``h = T / N`` gives exactly ``N`` equal steps.  The last point is ``t1``
    exactly.

    Parameters
    ----------
    t_span : (float, float)
        Interval; ``t1 < t0`` gives a decreasing grid.
    h : float
        Positive step size; a step larger than the interval gives one step.

    Returns
    -------
    list of float
        The grid :math:`t_0, t_0 \pm h, \dots, t_1`, of length :math:`N + 1`.

    Taught in Chapter 2.
    """
    t0, t1 = check_t_span("t_span", t_span)
    h = check_positive("h", h)
    return list(_grid(t0, t1, h))


def _n_steps(t0: float, t1: float, h: float) -> int:
    """The number of steps of :func:`fixed_grid` (see there)."""
    ratio = abs(t1 - t0) / h
    n = round(ratio) if abs(ratio - round(ratio)) <= 1e-9 * ratio else math.ceil(ratio)
    return max(n, 1)


def _grid(t0: float, t1: float, h: float) -> Iterator[float]:
    """The points of :func:`fixed_grid`, one at a time: a tiny ``h`` costs no memory."""
    direction = 1.0 if t1 > t0 else -1.0
    for k in range(_n_steps(t0, t1, h)):
        yield t0 + direction * k * h
    yield t1


def integrate_fixed(
    f: Callable[[float, Any], Any],
    t_span: tuple[float, float],
    y0: Any,
    h: float | None,
    step: ButcherTableau | FixedStep,
    *,
    t_eval: Sequence[float] | None = None,
    max_steps: int = 1_000_000,
    dense_output: bool = False,
    grid: Sequence[float] | None = None,
    events: Any = None,
    perturb: bool = False,
    interp: str | None = None,
    nextafter: Callable[[float, float], float] = math.nextafter,
    before_step: Callable[[float, Any, float], None] | None = None,
) -> IntegrationResult:
    r"""Integrate ``y' = f(t, y)`` with a constant step size ``h`` on :func:`fixed_grid`.

    .. math:: y_{n+1} = \Phi_h(t_n, y_n), \qquad t_n = t_0 + n h,

    with the last step shortened to end exactly at ``t1``.  ``step`` is an
    explicit tableau or any :data:`FixedStep` callable (an implicit
    Runge-Kutta step, a multistep method with its own history, ...).  Outputs
    at ``t_eval`` come from each step's interpolant (the tableau's dense
    output, or cubic Hermite).

    Trusts its caller: front ends validate the arguments.

    Parameters
    ----------
    f : callable
        ``f(t, y)`` with ``t`` a Python float; returns an array like ``y``.
    t_span : (float, float)
        Interval; ``t1 < t0`` integrates backwards.
    y0 : array
        Initial state (NumPy array or torch tensor, any shape).
    h : float or None
        Positive step size (ignored when ``grid`` is given).
    step : ButcherTableau or FixedStep
        An explicit tableau, or ``step(f, t, y, f_t, h) -> StepOutcome``.
    t_eval : sequence of float, optional
        Output times, sorted in the direction of integration, inside ``t_span``;
        filled by dense output.  Default: every grid point.
    max_steps : int
        Stop with ``status = -1`` after this many steps.
    dense_output : bool
        Keep one interpolant per step in the result.
    grid : sequence of float, optional
        Replaces :func:`fixed_grid`: the steps go from each of its points to the
        next.  It must be strictly monotone, start at ``t_span[0]`` and end at
        ``t_span[1]``; with ``grid = t_eval`` the method steps exactly between the
        output times, as torchdiffeq's fixed-grid solvers do without a ``step_size``.
    events : tuple of odecourse.events.Event, optional
        Located on each step's dense output (NumPy states only).
    perturb : bool
        torchdiffeq's ``perturb`` (explicit tableaus only): ``f`` never sees a grid
        time.  In the step from :math:`t_n` to :math:`t_{n+1}` a stage at
        :math:`t_n` is evaluated at ``nextafter(t_n, t_{n+1})`` and a stage at
        :math:`t_{n+1}` at ``nextafter(t_{n+1}, t_n)``, so a discontinuity of ``f``
        at a grid time is seen from the side of the step; the first stage is
        evaluated afresh in every step (no reuse across the grid time).
    interp : {"linear", "cubic"}, optional
        How output times between grid points are filled: ``"linear"``
        interpolates linearly between the ends of the step, ``"cubic"`` is cubic
        Hermite interpolation with the slopes ``f`` at both ends; default: the
        method's dense output (:func:`~odecourse.dense_output.make_interpolant`).
    nextafter : callable
        ``nextafter(t, toward)``, the neighbouring time that ``f`` can tell apart
        from ``t`` (``math.nextafter`` for float64).  Used by ``perturb`` only.
    before_step : callable, optional
        Called as ``before_step(t, y, h)`` before every step, with its start ``t``,
        the state ``y`` there and the signed step ``h``; it only watches.  ``odeint``
        calls torchdiffeq's ``callback_step`` from it.

    Returns
    -------
    IntegrationResult
        One output per grid point (or per ``t_eval``), with ``nfev`` and ``n_steps``;
        ``status = 1`` after a terminal event, ``status = -1`` with a message naming ``t``
        if ``max_steps`` is reached (the grid is generated step by step, so a tiny ``h``
        stops there instead of filling memory) or the state stops being finite.

    Taught in Chapter 2.
    """
    tableau = step if isinstance(step, ButcherTableau) else None
    if perturb and tableau is None:
        raise TypeError("`perturb` needs an explicit ButcherTableau as `step`.")
    if tableau is not None:
        step = rk_stepper(tableau)
    if interp is not None:
        step = _interpolating(step, interp)
    f = Counted(f)
    t0, t1 = float(t_span[0]), float(t_span[1])
    if grid is None:
        _warn_if_unresolved(t0, t1, h)
    points = _grid(t0, t1, h) if grid is None else (float(t) for t in grid)
    direction = 1.0 if t1 > t0 else -1.0
    recorder = Recorder(t0, y0, t_eval, direction, dense_output, events)
    y, f_t = y0, f(t0, y0) if not perturb else f(nextafter(t0, t1), y0)
    status, message, n_steps = 0, SUCCESS_MESSAGE, 0
    if not all_finite(f_t):
        points, status, message = iter(()), -1, _not_finite_at_start(t0)
    for t, t_new in itertools.pairwise(points):
        if n_steps >= max_steps:
            status, message = -1, too_many_steps(max_steps, t)
            break
        if direction * (t_new - t) <= 0:
            status, message = -1, _unresolved(t, h)
            break
        if before_step is not None:
            before_step(t, y, t_new - t)
        try:
            if perturb:
                outcome = _perturbed_step(f, t, t_new, y, f_t, tableau, interp, nextafter)
            else:
                outcome = step(f, t, y, f_t, t_new - t)
        except NewtonConvergenceError as failure:
            status, message = -1, str(failure)
            break
        y, f_t, n_steps = outcome.y, outcome.f, n_steps + 1
        if not all_finite(y):
            status, message = -1, _not_finite(t, t_new)
            break
        recorder.record(t_new, y, outcome.interpolant)
        if recorder.terminated:
            status, message = 1, TERMINATION_MESSAGE
            break
    return recorder.result(nfev=f.n, n_steps=n_steps, status=status, message=message)


@dataclass(frozen=True)
class _LinearInterpolant:
    """torchdiffeq's ``interp="linear"``: the straight line between the ends of a step."""

    t_old: float
    t_new: float
    y_old: Any
    y_new: Any

    def __call__(self, t: float) -> Any:
        if t == self.t_old:
            return self.y_old
        if t == self.t_new:
            return self.y_new
        return self.y_old + ((t - self.t_old) / (self.t_new - self.t_old)) * (
            self.y_new - self.y_old
        )


@dataclass(frozen=True)
class _LazyHermite:
    """Cubic Hermite dense output whose end slope ``f(t_new, y_new)`` is evaluated on first use.

    With ``perturb`` the next step evaluates its own first stage, so the slope at the
    end of a step costs an evaluation only when an output time lies inside the step.
    """

    f: Callable[[float, Any], Any]
    t_old: float
    t_new: float
    y_old: Any
    y_new: Any
    f_old: Any

    @cached_property
    def _hermite(self) -> HermiteInterpolant:
        f_new = self.f(self.t_new, self.y_new)
        return HermiteInterpolant(self.t_old, self.t_new, self.y_old, self.y_new, self.f_old, f_new)

    def __call__(self, t: float) -> Any:
        if t == self.t_old:
            return self.y_old
        return self.y_new if t == self.t_new else self._hermite(t)


def _interpolating(step: FixedStep, interp: str) -> FixedStep:
    """``step`` with its dense output replaced by linear or cubic Hermite interpolation."""

    def interpolated(f: Callable, t: float, y: Any, f_t: Any, h: float) -> StepOutcome:
        outcome = step(f, t, y, f_t, h)
        if interp == "linear":
            dense = _LinearInterpolant(t, t + h, y, outcome.y)
        else:
            dense = HermiteInterpolant(t, t + h, y, outcome.y, f_t, outcome.f)
        return StepOutcome(outcome.y, outcome.f, dense)

    return interpolated


class _Inside:
    """``f`` with its time kept strictly inside a step: torchdiffeq's ``perturb``.

    A stage time at or before the start of the step (in the direction of the step)
    becomes ``first``, the time just after the start; one at or after its end
    becomes ``last``, the time just before the end.
    """

    __slots__ = ("direction", "f", "first", "last")

    def __init__(self, f: Callable, first: float, last: float, direction: float) -> None:
        self.f, self.first, self.last, self.direction = f, first, last, direction

    def __call__(self, t: float, y: Any) -> Any:
        if self.direction * (t - self.first) < 0:
            t = self.first
        elif self.direction * (t - self.last) > 0:
            t = self.last
        return self.f(t, y)


def _perturbed_step(
    f: Callable[[float, Any], Any],
    t: float,
    t_new: float,
    y: Any,
    f_t: Any,
    tableau: ButcherTableau,
    interp: str | None,
    nextafter: Callable[[float, float], float],
) -> StepOutcome:
    """One step of ``tableau`` from ``t`` to ``t_new`` whose stages never see ``t`` or ``t_new``.

    ``f_t`` is the first stage if already evaluated (at ``nextafter(t, t_new)``), else
    None.  The outcome's ``f`` is None: the next step evaluates its own first stage.
    """
    direction = 1.0 if t_new > t else -1.0
    inside = _Inside(f, nextafter(t, t_new), nextafter(t_new, t), direction)
    k0 = inside(t, y) if f_t is None else f_t
    result = rk_step(inside, t, y, t_new - t, tableau, k0=k0)
    if interp == "linear":
        dense = _LinearInterpolant(t, t_new, y, result.y)
    elif interp is None and tableau.P is not None:
        dense = make_interpolant(tableau, t, t_new, y, result.y, k0, None, result.k, inside)
    elif tableau.fsal:
        dense = HermiteInterpolant(t, t_new, y, result.y, k0, result.k[-1])
    else:
        dense = _LazyHermite(inside, t, t_new, y, result.y, k0)
    return StepOutcome(result.y, None, dense)


#: Warn when ``h`` is below this many floating-point spacings of the times it steps between.
RESOLUTION_SPACINGS = 100


def _warn_if_unresolved(t0: float, t1: float, h: float) -> None:
    """Warn when rounding the grid times changes the step lengths by more than 1 %."""
    spacing = max(math.ulp(t0), math.ulp(t1))
    if h < RESOLUTION_SPACINGS * spacing:
        warnings.warn(
            f"`h` = {h:.3g} is close to the spacing {spacing:.3g} of floating-point times in "
            f"`t_span` = ({t0:.6g}, {t1:.6g}): the grid points are rounded, so the steps are "
            "not of equal length (and may be empty); shift `t_span` towards 0 or use a larger "
            "`h`.",
            UserWarning,
            stacklevel=4,
        )


def _unresolved(t: float, h: float | None) -> str:
    return (
        f"The step after t = {t:.6g} has zero length: the step size (h = {h}) is below the "
        "resolution of floating-point times there. Shift `t_span` towards 0 or use a "
        "larger `h`."
    )


def _not_finite_at_start(t0: float) -> str:
    return (
        f"f(t0, y0) is not finite at the initial time t = {t0:.6g}, so no step can be taken; "
        "check the right-hand side there."
    )


def _not_finite(t: float, t_new: float) -> str:
    return (
        f"The solution stopped being finite in the step from t = {t:.6g} to t = {t_new:.6g}; "
        "the step is too large for a stiff problem (try a smaller `h` or an implicit "
        "method) or the solution blows up there."
    )
