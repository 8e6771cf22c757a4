"""The book's figure style and the pictures every chapter draws: fields and solution curves.

:func:`use_book_style` sets Matplotlib's defaults once per notebook. :func:`direction_field`
draws the slope field of a scalar equation :math:`y' = f(t, y)`, :func:`phase_portrait` the
vector field of a planar autonomous system, and :func:`plot_solutions` the components of a
solution against time. Each helper draws on the given Axes (or a new one), labels the axes and
returns the Axes, so a caller adds curves, a title and a legend afterwards.

Taught in Chapter 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from cycler import cycler
from matplotlib.axes import Axes

from ._validation import (
    check_callable,
    check_choice,
    check_finite_array,
    check_int,
    check_interval,
    check_real,
)

__all__ = ["BOOK_COLORS", "direction_field", "phase_portrait", "plot_solutions", "use_book_style"]

#: Okabe-Ito colours: distinguishable with the common forms of colour blindness.
BOOK_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
#: Colour of the arrows in direction fields and phase portraits.
FIELD_COLOR = "0.55"
#: An arrow spans this fraction of a grid cell in a direction field.
ARROW_FRACTION = 0.7

_BOOK_RC = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "figure.constrained_layout.use": True,
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linestyle": "-",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=BOOK_COLORS),
    "lines.linewidth": 1.8,
    "legend.framealpha": 0.9,
    "image.cmap": "viridis",
}


def use_book_style() -> None:
    """Set Matplotlib's defaults to the book's figure style.

    Figures of 6.4 x 4 inches with constrained layout, readable font sizes, a light grid and the
    colour-blind-safe cycle :data:`BOOK_COLORS`. Call once at the top of a notebook.

    Notes
    -----
    Taught in Chapter 1 (used in every chapter).
    """
    mpl.rcParams.update(_BOOK_RC)


def direction_field(
    f: Callable[[float, np.ndarray], Any],
    t_range: Sequence[float],
    y_range: Sequence[float],
    ax: Axes | None = None,
    density: int = 21,
    *,
    color: str = FIELD_COLOR,
) -> Axes:
    """Draw the direction (slope) field of a scalar ODE :math:`y' = f(t, y)`.

    At each point of a ``density x density`` grid an arrow of fixed visual length points along
    the slope :math:`(1, f(t, y))`, so solution curves are tangent to the arrows.

    Parameters
    ----------
    f : callable
        Right-hand side ``f(t, y)``, called with a float ``t`` and ``y`` of shape ``(1,)``
        (the :class:`~odecourse.ivp.IVP` convention); it returns one value.
    t_range, y_range : pair of float
        The increasing intervals ``(t_min, t_max)`` and ``(y_min, y_max)`` shown.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is made when omitted.
    density : int, optional
        Arrows per axis (at least 2).
    color : str, optional
        Arrow colour.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes, labelled :math:`t` and :math:`y`, with limits ``t_range`` and ``y_range``.

    Notes
    -----
    Taught in Chapter 1.
    """
    check_callable("f", f)
    t_lo, t_hi = check_interval("t_range", t_range)
    y_lo, y_hi = check_interval("y_range", y_range)
    density = check_int("density", density, minimum=2)
    ax = _axes(ax)
    T, Y = np.meshgrid(np.linspace(t_lo, t_hi, density), np.linspace(y_lo, y_hi, density))
    slopes = _evaluate_grid(f, T, Y, n_out=1)[0]
    # Normalise in axis-relative units so every arrow has the same on-screen length.
    width, height = t_hi - t_lo, y_hi - y_lo
    du, dv = 1.0 / width, slopes / height
    norm = np.hypot(du, dv)
    cell = ARROW_FRACTION / (density - 1)
    U, V = du / norm * cell * width, dv / norm * cell * height
    ax.quiver(
        T,
        Y,
        U,
        V,
        angles="xy",
        scale_units="xy",
        scale=1.0,
        pivot="mid",
        color=color,
        width=0.004,
        headwidth=3.5,
        headlength=4.0,
        headaxislength=3.5,
    )
    ax.set(xlim=(t_lo, t_hi), ylim=(y_lo, y_hi), xlabel="$t$", ylabel="$y$")
    return ax


def phase_portrait(
    f: Callable[[float, np.ndarray], Any],
    x_range: Sequence[float],
    y_range: Sequence[float],
    ax: Axes | None = None,
    *,
    kind: str = "stream",
    density: float = 1.0,
    resolution: int = 30,
    t: float = 0.0,
    color: str = FIELD_COLOR,
    labels: tuple[str, str] = ("$x$", "$y$"),
) -> Axes:
    """Draw the vector field of a planar autonomous system :math:`(x, y)' = f(t, (x, y))`.

    Parameters
    ----------
    f : callable
        Right-hand side ``f(t, z)`` with ``z`` of shape ``(2,)``, returning two values.
    x_range, y_range : pair of float
        Increasing intervals shown on the horizontal and vertical axes.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is made when omitted.
    kind : {"stream", "quiver"}, optional
        Streamlines (:meth:`~matplotlib.axes.Axes.streamplot`) or normalised arrows.
    density : float, optional
        Streamline density (``kind="stream"`` only).
    resolution : int, optional
        Grid points per axis at which ``f`` is evaluated (at least 2).
    t : float, optional
        Time at which ``f`` is evaluated (irrelevant for an autonomous system).
    color : str, optional
        Colour of the streamlines or arrows.
    labels : pair of str, optional
        Axis labels, e.g. ``("$q$", "$p$")``.

    Returns
    -------
    matplotlib.axes.Axes
        The labelled Axes, with limits ``x_range`` and ``y_range``.

    Notes
    -----
    Taught in Chapter 1.
    """
    check_callable("f", f)
    x_lo, x_hi = check_interval("x_range", x_range)
    y_lo, y_hi = check_interval("y_range", y_range)
    check_choice("kind", kind, ("stream", "quiver"))
    density = check_real("density", density)
    if density <= 0:
        raise ValueError(f"`density` must be positive; got {density}.")
    resolution = check_int("resolution", resolution, minimum=2)
    t = check_real("t", t)
    ax = _axes(ax)
    X, Y = np.meshgrid(np.linspace(x_lo, x_hi, resolution), np.linspace(y_lo, y_hi, resolution))
    U, V = _evaluate_grid(f, X, Y, n_out=2, t=t)
    if kind == "stream":
        ax.streamplot(X, Y, U, V, density=density, color=color, linewidth=0.8, arrowsize=1.0)
    else:
        speed = np.hypot(U, V)
        speed[speed == 0] = 1.0
        ax.quiver(X, Y, U / speed, V / speed, color=color, pivot="mid", angles="uv")
    ax.set(xlim=(x_lo, x_hi), ylim=(y_lo, y_hi), xlabel=labels[0], ylabel=labels[1])
    return ax


def plot_solutions(
    t: Any,
    Y: Any,
    ax: Axes | None = None,
    labels: Sequence[str] | None = None,
    *,
    xlabel: str = "$t$",
    ylabel: str = "$y$",
    **line_kwargs: Any,
) -> Axes:
    """Plot every component of a solution against time, one labelled line each.

    Parameters
    ----------
    t : array_like, shape (m,)
        Times.
    Y : array_like, shape (n, m) or (m,)
        Solution values, component by row (the layout of ``solve_ivp(...).y``).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is made when omitted.
    labels : sequence of str, optional
        One legend label per component; default ``$y_1$, ..., $y_n$`` (or ``$y$`` if ``n = 1``).
    xlabel, ylabel : str, optional
        Axis labels.
    **line_kwargs
        Passed to :meth:`~matplotlib.axes.Axes.plot` (e.g. ``linestyle``).

    Returns
    -------
    matplotlib.axes.Axes
        The labelled Axes, with a legend.

    Notes
    -----
    Taught in Chapter 1.
    """
    t = check_finite_array("t", t, ndim=1)
    Y = np.atleast_2d(np.asarray(Y, dtype=float))
    if Y.ndim != 2 or Y.shape[1] != t.size:
        raise ValueError(
            f"`Y` must have shape (n, {t.size}) or ({t.size},) to match `t`; "
            f"got shape {np.shape(Y)}."
        )
    n = Y.shape[0]
    if labels is None:
        labels = ["$y$"] if n == 1 else [f"$y_{{{i + 1}}}$" for i in range(n)]
    if isinstance(labels, str) or len(labels) != n:
        raise ValueError(f"`labels` must be a sequence of {n} string(s); got {labels!r:.60}.")
    ax = _axes(ax)
    for row, label in zip(Y, labels, strict=True):
        ax.plot(t, row, label=label, **line_kwargs)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.legend()
    return ax


def _axes(ax: Axes | None) -> Axes:
    if ax is None:
        return plt.figure().add_subplot()
    if not isinstance(ax, Axes):
        raise TypeError(f"`ax` must be a matplotlib Axes or None; got {type(ax).__name__}.")
    return ax


def _evaluate_grid(
    f: Callable, X: np.ndarray, Y: np.ndarray, *, n_out: int, t: float | None = None
) -> np.ndarray:
    """Evaluate ``f`` at every grid point; shape ``(n_out,) + X.shape``.

    For ``n_out = 1`` the grid is ``(t, y)`` and ``f(t, [y])`` is called; for ``n_out = 2`` it is
    ``(x, y)`` and ``f(t, [x, y])``.
    """
    values = np.empty((n_out, *X.shape))
    for index in np.ndindex(X.shape):
        x, y = X[index], Y[index]
        point = (x, np.array([y])) if n_out == 1 else (t, np.array([x, y]))
        value = np.asarray(f(*point), dtype=float).reshape(-1)
        if value.size != n_out:
            raise ValueError(f"`f(t, y)` must return {n_out} value(s); got {value.size}.")
        values[(slice(None), *index)] = value
    return values
