"""Implicit Runge-Kutta steps solved by Newton's method.

An implicit tableau (backward Euler, implicit midpoint, the trapezoidal rule)
defines its stages by a nonlinear system.  :func:`implicit_rk_step` writes the
stages as increments :math:`Z_i = h \\sum_j a_{ij} f(t + c_j h, y + Z_j)` and
solves that system with the course's one Newton solver
(:func:`odecourse.newton.simplified_newton`): one Jacobian ``jac(t, y)`` (or forward
finite differences) and one LU factorisation (:func:`scipy.linalg.lu_factor`) per
step, and no unknowns for explicit stages.  When Newton fails it
raises :class:`NewtonConvergenceError` (a ``RuntimeError``) that says at which
``t`` and what to try.  :func:`implicit_stepper` wraps the step for the
fixed-step loop :func:`odecourse.fixed_step.integrate_fixed` and counts
``njev`` and ``nlu``.

NumPy only.  Taught in Chapter 3.

References
----------
hairer1996: E. Hairer, G. Wanner, Solving Ordinary Differential Equations II:
Stiff and Differential-Algebraic Problems, 2nd ed., Springer, 1996, Sec. IV.8.
hairer1993: E. Hairer, S. P. Norsett, G. Wanner, Solving Ordinary Differential
Equations I, 2nd ed., Springer, 1993, Sec. II.7.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.linalg import lu_factor, lu_solve

from odecourse._validation import check_callable, check_int, check_jacobian, check_positive
from odecourse.dense_output import HermiteInterpolant
from odecourse.fixed_step import StepOutcome
from odecourse.newton import (
    NewtonConvergenceError,
    NewtonStats,
    finite_difference_jacobian,
    simplified_newton,
)
from odecourse.runge_kutta import ButcherTableau

__all__ = ["ImplicitStepper", "implicit_rk_step", "implicit_stepper"]

Jacobian = Callable[[float, np.ndarray], np.ndarray]

MAX_JACOBIANS = 10  #: Jacobian evaluations one implicit step may use before it gives up


def _fail(t: float, h: float, reason: str) -> NewtonConvergenceError:
    return NewtonConvergenceError(
        f"Newton's method {reason} in the implicit step from t = {t:.6g} with h = {h:.3g}; "
        "try a smaller step size `h`, an exact Jacobian `jac`, or a larger `newton_max_iter`."
    )


def implicit_rk_step(
    f: Callable[[float, np.ndarray], np.ndarray],
    t: float,
    y: np.ndarray,
    h: float,
    tableau: ButcherTableau,
    jac: Jacobian | None = None,
    *,
    f_t: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 10,
    stats: NewtonStats | None = None,
) -> np.ndarray:
    r"""Take one step of an implicit Runge-Kutta method, solving the stages by Newton.

    With stage increments :math:`Z_i = h \sum_j a_{ij} f(t + c_j h, y + Z_j)`, a stage whose
    row of :math:`A` is zero is explicit (:math:`Z_i = 0`: the first stage of the
    trapezoidal rule, of Lobatto IIIA, of ESDIRK methods) and costs no unknowns.  The
    other stages :math:`U` solve

    .. math::
        G(Z_U) = Z_U - h\, (A_{U,:} \otimes I)\, F(Z) = 0, \qquad
        \big(I - h\, A_{U,U} \otimes J\big)\, \Delta Z_U = -G(Z_U),

    by simplified Newton (:func:`odecourse.newton.simplified_newton`) with one Jacobian
    :math:`J = \partial f/\partial y (t, y)` and one LU factorisation per step.  So the
    trapezoidal rule solves one :math:`n`-dimensional system per step, not a
    :math:`2n`-dimensional one.  Then :math:`y_{n+1} = y + Z_s` for a stiffly accurate
    tableau (:math:`b^T = e_s^T A`), :math:`y_{n+1} = y + b^T A^{-1} Z` if :math:`A` is
    invertible, else :math:`y_{n+1} = y + h \sum_i b_i f(t + c_i h, y + Z_i)`.

    Parameters
    ----------
    f : callable
        ``f(t, y)`` returning an ndarray of shape (n,).
    t, h : float
        Current time and step size.
    y : ndarray, shape (n,)
        Current state.
    tableau : ButcherTableau
        Any tableau (an explicit one works too, as a check).
    jac : callable, optional
        ``jac(t, y)`` returning the (n, n) Jacobian; forward differences otherwise.
    f_t : ndarray, optional
        ``f(t, y)``, used for explicit stages and the predictor :math:`Z_i = c_i h f(t, y)`.
    tol, max_iter : float, int
        Newton tolerance (on the estimated error of the stage increments, in the RMS norm
        relative to :math:`1 + |y|`) and iteration limit.
    stats : NewtonStats, optional
        Counters updated in place.

    Returns
    -------
    ndarray, shape (n,)
        The new state :math:`y_{n+1}`.

    Raises
    ------
    NewtonConvergenceError
        If Newton diverges or does not converge in ``max_iter`` iterations.

    Taught in Chapter 3.  References: hairer1996, Sec. IV.8.
    """
    tol, max_iter = _check_newton_settings(tol, max_iter)
    stats = NewtonStats() if stats is None else stats
    f_t = f(t, y) if f_t is None else f_t
    s, n = tableau.stages, y.size
    unknown = [i for i in range(s) if np.any(tableau.A[i])]
    nodes = [t + float(c) * h for c in tableau.c]

    def stage_values(Z_U: np.ndarray) -> np.ndarray:
        F = np.tile(f_t, (s, 1))
        for row, i in enumerate(unknown):
            F[i] = f(nodes[i], y + Z_U[row])
        return F

    def residual(Z_U: np.ndarray) -> np.ndarray:
        return Z_U - h * tableau.A[unknown] @ stage_values(Z_U)

    Z_U = h * np.outer(tableau.c[unknown], f_t)
    if unknown:
        A_UU, times = tableau.A[np.ix_(unknown, unknown)], (t, nodes[unknown[-1]])
        Z_U = _solve_stages(residual, Z_U, A_UU, h, y, f_t, f, jac, times, tol, max_iter, stats)
    Z = np.zeros((s, n))
    Z[unknown] = Z_U
    return _new_state(tableau, y, h, Z, lambda: stage_values(Z_U))


def _solve_stages(residual, Z_U, A_UU, h, y, f_t, f, jac, times, tol, max_iter, stats):
    """Simplified Newton on the stage equations, refreshing the Jacobian if it fails.

    The first attempt uses :math:`J` at the predicted last implicit stage.  When the
    iteration fails (a step across a fast transient), the Jacobian is re-evaluated at the
    latest converging iterate and the iteration continues from there (or restarts from the
    start if it diverged), up to :data:`MAX_JACOBIANS` Jacobians in all.
    """
    t, t_stage = times
    point, f_point = (t_stage, y + Z_U[-1]), None
    for _ in range(MAX_JACOBIANS):
        lu = lu_factor(_newton_matrix(A_UU, h, _jacobian(f, jac, *point, f_point, stats)))
        stats.nlu += 1
        result = simplified_newton(
            residual, lambda g, lu=lu: -lu_solve(lu, g.ravel()).reshape(g.shape), Z_U,
            1.0 + np.abs(y), tol=tol, max_iter=max_iter, stats=stats,
        )  # fmt: skip
        if result.converged:
            return result.x
        if result.rate is not None and result.rate < 1 and np.all(np.isfinite(result.x)):
            Z_U = result.x  # converging, only slowly: continue from here
        point = (t_stage, y + Z_U[-1])
    raise _fail(t, h, result.reason)


def _check_newton_settings(tol: float, max_iter: int) -> tuple[float, int]:
    """Validate the Newton tolerance and iteration limit."""
    return check_positive("tol", tol), check_int("max_iter", max_iter, minimum=0)


def _jacobian(
    f, jac, t: float, y: np.ndarray, f_t: np.ndarray | None, stats: NewtonStats
) -> np.ndarray:
    r""":math:`\partial f/\partial y` at the start of the step: given, or by differences."""
    stats.njev += 1
    if jac is None:
        matrix = finite_difference_jacobian(f, t, y, f_t)
    else:
        matrix = check_jacobian("`jac(t, y)`", jac(t, y), y.size)
    if not np.all(np.isfinite(matrix)):
        raise NewtonConvergenceError(
            f"The Jacobian is not finite at t = {t:.6g}, so Newton's method cannot start; "
            "check `jac`, or `fun` near this state."
        )
    return matrix


def _newton_matrix(A_UU: np.ndarray, h: float, jacobian: np.ndarray) -> np.ndarray:
    r"""The matrix :math:`I - h\, A_{UU} \otimes J` of the simplified Newton iteration."""
    return np.eye(A_UU.shape[0] * jacobian.shape[0]) - h * np.kron(A_UU, jacobian)


def _new_state(tableau: ButcherTableau, y, h, Z, stage_values) -> np.ndarray:
    """Assemble :math:`y_{n+1}` from converged stages (see :func:`implicit_rk_step`).

    ``stage_values()`` evaluates :math:`f` at the stages; only the last formula needs it.
    """
    if np.array_equal(tableau.A[-1], tableau.b):
        return y + Z[-1]
    if abs(np.linalg.det(tableau.A)) > 1e-12:
        d = np.linalg.solve(tableau.A.T, tableau.b)
        return y + d @ Z
    return y + h * tableau.b @ stage_values()


class ImplicitStepper:
    """An implicit tableau as a fixed-step method for :func:`~odecourse.fixed_step.integrate_fixed`.

    Calling it as ``stepper(f, t, y, f_t, h)`` takes one :func:`implicit_rk_step`
    and returns a :class:`~odecourse.fixed_step.StepOutcome` with cubic Hermite
    dense output; ``stats`` accumulates ``njev``, ``nlu`` and Newton iterations.

    Parameters
    ----------
    tableau : ButcherTableau
        Any tableau (usually an implicit one).
    jac : callable, optional
        ``jac(t, y)`` returning the (n, n) Jacobian; forward differences otherwise.
    tol : float
        Positive Newton tolerance (see :func:`implicit_rk_step`).
    max_iter : int
        Newton iteration limit, ``>= 0``.

    Taught in Chapter 3.
    """

    def __init__(
        self,
        tableau: ButcherTableau,
        jac: Jacobian | None = None,
        *,
        tol: float = 1e-10,
        max_iter: int = 10,
    ) -> None:
        if not isinstance(tableau, ButcherTableau):
            raise TypeError(f"`tableau` must be a ButcherTableau; got {type(tableau).__name__}.")
        if jac is not None:
            check_callable("jac", jac)
        self.tol, self.max_iter = _check_newton_settings(tol, max_iter)
        self.tableau, self.jac = tableau, jac
        self.stats = NewtonStats()

    def __call__(self, f, t: float, y: np.ndarray, f_t: np.ndarray, h: float) -> StepOutcome:
        y_new = implicit_rk_step(
            f, t, y, h, self.tableau, self.jac, f_t=f_t, tol=self.tol,
            max_iter=self.max_iter, stats=self.stats,
        )  # fmt: skip
        f_new = f(t + h, y_new)
        return StepOutcome(y_new, f_new, HermiteInterpolant(t, t + h, y, y_new, f_t, f_new))


def implicit_stepper(
    tableau: ButcherTableau, jac: Jacobian | None = None, *, tol: float = 1e-10, max_iter: int = 10
) -> ImplicitStepper:
    """Return an :class:`ImplicitStepper` for ``tableau`` (see there).  Taught in Chapter 3."""
    return ImplicitStepper(tableau, jac, tol=tol, max_iter=max_iter)
