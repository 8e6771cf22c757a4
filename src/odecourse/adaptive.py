"""Step-size control and the two integration loops shared by every front end.

This module holds the pieces of an adaptive Runge-Kutta integrator, each
small and separately testable: the scaled RMS error norm (:func:`error_norm`),
the step-size controller (:class:`StepSizeController`), the automatic first
step (:func:`select_initial_step`), and the loops that drive a method across
an interval: :func:`integrate_adaptive` (embedded pairs) and
:func:`integrate_fixed` (constant step :math:`h`).  Both loops return an
:class:`IntegrationResult` and place requested output times by dense output,
so output times never force extra steps.

The loops are array-generic: time and step sizes are Python floats, the
state is whatever array ``y0`` is (a NumPy array or a torch tensor), and it
is touched only by ``+``, ``*`` and :mod:`odecourse._arrays`.  SciPy's
``solve_ivp`` front end (:mod:`odecourse.solve`) and the torch ``odeint``
front end call the same two functions.

Taught in Chapter 3.

References
----------
hairer1993: E. Hairer, S. P. Norsett, G. Wanner, Solving Ordinary Differential
Equations I, 2nd ed., Springer, 1993, Sec. II.4 (step-size control, initial step).
shampine1997: L. F. Shampine, M. W. Reichelt, The MATLAB ODE suite, SIAM J. Sci.
Comput. 18 (1997) 1-22.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from odecourse._arrays import detach, maximum, rms_norm
from odecourse._validation import check_int, check_positive, check_t_span
from odecourse.dense_output import make_interpolant
from odecourse.runge_kutta import ButcherTableau, rk_step

__all__ = [
    "MAX_FACTOR",
    "MIN_FACTOR",
    "SAFETY",
    "IntegrationResult",
    "StepOutcome",
    "StepSizeController",
    "error_norm",
    "fixed_grid",
    "integrate_adaptive",
    "integrate_fixed",
    "rk_stepper",
    "select_initial_step",
]

SAFETY = 0.9  #: safety factor on the asymptotically optimal step (SciPy's value)
MIN_FACTOR = 0.2  #: smallest allowed ratio h_new / h
MAX_FACTOR = 10.0  #: largest allowed ratio h_new / h
SUCCESS_MESSAGE = "The solver successfully reached the end of the integration interval."

#: A norm for the step-size controller: maps a scaled error array to a float (or 0-d tensor).
Norm = Callable[[Any], Any]
#: ``observer(t, h, err, accepted, y_new)``, called after every attempted step.
Observer = Callable[[float, float, float, bool, Any], None]


def error_norm(
    error: Any, y: Any, y_new: Any, rtol: Any, atol: Any, norm: Norm | None = None
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

    Returns
    -------
    float
        The scaled error norm, as a Python float.

    Trusts its caller (it runs once per attempted step).  Taught in Chapter 3.
    """
    error, y, y_new = detach(error), detach(y), detach(y_new)
    scale = atol + rtol * maximum(abs(y), abs(y_new))
    scaled = error / scale
    return rms_norm(scaled) if norm is None else float(norm(scaled))


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

    @property
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


@dataclass
class IntegrationResult:
    """What a loop returns: outputs, optional dense output, counters and status.

    Attributes
    ----------
    t : list of float
        Output times: every step end, or the requested ``t_eval``.
    y : list of arrays
        States at ``t`` (same array type as ``y0``).
    interpolants : list of callables or None
        One dense-output callable per accepted step, in order, when requested.
    nfev, n_steps, n_rejected, njev, nlu : int
        Counters (``njev``/``nlu`` are filled in by implicit methods).
    status : int
        0 if the end of the interval was reached, -1 if the integration failed.
    message : str
        Human-readable reason for the status.
    """

    t: list[float]
    y: list[Any]
    interpolants: list[Callable[[float], Any]] | None
    nfev: int = 0
    n_steps: int = 0
    n_rejected: int = 0
    njev: int = 0
    nlu: int = 0
    status: int = 0
    message: str = SUCCESS_MESSAGE

    @property
    def success(self) -> bool:
        """True if the integration reached the end of the interval."""
        return self.status >= 0


class _Counted:
    """Wrap ``f`` and count its evaluations."""

    def __init__(self, f: Callable[[float, Any], Any]) -> None:
        self.f, self.n = f, 0

    def __call__(self, t: float, y: Any) -> Any:
        self.n += 1
        return self.f(t, y)


@dataclass
class _Recorder:
    """Collect outputs at step ends, or at requested times by dense output."""

    t0: float
    y0: Any
    t_eval: Sequence[float] | None
    direction: float
    dense: bool
    t: list[float] = field(default_factory=list)
    y: list[Any] = field(default_factory=list)
    interpolants: list[Any] = field(default_factory=list)
    _next: int = 0

    def __post_init__(self) -> None:
        if self.t_eval is None:
            self.t.append(self.t0)
            self.y.append(self.y0)

    def record(self, t_new: float, y_new: Any, interpolant: Callable[[float], Any]) -> None:
        if self.dense:
            self.interpolants.append(interpolant)
        if self.t_eval is None:
            self.t.append(t_new)
            self.y.append(y_new)
            return
        while self._next < len(self.t_eval):
            t_out = float(self.t_eval[self._next])
            if self.direction * (t_out - t_new) > 0:
                break
            self.t.append(t_out)
            self.y.append(y_new if t_out == t_new else interpolant(t_out))
            self._next += 1

    def result(self, **counters: Any) -> IntegrationResult:
        dense = self.interpolants if self.dense else None
        return IntegrationResult(self.t, self.y, dense, **counters)


@dataclass(frozen=True)
class _Accepted:
    t: float
    y: Any
    f: Any
    interpolant: Callable[[float], Any]


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


def _attempt(
    f: _Counted,
    t: float,
    y: Any,
    f_t: Any,
    h_abs: float,
    t1: float,
    tableau: ButcherTableau,
    controller: StepSizeController,
    tol: _Tolerances,
    observer: Observer | None = None,
) -> tuple[_Accepted | None, float, int]:
    """Try steps from ``t`` until one is accepted or the step size underflows.

    Returns the accepted step (None on underflow), the proposed next ``|h|`` and
    the number of rejections.  ``observer`` sees every attempt.
    """
    direction = 1.0 if t1 > t else -1.0
    h_abs, rejected = min(h_abs, tol.max_step), 0
    min_step = _min_step(t, direction)
    h_abs = max(h_abs, min_step)
    while h_abs >= min_step:
        t_new = t + direction * h_abs
        if direction * (t_new - t1) > 0:
            t_new = t1
        h = t_new - t
        step = rk_step(f, t, y, h, tableau, k0=f_t)
        err = error_norm(step.error, y, step.y, tol.rtol, tol.atol, tol.norm)
        factor = controller.factor(err, after_rejection=rejected > 0)
        accepted = controller.accept(err)
        if observer is not None:
            observer(t, h, err, accepted, step.y)
        if accepted:
            f_new = step.k[-1] if tableau.fsal else f(t_new, step.y)
            dense = make_interpolant(tableau, t, t_new, y, step.y, f_t, f_new, step.k)
            return _Accepted(t_new, step.y, f_new, dense), abs(h) * factor, rejected
        h_abs, rejected = abs(h) * factor, rejected + 1
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

    Returns
    -------
    IntegrationResult
        ``status = -1`` with a message if the step size underflows (a sign of
        stiffness) or ``max_steps`` is reached.

    Taught in Chapter 3.  References: hairer1993, Sec. II.4; dormand1980.
    """
    f = _Counted(f)
    t0, t1 = float(t_span[0]), float(t_span[1])
    controller = controller or StepSizeController(tableau.error_order)
    f_t = f(t0, y0)
    tol = _Tolerances(rtol, atol, max_step, norm)
    if first_step is None:
        h_abs = select_initial_step(
            f, t0, y0, f_t, t1, tableau.error_order, rtol, atol, max_step, norm
        )
    else:
        h_abs = first_step
    recorder = _Recorder(t0, y0, t_eval, 1.0 if t1 > t0 else -1.0, dense_output)
    t, y, counts = t0, y0, {"n_steps": 0, "n_rejected": 0}
    status, message = 0, SUCCESS_MESSAGE
    while t != t1:
        if counts["n_steps"] >= max_steps:
            status, message = -1, _too_many_steps(max_steps, t)
            break
        step, h_abs, rejected = _attempt(
            f, t, y, f_t, h_abs, t1, tableau, controller, tol, observer
        )
        counts["n_rejected"] += rejected
        if step is None:
            status, message = -1, _step_too_small(t, h_abs)
            break
        counts["n_steps"] += 1
        t, y, f_t = step.t, step.y, step.f
        recorder.record(t, y, step.interpolant)
    return recorder.result(nfev=f.n, status=status, message=message, **counts)


def _too_many_steps(max_steps: int, t: float) -> str:
    return (
        f"The maximum number of steps ({max_steps}) was reached at t = {t:.6g}; "
        "raise `max_steps`, loosen the tolerances, or use a larger `h`."
    )


def _step_too_small(t: float, h_abs: float) -> str:
    return (
        f"The step size became too small (|h| = {h_abs:.3g}) at t = {t:.6g}; "
        "the problem may be stiff (try an implicit method such as 'backward_euler' "
        "or 'trapezoid') or the solution may blow up near this time."
    )


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
        dense = make_interpolant(tableau, t, t + h, y, result.y, f_t, f_new, result.k)
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
    ratio = abs(t1 - t0) / h
    n = round(ratio) if abs(ratio - round(ratio)) <= 1e-9 * ratio else math.ceil(ratio)
    n = max(n, 1)
    direction = 1.0 if t1 > t0 else -1.0
    return [t0 + direction * k * h for k in range(n)] + [t1]


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

    Returns
    -------
    IntegrationResult
        One output per grid point (or per ``t_eval``), with ``nfev`` and ``n_steps``.

    Taught in Chapter 2.
    """
    if isinstance(step, ButcherTableau):
        step = rk_stepper(step)
    f = _Counted(f)
    grid = fixed_grid(t_span, h) if grid is None else [float(t) for t in grid]
    direction = 1.0 if grid[-1] > grid[0] else -1.0
    recorder = _Recorder(grid[0], y0, t_eval, direction, dense_output)
    y, f_t = y0, f(grid[0], y0)
    status, message, n_steps = 0, SUCCESS_MESSAGE, 0
    for t, t_new in itertools.pairwise(grid):
        if n_steps >= max_steps:
            status, message = -1, _too_many_steps(max_steps, t)
            break
        outcome = step(f, t, y, f_t, t_new - t)
        y, f_t, n_steps = outcome.y, outcome.f, n_steps + 1
        recorder.record(t_new, y, outcome.interpolant)
    return recorder.result(nfev=f.n, n_steps=n_steps, status=status, message=message)
