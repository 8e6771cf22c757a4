"""Step-size control and the adaptive loop shared by every front end.

This module holds the pieces of an adaptive Runge-Kutta integrator, each
small and separately testable: the scaled RMS error norm (:func:`error_norm`),
the step-size controller (:class:`StepSizeController`), the automatic first
step (:func:`select_initial_step`), and the loop that drives an embedded pair
across an interval, :func:`integrate_adaptive`.  Its sibling for a constant
step :math:`h` is :func:`odecourse.fixed_step.integrate_fixed`.  Both loops
return an :class:`IntegrationResult` and place requested output times by dense
output, so output times never force extra steps.

The loops are array-generic: time and step sizes are Python floats, the
state is whatever array ``y0`` is (a NumPy array or a torch tensor), and it
is touched only by ``+``, ``*`` and :mod:`odecourse._arrays`.  SciPy's
``solve_ivp`` front end (:mod:`odecourse.solve`) and the torch ``odeint``
front end call the same loops.

Taught in Chapter 3.

References
----------
hairer1993: E. Hairer, S. P. Norsett, G. Wanner, Solving Ordinary Differential
Equations I, 2nd ed., Springer, 1993, Sec. II.4 (step-size control, initial step).
shampine1997: L. F. Shampine, M. W. Reichelt, The MATLAB ODE suite, SIAM J. Sci.
Comput. 18 (1997) 1-22.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from odecourse._arrays import detach, is_torch, maximum, rms_norm, scalar_like
from odecourse._loop import (
    SUCCESS_MESSAGE,
    TERMINATION_MESSAGE,
    Counted,
    IntegrationResult,
    Recorder,
    too_many_steps,
)
from odecourse._validation import check_int, check_positive
from odecourse.dense_output import evaluate_extra_stages, make_interpolant
from odecourse.runge_kutta import ButcherTableau, rk_step

__all__ = [
    "MAX_FACTOR",
    "MIN_FACTOR",
    "SAFETY",
    "IntegrationResult",
    "StepSizeController",
    "error_norm",
    "integrate_adaptive",
    "select_initial_step",
]

SAFETY = 0.9  #: safety factor on the asymptotically optimal step (SciPy's value)
MIN_FACTOR = 0.2  #: smallest allowed ratio h_new / h
MAX_FACTOR = 10.0  #: largest allowed ratio h_new / h

#: A norm for the step-size controller: maps a scaled error array to a float (or 0-d tensor).
Norm = Callable[[Any], Any]
#: ``observer(t, h, err, accepted, y_new)``, called after every attempted step.
Observer = Callable[[float, float, float, bool, Any], None]
#: ``before_step(t, y, h)``, called before every attempted step (torchdiffeq's ``callback_step``).
BeforeStep = Callable[[float, Any, float], None]


def error_norm(
    error: Any,
    y: Any,
    y_new: Any,
    rtol: Any,
    atol: Any,
    norm: Norm | None = None,
    error2: Any | None = None,
) -> float:
    r"""Scaled RMS norm of a local error estimate (SciPy's and Hairer's choice).

    .. math::
        \|e\| = \sqrt{\frac{1}{n} \sum_i \Big(\frac{e_i}{\mathrm{atol}_i
            + \mathrm{rtol}\,\max(|y_i|, |y^{\mathrm{new}}_i|)}\Big)^2}

    A step is accepted when this is below one.

    Parameters
    ----------
    error : array, shape like the state
        The embedded error estimate :math:`e` of the step.
    y, y_new : array, shape like the state
        States at the start and at the end of the step.
    rtol, atol : float or array broadcastable to the state
        Relative and absolute tolerances.
    norm : callable, optional
        Replaces the RMS norm: it receives the scaled error
        :math:`e_i / (\mathrm{atol}_i + \mathrm{rtol} \max(|y_i|, |y^{\mathrm{new}}_i|))`
        (detached from any autograd graph) and returns a scalar.  The adjoint
        method's *seminorm* is such a norm (kidger2021).
    error2 : array, optional
        A second, lower-order estimate :math:`e_2` (DOP853's order-3 one).  The
        two norms are then combined as in Hairer's DOP853 (hairer1993, Sec. II.10),
        :math:`\|e\|^2 / \sqrt{\|e\|^2 + 0.01\,\|e_2\|^2}`, which is
        :math:`O(h^8)` when :math:`e = O(h^6)` and :math:`e_2 = O(h^4)`.

    Returns
    -------
    float
        The scaled error norm, as a Python float.

    Trusts its caller (it runs once per attempted step).  Taught in Chapter 3.
    """
    if type(error) is not np.ndarray and is_torch(error) and _needs_grad(error, y, y_new):
        error, y, y_new = error.detach(), y.detach(), y_new.detach()
    scale = atol + rtol * maximum(abs(y), abs(y_new))
    scaled = error / scale
    value = rms_norm(scaled) if norm is None else float(norm(scaled))
    if error2 is None:
        return value
    scaled2 = detach(error2) / scale
    value2 = rms_norm(scaled2) if norm is None else float(norm(scaled2))
    denominator = value * value + 0.01 * value2 * value2
    return 0.0 if denominator == 0 else value * value / math.sqrt(denominator)


def _needs_grad(*tensors: Any) -> bool:
    """True if a tensor is part of an autograd graph (then it is detached before the norm)."""
    return any(tensor.requires_grad for tensor in tensors)


@dataclass(frozen=True)
class StepSizeController:
    r"""The elementary (I-) controller of an embedded pair.

    .. math::
        h_{\mathrm{new}} = h \cdot \min\Big(\mathrm{MAX},\, \max\big(\mathrm{MIN},\,
            \mathrm{SAFETY}\cdot \|e\|^{-1/(\hat p + 1)}\big)\Big)

    where :math:`\hat p` is the order of the error estimator.  After a
    rejection the next accepted step may not grow (factor capped at one).

    Parameters
    ----------
    error_order : int
        Order :math:`\hat p \ge 1` of the embedded (lower-order) formula.
    safety, min_factor, max_factor : float
        Positive; defaults ``SAFETY = 0.9``, ``MIN_FACTOR = 0.2``, ``MAX_FACTOR = 10``.

    Taught in Chapter 3.
    """

    error_order: int
    safety: float = SAFETY
    min_factor: float = MIN_FACTOR
    max_factor: float = MAX_FACTOR

    def __post_init__(self) -> None:
        check_int("error_order", self.error_order, minimum=1)
        for name in ("safety", "min_factor", "max_factor"):
            check_positive(name, getattr(self, name))

    @cached_property
    def exponent(self) -> float:
        """The exponent :math:`-1/(\\hat p + 1)`."""
        return -1.0 / (self.error_order + 1)

    def accept(self, err: float) -> bool:
        """True if a step with scaled error norm ``err`` is accepted."""
        return err < 1.0

    def factor(self, err: float, *, after_rejection: bool = False) -> float:
        """Ratio ``h_new / h`` after a step with scaled error norm ``err``."""
        if not math.isfinite(err):
            return self.min_factor
        if err == 0.0:
            optimal = self.max_factor
        else:
            optimal = self.safety * err**self.exponent
        if not self.accept(err):
            return max(self.min_factor, optimal)
        factor = min(self.max_factor, optimal)
        return min(1.0, factor) if after_rejection else factor


def select_initial_step(
    f: Callable[[float, Any], Any],
    t0: float,
    y0: Any,
    f0: Any,
    t1: float,
    error_order: int,
    rtol: Any,
    atol: Any,
    max_step: float = math.inf,
    norm: Norm | None = None,
) -> float:
    r"""Guess the size of the first step (hairer1993, Sec. II.4; SciPy's algorithm).

    With :math:`d_0 = \|y_0\|`, :math:`d_1 = \|f_0\|` in the scaled norm, take an
    explicit Euler step of :math:`h_0 = 0.01\, d_0 / d_1`, estimate the second
    derivative :math:`d_2` from it and return

    .. math:: h = \min\Big(100 h_0,\; \big(0.01/\max(d_1, d_2)\big)^{1/(\hat p+1)},\;
              |t_1 - t_0|,\; h_{\max}\Big).

    Costs one evaluation of ``f``.

    Parameters
    ----------
    f : callable
        ``f(t, y)``.
    t0, t1 : float
        Start and end of the interval (``t1 < t0`` integrates backwards).
    y0, f0 : array, shape like the state
        Initial state and ``f(t0, y0)``.
    error_order : int
        Order :math:`\hat p` of the embedded formula.
    rtol, atol : float or array
        Tolerances, as in :func:`error_norm`.
    max_step : float
        Largest allowed absolute step.
    norm : callable, optional
        Replaces the RMS norm, as in :func:`error_norm`.

    Returns
    -------
    float
        The absolute size of the first step.

    Trusts its caller.  Taught in Chapter 3.
    """
    norm = rms_norm if norm is None else _as_float(norm)
    interval = abs(t1 - t0)
    direction = 1.0 if t1 > t0 else -1.0
    y0, f0 = detach(y0), detach(f0)
    scale = atol + rtol * abs(y0)
    d0, d1 = norm(y0 / scale), norm(f0 / scale)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    h0 = min(h0, interval)
    f1 = detach(f(t0 + direction * h0, y0 + (direction * h0) * f0))
    d2 = norm((f1 - f0) / scale) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / (error_order + 1))
    return min(100 * h0, h1, interval, max_step)


def _as_float(norm: Norm) -> Callable[[Any], float]:
    """Wrap a user norm so that it returns a Python float."""
    return lambda x: float(norm(x))


@dataclass(slots=True)
class _Accepted:
    t: float
    y: Any
    f: Any
    interpolant: Callable[[float], Any] | None


@dataclass(frozen=True)
class _Tolerances:
    """What decides acceptance: tolerances, the largest step, and the norm (None: RMS)."""

    rtol: Any
    atol: Any
    max_step: float
    norm: Norm | None


def _min_step(t: float, direction: float) -> float:
    """Ten units in the last place of ``t``: below this a step cannot advance time."""
    return 10 * abs(math.nextafter(t, direction * math.inf) - t)


class _BeforeJump:
    """``f`` seen from before a discontinuity (a time of ``jump_t``): stage times held back.

    A stage time at or beyond ``edge`` (the neighbour of the jump on the side the
    integration comes from) is replaced by ``edge``, so the step that ends at the
    jump evaluates ``f`` on its own side only.  Stage times of shorter steps lie
    before ``edge`` and pass unchanged.
    """

    __slots__ = ("direction", "edge", "f")

    def __init__(self, f: Callable[[float, Any], Any], edge: float, direction: float) -> None:
        self.f, self.edge, self.direction = f, edge, direction

    def __call__(self, t: float, y: Any) -> Any:
        return self.f(self.edge if self.direction * (t - self.edge) > 0 else t, y)


def _stops(
    f: Callable[[float, Any], Any],
    t0: float,
    t1: float,
    step_t: Sequence[float],
    jump_t: Sequence[float],
    nextafter: Callable[[float, float], float],
) -> list[tuple[float, Callable[[float, Any], Any]]]:
    """The times every step must land on, in the order of integration, each with its ``f``.

    Times of ``step_t`` and ``jump_t`` strictly between ``t0`` and ``t1`` count, and a
    jump at ``t1`` too (the last step then stays on its side); the others are ignored.
    A jump's ``f`` is :class:`_BeforeJump`; a time in both lists is a jump.
    """
    direction = 1.0 if t1 > t0 else -1.0

    def inside(s: float) -> bool:
        return direction * (s - t0) > 0 and direction * (t1 - s) > 0

    stops = {s: f for s in step_t if inside(s)}
    for s in jump_t:
        if inside(s) or s == t1:
            stops[s] = _BeforeJump(f, nextafter(s, t0), direction)
    return sorted(stops.items(), key=lambda stop: direction * stop[0])


def _attempt(
    f: Callable[[float, Any], Any],
    t: float,
    y: Any,
    f_t: Any,
    h_abs: float,
    t1: float,
    tableau: ButcherTableau,
    controller: StepSizeController,
    tol: _Tolerances,
    observer: Observer | None = None,
    dense: bool = True,
    floor: float = 0.0,
    before_step: BeforeStep | None = None,
) -> tuple[_Accepted | None, float, int]:
    """Try steps from ``t`` until one is accepted or the step size underflows.

    Returns the accepted step (None on underflow), the proposed next ``|h|`` and
    the number of rejections.  ``before_step`` and ``observer`` see every attempt,
    before it and after it.  With ``dense`` False nobody will interpolate, and the
    step carries no dense output.  A positive ``floor`` (the user's ``min_step``)
    bounds ``|h|`` from below, and a step that short is accepted whatever its error.
    """
    direction = 1.0 if t1 > t else -1.0
    min_step = _min_step(t, direction)
    # A `max_step` below the time resolution leaves no admissible step: fail, as SciPy does.
    h_abs, rejected = min(max(h_abs, min_step), tol.max_step), 0
    if floor:
        h_abs = max(h_abs, floor)
    while h_abs >= min_step:
        t_new = t + direction * h_abs
        if direction * (t_new - t1) > 0:
            t_new = t1
        h = t_new - t
        if before_step is not None:
            before_step(t, y, h)
        step = rk_step(f, t, y, h, tableau, k0=f_t)
        err = error_norm(step.error, y, step.y, tol.rtol, tol.atol, tol.norm, step.error2)
        factor = controller.factor(err, after_rejection=rejected > 0)
        accepted = controller.accept(err)
        if floor and not accepted and (h_abs <= floor or abs(h) <= floor):
            accepted = True  # torchdiffeq's `min_step`: the shortest step is always taken
        if observer is not None:
            observer(t, h, err, accepted, step.y)
        if accepted:
            f_new = step.k[-1] if tableau.fsal else f(t_new, step.y)
            interpolant = (
                make_interpolant(tableau, t, t_new, y, step.y, f_t, f_new, step.k, f)
                if dense
                else None
            )
            return _Accepted(t_new, step.y, f_new, interpolant), abs(h) * factor, rejected
        h_abs, rejected = abs(h) * factor, rejected + 1
        if floor:
            h_abs = max(h_abs, floor)
    return None, h_abs, rejected


def integrate_adaptive(
    f: Callable[[float, Any], Any],
    t_span: tuple[float, float],
    y0: Any,
    tableau: ButcherTableau,
    *,
    rtol: Any = 1e-3,
    atol: Any = 1e-6,
    t_eval: Sequence[float] | None = None,
    first_step: float | None = None,
    max_step: float = math.inf,
    max_steps: int = 100_000,
    dense_output: bool = False,
    controller: StepSizeController | None = None,
    norm: Norm | None = None,
    observer: Observer | None = None,
    events: Any = None,
    step_t: Sequence[float] = (),
    jump_t: Sequence[float] = (),
    min_step: float = 0.0,
    nextafter: Callable[[float, float], float] = math.nextafter,
    before_step: BeforeStep | None = None,
) -> IntegrationResult:
    r"""Integrate ``y' = f(t, y)`` over ``t_span`` with an embedded Runge-Kutta pair.

    Each step is accepted when the scaled error norm of the embedded estimate
    is below one, and the next step size comes from the controller:

    .. math::
        y_{n+1} = y_n + h \sum_i b_i k_i, \qquad
        \|e_{n+1}\| < 1, \qquad h_{n+1} = h_n \cdot \mathrm{factor}(\|e_{n+1}\|).

    The solution is propagated with the higher-order weights (local
    extrapolation).  Trusts its caller: front ends validate the arguments.

    Parameters
    ----------
    f : callable
        ``f(t, y)`` with ``t`` a Python float; returns an array like ``y``.
    t_span : (float, float)
        Interval; ``t1 < t0`` integrates backwards.
    y0 : array
        Initial state (NumPy array or torch tensor, any shape).
    tableau : ButcherTableau
        Explicit tableau with an embedded pair (``b_hat``).
    rtol, atol : float or array
        Tolerances of :func:`error_norm`.
    t_eval : sequence of float, optional
        Output times, sorted in the direction of integration, inside ``t_span``;
        filled by dense output.  Default: every step end.
    first_step : float, optional
        Absolute size of the first step; default :func:`select_initial_step`.
    max_step : float
        Largest allowed absolute step size.
    max_steps : int
        Stop with ``status = -1`` after this many accepted steps.
    dense_output : bool
        Keep one interpolant per step in the result.
    controller : StepSizeController, optional
        Default ``StepSizeController(tableau.error_order)``.
    norm : callable, optional
        Replaces the RMS norm of the scaled error in :func:`error_norm` and
        :func:`select_initial_step` (e.g. a seminorm for the adjoint method).
    observer : callable, optional
        Called as ``observer(t, h, err, accepted, y_new)`` after every attempted
        step, accepted or rejected, with the signed step ``h`` and the error norm
        ``err``; it only watches (see :mod:`odecourse.step_history`).
    events : tuple of odecourse.events.Event, optional
        Located on each step's dense output (:func:`odecourse.events.prepare_events`).
    step_t : sequence of float, optional
        Times the steps must land on exactly (a step that would pass one is
        shortened to end there); times outside ``t_span`` are ignored.
    jump_t : sequence of float, optional
        Times where ``f`` is discontinuous.  Steps land on them like on ``step_t``;
        the step that ends at a jump evaluates its stages at
        ``nextafter(jump, t0)`` instead of the jump itself (it stays on its side),
        and the first stage after the jump is evaluated afresh at
        ``nextafter(jump, t1)`` instead of reusing the last stage (FSAL).  A jump at
        ``t0`` gives ``f(nextafter(t0, t1), y0)`` as the first derivative.
    min_step : float
        Smallest step size (torchdiffeq's ``min_step``): a step this short is
        accepted even if its error is too large.  0 (default) lets the step
        shrink to the resolution of floating-point times.
    nextafter : callable
        ``nextafter(t, toward)``, the neighbouring time that ``f`` can tell apart
        from ``t`` (``math.nextafter`` for float64; the torch front end passes the
        float32 one for float32 states).  Used by ``jump_t`` only.
    before_step : callable, optional
        Called as ``before_step(t, y, h)`` before every attempted step, accepted or
        rejected, with its start ``t``, the state ``y`` there and the signed step
        ``h`` (after it was shortened to land on ``t_span[1]`` or a time of
        ``step_t``/``jump_t``); it only watches.  ``odeint`` calls torchdiffeq's
        ``callback_step`` from it.

    Returns
    -------
    IntegrationResult
        ``status = 1`` after a terminal event; ``status = -1`` with a message naming
        ``t`` if no finite first step exists, the step size underflows (a sign of
        stiffness or of a blow-up) or ``max_steps`` is reached.

    Taught in Chapter 3.  References: hairer1993, Sec. II.4; dormand1980.
    """
    f = Counted(f)
    t0, t1 = float(t_span[0]), float(t_span[1])
    controller = controller or StepSizeController(tableau.error_order)
    # Without step_t, jump_t and min_step the loop below is the plain one.
    stops = _stops(f, t0, t1, step_t, jump_t, nextafter) if step_t or jump_t or min_step else None
    f_t = f(t0, y0) if not jump_t or t0 not in jump_t else f(nextafter(t0, t1), y0)
    tol = _Tolerances(scalar_like(rtol, y0), scalar_like(atol, y0), max_step, norm)
    if first_step is None:
        h_abs = select_initial_step(
            f, t0, y0, f_t, t1, tableau.error_order, rtol, atol, max_step, norm
        )
    else:
        h_abs = first_step
    recorder = Recorder(t0, y0, t_eval, 1.0 if t1 > t0 else -1.0, dense_output, events)
    # Dense output is built only for a reader: the result, output times or events.
    interpolate = dense_output or t_eval is not None or bool(events)
    t, y, counts = t0, y0, {"n_steps": 0, "n_rejected": 0}
    status, message = 0, SUCCESS_MESSAGE
    if not (math.isfinite(h_abs) and h_abs > 0):
        status, message = -1, _no_first_step(t0, h_abs)
    while t != t1 and status == 0:
        if counts["n_steps"] >= max_steps:
            status, message = -1, too_many_steps(max_steps, t)
            break
        if stops is None:
            step, h_abs, rejected = _attempt(
                f, t, y, f_t, h_abs, t1, tableau, controller, tol, observer, interpolate,
                0.0, before_step,
            )  # fmt: skip
        else:
            step, h_abs, rejected = _attempt_to_stop(
                f, t, y, f_t, h_abs, t1, stops, tableau, controller, tol, observer,
                interpolate, min_step, nextafter, before_step,
            )  # fmt: skip
        counts["n_rejected"] += rejected
        if step is None:
            status, message = -1, _step_too_small(t, h_abs, max_step)
            break
        counts["n_steps"] += 1
        t, y, f_t = step.t, step.y, step.f
        if dense_output or _output_due(t_eval, len(recorder.t), t, t1 > t0):
            evaluate_extra_stages(step.interpolant)  # DOP853's, when SciPy evaluates them
        recorder.record(t, y, step.interpolant)
        if recorder.terminated:
            status, message = 1, TERMINATION_MESSAGE
    return recorder.result(nfev=f.n, status=status, message=message, **counts)


def _attempt_to_stop(
    f: Counted,
    t: float,
    y: Any,
    f_t: Any,
    h_abs: float,
    t1: float,
    stops: list[tuple[float, Callable[[float, Any], Any]]],
    tableau: ButcherTableau,
    controller: StepSizeController,
    tol: _Tolerances,
    observer: Observer | None,
    dense: bool,
    floor: float,
    nextafter: Callable[[float, float], float],
    before_step: BeforeStep | None = None,
) -> tuple[_Accepted | None, float, int]:
    """:func:`_attempt` towards the next of ``stops`` (then ``t1``), with ``min_step``.

    A step that reaches a stop removes it from ``stops``; past a jump, ``f`` is
    evaluated afresh on the far side instead of reusing the step's last stage.
    """
    target, rhs = stops[0] if stops else (t1, f)
    step, h_abs, rejected = _attempt(
        rhs, t, y, f_t, h_abs, target, tableau, controller, tol, observer, dense, floor,
        before_step,
    )  # fmt: skip
    if step is not None and stops and step.t == target:
        del stops[0]
        if rhs is not f and target != t1:  # crossed a jump: f afresh on the far side
            step.f = f(nextafter(target, t1), step.y)
    return step, h_abs, rejected


def _no_first_step(t0: float, h_abs: float) -> str:
    return (
        f"No finite first step could be chosen at t = {t0:.6g} (got {h_abs}): either "
        "f(t0, y0) or the state one small step away is not finite, or `atol` is 0 and a "
        "component of y0 is 0, which a purely relative tolerance cannot measure (use a "
        "positive `atol`, or pass `first_step`)."
    )


def _output_due(t_eval: Sequence[float] | None, n_done: int, t: float, forward: bool) -> bool:
    """True if output time number ``n_done`` of ``t_eval`` lies before the step end ``t``.

    Then the recorder fills it, and possibly more, from this step's dense output.
    """
    if t_eval is None or n_done >= len(t_eval):
        return False
    return float(t_eval[n_done]) <= t if forward else float(t_eval[n_done]) >= t


def _step_too_small(t: float, h_abs: float, max_step: float = math.inf) -> str:
    if max_step < _min_step(t, 1.0):
        return (
            f"`max_step` = {max_step:.3g} is below the resolution of floating-point times "
            f"near t = {t:.6g} (steps shorter than {_min_step(t, 1.0):.3g} cannot advance "
            "time accurately); use a larger `max_step`, or shift `t_span` towards 0."
        )
    return (
        f"The step size became too small (|h| = {h_abs:.3g}) at t = {t:.6g}; the solution "
        "may blow up or stop being finite near this time, or the problem is stiff (in "
        "solve_ivp, try method='Radau' or 'BDF')."
    )
