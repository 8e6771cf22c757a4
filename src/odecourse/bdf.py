r"""Variable-order, variable-step BDF/NDF: the stiff solver of SciPy's ``BDF`` and ode15s.

The numerical differentiation formula (NDF) of order :math:`k \le 5` is the backward
differentiation formula (BDF) plus a multiple :math:`\kappa_k` of the next difference:

.. math::
    \sum_{j=1}^{k} \frac{1}{j} \nabla^j y_{n+1}
        - \kappa_k \gamma_k \big(y_{n+1} - y^{(0)}_{n+1}\big) = h f(t_{n+1}, y_{n+1}),
    \qquad \gamma_k = \sum_{j=1}^{k} \frac{1}{j},
    \qquad y^{(0)}_{n+1} = \sum_{j=0}^{k} \nabla^j y_n .

The solution history is kept as the backward differences :math:`D_j = \nabla^j y_n` on a
constant step :math:`h` (quasi-constant step size); a new step size rescales them
(:func:`rescale_differences`).  With :math:`d = y_{n+1} - y^{(0)}_{n+1}` (which is
:math:`\nabla^{k+1} y_{n+1}`) and :math:`\alpha_k = (1 - \kappa_k)\gamma_k` the corrector is

.. math::
    d = \frac{h}{\alpha_k} f\big(t_{n+1}, y^{(0)}_{n+1} + d\big) - \psi, \qquad
    \psi = \frac{1}{\alpha_k} \sum_{j=1}^{k} \gamma_j D_j ,

solved by simplified Newton (:func:`odecourse.newton.simplified_newton`) with the matrix
:math:`I - (h/\alpha_k) J`.  The local error is estimated from the next difference,
:math:`\mathrm{err} = C_k\, d` with :math:`C_k = \kappa_k \gamma_k + 1/(k+1)`, and after
:math:`k+1` steps at constant :math:`h` the order moves to whichever of :math:`k-1, k, k+1`
allows the largest next step.  :math:`\kappa = 0` gives the plain BDF; Shampine and
Reichelt's :math:`\kappa_k` shrink :math:`C_k` (26% larger steps at orders 1-3) for a little
stability angle.

Taught in Chapter 3.

References
----------
shampine1997: L. F. Shampine, M. W. Reichelt, The MATLAB ODE suite, SIAM J. Sci.
Comput. 18 (1997) 1-22 (ode15s, the NDFs, the difference-array rescaling).
hairer1996: E. Hairer, G. Wanner, Solving Ordinary Differential Equations II, 2nd ed.,
Springer, 1996, Sec. III.5 (variable step BDF) and IV.8 (Newton's stopping rule).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import lu_factor

from odecourse._arrays import lu_solve, rms_norm
from odecourse._loop import (
    SUCCESS_MESSAGE,
    TERMINATION_MESSAGE,
    Counted,
    IntegrationResult,
    Recorder,
    stiff_step_too_small,
    too_many_steps,
)
from odecourse._validation import check_jacobian
from odecourse.adaptive import MAX_FACTOR, MIN_FACTOR, SAFETY, select_initial_step
from odecourse.newton import (
    NewtonResult,
    NewtonStats,
    finite_difference_jacobian,
    simplified_newton,
)

__all__ = [
    "ALPHA",
    "ERROR_CONSTANTS",
    "GAMMA",
    "KAPPA",
    "MAX_ORDER",
    "BdfInterpolant",
    "integrate_bdf",
    "rescale_differences",
]

MAX_ORDER = 5  #: highest order (BDF6's stability angle is tiny; BDF7 is not zero-stable)
NEWTON_MAX_ITER = 4  #: simplified Newton iterations per attempt
NEWTON_FAILURE_FACTOR = 0.5  #: step-size factor after Newton fails with a fresh Jacobian
NEWTON_TOL_CAP = 0.03  #: the Newton tolerance is at most this ...
NEWTON_TOL_ULPS = 10.0  #: ... and at least this many machine epsilons over ``rtol``
MIN_STEP_ULPS = 10  #: a step below this many units in the last place of ``t`` is too small

_ORDERS = np.arange(MAX_ORDER + 1)
#: NDF coefficients :math:`\kappa_k`, k = 0..5 (shampine1997, Table 1); zeros give BDF.
KAPPA = np.array([0.0, -0.1850, -1.0 / 9.0, -0.0823, -0.0415, 0.0])
#: :math:`\gamma_k = \sum_{j \le k} 1/j`, k = 0..5.
GAMMA = np.concatenate(([0.0], np.cumsum(1.0 / _ORDERS[1:])))
#: :math:`\alpha_k = (1 - \kappa_k) \gamma_k`, the coefficient of :math:`d` in the corrector.
ALPHA = (1.0 - KAPPA) * GAMMA
#: Error constants :math:`C_k = \kappa_k \gamma_k + 1/(k+1)`, k = 0..5.
ERROR_CONSTANTS = KAPPA * GAMMA + 1.0 / (_ORDERS + 1)
for _table in (KAPPA, GAMMA, ALPHA, ERROR_CONSTANTS):
    _table.setflags(write=False)

#: Row i, :math:`(-1)^m \binom{i}{m}`, takes the i-th backward difference of values on a grid.
_DIFFERENCES = np.array([[(-1) ** m * math.comb(i, m) for m in _ORDERS] for i in _ORDERS], float)
#: ``jac`` as the integrator sees it: ``jacobian(t, y, f(t, y))`` or None (constant).
Jacobian = Callable[[float, np.ndarray, np.ndarray], np.ndarray]


def rescale_differences(D: np.ndarray, order: int, factor: float) -> None:
    r"""Rewrite the backward differences of order :math:`\le k` for the step :math:`\rho h`.

    The differences define the interpolating polynomial
    :math:`p(t_n + s h) = \sum_{j=0}^{k} D_j \binom{s + j - 1}{j}`.  The new differences are
    those of the same polynomial on the grid :math:`t_n - m \rho h`:

    .. math::
        D'_i = \sum_{m=0}^{i} (-1)^m \binom{i}{m}\, p(t_n - m \rho h)
             = \sum_{j=0}^{k} \Big[\sum_{m=0}^{i} (-1)^m \binom{i}{m}
               \binom{j - 1 - m\rho}{j}\Big] D_j .

    Parameters
    ----------
    D : ndarray, shape (rows, n), rows > order
        Backward differences, rows ``0..order`` rewritten in place.
    order : int
        The order :math:`k` (1 to 5).
    factor : float
        The ratio :math:`\rho = h_{\mathrm{new}} / h`.

    Trusts its caller.  Taught in Chapter 3.  References: shampine1997.
    """
    # values[m, j]: the j-th Newton basis polynomial at s = -m rho (the m-th new grid point).
    s = -factor * np.arange(order + 1)
    terms = (s[:, None] + np.arange(order)) / np.arange(1, order + 1)
    values = np.hstack([np.ones((order + 1, 1)), np.cumprod(terms, axis=1)])
    D[: order + 1] = (_DIFFERENCES[: order + 1, : order + 1] @ values) @ D[: order + 1]


@dataclass(frozen=True)
class BdfInterpolant:
    r"""Dense output of one step: the polynomial of the backward differences.

    .. math::
        y(t_{n+1} + s h) \approx \sum_{j=0}^{k} D_j \prod_{m=0}^{j-1} \frac{s + m}{m + 1},
        \qquad s = (t - t_{n+1}) / h,

    which interpolates :math:`y_{n+1}, y_n, \dots, y_{n+1-k}`.  Taught in Chapter 3.
    """

    t_old: float
    t_new: float
    h: float  #: signed step of the differences
    D: np.ndarray  #: shape (order + 1, n), differences at ``t_new``

    def __call__(self, t: float) -> np.ndarray:
        order = self.D.shape[0] - 1
        s = (t - self.t_new) / self.h
        weights = np.cumprod((s + np.arange(order)) / np.arange(1, order + 1))
        return self.D[0] + weights @ self.D[1:]


@dataclass(frozen=True)
class _Problem:
    """What stays fixed during the integration."""

    f: Counted
    jacobian: Jacobian | None
    rtol: float
    atol: Any
    max_step: float
    t1: float
    direction: float
    newton_tol: float
    stats: NewtonStats


@dataclass
class _State:
    """What changes from step to step."""

    t: float
    h_abs: float
    D: np.ndarray
    J: np.ndarray
    order: int = 1
    n_equal: int = 0
    lu: Any = None
    n_steps: int = 0
    n_rejected: int = 0


def _jacobian_source(
    jac: Any, f: Counted, t0: float, y0: np.ndarray, f0: np.ndarray, stats: NewtonStats
) -> tuple[Jacobian | None, np.ndarray]:
    """Validate ``jac``; return the re-evaluation rule (None if constant) and ``J(t0, y0)``."""
    n = y0.size
    if jac is None:

        def jacobian(t: float, y: np.ndarray, f_y: np.ndarray) -> np.ndarray:
            stats.njev += 1
            return finite_difference_jacobian(f.f, t, y, f_y)  # not in nfev, as in SciPy

    elif callable(jac):

        def jacobian(t: float, y: np.ndarray, f_y: np.ndarray) -> np.ndarray:
            stats.njev += 1
            return check_jacobian("`jac(t, y)`", jac(t, y), n)

    else:
        matrix = check_jacobian("`jac`", jac, n)
        if not np.all(np.isfinite(matrix)):
            raise ValueError(f"`jac` must contain only finite values; got {matrix!r:.80}.")
        return None, matrix
    J0 = jacobian(t0, y0, f0)
    if not np.all(np.isfinite(J0)):
        raise ValueError(f"`jac(t, y)` must be finite; got {J0!r:.80} at t = {t0:.6g}.")
    return jacobian, J0


def _solve_corrector(
    p: _Problem, s: _State, t_new: float, y_pred: np.ndarray, psi: np.ndarray, c: float
) -> NewtonResult:
    """Solve :math:`d - c f(t, y^{(0)} + d) + \\psi = 0`, refreshing an old Jacobian once."""
    fresh = p.jacobian is None  # a constant Jacobian is always current
    f_pred: list[np.ndarray] = []  # f at the predictor, evaluated once per attempt

    def residual(d: np.ndarray) -> np.ndarray:
        if d.any():
            return d - c * p.f(t_new, y_pred + d) + psi
        if not f_pred:
            f_pred.append(p.f(t_new, y_pred))
        return d - c * f_pred[0] + psi

    def solve(g: np.ndarray) -> np.ndarray:
        return -lu_solve(s.lu, g, check_finite=False)

    weights = p.atol + p.rtol * np.abs(y_pred)
    while True:
        if s.lu is None and np.all(np.isfinite(s.J)):
            s.lu = lu_factor(np.eye(y_pred.size) - c * s.J, check_finite=False)
            p.stats.nlu += 1
        if s.lu is None:
            result = NewtonResult(y_pred, False, 0, None, "non-finite Jacobian")
        else:
            result = simplified_newton(
                residual, solve, np.zeros_like(y_pred), weights,
                tol=p.newton_tol, max_iter=NEWTON_MAX_ITER, stats=p.stats,
            )  # fmt: skip
        if result.converged or fresh:
            return result
        if not f_pred:
            f_pred.append(p.f(t_new, y_pred))
        s.J, s.lu, fresh = p.jacobian(t_new, y_pred, f_pred[0]), None, True


def _change_step(s: _State, factor: float) -> None:
    """Scale the step by ``factor``: rescale the differences, restart the count, refactor."""
    s.h_abs *= factor
    rescale_differences(s.D, s.order, factor)
    s.n_equal, s.lu = 0, None


def _step_end(p: _Problem, s: _State) -> float:
    """The end of the next step, clipped (and the differences rescaled) at ``t1``."""
    t_new = s.t + p.direction * s.h_abs
    if p.direction * (t_new - p.t1) > 0:
        _change_step(s, abs(p.t1 - s.t) / s.h_abs)
        t_new = p.t1
    return t_new


def _growth(norm: float, exponent: int) -> float:
    """The step-size ratio :math:`\\|e\\|^{-1/p}` that an error norm allows (inf for zero)."""
    return math.inf if norm == 0 else norm ** (-1.0 / exponent)


def _order_change(s: _State, err: float, scale: np.ndarray, safety: float) -> None:
    r"""Move to the order of :math:`k-1, k, k+1` that allows the largest next step.

    .. math::
        \|e_{k-1}\| = \|C_{k-1} \nabla^k y_{n+1}\|, \quad
        \|e_{k+1}\| = \|C_{k+1} \nabla^{k+2} y_{n+1}\|, \quad
        \rho_q = \|e_q\|^{-1/(q+1)}, \quad
        h_{\mathrm{new}} = h \min\big(\mathrm{MAX}, \mathrm{safety} \max_q \rho_q\big).
    """
    k = s.order
    lower = rms_norm(ERROR_CONSTANTS[k - 1] * s.D[k] / scale) if k > 1 else math.inf
    higher = rms_norm(ERROR_CONSTANTS[k + 1] * s.D[k + 2] / scale) if k < MAX_ORDER else math.inf
    factors = [_growth(lower, k), _growth(err, k + 1), _growth(higher, k + 2)]
    best = max(range(3), key=factors.__getitem__)  # the lowest order wins a tie
    s.order = k + best - 1
    _change_step(s, min(MAX_FACTOR, safety * factors[best]))


def _accept(
    s: _State, t_new: float, d: np.ndarray, err: float, scale: np.ndarray, safety: float
) -> BdfInterpolant:
    """Update the differences with :math:`d = \\nabla^{k+1} y_{n+1}`; maybe change the order."""
    k, h = s.order, t_new - s.t
    s.D[k + 2] = d - s.D[k + 1]
    s.D[k + 1] = d
    for j in range(k, -1, -1):
        s.D[j] += s.D[j + 1]
    interpolant = BdfInterpolant(s.t, t_new, h, s.D[: k + 1].copy())
    s.t, s.n_steps, s.n_equal = t_new, s.n_steps + 1, s.n_equal + 1
    if s.n_equal > k:
        _order_change(s, err, scale, safety)
    return interpolant


def _step(p: _Problem, s: _State) -> BdfInterpolant | str:
    """Take one accepted step, or return the reason why none can be taken."""
    min_step = MIN_STEP_ULPS * abs(math.nextafter(s.t, p.direction * math.inf) - s.t)
    if s.h_abs > p.max_step or s.h_abs < min_step:
        _change_step(s, min(max(s.h_abs, min_step), p.max_step) / s.h_abs)
    while s.h_abs >= min_step:
        t_new, k = _step_end(p, s), s.order
        h = t_new - s.t
        y_pred = s.D[: k + 1].sum(axis=0)
        psi = GAMMA[1 : k + 1] @ s.D[1 : k + 1] / ALPHA[k]
        newton = _solve_corrector(p, s, t_new, y_pred, psi, h / ALPHA[k])
        factor = NEWTON_FAILURE_FACTOR
        if newton.converged:
            y_new = y_pred + newton.x
            scale = p.atol + p.rtol * np.abs(y_new)
            err = rms_norm(ERROR_CONSTANTS[k] * newton.x / scale)
            # Fewer Newton iterations: more trust in the next step.
            safety = SAFETY * (2 * NEWTON_MAX_ITER + 1) / (2 * NEWTON_MAX_ITER + newton.n_iter)
            if err <= 1 and np.all(np.isfinite(y_new)):
                return _accept(s, t_new, newton.x, err, scale, safety)
            factor = max(MIN_FACTOR, safety * _growth(err, k + 1)) if err > 1 else MIN_FACTOR
        s.n_rejected += 1
        _change_step(s, factor)
    return stiff_step_too_small(s.t, s.h_abs)


def integrate_bdf(
    f: Callable[[float, np.ndarray], np.ndarray],
    t_span: tuple[float, float],
    y0: np.ndarray,
    *,
    rtol: float = 1e-3,
    atol: Any = 1e-6,
    t_eval: Sequence[float] | None = None,
    first_step: float | None = None,
    max_step: float = math.inf,
    max_steps: int = 100_000,
    dense_output: bool = False,
    events: Any = None,
    jac: Any = None,
) -> IntegrationResult:
    r"""Integrate a stiff ``y' = f(t, y)`` with the variable-order NDF (SciPy's ``BDF``).

    Each step predicts :math:`y^{(0)}_{n+1} = \sum_{j \le k} \nabla^j y_n`, corrects with
    at most four simplified Newton iterations (tolerance
    :math:`\max(10\varepsilon/\mathrm{rtol}, \min(0.03, \sqrt{\mathrm{rtol}}))`) and
    accepts when the scaled RMS norm of :math:`C_k d` is at most one:

    .. math::
        \alpha_k d = h f\big(t_{n+1}, y^{(0)}_{n+1} + d\big) - \sum_{j=1}^{k} \gamma_j
        \nabla^j y_n, \qquad
        \Big\|\frac{C_k d}{\mathrm{atol} + \mathrm{rtol}\,|y_{n+1}|}\Big\| \le 1 .

    A rejected step shrinks by :math:`\max(0.2, s \|e\|^{-1/(k+1)})` with
    :math:`s = 0.9 \cdot 9 / (8 + \text{Newton iterations})`; after :math:`k+1` accepted
    steps at constant :math:`h` the order and the step change together (at most tenfold).
    The Jacobian is re-evaluated only when Newton fails with an old one, and the LU
    factorisation of :math:`I - (h/\alpha_k) J` is redone whenever :math:`h` or :math:`k`
    changes; a failure with a fresh Jacobian halves the step.

    Parameters
    ----------
    f : callable
        ``f(t, y)`` with ``y`` of shape (n,); returns an ndarray of shape (n,).
    t_span : (float, float)
        Interval; ``t1 < t0`` integrates backwards.
    y0 : ndarray, shape (n,)
        Initial state (float64).
    rtol, atol : float (atol may have shape (n,))
        Tolerances of the scaled error norm.
    t_eval : sequence of float, optional
        Output times inside ``t_span``, filled by dense output.  Default: every step end.
    first_step : float, optional
        Absolute size of the first step; default :func:`odecourse.adaptive.select_initial_step`
        with error order 1, as SciPy does for implicit methods.
    max_step, max_steps : float, int
        Largest absolute step size; largest number of accepted steps (then ``status = -1``).
    dense_output : bool
        Keep one :class:`BdfInterpolant` per step in the result.
    events : optional
        Passed to the :class:`odecourse._loop.Recorder`, which detects them.
    jac : None, callable or array_like, optional
        ``jac(t, y)`` returning the dense (n, n) Jacobian :math:`\partial f/\partial y`, a
        constant (n, n) matrix, or None for forward differences (their evaluations of ``f``
        are not in ``nfev``, as in SciPy; ``njev`` counts those Jacobians).  A SciPy sparse
        matrix is made dense.

    Returns
    -------
    IntegrationResult
        With ``njev`` and ``nlu``.  ``status = 1`` after a terminal event; ``status = -1``
        with a message naming ``t`` if the step size underflows (a blow-up, or Newton
        failing even at the smallest step) or ``max_steps`` is reached.

    Raises
    ------
    TypeError, ValueError
        If ``jac`` is not None, a callable or an (n, n) array of finite reals, or if
        ``jac(t, y)`` returns anything but an (n, n) array (finite at ``t0``).

    Trusts its caller for every other argument (the front end validates them).
    Taught in Chapter 3.  References: shampine1997; hairer1996, Sec. III.5.
    """
    f = Counted(f)
    t0, t1 = float(t_span[0]), float(t_span[1])
    direction = 1.0 if t1 > t0 else -1.0
    y0 = np.asarray(y0, dtype=float)
    f0 = np.asarray(f(t0, y0), dtype=float)
    stats = NewtonStats()
    jacobian, J0 = _jacobian_source(jac, f, t0, y0, f0, stats)
    if first_step is None:
        first_step = select_initial_step(f, t0, y0, f0, t1, 1, rtol, atol, max_step)
    D = np.zeros((MAX_ORDER + 3, y0.size))
    D[0], D[1] = y0, f0 * (direction * first_step)
    r = float(np.min(rtol))  # the strictest component's, when rtol is per component
    newton_tol = max(NEWTON_TOL_ULPS * np.finfo(float).eps / r, min(NEWTON_TOL_CAP, r**0.5))
    p = _Problem(f, jacobian, rtol, atol, max_step, t1, direction, newton_tol, stats)
    s = _State(t0, first_step, D, J0)
    recorder = Recorder(t0, y0, t_eval, direction, dense_output, events)
    status, message = 0, SUCCESS_MESSAGE
    while s.t != t1:
        if s.n_steps >= max_steps:
            status, message = -1, too_many_steps(max_steps, s.t)
            break
        step = _step(p, s)
        if isinstance(step, str):
            status, message = -1, step
            break
        recorder.record(s.t, s.D[0].copy(), step)
        if recorder.terminated:
            status, message = 1, TERMINATION_MESSAGE
            break
    return recorder.result(
        nfev=f.n, n_steps=s.n_steps, n_rejected=s.n_rejected,
        njev=stats.njev, nlu=stats.nlu, status=status, message=message,
    )  # fmt: skip
