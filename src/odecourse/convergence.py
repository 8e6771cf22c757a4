"""Measuring convergence: observed order, error-versus-step-size studies, work-precision data.

A method of order :math:`p` has global error :math:`E(h) \\approx C h^p`, a
straight line of slope :math:`p` on a log-log plot.  :func:`observed_order`
fits that slope; :func:`convergence_study` runs a method with a sequence of
fixed step sizes on a problem with a known solution; :func:`work_precision`
records error against the number of function evaluations, for tolerances
(adaptive methods) or step sizes (fixed-step methods).  Errors are measured in
the maximum norm at the final time.

Problems are duck-typed: any object with ``f``, ``t_span``, ``y0`` and
``exact`` (such as :class:`odecourse.ivp.IVP`).

Taught in Chapter 2 (order), Chapter 3 (work-precision) and Chapter 4.

References
----------
hairer1993: E. Hairer, S. P. Norsett, G. Wanner, Solving Ordinary Differential
Equations I, 2nd ed., Springer, 1993, Sec. II.3 and II.10.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from odecourse._validation import check_finite_array, check_int, check_positive
from odecourse.runge_kutta import ButcherTableau, resolve_tableau
from odecourse.solve import METHODS, solve_ivp

__all__ = [
    "ConvergenceStudy",
    "WorkPrecision",
    "convergence_study",
    "observed_order",
    "work_precision",
]


def observed_order(h: Any, errors: Any) -> float:
    r"""Least-squares slope of :math:`\log E` against :math:`\log h`.

    .. math:: \log E_i \approx \log C + p \log h_i

    Parameters
    ----------
    h, errors : array_like, shape (m,)
        Positive step sizes (or any resolution parameter) and errors, ``m >= 2``,
        with at least two distinct ``h``.

    Returns
    -------
    float
        The observed order :math:`p`.  Taught in Chapter 2.
    """
    h = check_finite_array("h", h, ndim=1)
    errors = check_finite_array("errors", errors, ndim=1)
    if h.shape != errors.shape or h.size < 2:
        raise ValueError(
            "`h` and `errors` must have the same length >= 2; "
            f"got shapes {h.shape} and {errors.shape}."
        )
    if np.any(h <= 0) or np.any(errors <= 0):
        raise ValueError(
            "`h` and `errors` must be positive (they are fitted on a log scale); "
            f"got h = {h} and errors = {errors}."
        )
    if np.ptp(h) == 0:
        raise ValueError("`h` must contain at least two distinct values.")
    slope, _ = np.polyfit(np.log(h), np.log(errors), 1)
    return float(slope)


@dataclass(frozen=True)
class ConvergenceStudy:
    """Global errors of a fixed-step method for a sequence of step sizes.

    Attributes
    ----------
    method : str
    h, errors : ndarray, shape (m,)
        Step sizes and max-norm errors at the final time.
    n_steps, nfev : ndarray of int, shape (m,)
    order : float
        Observed order, :func:`observed_order` of ``(h, errors)``.
    """

    method: str
    h: np.ndarray
    n_steps: np.ndarray
    errors: np.ndarray
    nfev: np.ndarray
    order: float


@dataclass(frozen=True)
class WorkPrecision:
    """Error against cost: one row per tolerance or step size.

    Attributes
    ----------
    method : str
    parameter : ndarray, shape (m,)
        The ``rtol`` (adaptive) or ``h`` (fixed-step) values.
    errors, nfev, n_steps : ndarray, shape (m,)
    """

    method: str
    parameter: np.ndarray
    errors: np.ndarray
    nfev: np.ndarray
    n_steps: np.ndarray


def _fixed_step_method(method: str | ButcherTableau) -> str | ButcherTableau:
    """The method itself if it takes ``h``; an adaptive tableau without its embedded pair."""
    if isinstance(method, str) and method in METHODS and METHODS[method].fixed_step:
        return method
    tableau = resolve_tableau(method, "method")
    return dataclasses.replace(tableau, b_hat=None, error_order=None)


def _check_problem(problem: Any) -> Any:
    """``problem`` must look like an :class:`~odecourse.ivp.IVP` with an exact solution."""
    missing = [a for a in ("f", "t_span", "y0", "exact") if not hasattr(problem, a)]
    if missing:
        raise TypeError(
            "`problem` must be an IVP-like object with `f`, `t_span`, `y0` and `exact`, "
            f"e.g. get_problem('exponential_decay'); got {type(problem).__name__} "
            f"{problem!r:.60} (missing {', '.join(missing)})."
        )
    if problem.exact is None:
        raise ValueError(
            f"`problem` {getattr(problem, 'name', '')!r} has no exact solution (`exact` is "
            "None), so errors cannot be measured; choose a problem with one."
        )
    return problem


def _final_error(problem: Any, result: Any) -> float:
    return float(np.max(np.abs(result.y[:, -1] - problem.exact(problem.t_span[1]))))


def _name(method: Any) -> str:
    return method.name if isinstance(method, ButcherTableau) else str(method)


def convergence_study(
    problem: Any, method: str | ButcherTableau, n_steps: Sequence[int] = (16, 32, 64, 128, 256)
) -> ConvergenceStudy:
    r"""Run ``method`` with :math:`h = |t_1 - t_0|/N` for each ``N`` and record the errors.

    .. math:: E(h) = \max_i |y_{N,i} - y_i(t_1)| \approx C h^p

    Parameters
    ----------
    problem : IVP-like
        Any object with ``f``, ``t_span``, ``y0`` and ``exact`` (not None).
    method : str or ButcherTableau
        A fixed-step method of :data:`odecourse.solve.METHODS` or a tableau name or
        tableau.  Adaptive tableaus (``"dopri5"``) run as fixed-step methods with
        their propagated weights ``b``.
    n_steps : sequence of int, length >= 2
        Numbers of steps :math:`N \ge 1`, with at least two distinct values.

    Returns
    -------
    ConvergenceStudy
        Step sizes, errors, counts and the fitted order.

    Taught in Chapter 2.
    """
    if np.ndim(n_steps) != 1:
        raise TypeError(f"`n_steps` must be a sequence of integers; got {n_steps!r:.60}.")
    counts = np.array([check_int("n_steps", n, minimum=1) for n in n_steps])
    if np.unique(counts).size < 2:
        raise ValueError(
            f"`n_steps` must hold at least two distinct step counts to fit an order; "
            f"got {tuple(int(n) for n in counts)}."
        )
    _check_problem(problem)
    fixed = _fixed_step_method(method)
    t0, t1 = problem.t_span
    h = abs(t1 - t0) / counts
    errors, nfev = [], []
    for step in h:
        result = solve_ivp(problem.f, problem.t_span, problem.y0, method=fixed, h=float(step))
        errors.append(_final_error(problem, result))
        nfev.append(result.nfev)
    errors = np.array(errors)
    return ConvergenceStudy(
        _name(method), h, counts, errors, np.array(nfev), observed_order(h, errors)
    )


def work_precision(
    problem: Any,
    method: str | ButcherTableau,
    *,
    rtols: Sequence[float] | None = None,
    hs: Sequence[float] | None = None,
    atol_ratio: float = 1e-3,
) -> WorkPrecision:
    """Record the error at the final time and the cost for each tolerance or step size.

    Parameters
    ----------
    problem : IVP-like
        Any object with ``f``, ``t_span``, ``y0`` and ``exact`` (not None).
    method : str or ButcherTableau
        Passed to :func:`odecourse.solve.solve_ivp`.
    rtols : sequence of float, optional
        Relative tolerances of an adaptive method, with ``atol = atol_ratio * rtol``.
    hs : sequence of float, optional
        Step sizes of a fixed-step method.  Give exactly one of ``rtols`` and ``hs``.
    atol_ratio : float
        Positive ratio ``atol / rtol``.

    Returns
    -------
    WorkPrecision
        Errors (max norm at ``t1``), ``nfev`` and ``n_steps``, one row per value.

    Taught in Chapter 3.
    """
    if (rtols is None) == (hs is None):
        raise ValueError("give exactly one of `rtols` (adaptive) or `hs` (fixed-step).")
    _check_problem(problem)
    atol_ratio = check_positive("atol_ratio", atol_ratio)
    name = "rtols" if hs is None else "hs"
    values = check_finite_array(name, rtols if hs is None else hs, ndim=1)
    if values.size == 0 or np.any(values <= 0):
        raise ValueError(f"`{name}` must hold at least one positive value; got {values}.")
    rows = []
    for value in values:
        if hs is None:
            kwargs = {"rtol": float(value), "atol": float(value) * atol_ratio}
        else:
            kwargs = {"h": float(value)}
        result = solve_ivp(problem.f, problem.t_span, problem.y0, method=method, **kwargs)
        rows.append((_final_error(problem, result), result.nfev, result.n_steps))
    errors, nfev, n_steps = (np.array(column) for column in zip(*rows, strict=True))
    return WorkPrecision(_name(method), values, errors, nfev, n_steps)
