"""Implicit Runge-Kutta steps solved by Newton's method.

An implicit tableau (backward Euler, implicit midpoint, the trapezoidal rule)
defines its stages by a nonlinear system.  :func:`implicit_rk_step` writes the
stages as increments :math:`Z_i = h \\sum_j a_{ij} f(t + c_j h, y + Z_j)` and
solves that system with Newton's method, using the Jacobian ``jac(t, y)`` if
given or forward finite differences otherwise, and one LU factorisation
(:func:`scipy.linalg.lu_factor`) per Newton iteration.  When Newton fails it
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

from odecourse._validation import check_callable, check_int, check_positive
from odecourse.dense_output import HermiteInterpolant
from odecourse.fixed_step import StepOutcome
from odecourse.newton import NewtonConvergenceError, NewtonStats, finite_difference_jacobian
from odecourse.runge_kutta import ButcherTableau

__all__ = ["ImplicitStepper", "implicit_rk_step", "implicit_stepper"]

Jacobian = Callable[[float, np.ndarray], np.ndarray]


def _newton_matrix(tableau: ButcherTableau, h: float, jacobians: list) -> np.ndarray:
    """The matrix :math:`I - h\\,[a_{ij} J_j]` of the stage system (block ``(i, j)``)."""
    s, n = tableau.stages, jacobians[0].shape[0]
    matrix = np.eye(s * n)
    for i in range(s):
        for j in range(s):
            if tableau.A[i, j] != 0:
                matrix[i * n : (i + 1) * n, j * n : (j + 1) * n] -= (
                    h * tableau.A[i, j] * jacobians[j]
                )
    return matrix


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

    With stage increments :math:`Z_i`, solve

    .. math::
        G(Z) = Z_i - h \sum_j a_{ij} f(t + c_j h,\, y + Z_j) = 0, \qquad
        \big(I - h\,[a_{ij} J_j]\big)\, \Delta Z = -G(Z), \quad Z \leftarrow Z + \Delta Z,

    with :math:`J_j = \partial f/\partial y` at stage :math:`j`, until
    :math:`\|G\|_\infty \le \mathrm{tol}\,(1 + \|y\|_\infty)`.  Then
    :math:`y_{n+1} = y + Z_s` for a stiffly accurate tableau (:math:`b^T = e_s^T A`),
    :math:`y_{n+1} = y + b^T A^{-1} Z` if :math:`A` is invertible, else
    :math:`y_{n+1} = y + h \sum_i b_i f(t + c_i h, y + Z_i)`.

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
        ``f(t, y)``, used for the explicit Euler predictor :math:`Z_i = c_i h f(t, y)`.
    tol, max_iter : float, int
        Newton tolerance and iteration limit.
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
    nodes = [t + float(c) * h for c in tableau.c]
    Z = h * np.outer(tableau.c, f_t)
    limit = tol * (1.0 + np.max(np.abs(y), initial=0.0))
    for iteration in range(max_iter + 1):
        F = np.array([f(nodes[j], y + Z[j]) for j in range(tableau.stages)])
        G = Z - h * tableau.A @ F
        residual = np.max(np.abs(G), initial=0.0)
        if not np.isfinite(residual):
            raise _fail(t, h, "produced non-finite values")
        if residual <= limit:
            return _new_state(tableau, y, h, Z, F)
        if iteration == max_iter:
            break
        jacobians = _stage_jacobians(f, jac, nodes, y, Z, F, tableau, stats)
        lu = lu_factor(_newton_matrix(tableau, h, jacobians))
        stats.nlu += 1
        stats.n_iter += 1
        Z = Z + lu_solve(lu, -G.ravel()).reshape(Z.shape)
    raise _fail(t, h, f"did not converge in {max_iter} iterations")


def _check_newton_settings(tol: float, max_iter: int) -> tuple[float, int]:
    """Validate the Newton tolerance and iteration limit (``max_iter = 0``: predictor only)."""
    return check_positive("tol", tol), check_int("max_iter", max_iter, minimum=0)


def _stage_jacobians(f, jac, nodes, y, Z, F, tableau, stats) -> list:
    """Jacobians at the stages that the Newton update needs (zeros elsewhere).

    Stage ``j`` needs none if no equation uses it (column ``j`` of ``A`` is zero) or if
    it is explicit and first (row ``j`` is zero, so ``Z_j = 0`` never changes).
    """
    n = y.size
    jacobians = []
    for j in range(tableau.stages):
        if not np.any(tableau.A[:, j]) or not np.any(tableau.A[j]):
            jacobians.append(np.zeros((n, n)))
            continue
        stats.njev += 1
        if jac is None:
            jacobians.append(finite_difference_jacobian(f, nodes[j], y + Z[j], F[j]))
        else:
            jacobians.append(np.asarray(jac(nodes[j], y + Z[j]), dtype=float).reshape(n, n))
    return jacobians


def _new_state(tableau: ButcherTableau, y, h, Z, F) -> np.ndarray:
    """Assemble :math:`y_{n+1}` from converged stages (see :func:`implicit_rk_step`)."""
    if np.array_equal(tableau.A[-1], tableau.b):
        return y + Z[-1]
    if abs(np.linalg.det(tableau.A)) > 1e-12:
        d = np.linalg.solve(tableau.A.T, tableau.b)
        return y + d @ Z
    return y + h * tableau.b @ F


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
