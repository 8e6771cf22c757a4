"""Tests for odecourse.stability: stability functions, polynomials, regions, plots."""

import math

import matplotlib
import numpy as np
import pytest

from odecourse.runge_kutta import TABLEAUS, get_tableau
from odecourse.stability import (
    plot_stability_region,
    stability_function,
    stability_polynomial,
    stability_region,
)

matplotlib.use("Agg")
EXPLICIT = sorted(name for name, tableau in TABLEAUS.items() if tableau.explicit)
IMPLICIT = sorted(name for name, tableau in TABLEAUS.items() if not tableau.explicit)
Z = np.array([-2.5 + 0.3j, -0.1 - 1.7j, 0.4 + 0.2j, 1j, -3.0])


@pytest.mark.parametrize("name", EXPLICIT)
def test_polynomial_matches_stability_function_and_taylor_up_to_order(name):
    tableau = TABLEAUS[name]
    coefficients = stability_polynomial(tableau)
    assert coefficients.size == tableau.stages + 1
    np.testing.assert_allclose(
        np.polynomial.polynomial.polyval(Z, coefficients),
        stability_function(tableau)(Z),
        rtol=1e-12,
    )
    for k in range(tableau.order + 1):
        assert coefficients[k] == pytest.approx(1 / math.factorial(k), rel=1e-12)


@pytest.mark.parametrize("name", TABLEAUS)
def test_R_is_one_step_on_the_test_equation(name):
    """R(h lam) is what one step does to y' = lam y."""
    from odecourse.implicit import implicit_rk_step
    from odecourse.runge_kutta import rk_step

    tableau, z = TABLEAUS[name], -0.6
    if tableau.explicit:
        y1 = rk_step(lambda t, y: z * y, 0.0, np.ones(1), 1.0, tableau).y
    else:
        y1 = implicit_rk_step(
            lambda t, y: z * y, 0.0, np.ones(1), 1.0, tableau, lambda t, y: np.array([[z]])
        )
    assert y1[0] == pytest.approx(stability_function(tableau)(z).real, rel=1e-12)


def test_closed_forms_of_implicit_methods():
    np.testing.assert_allclose(stability_function(get_tableau("backward_euler"))(Z), 1 / (1 - Z))
    pade = (1 + Z / 2) / (1 - Z / 2)
    for name in ("implicit_midpoint", "trapezoid"):
        np.testing.assert_allclose(stability_function(get_tableau(name))(Z), pade, rtol=1e-12)


@pytest.mark.parametrize("name", IMPLICIT)
def test_implicit_methods_are_a_stable(name):
    R = stability_function(TABLEAUS[name])
    z = -np.logspace(-3, 3, 30)[:, None] + 1j * np.linspace(-50, 50, 21)[None, :]
    assert np.all(np.abs(R(z)) <= 1 + 1e-12)
    with pytest.raises(ValueError, match="rational"):
        stability_polynomial(TABLEAUS[name])


def test_euler_region_is_the_unit_disk_around_minus_one():
    region = stability_region(get_tableau("euler"), re_lim=(-3, 1), im_lim=(-2, 2), n=81)
    z = region.re[None, :] + 1j * region.im[:, None]
    inside = np.abs(1 + z) <= 1 - 1e-9
    outside = np.abs(1 + z) >= 1 + 1e-9
    assert region.stable.shape == (81, 81)
    assert np.all(region.stable[inside]) and not np.any(region.stable[outside])


def test_rk4_real_stability_interval():
    R = stability_function(get_tableau("rk4"))
    assert abs(R(-2.78)) < 1 < abs(R(-2.80))


def test_plot_stability_region_labels_axes():
    import matplotlib.pyplot as plt

    ax = plot_stability_region(get_tableau("rk4"), n=51)
    plot_stability_region(lambda z: 1 + z, ax=ax, color="C1", label="euler", n=51)
    assert ax.get_xlabel() == "Re(z)" and ax.get_ylabel() == "Im(z)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["rk4", "euler"]
    plt.close(ax.figure)


def test_validation():
    with pytest.raises(TypeError, match="ButcherTableau"):
        stability_function("rk4")
    with pytest.raises(TypeError, match="`tableau_or_R` must be"):
        stability_region(3)
    with pytest.raises(ValueError, match="increasing"):
        stability_region(get_tableau("rk4"), re_lim=(1, -1))
    with pytest.raises(ValueError, match="`n` must be an integer >= 2"):
        stability_region(get_tableau("rk4"), n=1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"re_lim": (1.0, -1.0)}, ValueError, r"`re_lim` must be increasing.*got \(1.0, -1.0\)"),
        ({"im_lim": (0.0, 0.0)}, ValueError, "`im_lim` must be increasing"),
        ({"re_lim": (-1.0,)}, ValueError, r"`re_lim` must be a pair \(low, high\)"),
        ({"im_lim": (-1.0, np.inf)}, ValueError, r"`im_lim\[1\]` must be finite"),
        ({"re_lim": ("a", 1.0)}, TypeError, r"`re_lim\[0\]` must be a real number"),
        ({"n": 10.0}, TypeError, "`n` must be an integer"),
    ],
)
def test_region_limits_are_validated(kwargs, error, match):
    with pytest.raises(error, match=match):
        stability_region(get_tableau("rk4"), **kwargs)


def test_stability_polynomial_rejects_a_non_tableau():
    with pytest.raises(TypeError, match="`tableau` must be a ButcherTableau; got str"):
        stability_polynomial("rk4")


@pytest.mark.parametrize("name", TABLEAUS)
def test_R_keeps_the_shape_of_z_and_is_real_on_the_real_axis(name):
    R = stability_function(TABLEAUS[name])
    assert R(0.5 + 0.5j).shape == ()
    assert R(Z.reshape(5, 1)).shape == (5, 1)
    x = np.linspace(-3.0, 0.5, 8)
    np.testing.assert_allclose(R(x).imag, 0.0, atol=1e-14)
    np.testing.assert_allclose(R(np.conj(Z)), np.conj(R(Z)), rtol=1e-13)  # real coefficients
