"""Tests for odecourse.dop853: DOP853 against SciPy's, its orders, its lazy dense output."""

import numpy as np
import pytest
import scipy.integrate
import torch

from odecourse.adaptive import StepSizeController, error_norm, integrate_adaptive
from odecourse.convergence import observed_order
from odecourse.dense_output import (
    ExtraStagesInterpolant,
    HermiteInterpolant,
    evaluate_extra_stages,
    make_interpolant,
)
from odecourse.dop853 import DOP853
from odecourse.fixed_step import integrate_fixed
from odecourse.ivp import get_problem
from odecourse.order_conditions import _trees, _weight_and_density, algebraic_order
from odecourse.runge_kutta import ButcherTableau, rk_step
from odecourse.solve import METHODS, solve_ivp

MU = 0.012277471  # Arenstorf orbit (hairer1993, Sec. II.0): periodic with period T below


def _arenstorf(t, y):
    x, z, vx, vz = y
    d1 = ((x + MU) ** 2 + z**2) ** 1.5
    d2 = ((x - 1 + MU) ** 2 + z**2) ** 1.5
    ax = x + 2 * vz - (1 - MU) * (x + MU) / d1 - MU * (x - 1 + MU) / d2
    az = z - 2 * vx - (1 - MU) * z / d1 - MU * z / d2
    return np.array([vx, vz, ax, az])


def _problem(name):
    if name == "arenstorf":
        y0 = np.array([0.994, 0.0, 0.0, -2.00158510637908252240537862224])
        return _arenstorf, (0.0, 17.0652165601579625588917206249), y0
    problem = get_problem(name)
    return problem.f, problem.t_span, problem.y0


PROBLEMS = ["arenstorf", "van_der_pol", "lotka_volterra", "linear_system"]


def _relative(ours, theirs):
    return np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs))


def _assert_same_work(ours, theirs, nudged):
    """Same nfev as SciPy; where SciPy's own count moves under a one-ulp change of y0
    (its step sizes then ride on rounding noise), only within SciPy's own spread."""
    if theirs.nfev == nudged.nfev:
        assert ours.nfev == theirs.nfev
    else:  # not reached on the development machine, but BLAS rounding differs elsewhere
        assert abs(ours.nfev - theirs.nfev) <= 2 * abs(nudged.nfev - theirs.nfev)


@pytest.mark.parametrize("name", PROBLEMS)
@pytest.mark.parametrize("rtol", [1e-3, 1e-6, 1e-9])
def test_agrees_with_scipy_with_and_without_t_eval(name, rtol):
    f, t_span, y0 = _problem(name)
    t_eval = np.linspace(*t_span, 7)
    kwargs = {"rtol": rtol, "atol": rtol * 1e-3}
    ours = solve_ivp(f, t_span, y0, method=DOP853, **kwargs)
    theirs = scipy.integrate.solve_ivp(f, t_span, y0, method="DOP853", **kwargs)
    # SciPy against itself after a one-ulp change of y0: the floor of any comparison.  Early
    # steps are chosen from error estimates made of rounding noise (the order-5 estimate
    # cancels to a few ulps), so the orbit problems differ from SciPy by up to 1e-7 here,
    # which is SciPy's own spread; the others agree to ~1e-14.
    nudged = scipy.integrate.solve_ivp(f, t_span, y0 * (1 + 2**-52), method="DOP853", **kwargs)
    tol = max(2e-12, 10 * _relative(nudged.y[:, -1], theirs.y[:, -1]))
    assert ours.success and ours.message == theirs.message
    _assert_same_work(ours, theirs, nudged)
    assert ours.n_steps == len(theirs.t) - 1 or theirs.nfev != nudged.nfev
    assert _relative(ours.y[:, -1], theirs.y[:, -1]) <= tol

    # t_eval: filled by dense output, whose 3 extra stages SciPy counts in nfev.
    ours = solve_ivp(f, t_span, y0, method=DOP853, t_eval=t_eval, **kwargs)
    theirs = scipy.integrate.solve_ivp(f, t_span, y0, method="DOP853", t_eval=t_eval, **kwargs)
    _assert_same_work(ours, theirs, nudged)
    np.testing.assert_array_equal(ours.t, theirs.t)
    assert _relative(ours.y, theirs.y) <= tol


def test_backward_integration_with_t_eval_agrees_with_scipy():
    f, (t0, t1), y0 = _problem("lotka_volterra")
    t_eval = np.linspace(t1, t0, 9)
    kwargs = {"method": "DOP853", "rtol": 1e-8, "atol": 1e-11, "t_eval": t_eval}
    theirs = scipy.integrate.solve_ivp(f, (t1, t0), y0, **kwargs)
    ours = solve_ivp(f, (t1, t0), y0, **{**kwargs, "method": DOP853})
    assert ours.nfev == theirs.nfev
    np.testing.assert_allclose(ours.y, theirs.y, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["van_der_pol", "lotka_volterra", "linear_system"])
def test_dense_output_matches_scipy_sol(name):
    f, t_span, y0 = _problem(name)
    kwargs = {"rtol": 1e-6, "atol": 1e-9, "dense_output": True}
    ours = solve_ivp(f, t_span, y0, method=DOP853, **kwargs)
    theirs = scipy.integrate.solve_ivp(f, t_span, y0, method="DOP853", **kwargs)
    assert ours.nfev == theirs.nfev  # every step's extra stages, as SciPy evaluates them
    t = np.linspace(*t_span, 41)
    expected = theirs.sol(t)
    np.testing.assert_allclose(ours.sol(t), expected, rtol=1e-11, atol=1e-11 * abs(expected).max())


def test_one_step_dense_output_is_scipys_polynomial():
    """On identical step data the two order-7 polynomials agree to rounding."""
    f, t_span, y0 = _problem("lotka_volterra")
    solver = scipy.integrate.DOP853(f, t_span[0], y0, t_span[1], rtol=1e-6, atol=1e-9)
    solver.step()
    theirs = solver.dense_output()
    ours = integrate_adaptive(
        f, t_span, y0, DOP853, rtol=1e-6, atol=1e-9, dense_output=True, max_steps=1
    )
    segment = ours.interpolants[0]
    assert isinstance(segment, ExtraStagesInterpolant) and segment.t_new == solver.t
    for t in np.linspace(t_span[0], solver.t, 9):
        np.testing.assert_allclose(segment(t), theirs(t), rtol=1e-14, atol=1e-15)


def test_combined_error_norm_is_hairers():
    rng = np.random.default_rng(0)
    k = rng.normal(size=(13, 3))
    y, y_new, h, rtol, atol = rng.normal(size=3), rng.normal(size=3), 0.3, 1e-6, 1e-9
    scale = atol + rtol * np.maximum(abs(y), abs(y_new))
    method = scipy.integrate.DOP853  # its class attributes E5, E3 are the published weights
    expected = method._estimate_error_norm(method, k, h, scale)
    e5 = h * DOP853.error_weights @ k
    e3 = h * (DOP853.b - DOP853.b_hat2) @ k
    assert error_norm(e5, y, y_new, rtol, atol, error2=e3) == pytest.approx(expected, rel=1e-14)
    # By hand: ||e5||^2 / sqrt(||e5||^2 + 0.01 ||e3||^2) in the scaled RMS norm.
    n5, n3 = np.sqrt(np.mean((e5 / scale) ** 2)), np.sqrt(np.mean((e3 / scale) ** 2))
    by_hand = n5**2 / np.sqrt(n5**2 + 0.01 * n3**2)
    assert error_norm(e5, y, y_new, rtol, atol, error2=e3) == pytest.approx(by_hand, rel=1e-14)
    assert error_norm(0 * e5, y, y_new, rtol, atol, error2=0 * e3) == 0.0
    # rk_step returns both estimates.
    step = rk_step(lambda t, y: np.sin(t) - y * y, 0.4, np.ones(2), 0.1, DOP853)
    k = np.array(step.k)
    np.testing.assert_allclose(step.error, 0.1 * DOP853.error_weights @ k, atol=1e-17)
    np.testing.assert_allclose(step.error2, 0.1 * (DOP853.b - DOP853.b_hat2) @ k, atol=1e-17)


def test_tableau_invariants():
    t = DOP853
    assert t.name == "dop853" and t.explicit and t.fsal and t.adaptive
    assert t.stages == 13 and t.order == 8 and t.error_order == 7 and t.dense_order == 7
    np.testing.assert_allclose(t.A.sum(axis=1), t.c, atol=1e-14)
    np.testing.assert_allclose(t.A_extra.sum(axis=1), t.c_extra, atol=1e-14)
    for weights in (t.b, t.b_hat, t.b_hat2):
        assert weights.sum() == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(t.b - t.b_hat, t.error_weights, atol=1e-15)
    assert t.P.shape == (16, 7)
    np.testing.assert_allclose(t.P.sum(axis=1), np.pad(t.b, (0, 3)), atol=1e-12)
    assert all(np.all(row[13 + i :] == 0) for i, row in enumerate(t.A_extra))
    for array in (t.A, t.b, t.b_hat2, t.error_weights, t.A_extra, t.c_extra, t.P):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1.0
    assert StepSizeController(t.error_order).exponent == -1 / 8  # SciPy's DOP853


def test_order_conditions_of_the_three_formulas():
    assert algebraic_order(DOP853, max_order=9) == 8
    assert algebraic_order(DOP853, weights="b_hat", max_order=9) == 5
    third = ButcherTableau("dop853_order3", DOP853.A, DOP853.b_hat2, DOP853.c, order=1)
    assert algebraic_order(third, max_order=9) == 3


def test_dense_output_satisfies_the_order_conditions_up_to_7():
    r"""For each tree :math:`\tau` of at most 7 nodes, :math:`b(\theta)^T \Phi(\tau)`
    equals :math:`\theta^{|\tau|} / \gamma(\tau)`, with :math:`\Phi` from the 16 x 16
    matrix of all stages; some condition of order 8 fails."""
    s, m = DOP853.stages, len(DOP853.c_extra)
    A = np.zeros((s + m, s + m))
    A[:s, :s], A[s:] = DOP853.A, DOP853.A_extra
    for theta in (0.2, 0.5, 0.9):
        weights = DOP853.P @ theta ** np.arange(1, 8)
        worst = [0.0] * 9
        for order in range(1, 9):
            for tree in _trees(order):
                phi, gamma = _weight_and_density(A, tree)
                worst[order] = max(worst[order], abs(weights @ phi - theta**order / gamma))
        assert max(worst[1:8]) < 1e-12
        assert worst[8] > 1e-6  # order exactly 7


def _kepler(t, y):
    r3 = (y[0] ** 2 + y[1] ** 2) ** 1.5
    return np.array([y[2], y[3], -y[0] / r3, -y[1] / r3])


KEPLER_Y0 = np.array([0.8, 0.0, 0.0, np.sqrt(1.2 / 0.8)])  # eccentricity 0.2, period 2 pi


def test_observed_order_8_with_fixed_steps():
    n_steps = np.array([40, 56, 80, 112])
    errors = []
    for n in n_steps:
        result = integrate_fixed(_kepler, (0, 2 * np.pi), KEPLER_Y0, 2 * np.pi / n, DOP853)
        errors.append(np.max(abs(result.y[-1] - KEPLER_Y0)))  # back after one period
    assert observed_order(2 * np.pi / n_steps, errors) == pytest.approx(8, abs=0.3)


def test_dense_output_has_order_7_between_step_ends():
    """Local error of the interpolant inside a step: O(h^8)."""
    t0, hs, errors = 0.3, np.array([0.4, 0.2, 0.1, 0.05]), []
    for h in hs:
        step = rk_step(_kepler, t0, KEPLER_Y0, h, DOP853)
        f0 = _kepler(t0, KEPLER_Y0)
        dense = make_interpolant(
            DOP853, t0, t0 + h, KEPLER_Y0, step.y, f0, step.k[-1], step.k, _kepler
        )
        error = 0.0
        for theta in (0.3, 0.7):
            t = t0 + theta * h
            reference = integrate_fixed(_kepler, (t0, t), KEPLER_Y0, theta * h / 16, DOP853).y[-1]
            error = max(error, np.max(abs(dense(t) - reference)))
        errors.append(error)
    assert observed_order(hs, errors) == pytest.approx(DOP853.dense_order + 1, abs=0.3)


def test_extra_stages_are_evaluated_once_and_only_when_used():
    calls = []

    def f(t, y):
        calls.append(t)
        return _kepler(t, y)

    t0, h = 0.1, 0.3
    step = rk_step(f, t0, KEPLER_Y0, h, DOP853)
    f0, n_step = _kepler(t0, KEPLER_Y0), len(calls)
    assert n_step == 13
    dense = make_interpolant(DOP853, t0, t0 + h, KEPLER_Y0, step.y, f0, step.k[-1], step.k, f)
    assert isinstance(dense, ExtraStagesInterpolant) and len(calls) == n_step
    np.testing.assert_allclose(dense(t0), KEPLER_Y0, rtol=1e-15, atol=1e-15)
    assert calls[n_step:] == pytest.approx([t0 + c * h for c in DOP853.c_extra], rel=1e-15)
    # P in the monomial basis has entries up to ~545 that cancel to b at theta = 1: the
    # end of the step is matched to ~1e-13, not to the last bit as in Hairer's nested form.
    np.testing.assert_allclose(dense(t0 + h), step.y, rtol=1e-13, atol=1e-15)
    evaluate_extra_stages(dense)
    assert len(calls) == n_step + 3
    # Without f the extra stages cannot be evaluated: cubic Hermite instead.
    fallback = make_interpolant(DOP853, t0, t0 + h, KEPLER_Y0, step.y, f0, step.k[-1], step.k)
    assert isinstance(fallback, HermiteInterpolant)
    evaluate_extra_stages(fallback)  # a no-op


def test_nfev_counts_extra_stages_only_for_steps_whose_dense_output_is_used():
    f, t_span, y0 = _problem("lotka_volterra")
    kwargs = {"rtol": 1e-6, "atol": 1e-9}
    plain = integrate_adaptive(f, t_span, y0, DOP853, **kwargs)
    assert plain.nfev == 2 + 12 * (plain.n_steps + plain.n_rejected)
    dense = integrate_adaptive(f, t_span, y0, DOP853, dense_output=True, **kwargs)
    assert dense.nfev == plain.nfev + 3 * plain.n_steps
    end_only = integrate_adaptive(f, t_span, y0, DOP853, t_eval=[t_span[1]], **kwargs)
    assert end_only.nfev == plain.nfev + 3  # the last step's: SciPy interpolates there too
    theirs = scipy.integrate.solve_ivp(f, t_span, y0, "DOP853", t_eval=[t_span[1]], **kwargs)
    assert end_only.nfev == theirs.nfev


def test_numpy_and_torch_agree():
    def rhs(t, y):
        return -0.5 * y * y * y + (0.3 * np.cos(t)) * y.sum()

    y0 = np.array([[0.3, -1.2, 0.7], [1.0, 0.2, -0.4]])
    kwargs = {"rtol": 1e-8, "atol": 1e-11, "t_eval": [0.0, 0.7, 1.5, 2.0]}
    ours = integrate_adaptive(rhs, (0.0, 2.0), y0, DOP853, **kwargs)
    torched = integrate_adaptive(rhs, (0.0, 2.0), torch.tensor(y0), DOP853, **kwargs)
    assert ours.n_steps == torched.n_steps and ours.nfev == torched.nfev
    for a, b in zip(ours.y, torched.y, strict=True):
        np.testing.assert_allclose(b.numpy(), a, rtol=1e-13, atol=1e-14)


GOOD = {
    "A": [[0, 0], [1, 0]], "b": [0.5, 0.5], "c": [0, 1], "order": 2,
    "b_hat": [1.0, 0.0], "error_order": 1,
}  # fmt: skip
DENSE = {"P": [[1.0, -0.5], [0.0, 0.5], [0.0, 0.0]], "dense_order": 2}  # 2 stages + 1 extra


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"b_hat": None, "error_order": None, "b_hat2": [1.0, 0.0]}, "`b_hat2` needs `b_hat`"),
        ({"b_hat2": [0.9, 0.0]}, "`b_hat2` must sum to one"),
        ({"b_hat2": [1.0]}, r"`b_hat2` must have shape \(2,\)"),
        ({"error_weights": [0.5, 0.4]}, r"`error_weights` must equal `b - b_hat`"),
        ({"A_extra": [[0.5, 0, 0]]}, "give `A_extra` and `c_extra` together"),
        ({"A_extra": [[0.5, 0]], "c_extra": [0.5], **DENSE}, r"`A_extra` must have shape"),
        ({"A_extra": [[0.5, 0, 0]], "c_extra": [0.5]}, "`A_extra` need `P`"),
        ({"A_extra": [[0, 0, 0.5]], "c_extra": [0.5], **DENSE}, "only use the extra stages"),
        ({"A_extra": [[0.5, 0, 0]], "c_extra": [0.4], **DENSE}, "row sums of `A_extra`"),
        (
            {"A_extra": [[0.5, 0, 0]], "c_extra": [0.5], "P": [[0.5], [0.5]], "dense_order": 1},
            "`P` must have 3 rows",
        ),
    ],
)
def test_tableau_validation_of_the_new_fields(change, message):
    with pytest.raises(ValueError, match=message):
        ButcherTableau("bad", **{**GOOD, **change})


def test_valid_tableau_with_an_extra_dense_stage():
    tableau = ButcherTableau("heun_extra", **GOOD, A_extra=[[0.5, 0, 0]], c_extra=[0.5], **DENSE)
    assert tableau._extra_rows == (((0, 0.5),),)


@pytest.mark.skipif("DOP853" not in METHODS, reason="'DOP853' is not registered in solve.py yet")
def test_solve_ivp_knows_dop853_by_name():
    f, t_span, y0 = _problem("lotka_volterra")
    by_name = solve_ivp(f, t_span, y0, method="DOP853", rtol=1e-6, atol=1e-9)
    by_tableau = solve_ivp(f, t_span, y0, method=DOP853, rtol=1e-6, atol=1e-9)
    assert not METHODS["DOP853"].fixed_step
    assert by_name.nfev == by_tableau.nfev
    np.testing.assert_array_equal(by_name.y, by_tableau.y)
