r"""Radau IIA of order 5: the adaptive stiff solver of Hairer and Wanner (RADAU5).

The three-stage Radau IIA method is collocation at the nodes
:math:`c = \big(\tfrac{4 - \sqrt 6}{10}, \tfrac{4 + \sqrt 6}{10}, 1\big)`: order 5,
L-stable and stiffly accurate.  A step solves for the stage increments :math:`Z_i = Y_i - y_n`

.. math::
    Z = h (A \otimes I)\, F(Z), \qquad F(Z)_i = f(t_n + c_i h,\, y_n + Z_i), \qquad
    y_{n+1} = y_n + Z_3,

by simplified Newton (:func:`odecourse.newton.simplified_newton`) in the variables
:math:`W = (T^{-1} \otimes I) Z` that block-diagonalise :math:`A^{-1}` (one real
eigenvalue, one complex pair: one real and one complex LU per Newton matrix).  An
embedded formula of order 3, filtered through the real LU, judges the step; the
predictive (Gustafsson) controller sizes the next one; Jacobians and LU factors are
kept while Newton converges fast.  The collocation polynomial is the dense output and
predicts the next stages.  The tableau, its dense output, :math:`T` and the error
weights are derived from :math:`c` in code, once at import.  NumPy only.

Taught in Chapter 3.

References
----------
hairer1996: E. Hairer, G. Wanner, Solving Ordinary Differential Equations II: Stiff and
Differential-Algebraic Problems, 2nd ed., Springer, 1996, Sec. IV.5 and IV.8 (RADAU5).
gustafsson1991: K. Gustafsson, Control theoretic techniques for stepsize selection in
explicit Runge-Kutta methods, ACM Trans. Math. Softw. 17 (1991) 533-554.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import lu_factor

from odecourse._arrays import lu_solve
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
from odecourse.adaptive import (
    MAX_FACTOR,
    MIN_FACTOR,
    SAFETY,
    _min_step,
    error_norm,
    select_initial_step,
)
from odecourse.dense_output import make_interpolant
from odecourse.newton import (
    NewtonResult,
    NewtonStats,
    finite_difference_jacobian,
    simplified_newton,
)
from odecourse.runge_kutta import ButcherTableau

__all__ = [
    "ERROR_ORDER",
    "ERROR_WEIGHTS",
    "MU_COMPLEX",
    "MU_REAL",
    "NEWTON_MAX_ITER",
    "RADAU_IIA5",
    "T_INV",
    "T",
    "integrate_radau",
]

ERROR_ORDER = 3  #: order of the embedded formula behind the error estimate
NEWTON_MAX_ITER = 6  #: most simplified-Newton iterations per attempted step
NEWTON_TOL_CAP = 0.03  #: the Newton tolerance is min(0.03, sqrt(rtol)) ...
NEWTON_TOL_ULPS = 10.0  #: ... but at least 10 eps / rtol
SLOW_RATE = 1e-3  #: a Newton contraction rate above this refreshes the Jacobian
KEEP_STEP_MAX = 1.2  #: a proposed step ratio below 1.2 keeps h and its LU factors (SciPy)
NEWTON_FAILURE_FACTOR = 0.5  #: step ratio after Newton fails with a fresh Jacobian

_Jacobian = Callable[[float, np.ndarray, np.ndarray], np.ndarray]


def _collocation_tableau(c: np.ndarray) -> ButcherTableau:
    r"""The collocation method at nodes ``c``, with its dense output.

    :math:`b_j(\theta) = \int_0^\theta \ell_j(s)\, ds` for the Lagrange polynomials
    :math:`\ell_j` of the nodes; then :math:`a_{ij} = b_j(c_i)` and :math:`b_j = b_j(1)`.
    """
    s = c.size
    lagrange = np.linalg.inv(np.vander(c, s, increasing=True)).T  # l_j(x) = sum_m L[j, m] x^m
    P = lagrange / np.arange(1, s + 1)  # b_j(theta) = sum_m P[j, m] theta^(m + 1)
    A = c[:, None] ** np.arange(1, s + 1) @ P.T
    return ButcherTableau("radau_iia5", A, P.sum(axis=1), c, order=5, P=P, dense_order=s)


def _transformation(A: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, complex]:
    r"""Real :math:`T` with :math:`T^{-1} A^{-1} T` block diagonal, and its eigenvalues.

    Columns: the real eigenvector, then the real and imaginary parts of the eigenvector
    of :math:`\lambda = \alpha + i\beta` (:math:`\beta > 0`), each scaled to last entry 1
    (Hairer's normalisation).  Returns ``T``, ``T^{-1}``, :math:`\gamma = \mu_{\mathrm{real}}`
    and :math:`\bar\lambda = \alpha - i\beta`, the factor of :math:`W_2 + i W_3`.
    """
    eigenvalues, vectors = np.linalg.eig(np.linalg.inv(A))
    real, pair = int(np.argmin(abs(eigenvalues.imag))), int(np.argmax(eigenvalues.imag))
    v_real = vectors[:, real].real / vectors[-1, real].real
    v_pair = vectors[:, pair] / vectors[-1, pair]
    T = np.column_stack([v_real, v_pair.real, v_pair.imag])
    return T, np.linalg.inv(T), float(eigenvalues[real].real), complex(np.conj(eigenvalues[pair]))


def _error_weights(tableau: ButcherTableau, mu_real: float) -> np.ndarray:
    r"""Weights :math:`e` of the error estimate :math:`(\mu/h\, I - J)^{-1}(f_n + e^T Z/h)`.

    The embedded solution :math:`\hat y = y_n + h(\gamma_0 f_n + \sum_i \hat b_i k_i)`, with
    :math:`\gamma_0 = 1/\mu` the real eigenvalue of :math:`A`, has order 3 when
    :math:`\gamma_0 [q = 1] + \sum_i \hat b_i c_i^{q-1} = 1/q` for :math:`q = 1, 2, 3`.  With
    :math:`h k = A^{-1} Z`, :math:`e = \mu\, (\hat b - b)^T A^{-1}`.
    """
    q = np.arange(1, ERROR_ORDER + 1)
    rhs = 1.0 / q - np.where(q == 1, 1.0 / mu_real, 0.0)
    b_hat = np.linalg.solve(np.vander(tableau.c, ERROR_ORDER, increasing=True).T, rhs)
    return mu_real * (b_hat - tableau.b) @ np.linalg.inv(tableau.A)


_SQRT6 = math.sqrt(6.0)
#: The Radau IIA method of order 5 (collocation at (4 -+ sqrt 6)/10 and 1), with dense output.
RADAU_IIA5 = _collocation_tableau(np.array([(4 - _SQRT6) / 10, (4 + _SQRT6) / 10, 1.0]))
T, T_INV, MU_REAL, MU_COMPLEX = _transformation(RADAU_IIA5.A)
#: Error weights; equal to (-13 - 7 sqrt 6, -13 + 7 sqrt 6, -1) / 3.
ERROR_WEIGHTS = _error_weights(RADAU_IIA5, MU_REAL)
_A_INV = np.linalg.inv(RADAU_IIA5.A)


class _StepFailure(Exception):
    """The integration cannot continue; the message says at which ``t`` and why."""


@dataclass(frozen=True)
class _Settings:
    """What stays fixed during one integration."""

    f: Counted
    jacobian: _Jacobian
    constant_jac: bool
    t1: float
    direction: float
    rtol: Any
    atol: Any
    max_step: float
    newton_tol: float
    stats: NewtonStats


@dataclass
class _State:
    """What changes from step to step."""

    t: float
    y: np.ndarray
    f: np.ndarray  # f(t, y)
    h_abs: float  # the next |h| to try
    J: np.ndarray | None = None
    current_jac: bool = False  # J was evaluated at the current (t, y)
    lu: tuple | None = None  # (h, real LU, complex LU) of mu/h I - J for this J
    previous: tuple[float, float] | None = None  # (|h|, error) of the last accepted step
    interpolant: Any = None  # dense output of the last accepted step


@dataclass(frozen=True)
class _Step:
    """An accepted step, before the state moves on."""

    t_new: float
    h: float
    Z: np.ndarray
    error: float
    newton: NewtonResult
    rejected: int


def _jacobian_source(jac: Any, f: Counted, n: int) -> tuple[_Jacobian, np.ndarray | None]:
    """Validate ``jac``; return ``jacobian(t, y, f_y)`` and the matrix if it is constant."""
    if jac is None:
        # f.f: SciPy's nfev leaves out the n evaluations of a finite-difference Jacobian
        return (lambda t, y, f_y: finite_difference_jacobian(f.f, t, y, f_y)), None
    if callable(jac):
        return (lambda t, y, f_y: check_jacobian("`jac(t, y)`", jac(t, y), n)), None
    matrix = check_jacobian("`jac` (None, a callable `jac(t, y)`, or a matrix)", jac, n)
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"`jac` must contain only finite values; got {matrix!r:.80}.")
    return (lambda t, y, f_y: matrix), matrix


def _refresh_jacobian(settings: _Settings, state: _State, t: float, y: np.ndarray) -> None:
    """Evaluate the Jacobian at ``(t, y)`` (never called for a constant one); drop the LU."""
    settings.stats.njev += 1
    J = settings.jacobian(t, y, state.f)
    if not np.all(np.isfinite(J)):
        raise _StepFailure(f"The Jacobian became non-finite at t = {t:.6g}.")
    state.J, state.current_jac, state.lu = J, True, None


def _factorise(settings: _Settings, state: _State, h: float) -> tuple:
    r"""LU factors of :math:`\mu/h\, I - J` and :math:`\bar\lambda/h\, I - J` for step ``h``.

    Reused while ``J`` and ``h`` stay the same; ``h = t_new - t`` is recomputed each step,
    so "the same" allows the rounding of that subtraction (a relative 1e-12), as SciPy,
    which keeps its factors whenever it keeps the step, does implicitly.
    """
    if state.lu is None or not math.isclose(state.lu[0], h, rel_tol=1e-12):
        identity = np.eye(state.y.size)
        real = lu_factor(MU_REAL / h * identity - state.J)
        pair = lu_factor(MU_COMPLEX / h * identity - state.J)
        settings.stats.nlu += 2  # SciPy's count: one per factorisation
        state.lu = (h, real, pair)
    return state.lu


def _newton_system(f: Counted, t: float, y: np.ndarray, h: float, lu: tuple) -> tuple:
    r"""``residual`` and ``solve`` of the stage equations in the variables :math:`W`.

    .. math::
        G(W) = \frac{1}{h} \Lambda W - T^{-1} F(T W), \qquad
        \Lambda = \begin{pmatrix} \mu & & \\ & \alpha & \beta \\ & -\beta & \alpha
        \end{pmatrix},

    so the Newton matrix :math:`\Lambda/h \otimes I - I \otimes J` splits into
    :math:`\mu/h\, I - J` for :math:`W_1` and :math:`(\alpha - i\beta)/h\, I - J` for
    :math:`W_2 + i W_3`.
    """
    times = t + RADAU_IIA5.c * h

    def residual(W: np.ndarray) -> np.ndarray:
        Z = T @ W
        TF = T_INV @ np.array([f(s, y + z) for s, z in zip(times, Z, strict=True)])
        pair = MU_COMPLEX / h * (W[1] + 1j * W[2]) - (TF[1] + 1j * TF[2])
        return np.array([MU_REAL / h * W[0] - TF[0], pair.real, pair.imag])

    def solve(G: np.ndarray) -> np.ndarray:
        pair = lu_solve(lu[2], G[1] + 1j * G[2])
        return -np.array([lu_solve(lu[1], G[0]), pair.real, pair.imag])

    return residual, solve


def _predict(state: _State, h: float) -> np.ndarray:
    """Starting stages: the last collocation polynomial at the new nodes (zero at first)."""
    if state.interpolant is None or state.y.size == 0:  # an empty state may step to t = inf
        return np.zeros((RADAU_IIA5.stages, state.y.size))
    return np.array([state.interpolant(state.t + c * h) for c in RADAU_IIA5.c]) - state.y


def _solve_stages(settings: _Settings, state: _State, h: float) -> tuple | None:
    """Newton on the stages; refresh an old Jacobian once on failure.  None: no convergence."""
    scale, tol = settings.atol + settings.rtol * abs(state.y), settings.newton_tol
    W0 = T_INV @ _predict(state, h)
    if state.J is None:
        _refresh_jacobian(settings, state, state.t, state.y)
    while True:
        lu = _factorise(settings, state, h)
        residual, solve = _newton_system(settings.f, state.t, state.y, h, lu)
        result = simplified_newton(
            residual, solve, W0, scale, tol=tol, max_iter=NEWTON_MAX_ITER, stats=settings.stats
        )
        if result.converged:
            return result, T @ result.x
        if state.current_jac:
            return None
        _refresh_jacobian(settings, state, state.t, state.y)


def _error_estimate(
    settings: _Settings, state: _State, h: float, Z: np.ndarray, refine: bool
) -> float:
    r"""Scaled norm of the filtered error :math:`(\mu/h\, I - J)^{-1}(f_n + e^T Z / h)`.

    When the estimate is too large and ``refine`` (first step, or after a rejection),
    it is filtered once more through :math:`f(t_n, y_n + \mathrm{err})` (hairer1996).
    """
    real = state.lu[1]
    weighted = ERROR_WEIGHTS @ Z / h
    error = lu_solve(real, state.f + weighted)
    y_new = state.y + Z[-1]
    norm = error_norm(error, state.y, y_new, settings.rtol, settings.atol)
    if refine and not norm < 1:
        error = lu_solve(real, settings.f(state.t, state.y + error) + weighted)
        norm = error_norm(error, state.y, y_new, settings.rtol, settings.atol)
    return norm if math.isfinite(norm) else math.inf


def _step_factor(error: float, h_abs: float, previous: tuple | None, n_iter: int) -> float:
    r"""Proposed ratio :math:`h_{n+1}/h_n` of the predictive controller (gustafsson1991).

    .. math::
        \frac{h_{n+1}}{h_n} = 0.9\, \frac{2 k_{\max} + 1}{2 k_{\max} + k}\;
            \|e_{n+1}\|^{-1/4} \min\Big(1,\; \frac{h_n}{h_{n-1}}
            \Big(\frac{\|e_n\|}{\|e_{n+1}\|}\Big)^{1/4}\Big),

    with :math:`k` Newton iterations out of at most :math:`k_{\max}` (hairer1996).
    """
    if error == 0:
        return math.inf
    exponent = 1.0 / (ERROR_ORDER + 1)
    factor = SAFETY * (2 * NEWTON_MAX_ITER + 1) / (2 * NEWTON_MAX_ITER + n_iter)
    if previous is not None:
        h_previous, error_previous = previous
        factor *= min(1.0, h_abs / h_previous * (error_previous / error) ** exponent)
    return factor * error**-exponent


def _attempt(settings: _Settings, state: _State, first: bool) -> _Step:
    """Try steps from ``state.t`` until one passes Newton and the error test."""
    t, direction = state.t, settings.direction
    min_step = _min_step(t, direction)
    h_abs, rejected = min(max(state.h_abs, min_step), settings.max_step), 0
    if h_abs != state.h_abs:  # clipped: the controller forgets its past
        state.previous = None
    while h_abs >= min_step:
        t_new = t + direction * h_abs
        if direction * (t_new - settings.t1) > 0:
            t_new = settings.t1
        h = t_new - t
        solved = _solve_stages(settings, state, h)
        if solved is None:
            h_abs, rejected = NEWTON_FAILURE_FACTOR * abs(h), rejected + 1
            continue
        newton, Z = solved
        error = _error_estimate(settings, state, h, Z, refine=first or rejected > 0)
        if error < 1:
            return _Step(t_new, h, Z, error, newton, rejected)
        factor = _step_factor(error, abs(h), state.previous, newton.n_iter)
        h_abs, rejected = abs(h) * max(MIN_FACTOR, factor), rejected + 1
    raise _StepFailure(stiff_step_too_small(t, h_abs))


def _accept(settings: _Settings, state: _State, step: _Step) -> Any:
    """Move the state to the end of ``step``; return the step's dense output."""
    t, y, h, t_new = state.t, state.y, step.h, step.t_new
    y_new = y + step.Z[-1]
    f_new = settings.f(t_new, y_new)
    if not np.all(np.isfinite(f_new)):
        raise _StepFailure(f"f(t, y) became non-finite at t = {t_new:.6g}.")
    k = tuple(_A_INV @ step.Z / h)  # stage derivatives of the collocation polynomial
    state.interpolant = make_interpolant(RADAU_IIA5, t, t_new, y, y_new, state.f, f_new, k)
    newton = step.newton
    recompute = not settings.constant_jac and newton.n_iter > 2 and newton.rate > SLOW_RATE
    factor = min(MAX_FACTOR, _step_factor(step.error, abs(h), state.previous, newton.n_iter))
    if step.rejected:
        factor = min(1.0, factor)
    if not recompute and factor < KEEP_STEP_MAX:
        factor = 1.0
    state.previous = (abs(h), step.error)
    state.t, state.y, state.f, state.h_abs = t_new, y_new, f_new, abs(h) * factor
    state.current_jac = settings.constant_jac
    if recompute:
        _refresh_jacobian(settings, state, t_new, y_new)
    return state.interpolant


def integrate_radau(
    f: Callable[[float, np.ndarray], np.ndarray],
    t_span: tuple[float, float],
    y0: np.ndarray,
    *,
    rtol: Any = 1e-3,
    atol: Any = 1e-6,
    t_eval: Sequence[float] | None = None,
    first_step: float | None = None,
    max_step: float = math.inf,
    max_steps: int = 100_000,
    dense_output: bool = False,
    events: Any = None,
    jac: Any = None,
) -> IntegrationResult:
    r"""Integrate a stiff ``y' = f(t, y)`` over ``t_span`` with Radau IIA of order 5.

    Each step solves the collocation equations for the stage increments
    :math:`Z_i = Y_i - y_n` by simplified Newton, takes the last stage as the solution,
    and accepts the step when the filtered error estimate is below one:

    .. math::
        Z = h (A \otimes I) F(Z), \qquad y_{n+1} = y_n + Z_3, \qquad
        \mathrm{err} = (\tfrac{\mu}{h} I - J)^{-1}\big(f(t_n, y_n) + \tfrac1h \textstyle\sum_i
        e_i Z_i\big), \qquad \|\mathrm{err}\| < 1 .

    The next step is :math:`h \min(10, \max(0.2, \mathrm{safety} \cdot \mathrm{factor}))`
    with the predictive factor of :func:`_step_factor` and a safety of
    :math:`0.9 \cdot 13 / (12 + N_{\mathrm{Newton}})`; a proposed ratio below 1.2 keeps
    :math:`h` and its LU factors (SciPy's rule; RADAU5 keeps ratios in [1, 1.2]).  The
    Jacobian is re-evaluated after a step whose Newton iteration converged slowly, or when
    Newton fails with an old one.  Between step ends the collocation polynomial (dense
    output, ``t_eval``, events) has only the stage order 3, so on stiff problems it can be
    far less accurate than the step ends, as in SciPy.  Trusts its caller: the front end
    validates everything but ``jac``.

    Parameters
    ----------
    f : callable
        ``f(t, y)`` with ``t`` a float and ``y`` of shape (n,); returns shape (n,).
    t_span, rtol, atol, t_eval, max_step, max_steps, dense_output
        As in :func:`odecourse.adaptive.integrate_adaptive`; ``t_eval`` and ``sol`` are
        filled by the collocation polynomial.
    y0 : ndarray, shape (n,)
        Initial state, float64.
    first_step : float, optional
        Absolute size of the first step; default :func:`~odecourse.adaptive.select_initial_step`
        with error order 3, as SciPy's ``Radau``.
    events : tuple of Event, optional
        From :func:`odecourse.events.prepare_events`, watched by the recorder; a terminal
        event stops the integration with ``status = 1``.
    jac : None, callable or array_like, shape (n, n)
        :math:`\partial f/\partial y`: ``jac(t, y)`` returning an (n, n) array, a constant
        matrix, or None for forward differences (their evaluations of ``f`` are not in
        ``nfev``, as in SciPy; ``njev`` counts those Jacobians).  A SciPy sparse matrix is
        made dense.

    Returns
    -------
    IntegrationResult
        With ``njev`` (Jacobian evaluations) and ``nlu`` (LU factorisations, real and
        complex counted separately, as SciPy does).  ``status = -1`` with a message naming
        ``t`` if the step size underflows (Newton or the error test keep failing, as at a
        blow-up), ``f`` or the Jacobian becomes non-finite, or ``max_steps`` is reached.

    Raises
    ------
    TypeError, ValueError
        If ``jac`` (or what ``jac(t, y)`` returns) is not a real array of shape (n, n).

    Taught in Chapter 3.  References: hairer1996, Sec. IV.8; gustafsson1991.
    """
    f, y0 = Counted(f), np.asarray(y0, dtype=float)
    t0, t1 = float(t_span[0]), float(t_span[1])
    stats = NewtonStats()
    jacobian, matrix = _jacobian_source(jac, f, y0.size)
    constant = matrix is not None
    direction = 1.0 if t1 > t0 else -1.0
    r = float(np.min(rtol))  # the strictest component's, when rtol is per component
    tol = max(NEWTON_TOL_ULPS * np.finfo(float).eps / r, min(NEWTON_TOL_CAP, r**0.5))
    settings = _Settings(f, jacobian, constant, t1, direction, rtol, atol, max_step, tol, stats)
    f0 = f(t0, y0)
    if first_step is None:
        first_step = select_initial_step(f, t0, y0, f0, t1, ERROR_ORDER, rtol, atol, max_step)
    state = _State(t0, y0, f0, first_step, J=matrix, current_jac=constant)
    recorder = Recorder(t0, y0, t_eval, direction, dense_output, events)
    n_steps, n_rejected, status, message = 0, 0, 0, SUCCESS_MESSAGE
    while state.t != t1:
        if n_steps >= max_steps:
            status, message = -1, too_many_steps(max_steps, state.t)
            break
        try:
            step = _attempt(settings, state, first=n_steps == 0)
            interpolant = _accept(settings, state, step)
        except _StepFailure as failure:
            status, message = -1, str(failure)
            break
        n_steps, n_rejected = n_steps + 1, n_rejected + step.rejected
        recorder.record(state.t, state.y, interpolant)
        if recorder.terminated:
            status, message = 1, TERMINATION_MESSAGE
            break
    counts = {"n_steps": n_steps, "n_rejected": n_rejected, "njev": stats.njev, "nlu": stats.nlu}
    return recorder.result(nfev=f.n, status=status, message=message, **counts)
