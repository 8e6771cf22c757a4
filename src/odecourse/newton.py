r"""Simplified Newton iteration: the one nonlinear solver behind every implicit method.

An implicit step asks for the root of a system :math:`G(x) = 0` (the stage equations of
an implicit Runge-Kutta method, or :math:`y - h\beta_k f(t, y) - r = 0` for an implicit
multistep method).  *Simplified* Newton keeps one approximation :math:`M` of the
Jacobian of :math:`G`, factorises it once, and iterates

.. math::
    M\, \Delta x_k = -G(x_k), \qquad x_{k+1} = x_k + \Delta x_k .

With a fixed :math:`M` the iteration converges linearly, with a rate
:math:`\Theta_k = \|\Delta x_k\| / \|\Delta x_{k-1}\|`.  Hairer and Wanner's stopping
rule uses it twice: the remaining error after step :math:`k` is about
:math:`\Theta_k/(1 - \Theta_k)\,\|\Delta x_k\|`, so the iteration has converged when
that is below the tolerance, and it is hopeless when :math:`\Theta_k \ge 1` or when even
:math:`\Theta_k^{\,k_{\max} - k + 1}/(1 - \Theta_k)\,\|\Delta x_k\|`, about the
error it would still have after the remaining iterations, exceeds the tolerance.  A caller that sees
a failure shrinks the step or refreshes :math:`M`; it never accepts the iterate.

Norms are weighted RMS norms, :math:`\|v\| = \sqrt{\tfrac1n \sum_i (v_i / w_i)^2}`
with weights :math:`w` chosen by the caller (``atol + rtol |y|`` for adaptive methods,
``1 + |y|`` for fixed-step ones), so one tolerance serves every problem.

NumPy only.  Taught in Chapter 3.

References
----------
hairer1996: E. Hairer, G. Wanner, Solving Ordinary Differential Equations II, 2nd ed.,
Springer, 1996, Sec. IV.8 (stopping criterion, eqs. (8.10)-(8.11)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "NewtonConvergenceError",
    "NewtonResult",
    "NewtonStats",
    "finite_difference_jacobian",
    "simplified_newton",
]


class NewtonConvergenceError(RuntimeError):
    """Newton's method did not converge on the equations of an implicit step."""


@dataclass
class NewtonStats:
    """Counters of the Newton solves: Jacobian evaluations, LU factorisations, iterations."""

    njev: int = 0
    nlu: int = 0
    n_iter: int = 0


@dataclass(frozen=True)
class NewtonResult:
    """Outcome of :func:`simplified_newton`.

    Attributes
    ----------
    x : ndarray
        The last iterate (the solution when ``converged``).
    converged : bool
        True if the stopping rule was met.
    n_iter : int
        Iterations taken (residual evaluations).
    rate : float or None
        The last observed contraction rate :math:`\\Theta`, None after one iteration.
    reason : str
        Why the iteration stopped, in words (for error messages).
    """

    x: np.ndarray
    converged: bool
    n_iter: int
    rate: float | None
    reason: str


def _rms(v: np.ndarray, weights: np.ndarray) -> float:
    return float(np.sqrt(np.mean((v / weights) ** 2))) if v.size else 0.0


def simplified_newton(
    residual: Callable[[np.ndarray], np.ndarray],
    solve: Callable[[np.ndarray], np.ndarray],
    x0: np.ndarray,
    weights: np.ndarray | float,
    *,
    tol: float,
    max_iter: int,
    stats: NewtonStats | None = None,
) -> NewtonResult:
    r"""Solve :math:`G(x) = 0` by simplified Newton with Hairer and Wanner's stopping rule.

    .. math::
        \Delta x_k = \mathrm{solve}\big(G(x_k)\big) \;(= -M^{-1} G(x_k)), \qquad
        x_{k+1} = x_k + \Delta x_k, \qquad
        \text{converged when } \frac{\Theta_k}{1 - \Theta_k} \|\Delta x_k\| < \mathrm{tol}.

    Parameters
    ----------
    residual : callable
        ``residual(x)`` returns :math:`G(x)`, an array shaped like ``x``.
    solve : callable
        ``solve(g)`` returns the correction :math:`-M^{-1} g` (shaped like ``x``), with a
        factorisation the caller made once.
    x0 : ndarray
        Starting guess (a predictor).
    weights : ndarray or float
        Positive weights of the RMS norm, broadcastable to ``x``.
    tol : float
        Tolerance on the estimated remaining error, in the weighted norm.
    max_iter : int
        Largest number of iterations, at least 1.
    stats : NewtonStats, optional
        ``n_iter`` is increased in place.

    Returns
    -------
    NewtonResult
        ``converged`` is False with a ``reason`` when the residual is not finite,
        the iteration diverges (:math:`\Theta \ge 1`), converges too slowly to
        finish in ``max_iter`` iterations, or runs out of iterations.

    Trusts its caller (it runs inside every implicit step).  Taught in Chapter 3.
    References: hairer1996, Sec. IV.8.
    """
    x = np.array(x0, dtype=float)
    weights = np.broadcast_to(np.asarray(weights, dtype=float), x.shape)
    previous, rate = None, None
    for k in range(1, max_iter + 1):
        if stats is not None:
            stats.n_iter += 1
        g = residual(x)
        if not np.all(np.isfinite(g)):
            return NewtonResult(x, False, k, rate, "produced non-finite values")
        dx = solve(g)
        norm = _rms(dx, weights)
        x = x + dx
        if previous is not None:
            rate = norm / previous if previous > 0 else 0.0
            if rate >= 1:
                return NewtonResult(x, False, k, rate, f"diverged (rate {rate:.2g})")
            if rate ** (max_iter - k + 1) / (1 - rate) * norm > tol:
                return NewtonResult(x, False, k, rate, f"converged too slowly (rate {rate:.2g})")
        if norm == 0 or (rate is not None and rate / (1 - rate) * norm < tol):
            return NewtonResult(x, True, k, rate, "converged")
        previous = norm
    return NewtonResult(x, False, max_iter, rate, f"did not converge in {max_iter} iterations")


def finite_difference_jacobian(
    f: Callable[[float, np.ndarray], np.ndarray],
    t: float,
    y: np.ndarray,
    f_y: np.ndarray | None = None,
) -> np.ndarray:
    r"""Forward-difference approximation of :math:`\partial f / \partial y` at ``(t, y)``.

    .. math:: J_{:, j} \approx \frac{f(t, y + \delta_j e_j) - f(t, y)}{\delta_j},
              \qquad \delta_j = \sqrt{\varepsilon}\, \max(1, |y_j|).

    Costs ``n`` evaluations of ``f`` (plus one if ``f_y`` is not given).

    Parameters
    ----------
    f : callable
        ``f(t, y)`` returning an ndarray of shape (m,).
    t : float
        Time.
    y : array_like, shape (n,)
        State at which to differentiate (integer arrays are read as floats).
    f_y : ndarray, shape (m,), optional
        ``f(t, y)`` if already known.

    Returns
    -------
    ndarray, shape (m, n)
        The approximate Jacobian.

    Taught in Chapter 3.
    """
    y = np.asarray(y, dtype=float)
    f_y = np.asarray(f(t, y) if f_y is None else f_y, dtype=float)
    jac = np.empty((f_y.size, y.size))
    for j in range(y.size):
        delta = np.sqrt(np.finfo(float).eps) * max(1.0, abs(y[j]))
        y_shift = y.copy()
        y_shift[j] += delta
        jac[:, j] = (f(t, y_shift) - f_y) / delta
    return jac
