r"""One fixed-step integrator for every linear multistep method.

Given the coefficients of :class:`~odecourse.multistep.LinearMultistepMethod`, a single
routine advances the solution on a uniform grid.  Solving for :math:`y_{n+k}` in

.. math::

    y_{n+k} = \underbrace{-\sum_{j<k} \alpha_j y_{n+j} + h \sum_{j<k} \beta_j f_{n+j}}_{r_n}
              + h \beta_k f(t_{n+k}, y_{n+k})

is direct for an explicit method (:math:`\beta_k = 0`).  An implicit method is solved in
one of two ways, chosen by ``corrector``:

``"newton"``
    Newton's method on :math:`G(y) = y - h\beta_k f(t_{n+k}, y) - r_n = 0` with the
    Jacobian :math:`I - h\beta_k \partial f/\partial y` (given, or by finite differences),
    started from an Adams-Bashforth prediction.  NumPy states only.
``"pece"``
    Predict with the Adams-Bashforth method of the same order, Evaluate, Correct once with
    the implicit formula, Evaluate: two function evaluations a step, no linear algebra,
    and the order of the corrector.  Like explicit methods, this path only adds and scales
    states, so it also runs on torch tensors.

The first values :math:`y_1, \dots, y_{m-1}` come from a one-step method (``starter``, a
parameter), taking the same step :math:`h`.

Taught in Chapter 4.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg

from ._validation import check_callable, check_choice, check_positive, check_t_span
from .multistep import LinearMultistepMethod, adams_bashforth
from .runge_kutta import ButcherTableau, get_tableau, rk_step

__all__ = [
    "CORRECTORS",
    "MultistepSolution",
    "NewtonConvergenceError",
    "multistep_solve",
]

CORRECTORS = ("newton", "pece")
NEWTON_TOL = 1e-10  # on the RMS size of the Newton update, relative to 1 + |y|
NEWTON_MAX_ITER = 20
FD_EPS = math.sqrt(np.finfo(float).eps)


class NewtonConvergenceError(RuntimeError):
    """Newton's method failed to solve an implicit multistep step."""


@dataclass(frozen=True)
class MultistepSolution:
    """The grid solution of a multistep integration.

    Attributes
    ----------
    t : numpy.ndarray, shape (n_points,)
        The uniform grid, from ``t0`` to ``t1`` inclusive.
    y : list of arrays
        The state at each grid point (NumPy arrays or torch tensors, like ``y0``).
    f : list of arrays
        :math:`f(t_n, y_n)` at each grid point, for Hermite dense output.
    h : float
        The step actually used (``t_span`` split into equal steps).
    nfev, njev, nlu : int
        Evaluations of ``f``, Jacobian evaluations, LU factorisations.
    """

    t: np.ndarray
    y: list
    f: list
    h: float
    nfev: int
    njev: int
    nlu: int


class _Counted:
    """Wraps ``f`` and counts its evaluations (also those for Jacobians)."""

    def __init__(self, f: Callable) -> None:
        self.f = f
        self.nfev = 0

    def __call__(self, t: float, y: Any) -> Any:
        self.nfev += 1
        return self.f(t, y)


def _grid(t_span: tuple[float, float], h: float) -> tuple[np.ndarray, float]:
    """Split ``t_span`` into the fewest equal steps of size at most ``h``."""
    t0, t1 = t_span
    n_steps = max(1, math.ceil(abs(t1 - t0) / h - 1e-12))
    return np.linspace(t0, t1, n_steps + 1), (t1 - t0) / n_steps


def _weighted_sum(weights, values) -> Any:
    total = None
    for w, v in zip(weights, values, strict=True):
        if w != 0:
            total = float(w) * v if total is None else total + float(w) * v
    return total


def _newton(f, jac, t, y_guess, h_beta, rhs, counts) -> Any:
    """Solve :math:`y - h\\beta_k f(t, y) = r` by simplified Newton (one LU per step)."""
    y = np.array(y_guess, dtype=float)
    n = y.size
    jacobian = jac(t, y) if jac is not None else _fd_jacobian(f, t, y)
    counts["njev"] += 1
    matrix = np.eye(n) - h_beta * np.atleast_2d(jacobian)
    if not np.all(np.isfinite(matrix)):
        raise NewtonConvergenceError(f"the Jacobian is not finite at t = {t:.6g}.")
    lu = scipy.linalg.lu_factor(matrix)
    counts["nlu"] += 1
    for _ in range(NEWTON_MAX_ITER):
        residual = y - h_beta * f(t, y) - rhs
        if not np.all(np.isfinite(residual)):
            break
        delta = scipy.linalg.lu_solve(lu, residual)
        y = y - delta
        if np.sqrt(np.mean((delta / (1.0 + np.abs(y))) ** 2)) < NEWTON_TOL:
            return y
    raise NewtonConvergenceError(
        f"Newton's method did not converge in {NEWTON_MAX_ITER} iterations at t = {t:.6g}; "
        "try a smaller step `h` or pass the exact Jacobian `jac`."
    )


def _fd_jacobian(f, t, y) -> np.ndarray:
    f0 = np.asarray(f(t, y), dtype=float)
    columns = []
    for i in range(y.size):
        step = FD_EPS * max(1.0, abs(y[i]))
        shifted = y.copy()
        shifted[i] += step
        columns.append((np.asarray(f(t, shifted), dtype=float) - f0) / step)
    return np.column_stack(columns)


def _start(f, t, y0, h, n_values, starter: ButcherTableau) -> tuple[list, list]:
    """The first ``n_values`` states and derivatives, from the one-step ``starter``."""
    ys, fs = [y0], [f(t[0], y0)]
    for n in range(1, n_values):
        ys.append(rk_step(f, float(t[n - 1]), ys[-1], h, starter, k0=fs[-1]).y)
        fs.append(f(float(t[n]), ys[-1]))
    return ys, fs


def multistep_solve(
    f: Callable[[float, Any], Any],
    t_span: tuple[float, float],
    y0: Any,
    h: float,
    method: LinearMultistepMethod,
    *,
    corrector: str = "newton",
    starter: str | ButcherTableau = "dopri5",
    jac: Callable[[float, Any], Any] | None = None,
) -> MultistepSolution:
    r"""Integrate :math:`y' = f(t, y)` on a uniform grid with a linear multistep method.

    Parameters
    ----------
    f : callable
        ``f(t, y)``, returning an array shaped like ``y``.
    t_span : (float, float)
        Start and end times; ``t1 < t0`` integrates backwards.
    y0 : array, shape (n,)
        Initial state (NumPy array, or torch tensor for explicit and ``"pece"`` methods).
    h : float
        Largest step size; the interval is split into the fewest equal steps no larger
        than ``h`` (a multistep method needs a uniform grid).
    method : LinearMultistepMethod
        The coefficients, e.g. ``odecourse.multistep.get_multistep_method("AB4")``.
    corrector : {"newton", "pece"}
        How an implicit method is solved (ignored for explicit methods).
    starter : str or ButcherTableau
        The one-step method that computes the starting values (default Dormand-Prince,
        order 5, taken as a fixed-step method so every start-up step has size ``h``).
    jac : callable, optional
        ``jac(t, y)``, the Jacobian :math:`\partial f/\partial y`, for ``"newton"``.

    Returns
    -------
    MultistepSolution

    Raises
    ------
    NewtonConvergenceError
        If Newton's method fails in an implicit step.
    """
    check_callable("f", f)
    t_span = check_t_span("t_span", t_span)
    h = check_positive("h", h)
    if not isinstance(method, LinearMultistepMethod):
        raise TypeError(f"`method` must be a LinearMultistepMethod; got {type(method).__name__}.")
    corrector = check_choice("corrector", corrector, CORRECTORS)
    starter = get_tableau(starter) if isinstance(starter, str) else starter
    if not isinstance(starter, ButcherTableau) or not starter.explicit:
        raise ValueError(f"`starter` must name an explicit Runge-Kutta method; got {starter!r}.")
    if jac is not None:
        check_callable("jac", jac)

    counted = _Counted(f)
    t, h = _grid(t_span, h)
    implicit = not method.explicit
    predictor = adams_bashforth(max(method.computed_order(), 1)) if implicit else None
    history = max(method.steps, predictor.steps if predictor else 0)
    if len(t) < history:
        raise ValueError(
            f"`h` = {abs(h):.3g} leaves {len(t) - 1} steps in `t_span`, fewer than the "
            f"{history - 1} starting steps that {method.name} needs; use a smaller `h`."
        )
    ys, fs = _start(counted, t, y0, h, history, starter)
    counts = {"njev": 0, "nlu": 0}
    step = _Stepper(counted, method, predictor, corrector, jac, h, counts)
    for n in range(history, len(t)):
        y_new, f_new = step(float(t[n]), ys, fs)
        ys.append(y_new)
        fs.append(f_new)
    return MultistepSolution(t, ys, fs, h, counted.nfev, counts["njev"], counts["nlu"])


@dataclass
class _Stepper:
    """One step of ``method`` from the history; the generic update written once."""

    f: Callable
    method: LinearMultistepMethod
    predictor: LinearMultistepMethod | None
    corrector: str
    jac: Callable | None
    h: float
    counts: dict

    def __call__(self, t_new: float, ys: list, fs: list) -> tuple[Any, Any]:
        k = self.method.steps
        alpha, beta = self.method.alpha, self.method.beta
        past = _weighted_sum(alpha[:-1], ys[-k:])
        rhs = -past if past is not None else 0.0 * ys[-1]
        explicit_part = _weighted_sum(beta[:-1], fs[-k:])
        if explicit_part is not None:
            rhs = rhs + self.h * explicit_part
        if self.method.explicit:
            y_new = rhs
            return y_new, self.f(t_new, y_new)
        m = self.predictor.steps
        guess = ys[-1] + self.h * _weighted_sum(self.predictor.beta[:-1], fs[-m:])
        h_beta = self.h * float(beta[-1])
        if self.corrector == "pece":
            y_new = rhs + h_beta * self.f(t_new, guess)
        else:
            y_new = _newton(self.f, self.jac, t_new, guess, h_beta, rhs, self.counts)
        return y_new, self.f(t_new, y_new)
