"""Linear multistep methods: derived coefficients, order conditions and stability."""

from __future__ import annotations

import itertools
from fractions import Fraction as F

import numpy as np
import pytest

from odecourse.multistep import (
    LinearMultistepMethod,
    absolute_stability_mask,
    adams_bashforth,
    adams_moulton,
    bdf,
    boundary_locus,
    get_multistep_method,
)

# Textbook tables (Hairer-Norsett-Wanner I, Tables III.1.1, III.1.2 and III.1.3; Iserles 2.2).
# Beta from oldest to newest; for Adams methods alpha is (0, ..., 0, -1, 1).
ADAMS_BASHFORTH = {
    1: [F(1)],
    2: [F(-1, 2), F(3, 2)],
    3: [F(5, 12), F(-16, 12), F(23, 12)],
    4: [F(-9, 24), F(37, 24), F(-59, 24), F(55, 24)],
    5: [F(251, 720), F(-1274, 720), F(2616, 720), F(-2774, 720), F(1901, 720)],
}
ADAMS_MOULTON = {
    1: [F(0), F(1)],
    2: [F(1, 2), F(1, 2)],
    3: [F(-1, 12), F(8, 12), F(5, 12)],
    4: [F(1, 24), F(-5, 24), F(19, 24), F(9, 24)],
    5: [F(-19, 720), F(106, 720), F(-264, 720), F(646, 720), F(251, 720)],
}
# BDF: alpha (oldest to newest) before normalisation, and the factor on h f_{n+k}.
BDF = {
    1: ([-1, 1], 1),
    2: ([F(1, 2), -2, F(3, 2)], 1),
    3: ([F(-1, 3), F(3, 2), -3, F(11, 6)], 1),
    4: ([F(1, 4), F(-4, 3), 3, -4, F(25, 12)], 1),
    5: ([F(-1, 5), F(5, 4), F(-10, 3), 5, -5, F(137, 60)], 1),
    6: ([F(1, 6), F(-6, 5), F(15, 4), F(-20, 3), F(15, 2), -6, F(49, 20)], 1),
}
ERROR_CONSTANTS = {
    "AB": [F(1, 2), F(5, 12), F(3, 8), F(251, 720), F(95, 288)],
    "AM": [F(-1, 2), F(-1, 12), F(-1, 24), F(-19, 720), F(-3, 160)],
}
UNSTABLE_ORDER_THREE = LinearMultistepMethod("order-3 two-step", [-5, 4, 1], [2, 4, 0])


@pytest.mark.parametrize("order", sorted(ADAMS_BASHFORTH))
def test_adams_bashforth_matches_the_classical_table(order):
    method = adams_bashforth(order)
    assert list(method.beta) == [*ADAMS_BASHFORTH[order], 0]
    assert list(method.alpha) == [0] * (order - 1) + [-1, 1]
    assert all(isinstance(b, F) for b in method.beta)


@pytest.mark.parametrize("order", sorted(ADAMS_MOULTON))
def test_adams_moulton_matches_the_classical_table(order):
    method = adams_moulton(order)
    assert list(method.beta) == ADAMS_MOULTON[order]
    assert method.steps == max(order - 1, 1)


@pytest.mark.parametrize("order", sorted(BDF))
def test_bdf_matches_the_classical_table(order):
    unnormalised, rhs = BDF[order]
    leading = F(unnormalised[-1])
    method = bdf(order)
    assert list(method.alpha) == [F(a) / leading for a in unnormalised]
    assert list(method.beta) == [0] * order + [F(rhs) / leading]


@pytest.mark.parametrize(
    "method",
    [adams_bashforth(p) for p in range(1, 7)]
    + [adams_moulton(p) for p in range(1, 7)]
    + [bdf(p) for p in range(1, 7)],
    ids=lambda m: m.name,
)
def test_order_conditions_consistency_and_zero_stability(method):
    expected = int(method.name.lstrip("ABDFM"))
    assert method.computed_order() == expected
    constants = method.order_constants(expected + 1)
    assert all(c == 0 for c in constants[: expected + 1])
    assert constants[expected + 1] != 0
    assert method.is_consistent()
    assert method.rho(1) == 0
    assert method.is_zero_stable()
    assert method.explicit == method.name.startswith("AB")


@pytest.mark.parametrize("family", ["AB", "AM"])
def test_error_constants(family):
    maker = adams_bashforth if family == "AB" else adams_moulton
    assert [maker(p).error_constant() for p in range(1, 6)] == ERROR_CONSTANTS[family]
    assert [bdf(k).error_constant() for k in range(1, 7)] == [F(-1, k + 1) for k in range(1, 7)]


def test_bdf7_is_not_zero_stable():
    assert bdf(7).computed_order() == 7
    assert not bdf(7).is_zero_stable()
    assert np.max(np.abs(bdf(7).rho_roots())) > 1


def test_the_order_three_two_step_method_fails_the_root_condition():
    method = UNSTABLE_ORDER_THREE
    assert method.computed_order() == 3
    assert method.is_consistent()
    assert not method.is_zero_stable()
    assert sorted(np.round(method.rho_roots().real, 12)) == [-5.0, 1.0]


def test_a_double_root_on_the_unit_circle_is_not_zero_stable():
    # rho = (zeta - 1)^2: consistent-looking but weakly unstable (solutions grow like n).
    method = LinearMultistepMethod("double root", [1, -2, 1], [0, 0, 0])
    assert not method.is_zero_stable()
    # rho = zeta^2 - 1 has simple roots +-1: zero-stable (the leapfrog / explicit midpoint).
    leapfrog = LinearMultistepMethod("leapfrog", [-1, 0, 1], [0, 2, 0], order=2)
    assert leapfrog.is_zero_stable()


def test_float_coefficients_are_accepted_and_checked():
    method = LinearMultistepMethod("AB2 float", [0.0, -1.0, 1.0], [-0.5, 1.5, 0.0], order=2)
    assert method.computed_order() == 2
    assert method.is_zero_stable()


@pytest.mark.parametrize("name", ["AB1", "AB3", "AM2", "AM4", "BDF2", "BDF5"])
def test_boundary_locus_points_satisfy_the_stability_polynomial(name):
    method = get_multistep_method(name)
    z = boundary_locus(method, n_points=181)
    zeta = np.exp(1j * np.linspace(0, 2 * np.pi, 181))
    finite = np.isfinite(z)
    residual = method.rho(zeta[finite]) - z[finite] * method.sigma(zeta[finite])
    assert np.max(np.abs(residual)) < 1e-10


def test_absolute_stability_mask_agrees_with_known_regions():
    # Explicit Euler (AB1): the disc |1 + z| <= 1.
    z = np.array([-1.0, -1.9, -2.1, 0.5, -1 + 0.9j, -1 + 1.1j])
    assert absolute_stability_mask(adams_bashforth(1), z).tolist() == [
        True, True, False, False, True, False,
    ]  # fmt: skip
    # AB2's real interval of stability is [-1, 0].
    assert absolute_stability_mask(adams_bashforth(2), np.array([-0.99, -1.01])).tolist() == [
        True, False,
    ]  # fmt: skip
    # BDF2 is A-stable: the whole left half-plane.
    left = -np.logspace(-3, 3, 20)[:, None] + 1j * np.linspace(-50, 50, 11)[None, :]
    assert absolute_stability_mask(bdf(2), left).all()
    # The trapezoidal rule (AM2): exactly the closed left half-plane.
    assert absolute_stability_mask(adams_moulton(2), np.array([-1e-3, 1e-3])).tolist() == [
        True, False,
    ]  # fmt: skip


def test_explicit_regions_shrink_with_order():
    real_axis = -np.linspace(0, 3, 3001)
    lengths = [
        real_axis[absolute_stability_mask(adams_bashforth(p), real_axis)].min() for p in range(1, 5)
    ]
    assert lengths[0] == pytest.approx(-2.0, abs=2e-3)
    assert all(a < b for a, b in itertools.pairwise(lengths))


@pytest.mark.parametrize(
    ("alpha", "beta", "error", "match"),
    [
        ([-1, 1], [1], ValueError, "same length"),
        ([1], [1], ValueError, "k >= 1"),
        ([-1, 2], [1, 0], ValueError, "normalised"),
        ([-1, "1"], [1, 0], TypeError, "real numbers"),
        ([-1, 1], [float("nan"), 0], ValueError, "finite"),
    ],
)
def test_invalid_coefficients_are_rejected(alpha, beta, error, match):
    with pytest.raises(error, match=match):
        LinearMultistepMethod("bad", alpha, beta)


def test_a_wrong_stated_order_is_rejected():
    with pytest.raises(ValueError, match="order conditions give 1"):
        LinearMultistepMethod("euler", [-1, 1], [1, 0], order=2)


@pytest.mark.parametrize("name", ["AB0", "AB9", "BDF7", "RK4", "AB", ""])
def test_unknown_names_are_rejected(name):
    with pytest.raises(ValueError, match="'AB1'"):
        get_multistep_method(name)


@pytest.mark.parametrize("order", [0, -1])
def test_family_orders_must_be_positive(order):
    for maker in (adams_bashforth, adams_moulton, bdf):
        with pytest.raises(ValueError, match="`order`"):
            maker(order)


def test_stability_helpers_validate_their_arguments():
    method = get_multistep_method("AB2")
    with pytest.raises(TypeError, match="`method` must be a LinearMultistepMethod; got str"):
        boundary_locus("AB2")
    with pytest.raises(TypeError, match="`method` must be a LinearMultistepMethod"):
        absolute_stability_mask("AB2", 0.0)
    with pytest.raises(ValueError, match="`n_points` must be an integer >= 8"):
        boundary_locus(method, n_points=4)
    with pytest.raises(ValueError, match="`tol` must be non-negative"):
        absolute_stability_mask(method, 0.0, tol=-1.0)
    with pytest.raises(ValueError, match="`z` must contain only finite values"):
        absolute_stability_mask(method, [np.nan])


def test_absolute_stability_mask_keeps_the_shape_of_z():
    method = get_multistep_method("BDF2")
    assert absolute_stability_mask(method, -1.0).shape == ()
    assert absolute_stability_mask(method, np.zeros((3, 4))).shape == (3, 4)
