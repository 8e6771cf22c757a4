"""Tests for odecourse.plotting: the helpers draw, label and return Axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes

from odecourse.ivp import get_problem
from odecourse.plotting import (
    BOOK_COLORS,
    direction_field,
    phase_portrait,
    plot_solutions,
    use_book_style,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_use_book_style_sets_rcparams():
    with matplotlib.rc_context():
        use_book_style()
        assert tuple(matplotlib.rcParams["figure.figsize"]) == (6.4, 4.0)
        assert matplotlib.rcParams["axes.grid"]
        assert matplotlib.rcParams["figure.constrained_layout.use"]
        colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        assert tuple(colors) == BOOK_COLORS


def test_direction_field_arrows_follow_the_slope():
    ax = direction_field(lambda t, y: t - y, (0.0, 2.0), (-1.0, 1.0), density=5)
    assert isinstance(ax, Axes)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("$t$", "$y$")
    assert ax.get_xlim() == (0.0, 2.0)
    quiver = ax.collections[0]
    offsets = quiver.get_offsets()
    slopes = quiver.V / quiver.U
    np.testing.assert_allclose(slopes, (offsets[:, 0] - offsets[:, 1]).reshape(slopes.shape))
    # Normalised: every arrow has the same length in axis-relative units.
    lengths = np.hypot(quiver.U / 2.0, quiver.V / 2.0)
    np.testing.assert_allclose(lengths, lengths.flat[0])


def test_direction_field_draws_on_given_axes():
    _fig, ax = plt.subplots()
    assert direction_field(get_problem("logistic").f, (0, 5), (0, 2), ax=ax) is ax


@pytest.mark.parametrize("kind", ["stream", "quiver"])
def test_phase_portrait(kind):
    problem = get_problem("harmonic_oscillator")
    ax = phase_portrait(problem.f, (-2, 2), (-2, 2), kind=kind, labels=("$q$", "$p$"))
    assert isinstance(ax, Axes)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("$q$", "$p$")
    assert ax.collections or ax.patches


def test_plot_solutions_labels_every_component():
    t = np.linspace(0, 1, 11)
    ax = plot_solutions(t, np.vstack([t, t**2]), labels=["$q$", "$p$"], ylabel="state")
    assert [line.get_label() for line in ax.get_lines()] == ["$q$", "$p$"]
    assert ax.get_ylabel() == "state" and ax.get_xlabel() == "$t$"
    assert ax.get_legend() is not None
    scalar = plot_solutions(t, np.exp(t))
    assert scalar.get_lines()[0].get_label() == "$y$"
    default = plot_solutions(t, np.ones((3, 11)))
    assert [line.get_label() for line in default.get_lines()] == ["$y_{1}$", "$y_{2}$", "$y_{3}$"]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: direction_field(1.0, (0, 1), (0, 1)), TypeError, "`f` must be callable"),
        (lambda: direction_field(abs, (1, 0), (0, 1)), ValueError, "`t_range` must be increasing"),
        (lambda: direction_field(abs, (0, 1), 5), ValueError, "`y_range` must be a pair"),
        (
            lambda: direction_field(lambda t, y: y, (0, 1), (0, 1), density=1),
            ValueError,
            "`density` must be an integer >= 2",
        ),
        (
            lambda: direction_field(lambda t, y: y, (0, 1), (0, 1), ax="axes"),
            TypeError,
            "`ax` must be a matplotlib Axes",
        ),
        (
            lambda: direction_field(lambda t, y: np.ones(2), (0, 1), (0, 1)),
            ValueError,
            r"`f\(t, y\)` must return 1 value",
        ),
        (
            lambda: phase_portrait(lambda t, y: y, (0, 1), (0, 1), kind="arrows"),
            ValueError,
            "`kind` must be one of 'quiver', 'stream'; got 'arrows'",
        ),
        (
            lambda: phase_portrait(lambda t, y: y, (0, 1), (0, 1), density=0.0),
            ValueError,
            "`density` must be positive",
        ),
        (
            lambda: phase_portrait(lambda t, y: y[:1], (0, 1), (0, 1)),
            ValueError,
            r"`f\(t, y\)` must return 2 value",
        ),
        (
            lambda: plot_solutions(np.arange(3.0), np.ones((2, 4))),
            ValueError,
            r"`Y` must have shape \(n, 3\)",
        ),
        (
            lambda: plot_solutions(np.arange(3.0), np.ones((2, 3)), labels=["a"]),
            ValueError,
            "`labels` must be a sequence of 2 string",
        ),
    ],
)
def test_validation(call, error, match):
    with pytest.raises(error, match=match):
        call()
