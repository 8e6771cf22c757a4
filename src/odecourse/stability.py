"""Linear stability of one-step methods: stability functions and stability regions.

Applied to the test equation :math:`y' = \\lambda y`, a Runge-Kutta step
multiplies the state by :math:`R(z)` with :math:`z = h\\lambda`.  The method is
stable for that :math:`z` when :math:`|R(z)| \\le 1`; the set of such
:math:`z` is its stability region.  This module evaluates :math:`R`, its
polynomial coefficients for explicit methods, the region on a grid, and plots
it.  The plotting helpers take any vectorised :math:`R` (or a tableau); the
boundary locus of multistep methods lives with their coefficients in
:mod:`odecourse.multistep`.

Taught in Chapter 3 (and Chapter 4 for multistep methods).

References
----------
hairer1996: E. Hairer, G. Wanner, Solving Ordinary Differential Equations II,
2nd ed., Springer, 1996, Sec. IV.2-IV.3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from odecourse._validation import check_int, check_interval
from odecourse.runge_kutta import ButcherTableau

__all__ = [
    "StabilityRegion",
    "plot_stability_region",
    "stability_function",
    "stability_polynomial",
    "stability_region",
]


def stability_function(tableau: ButcherTableau) -> Callable[[Any], np.ndarray]:
    r"""Return the vectorised stability function :math:`R(z)` of a Runge-Kutta method.

    .. math::
        R(z) = 1 + z\, b^T (I - zA)^{-1} \mathbf{1}
             = \frac{\det(I - zA + z\,\mathbf{1} b^T)}{\det(I - zA)} .

    Parameters
    ----------
    tableau : ButcherTableau
        Any tableau, explicit or implicit.

    Returns
    -------
    callable
        ``R(z)`` for complex (or real) ``z`` of any shape; returns a complex
        ndarray of the same shape (``inf`` at the poles of an implicit method).

    Taught in Chapter 3.  References: hairer1996, Sec. IV.3.
    """
    _check_tableau(tableau)
    A = tableau.A
    s = tableau.stages
    rank_one = np.outer(np.ones(s), tableau.b)

    def R(z: Any) -> np.ndarray:
        z = np.asarray(z, dtype=complex)[..., None, None]
        identity = np.eye(s)
        numerator = np.linalg.det(identity - z * A + z * rank_one)
        with np.errstate(divide="ignore", invalid="ignore"):  # poles of R give inf, not warnings
            return numerator / np.linalg.det(identity - z * A)

    R.__doc__ = f"Stability function of {tableau.name!r}."
    return R


def stability_polynomial(tableau: ButcherTableau) -> np.ndarray:
    r"""Coefficients of :math:`R(z) = \sum_{k=0}^{s} \gamma_k z^k` for an explicit method.

    .. math:: \gamma_0 = 1, \qquad \gamma_k = b^T A^{k-1} \mathbf{1} \quad (k \ge 1),

    in increasing powers of :math:`z` (use ``np.polynomial.Polynomial``).  A method
    of order :math:`p` has :math:`\gamma_k = 1/k!` for :math:`k \le p`.

    Parameters
    ----------
    tableau : ButcherTableau
        An explicit tableau with :math:`s` stages.

    Returns
    -------
    ndarray, shape (s + 1,)
        The coefficients :math:`\gamma_0, \dots, \gamma_s`.

    Taught in Chapter 3.
    """
    _check_tableau(tableau)
    if not tableau.explicit:
        raise ValueError(
            f"{tableau.name!r} is implicit: its R(z) is rational, use stability_function."
        )
    coefficients, power = [1.0], np.ones(tableau.stages)
    for _ in range(tableau.stages):
        coefficients.append(float(tableau.b @ power))
        power = tableau.A @ power
    return np.array(coefficients)


@dataclass(frozen=True)
class StabilityRegion:
    """:math:`|R(z)|` on a rectangular grid of the complex plane.

    Attributes
    ----------
    re : ndarray, shape (n_re,)
    im : ndarray, shape (n_im,)
    abs_R : ndarray, shape (n_im, n_re)
        :math:`|R(x + iy)|` with rows along ``im``.
    stable : ndarray of bool, shape (n_im, n_re)
        ``abs_R <= 1``.
    """

    re: np.ndarray
    im: np.ndarray
    abs_R: np.ndarray
    stable: np.ndarray


def _check_tableau(tableau: Any) -> None:
    if not isinstance(tableau, ButcherTableau):
        raise TypeError(f"`tableau` must be a ButcherTableau; got {type(tableau).__name__}.")


def _as_R(tableau_or_R: Any) -> Callable[[Any], np.ndarray]:
    if isinstance(tableau_or_R, ButcherTableau):
        return stability_function(tableau_or_R)
    if callable(tableau_or_R):
        return tableau_or_R
    raise TypeError(
        "`tableau_or_R` must be a ButcherTableau or a callable R(z); "
        f"got {type(tableau_or_R).__name__}."
    )


def stability_region(
    tableau_or_R: ButcherTableau | Callable[[Any], Any],
    re_lim: tuple[float, float] = (-5.0, 2.0),
    im_lim: tuple[float, float] = (-4.0, 4.0),
    n: int = 401,
) -> StabilityRegion:
    r"""Evaluate :math:`|R(z)|` on an ``n`` by ``n`` grid and mark :math:`\{|R(z)| \le 1\}`.

    Parameters
    ----------
    tableau_or_R : ButcherTableau or callable
        A tableau, or a vectorised ``R(z)`` (e.g. of another method family).
    re_lim, im_lim : (float, float)
        Increasing limits of the real and imaginary axes.
    n : int
        Grid points per axis, ``n >= 2``.

    Returns
    -------
    StabilityRegion
        The grid, :math:`|R|` on it (shape (n, n), rows along ``im``) and the
        stable mask.

    Taught in Chapter 3.
    """
    R = _as_R(tableau_or_R)
    n = check_int("n", n, minimum=2)
    re = np.linspace(*check_interval("re_lim", re_lim), n)
    im = np.linspace(*check_interval("im_lim", im_lim), n)
    abs_R = np.abs(R(re[None, :] + 1j * im[:, None]))
    return StabilityRegion(re, im, abs_R, abs_R <= 1.0)


def _labelled(ax: Any) -> list:
    """The invisible legend patches that :func:`plot_stability_region` left on ``ax``."""
    return [p for p in ax.patches if not p.get_visible() and not p.get_label().startswith("_")]


def plot_stability_region(
    tableau_or_R: ButcherTableau | Callable[[Any], Any],
    ax: Any = None,
    *,
    re_lim: tuple[float, float] = (-5.0, 2.0),
    im_lim: tuple[float, float] = (-4.0, 4.0),
    n: int = 401,
    color: str = "C0",
    alpha: float = 0.3,
    label: str | None = None,
) -> Any:
    r"""Fill the stability region :math:`\{|R(z)| \le 1\}` and draw its boundary.

    Parameters
    ----------
    tableau_or_R : ButcherTableau or callable
        As in :func:`stability_region`.
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure is made if None.
    re_lim, im_lim, n
        The grid, as in :func:`stability_region`.
    color, alpha : str, float
        Fill colour and opacity (the boundary is drawn opaque).
    label : str, optional
        Legend entry; defaults to the tableau's name (none for a bare ``R``).

    Returns
    -------
    matplotlib Axes
        With axes labelled ``Re(z)`` and ``Im(z)``, equal aspect, and the
        coordinate axes drawn.

    Taught in Chapter 3.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    region = stability_region(tableau_or_R, re_lim, im_lim, n)
    if ax is None:
        _, ax = plt.subplots()
    ax.contourf(region.re, region.im, region.abs_R, levels=[0.0, 1.0], colors=[color], alpha=alpha)
    ax.contour(region.re, region.im, region.abs_R, levels=[1.0], colors=[color], linewidths=1.5)
    ax.axhline(0.0, color="0.5", linewidth=0.8)
    ax.axvline(0.0, color="0.5", linewidth=0.8)
    ax.set_xlabel("Re(z)")
    ax.set_ylabel("Im(z)")
    ax.set_aspect("equal")
    if label is None and isinstance(tableau_or_R, ButcherTableau):
        label = tableau_or_R.name
    if label is not None:
        ax.add_patch(Rectangle((0, 0), 0, 0, color=color, alpha=alpha, label=label, visible=False))
        ax.legend(
            handles=[Patch(color=p.get_facecolor(), label=p.get_label()) for p in _labelled(ax)]
        )
    return ax
