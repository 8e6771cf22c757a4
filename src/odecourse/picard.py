"""Picard iteration: the constructive proof of existence, computed on a grid.

Starting from the constant function :math:`\\phi_0(t) = y_0`, Picard iteration applies the
integral operator

.. math::

    \\phi_{k+1}(t) = y_0 + \\int_{t_0}^{t} f(s, \\phi_k(s)) \\, \\mathrm{d}s

over and over. For a Lipschitz right-hand side the iterates converge uniformly to the solution,
with error bounded by :func:`picard_error_bound`. Here every integral is computed with the
cumulative trapezoid rule on a fine grid, so iterates agree with the exact ones up to a
quadrature error of order :math:`\\Delta t^2`.

Taught in Chapter 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.integrate import cumulative_trapezoid

from ._validation import (
    check_callable,
    check_finite_array,
    check_int,
    check_positive,
    check_t_span,
    real_array,
)

__all__ = ["PicardIterates", "picard_error_bound", "picard_iterates"]

#: Grid size used when :func:`picard_iterates` is given an interval rather than a grid.
DEFAULT_N_POINTS = 2001


@dataclass(frozen=True, eq=False)
class PicardIterates:
    """The grid and all Picard iterates :math:`\\phi_0, \\dots, \\phi_K` on it.

    Attributes
    ----------
    t : ndarray, shape (m,)
        Increasing grid, ``t[0] = t0``.
    iterates : ndarray, shape (K + 1, n, m)
        ``iterates[k, i, j]`` is component ``i`` of :math:`\\phi_k(t_j)`.
    """

    t: np.ndarray
    iterates: np.ndarray

    @property
    def n_iterations(self) -> int:
        """The number ``K`` of iterations performed."""
        return self.iterates.shape[0] - 1

    def errors(self, reference: Any) -> np.ndarray:
        """Maximum-norm distance of every iterate from ``reference``, shape ``(K + 1,)``.

        Parameters
        ----------
        reference : array_like, shape (n, m) or (m,) for a scalar problem
            Values of the solution on :attr:`t`, e.g. ``problem.exact(result.t)``.

        Returns
        -------
        ndarray, shape (K + 1,)
            :math:`\\max_{i, j} |\\phi_k(t_j)_i - y_i(t_j)|` for each ``k``.
        """
        reference = check_finite_array("reference", reference, ndim=(1, 2))
        reference = reference[None, :] if reference.ndim == 1 else reference
        if reference.shape != self.iterates.shape[1:]:
            raise ValueError(
                f"`reference` must have shape {self.iterates.shape[1:]}; got {reference.shape}."
            )
        return np.max(np.abs(self.iterates - reference), axis=(1, 2))


def picard_iterates(
    f: Callable[[float, np.ndarray], Any],
    t: Any,
    y0: Any,
    n_iterations: int,
    *,
    n_points: int = DEFAULT_N_POINTS,
) -> PicardIterates:
    """Compute Picard iterates :math:`\\phi_0, \\dots, \\phi_K` on a grid.

    .. math::

        \\phi_0(t) = y_0, \\qquad
        \\phi_{k+1}(t) = y_0 + \\int_{t_0}^{t} f(s, \\phi_k(s)) \\, \\mathrm{d}s

    Parameters
    ----------
    f : callable
        Right-hand side ``f(t, y)`` with ``y`` of shape ``(n,)``, returning ``n`` values.
    t : array_like
        Either an interval ``(t0, t1)`` with ``t0 < t1``, which is sampled at ``n_points``
        equally spaced points (``n_points - 1`` equal steps), or a strictly increasing grid
        of at least three points.
    y0 : float or array_like, shape (n,)
        Initial value.
    n_iterations : int
        The number ``K >= 0`` of iterations.
    n_points : int, optional
        Number of grid points when ``t`` is an interval, ``>= 3`` (default 2001).

    Returns
    -------
    PicardIterates
        The grid ``t`` of shape ``(m,)`` and ``iterates`` of shape ``(K + 1, n, m)``.

    Notes
    -----
    The integral is the cumulative trapezoid rule, with error :math:`O(\\Delta t^2)`; refine the
    grid to see iterates whose true error is below that level. Taught in Chapter 1.

    References
    ----------
    E. Hairer, S. P. Nørsett and G. Wanner, *Solving Ordinary Differential Equations I*,
    Section I.7 (1993).
    """
    check_callable("f", f)
    grid = _grid(t, n_points)
    y0 = np.atleast_1d(check_finite_array("y0", y0, ndim=(0, 1)))
    n_iterations = check_int("n_iterations", n_iterations, minimum=0)
    iterates = np.empty((n_iterations + 1, y0.size, grid.size))
    iterates[0] = y0[:, None]
    for k in range(n_iterations):
        integrand = _evaluate_along(f, grid, iterates[k])
        iterates[k + 1] = y0[:, None] + cumulative_trapezoid(integrand, grid, axis=1, initial=0)
    return PicardIterates(t=grid, iterates=iterates)


def picard_error_bound(k: Any, *, L: float, M: float, h: float) -> np.ndarray:
    """Bound on :math:`\\max_{|t - t_0| \\le h} |y(t) - \\phi_k(t)|` for a Lipschitz ``f``.

    .. math::

        |y(t) - \\phi_k(t)| \\le \\frac{M L^k h^{k+1}}{(k+1)!} \\, e^{L h}

    where ``L`` is a Lipschitz constant of ``f`` in ``y`` and ``M`` bounds
    :math:`|f(s, y_0)|` on the interval (for a globally Lipschitz ``f``; locally, ``M`` bounds
    :math:`|f|` on a rectangle containing all iterates). It follows from
    :math:`|\\phi_{j+1} - \\phi_j| \\le M L^j h^{j+1} / (j+1)!` summed over :math:`j \\ge k`.

    Parameters
    ----------
    k : int or array_like of int
        Iteration number(s), ``k >= 0``.
    L, M, h : float
        Lipschitz constant (``> 0``), bound on ``|f|`` (``>= 0``), interval length (``> 0``).

    Returns
    -------
    ndarray
        The bound for each ``k``, same shape as ``k``.

    Notes
    -----
    Taught in Chapter 1.
    """
    L, h = check_positive("L", L), check_positive("h", h)
    M = check_positive("M", M, allow_zero=True)
    k = np.asarray(k)
    if not np.issubdtype(k.dtype, np.integer) or np.any(k < 0):
        raise ValueError(f"`k` must be a non-negative integer or array of them; got {k!r:.60}.")
    factorial = np.vectorize(math.factorial, otypes=[float])(k + 1)
    return M * L**k * h ** (k + 1.0) / factorial * math.exp(L * h)


def _grid(t: Any, n_points: int) -> np.ndarray:
    """Return an increasing grid from an interval ``(t0, t1)`` or from a grid itself."""
    array = check_finite_array("t", t, ndim=1)
    if array.size == 2:
        t0, t1 = check_t_span("t", tuple(array), allow_reversed=False)
        n_points = check_int("n_points", n_points, minimum=3)
        return np.linspace(t0, t1, n_points)
    if array.size < 3 or np.any(np.diff(array) <= 0):
        raise ValueError(
            f"`t` must be an interval (t0, t1) or a strictly increasing grid of at least three "
            f"points; got {array!r:.80}."
        )
    return array


def _evaluate_along(f: Callable, grid: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Evaluate ``f(t_j, phi[:, j])`` for every grid point; shape ``(n, m)``."""
    n = phi.shape[0]
    values = np.empty_like(phi)
    for j, tj in enumerate(grid):
        value = real_array("f", f(tj, phi[:, j].copy()), returned=True, where=f" at t = {tj:.6g}")
        if value.size != n:
            raise ValueError(f"`f(t, y)` must return {n} value(s); got shape {value.shape}.")
        if not np.all(np.isfinite(value)):
            raise ValueError(
                f"`f` returned non-finite values {value} at t = {tj:.6g} for "
                f"y = {phi[:, j]}; the iterates cannot be integrated (check `f`, or a "
                "shorter interval if the iterates grow without bound)."
            )
        values[:, j] = value.reshape(n)
    return values
