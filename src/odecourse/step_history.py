"""Every attempted step of an adaptive Runge-Kutta integration, accepted or rejected.

:func:`odecourse.adaptive.integrate_adaptive` returns the accepted steps and
counts the rejected ones.  To *see* the controller at work, a chapter needs
the rejected attempts too: where they started, how large they were and how
large the error estimate came out.  :func:`adaptive_step_history` runs
``integrate_adaptive`` itself with an ``observer`` that records each attempt
in a :class:`StepHistory`, so what it shows is what the solver does.

NumPy only.  Taught in Chapter 3.

References
----------
hairer1993: E. Hairer, S. P. Norsett, G. Wanner, Solving Ordinary Differential
Equations I, 2nd ed., Springer, 1993, Sec. II.4.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from odecourse._validation import (
    check_callable,
    check_finite_array,
    check_int,
    check_positive,
    check_t_span,
    checked_rhs,
)
from odecourse.adaptive import integrate_adaptive
from odecourse.runge_kutta import ButcherTableau, resolve_tableau

__all__ = ["StepHistory", "adaptive_step_history"]


@dataclass(frozen=True)
class StepHistory:
    """All attempted steps of an adaptive integration, in the order they were tried.

    Attributes
    ----------
    t : ndarray, shape (m,)
        Start time of each attempt.
    h : ndarray, shape (m,)
        Signed step size of each attempt.
    error : ndarray, shape (m,)
        Scaled RMS norm of the embedded error estimate; accepted when below one.
    accepted : ndarray of bool, shape (m,)
        Whether the attempt was accepted.
    y : ndarray, shape (n, m)
        The state each attempt proposed at ``t + h`` (discarded by the solver if
        rejected; :attr:`y_accepted` keeps the accepted ones).
    y0 : ndarray, shape (n,)
        Initial state.
    success : bool
        True if the end of the interval was reached.
    """

    t: np.ndarray
    h: np.ndarray
    error: np.ndarray
    accepted: np.ndarray
    y: np.ndarray
    y0: np.ndarray
    success: bool

    @property
    def n_steps(self) -> int:
        """Number of accepted steps."""
        return int(self.accepted.sum())

    @property
    def n_rejected(self) -> int:
        """Number of rejected attempts."""
        return int((~self.accepted).sum())

    @property
    def t_accepted(self) -> np.ndarray:
        """Mesh of accepted step ends, with the initial time first: shape (n_steps + 1,)."""
        ends = (self.t + self.h)[self.accepted]
        return np.concatenate([self.t[:1], ends])

    @property
    def y_accepted(self) -> np.ndarray:
        """States on :attr:`t_accepted`: shape (n, n_steps + 1)."""
        return np.column_stack([self.y0, self.y[:, self.accepted]])


def adaptive_step_history(
    f: Callable[[float, np.ndarray], np.ndarray],
    t_span: tuple[float, float],
    y0: np.ndarray,
    tableau: ButcherTableau | str = "dopri5",
    *,
    rtol: float = 1e-3,
    atol: float = 1e-6,
    first_step: float | None = None,
    max_step: float = math.inf,
    max_steps: int = 100_000,
) -> StepHistory:
    r"""Integrate with an embedded pair and record every attempted step.

    Runs :func:`odecourse.adaptive.integrate_adaptive` with an observer that
    records each attempt: accept when :math:`\|e\| < 1`, then

    .. math::
        h_{\mathrm{new}} = h \cdot \min\Big(\mathrm{MAX},\, \max\big(\mathrm{MIN},\,
            \mathrm{SAFETY}\cdot \|e\|^{-1/(\hat p + 1)}\big)\Big),

    with growth capped at one right after a rejection.

    Parameters
    ----------
    f : callable
        ``f(t, y)`` returning an ndarray of shape (n,).
    t_span : (float, float)
        Interval of integration.
    y0 : array_like, shape (n,)
        Initial state.
    tableau : ButcherTableau or str
        An explicit tableau with an embedded pair, or its name (``"dopri5"``, ``"RK23"``).
    rtol, atol : float
        Positive tolerances.
    first_step, max_step : float, optional
        As in :func:`odecourse.solve_ivp`.
    max_steps : int
        Stop (``success = False``) after this many accepted steps.

    Returns
    -------
    StepHistory

    Taught in Chapter 3.
    """
    f = check_callable("f", f)
    t_span = check_t_span("t_span", t_span)
    y0 = check_finite_array("y0", y0, ndim=1)
    tableau = resolve_tableau(tableau, "tableau", explicit=True, adaptive=True)
    rtol, atol = check_positive("rtol", rtol), check_positive("atol", atol)
    max_step = check_positive("max_step", max_step, allow_inf=True)
    max_steps = check_int("max_steps", max_steps, minimum=1)
    if first_step is not None:
        first_step = check_positive("first_step", first_step)
    attempts: list[tuple] = []
    result = integrate_adaptive(
        checked_rhs("f", f, y0.size), t_span, y0, tableau, rtol=rtol, atol=atol,
        first_step=first_step, max_step=max_step, max_steps=max_steps,
        observer=lambda t, h, err, accepted, y_new: attempts.append((t, h, err, accepted, y_new)),
    )  # fmt: skip
    t_, h_, e_, a_, y_ = zip(*attempts, strict=True) if attempts else ((),) * 5
    states = np.column_stack(y_) if attempts else np.empty((len(y0), 0))
    return StepHistory(
        np.array(t_, dtype=float),
        np.array(h_, dtype=float),
        np.array(e_, dtype=float),
        np.array(a_, dtype=bool),
        states,
        y0,
        result.success,
    )
