r"""Dense output: the solution between the ends of a step, from what the step computed.

A Runge-Kutta step with dense-output coefficients :math:`P` gives a polynomial
in :math:`\theta \in [0, 1]` for free (:class:`RKInterpolant`), or at the cost of
a few extra stages, evaluated on first use (:class:`ExtraStagesInterpolant`,
DOP853); any other step uses cubic Hermite interpolation of the values and
slopes at both ends (:class:`HermiteInterpolant`).  Like the step, the
interpolants only add and scale states, so they work on NumPy arrays and torch
tensors alike.

Taught in Chapter 3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from odecourse.runge_kutta import ButcherTableau, _combine, _nonzero

__all__ = [
    "ExtraStagesInterpolant",
    "HermiteInterpolant",
    "RKInterpolant",
    "evaluate_extra_stages",
    "make_interpolant",
]


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
    y_new: Any = None

    def __call__(self, t: float) -> Any:
        if t == self.t_new and self.y_new is not None:
            return self.y_new  # the step's own result, not the polynomial's rounding of it
        h = self.t_new - self.t_old
        theta = (t - self.t_old) / h
        weights = self.P @ np.cumprod(np.full(self.P.shape[1], theta))
        return _combine(self.y_old, h, _nonzero(weights), self.k)


@dataclass(frozen=True)
class ExtraStagesInterpolant:
    r"""Dense output that needs stages beyond the step's own (DOP853's three).

    The extra stages continue the step's tableau,

    .. math::
        k_{s+i} = f\Big(t_n + c^{\mathrm{extra}}_i h,\; y_n + h \sum_{j < s+i}
            a^{\mathrm{extra}}_{ij} k_j\Big), \qquad i = 1, \dots, m,

    and are evaluated once, on the first call (or by :func:`evaluate_extra_stages`),
    so a step whose dense output is never used costs nothing more.  The polynomial
    is then that of :class:`RKInterpolant` over all :math:`s + m` stages.

    Taught in Chapter 3.
    """

    t_old: float
    t_new: float
    y_old: Any
    k: tuple[Any, ...]
    tableau: ButcherTableau
    f: Callable[[float, Any], Any]
    y_new: Any = None

    @cached_property
    def _interpolant(self) -> RKInterpolant:
        h = self.t_new - self.t_old
        k = list(self.k)
        for node, row in zip(self.tableau.c_extra, self.tableau._extra_rows, strict=True):
            k.append(self.f(self.t_old + float(node) * h, _combine(self.y_old, h, row, k)))
        return RKInterpolant(self.t_old, self.t_new, self.y_old, tuple(k), self.tableau.P)

    def __call__(self, t: float) -> Any:
        if t == self.t_new and self.y_new is not None:
            return self.y_new
        return self._interpolant(t)


def evaluate_extra_stages(interpolant: Any) -> None:
    """Evaluate now the extra stages a dense output still lacks (no-op for other kinds).

    The adaptive loop calls it for every step whose dense output will be used
    (``dense_output=True``, or output times in the step), which is when SciPy's
    DOP853 evaluates them, so that ``nfev`` counts them.  Taught in Chapter 3.
    """
    if isinstance(interpolant, ExtraStagesInterpolant):
        interpolant._interpolant  # noqa: B018 (the cached property evaluates the stages)


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
    f: Callable[[float, Any], Any] | None = None,
) -> RKInterpolant | ExtraStagesInterpolant | HermiteInterpolant:
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
    f : callable, optional
        The right-hand side, for a tableau whose dense output needs extra stages
        (``A_extra``, DOP853); without it such a tableau falls back to Hermite.

    Returns
    -------
    RKInterpolant, ExtraStagesInterpolant or HermiteInterpolant
        A callable ``interpolant(t)`` returning the state at ``t``.

    Taught in Chapter 3.
    """
    if tableau is not None and tableau.P is not None and k:
        if tableau.A_extra is None:
            return RKInterpolant(t_old, t_new, y_old, k, tableau.P, y_new)
        if f is not None:
            return ExtraStagesInterpolant(t_old, t_new, y_old, k, tableau, f, y_new)
    return HermiteInterpolant(t_old, t_new, y_old, y_new, f_old, f_new)
