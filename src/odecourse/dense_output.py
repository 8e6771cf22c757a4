r"""Dense output: the solution between the ends of a step, from what the step computed.

A Runge-Kutta step with dense-output coefficients :math:`P` gives a polynomial
in :math:`\theta \in [0, 1]` for free (:class:`RKInterpolant`); any other step
uses cubic Hermite interpolation of the values and slopes at both ends
(:class:`HermiteInterpolant`).  Like the step, the interpolants only add and
scale states, so they work on NumPy arrays and torch tensors alike.

Taught in Chapter 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from odecourse.runge_kutta import ButcherTableau, _combine, _nonzero

__all__ = ["HermiteInterpolant", "RKInterpolant", "make_interpolant"]


@dataclass(frozen=True)
class RKInterpolant:
    r"""Dense output of one step from the tableau's own coefficients.

    .. math::
        y(t_n + \theta h) = y_n + h \sum_i b_i(\theta) k_i, \qquad
        b(\theta) = P\,[\theta, \theta^2, \dots, \theta^q]^T .

    Taught in Chapter 3.
    """

    t_old: float
    t_new: float
    y_old: Any
    k: tuple[Any, ...]
    P: np.ndarray

    def __call__(self, t: float) -> Any:
        h = self.t_new - self.t_old
        theta = (t - self.t_old) / h
        weights = self.P @ np.cumprod(np.full(self.P.shape[1], theta))
        return _combine(self.y_old, h, _nonzero(weights), self.k)


@dataclass(frozen=True)
class HermiteInterpolant:
    r"""Cubic Hermite dense output from the values and slopes at both ends of a step.

    .. math::
        y(t_n + \theta h) = (1 - \theta)\, y_n + \theta\, y_{n+1}
            + \theta (\theta - 1) \big[(1 - 2\theta)(y_{n+1} - y_n)
            + (\theta - 1) h f_n + \theta h f_{n+1}\big] .

    Third-order accurate (local error :math:`O(h^4)`).  Taught in Chapter 3.
    """

    t_old: float
    t_new: float
    y_old: Any
    y_new: Any
    f_old: Any
    f_new: Any

    def __call__(self, t: float) -> Any:
        h = self.t_new - self.t_old
        s = (t - self.t_old) / h
        if s == 0:
            return self.y_old
        dy = self.y_new - self.y_old
        bracket = (1 - 2 * s) * dy + ((s - 1) * h) * self.f_old + (s * h) * self.f_new
        return self.y_old + s * dy + (s * (s - 1)) * bracket


def make_interpolant(
    tableau: ButcherTableau | None,
    t_old: float,
    t_new: float,
    y_old: Any,
    y_new: Any,
    f_old: Any,
    f_new: Any,
    k: tuple[Any, ...] = (),
) -> RKInterpolant | HermiteInterpolant:
    """Return the tableau's dense output if it has one, else cubic Hermite interpolation.

    Parameters
    ----------
    tableau : ButcherTableau or None
        The method that took the step; its ``P`` is used when it has one and ``k`` is given.
    t_old, t_new : float
        Start and end of the step (``t_new < t_old`` for a backward step).
    y_old, y_new : array, shape like the state
        States at ``t_old`` and ``t_new``.
    f_old, f_new : array, shape like the state
        ``f(t_old, y_old)`` and ``f(t_new, y_new)`` (used by the Hermite fallback).
    k : tuple of arrays, optional
        The stage derivatives of the step (used by the tableau's dense output).

    Returns
    -------
    RKInterpolant or HermiteInterpolant
        A callable ``interpolant(t)`` returning the state at ``t``.

    Taught in Chapter 3.
    """
    if tableau is not None and tableau.P is not None and k:
        return RKInterpolant(t_old, t_new, y_old, k, tableau.P)
    return HermiteInterpolant(t_old, t_new, y_old, y_new, f_old, f_new)
