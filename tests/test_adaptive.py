"""Tests for odecourse.adaptive and odecourse.fixed_step: controller, norms, both loops."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate._ivp.common import select_initial_step as scipy_initial_step

from odecourse.adaptive import (
    MAX_FACTOR,
    MIN_FACTOR,
    SAFETY,
    StepSizeController,
    error_norm,
    integrate_adaptive,
    select_initial_step,
)
from odecourse.convergence import observed_order
from odecourse.fixed_step import fixed_grid, integrate_fixed
from odecourse.ivp import get_problem
from odecourse.runge_kutta import TABLEAUS, get_tableau

DOPRI5 = get_tableau("dopri5")


def _rhs(t, y):
    """Array-generic coupled nonlinear right-hand side (NumPy or torch)."""
    return -0.5 * y * y * y + (0.3 * math.cos(t)) * y.sum()


def test_controller_constants_are_scipys():
    assert (SAFETY, MIN_FACTOR, MAX_FACTOR) == (0.9, 0.2, 10.0)
    controller = StepSizeController(error_order=4)
    assert controller.exponent == pytest.approx(-0.2)


def test_controller_factor_limits_and_rejection_cap():
    controller = StepSizeController(error_order=4)
    assert controller.factor(0.0) == MAX_FACTOR
    assert controller.factor(1e-12) == MAX_FACTOR
    assert controller.factor(0.5) == pytest.approx(SAFETY * 0.5**-0.2)
    assert controller.factor(0.5, after_rejection=True) == 1.0
    assert controller.factor(2.0) == pytest.approx(SAFETY * 2.0**-0.2)
    assert controller.factor(1e12) == MIN_FACTOR
    assert controller.factor(math.nan) == MIN_FACTOR
    assert controller.accept(0.99) and not controller.accept(1.0)


def test_error_norm_is_scaled_rms():
    y, y_new, err = np.array([1.0, -2.0]), np.array([3.0, 1.0]), np.array([1e-3, 2e-3])
    scale = 1e-6 + 1e-3 * np.array([3.0, 2.0])
    expected = np.sqrt(np.mean((err / scale) ** 2))
    assert error_norm(err, y, y_new, 1e-3, 1e-6) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("t1", [10.0, -3.0])
def test_initial_step_matches_scipy(t1):
    def f(t, y):
        return np.array([y[1], -np.sin(y[0])])

    y0 = np.array([1.0, 0.5])
    ours = select_initial_step(f, 0.0, y0, f(0.0, y0), t1, 4, 1e-6, 1e-9)
    direction = np.sign(t1)
    theirs = scipy_initial_step(f, 0.0, y0, t1, np.inf, f(0.0, y0), direction, 4, 1e-6, 1e-9)
    assert ours == pytest.approx(theirs, rel=1e-14)


def test_adaptive_loop_reaches_tolerance_and_rejects_a_too_large_first_step():
    problem = get_problem("harmonic_oscillator")
    result = integrate_adaptive(
        problem.f, problem.t_span, problem.y0, DOPRI5, rtol=1e-8, atol=1e-10, first_step=5.0
    )
    assert result.status == 0 and result.success
    assert result.n_rejected >= 1
    assert result.t[-1] == problem.t_span[1]
    np.testing.assert_allclose(result.y[-1], problem.exact(problem.t_span[1]), atol=1e-7)


def test_backward_integration_returns_to_initial_value():
    problem = get_problem("logistic")
    forward = integrate_adaptive(problem.f, (0.0, 5.0), problem.y0, DOPRI5, rtol=1e-10, atol=1e-12)
    back = integrate_adaptive(problem.f, (5.0, 0.0), forward.y[-1], DOPRI5, rtol=1e-10, atol=1e-12)
    assert np.all(np.diff(back.t) < 0) and back.t[-1] == 0.0
    np.testing.assert_allclose(back.y[-1], problem.y0, rtol=1e-8)


def test_max_step_and_max_steps_guards():
    problem = get_problem("exponential_decay")
    capped = integrate_adaptive(problem.f, (0.0, 5.0), problem.y0, DOPRI5, max_step=0.1)
    assert np.max(np.diff(capped.t)) <= 0.1 + 1e-15
    stopped = integrate_adaptive(problem.f, (0.0, 5.0), problem.y0, DOPRI5, max_steps=3)
    assert stopped.status == -1 and not stopped.success
    assert stopped.n_steps == 3 and "maximum number of steps (3)" in stopped.message


def test_step_size_underflow_is_reported_as_possible_stiffness():
    with np.errstate(over="ignore", invalid="ignore"):
        result = integrate_adaptive(
            lambda t, y: y * y, (0.0, 2.0), np.ones(1), DOPRI5, rtol=1e-6, atol=1e-9
        )
    assert result.status == -1
    assert "step size became too small" in result.message and "stiff" in result.message
    assert result.t[-1] == pytest.approx(1.0, abs=1e-3)


def test_t_eval_by_dense_output_forces_no_extra_steps():
    problem = get_problem("harmonic_oscillator")
    t_eval = np.linspace(0.0, 10.0, 101)
    plain = integrate_adaptive(problem.f, problem.t_span, problem.y0, DOPRI5, rtol=1e-8, atol=1e-10)
    dense = integrate_adaptive(
        problem.f, problem.t_span, problem.y0, DOPRI5, rtol=1e-8, atol=1e-10, t_eval=t_eval
    )
    assert dense.nfev == plain.nfev and dense.n_steps == plain.n_steps
    assert dense.t == list(t_eval)
    np.testing.assert_allclose(np.stack(dense.y, axis=1), problem.exact(t_eval), atol=1e-6)


@pytest.mark.parametrize("name", ["dopri5", "bosh3", "rk4", "midpoint"])
def test_dense_output_error_has_its_order(name):
    """The interpolant's local error at mid-step scales like h^(q+1)."""
    tableau = get_tableau(name)
    order = tableau.dense_order if tableau.P is not None else 3  # cubic Hermite
    order = min(order, tableau.order)
    problem = get_problem("harmonic_oscillator")
    hs = np.array([0.4, 0.2, 0.1, 0.05])
    errors = []
    for h in hs:
        result = integrate_fixed(
            problem.f, (0.5, 0.5 + h), problem.exact(0.5), h, tableau, dense_output=True
        )
        midway = 0.5 + 0.4 * h
        errors.append(np.max(abs(result.interpolants[0](midway) - problem.exact(midway))))
    assert observed_order(hs, errors) == pytest.approx(order + 1, abs=0.3)


def test_fixed_grid_is_exact_for_h_dividing_the_interval_and_shortens_the_last_step():
    assert len(fixed_grid((0.0, 1.0), 0.1)) == 11
    grid = fixed_grid((0.0, 1.0), 0.3)
    assert grid == pytest.approx([0.0, 0.3, 0.6, 0.9, 1.0]) and grid[-1] == 1.0
    assert fixed_grid((1.0, 0.0), 0.25) == [1.0, 0.75, 0.5, 0.25, 0.0]


def test_fixed_loop_counts_and_t_eval():
    problem = get_problem("exponential_decay")
    result = integrate_fixed(problem.f, (0.0, 1.0), problem.y0, 0.01, get_tableau("rk4"))
    assert result.n_steps == 100 and result.nfev == 4 * 100 + 1
    t_eval = [0.0, 0.123, 0.5, 1.0]
    sampled = integrate_fixed(
        problem.f, (0.0, 1.0), problem.y0, 0.01, get_tableau("rk4"), t_eval=t_eval
    )
    assert sampled.t == t_eval and sampled.nfev == result.nfev
    np.testing.assert_allclose(np.stack(sampled.y, axis=1), problem.exact(t_eval), atol=1e-9)
    stopped = integrate_fixed(
        problem.f, (0.0, 1.0), problem.y0, 0.01, get_tableau("rk4"), max_steps=5
    )
    assert stopped.status == -1 and stopped.n_steps == 5


@pytest.mark.parametrize("name", ["dopri5", "bosh3"])
def test_adaptive_loop_numpy_and_torch_agree(name):
    y0 = np.array([[0.3, -1.2, 0.7], [1.0, 0.2, -0.4]])  # a batch of two states
    t_eval = [0.0, 0.7, 1.5, 2.0]
    kwargs = {"rtol": 1e-6, "atol": 1e-9, "t_eval": t_eval}
    ours = integrate_adaptive(_rhs, (0.0, 2.0), y0, TABLEAUS[name], **kwargs)
    torched = integrate_adaptive(_rhs, (0.0, 2.0), torch.tensor(y0), TABLEAUS[name], **kwargs)
    assert ours.n_steps == torched.n_steps and ours.nfev == torched.nfev
    for a, b in zip(ours.y, torched.y, strict=True):
        np.testing.assert_allclose(b.numpy(), a, rtol=1e-13, atol=1e-14)


def test_torch_gradient_through_adaptive_loop_matches_finite_differences():
    y0 = torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64, requires_grad=True)
    kwargs = {"rtol": 1e-9, "atol": 1e-12, "t_eval": [0.0, 1.0]}
    result = integrate_adaptive(_rhs, (0.0, 1.0), y0, DOPRI5, **kwargs)
    (grad,) = torch.autograd.grad((result.y[-1] ** 2).sum(), y0)
    eps = 1e-6
    for j in range(3):
        shift = np.eye(3)[j] * eps
        values = [
            (
                integrate_adaptive(_rhs, (0.0, 1.0), y0.detach().numpy() + s, DOPRI5, **kwargs).y[
                    -1
                ]
                ** 2
            ).sum()
            for s in (shift, -shift)
        ]
        assert grad[j].item() == pytest.approx((values[0] - values[1]) / (2 * eps), rel=1e-5)


def test_error_norm_hook_replaces_the_rms_norm():
    y, y_new, err = np.array([1.0, -2.0]), np.array([3.0, 1.0]), np.array([1e-3, 2e-3])
    scaled = err / (1e-6 + 1e-3 * np.array([3.0, 2.0]))
    assert error_norm(err, y, y_new, 1e-3, 1e-6, norm=lambda x: np.max(abs(x))) == pytest.approx(
        np.max(scaled), rel=1e-14
    )
    rms = error_norm(err, y, y_new, 1e-3, 1e-6, norm=lambda x: np.sqrt(np.mean(x * x)))
    assert rms == pytest.approx(error_norm(err, y, y_new, 1e-3, 1e-6), rel=1e-14)


def test_integrate_adaptive_norm_hook_steers_the_steps():
    """The RMS norm passed explicitly changes nothing; a seminorm that ignores a component
    whose error dominates takes fewer steps (the idea behind the adjoint seminorm)."""
    problem = get_problem("harmonic_oscillator")
    y0 = np.concatenate([problem.y0, [0.0]])

    def f(t, y):  # the oscillator plus a quadrature component that is hard to resolve
        return np.concatenate([problem.f(t, y[:2]), [math.cos(20.0 * t) * 50.0]])

    kwargs = {"rtol": 1e-6, "atol": 1e-9}
    plain = integrate_adaptive(f, (0.0, 10.0), y0, DOPRI5, **kwargs)
    rms = integrate_adaptive(
        f, (0.0, 10.0), y0, DOPRI5, norm=lambda x: np.sqrt(np.mean(x * x)), **kwargs
    )
    semi = integrate_adaptive(
        f, (0.0, 10.0), y0, DOPRI5, norm=lambda x: np.sqrt(np.mean(x[:2] ** 2)), **kwargs
    )
    assert rms.nfev == plain.nfev and rms.t == plain.t
    assert semi.nfev < plain.nfev
    np.testing.assert_allclose(semi.y[-1][:2], problem.exact(10.0), atol=1e-5)


def test_integrate_fixed_on_a_given_grid_steps_exactly_between_its_points():
    problem = get_problem("exponential_decay")
    grid = [0.0, 0.1, 0.35, 0.5, 1.0]
    result = integrate_fixed(
        problem.f, (0.0, 1.0), problem.y0, None, get_tableau("rk4"), grid=grid, t_eval=grid
    )
    assert result.t == grid and result.n_steps == 4 and result.nfev == 4 * 4 + 1
    # Each output is one RK4 step from the previous one.
    for k in range(4):
        t, t_new = result.t[k], result.t[k + 1]
        step = integrate_fixed(problem.f, (t, t_new), result.y[k], t_new - t, get_tableau("rk4"))
        np.testing.assert_allclose(step.y[-1], result.y[k + 1], rtol=1e-15)
    backward = integrate_fixed(
        problem.f, (1.0, 0.0), problem.y0, None, get_tableau("euler"), grid=grid[::-1]
    )
    assert backward.t == grid[::-1] and backward.n_steps == 4


def test_torch_norm_hook_receives_a_detached_tensor():
    seen = []

    def norm(x):
        seen.append(x.requires_grad)
        return x.abs().max()

    y0 = torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64, requires_grad=True)
    result = integrate_adaptive(_rhs, (0.0, 1.0), y0, DOPRI5, rtol=1e-6, atol=1e-9, norm=norm)
    assert seen and not any(seen)
    assert result.y[-1].requires_grad


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"error_order": 0}, ValueError, "`error_order` must be an integer >= 1"),
        ({"error_order": 2.0}, TypeError, "`error_order` must be an integer"),
        ({"error_order": 4, "safety": 0.0}, ValueError, "`safety` must be positive"),
        ({"error_order": 4, "min_factor": -0.2}, ValueError, "`min_factor` must be positive"),
        ({"error_order": 4, "max_factor": np.inf}, ValueError, "`max_factor` must be finite"),
    ],
)
def test_controller_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        StepSizeController(**kwargs)


@pytest.mark.parametrize(
    ("t_span", "h", "error", "match"),
    [
        ((0.0, 1.0), 0.0, ValueError, "`h` must be positive; got 0.0"),
        ((0.0, 1.0), -0.1, ValueError, "`h` must be positive; got -0.1"),
        ((0.0, 1.0), None, TypeError, "`h` must be a real number"),
        ((1.0, 1.0), 0.1, ValueError, "`t_span` must be a non-empty interval"),
    ],
)
def test_fixed_grid_validation(t_span, h, error, match):
    with pytest.raises(error, match=match):
        fixed_grid(t_span, h)


@pytest.mark.parametrize(("t_span", "h"), [((0.0, 1.0), 5.0), ((1.0, 0.0), 5.0), ((0.0, 0.1), 0.1)])
def test_a_step_as_long_as_the_interval_or_longer_is_one_step(t_span, h):
    assert fixed_grid(t_span, h) == list(t_span)
    problem = get_problem("exponential_decay")
    result = integrate_fixed(problem.f, t_span, problem.y0, h, get_tableau("rk4"))
    assert result.n_steps == 1 and result.t == list(t_span)


@pytest.mark.parametrize("t_span", [(0.0, 2.0), (2.0, 0.0)])
@pytest.mark.parametrize("loop", ["adaptive", "fixed"])
def test_t_eval_at_both_end_points_gives_the_initial_and_final_states(t_span, loop):
    f, y0 = get_problem("harmonic_oscillator").f, np.array([0.3, -1.2])

    def run(**kwargs):
        if loop == "adaptive":
            return integrate_adaptive(f, t_span, y0, DOPRI5, rtol=1e-6, **kwargs)
        return integrate_fixed(f, t_span, y0, 0.1, get_tableau("rk4"), **kwargs)

    every_step = run()
    ends = run(t_eval=list(t_span))
    assert every_step.success and ends.t == list(t_span) and ends.nfev == every_step.nfev
    np.testing.assert_array_equal(ends.y[0], y0)
    np.testing.assert_array_equal(ends.y[-1], every_step.y[-1])


@pytest.mark.parametrize("loop", ["adaptive", "fixed"])
def test_float32_states_stay_float32(loop):
    y0 = np.array([0.3, -1.2, 0.7], dtype=np.float32)
    t_eval = [0.0, 0.5, 1.0]
    if loop == "adaptive":
        result = integrate_adaptive(_rhs, (0.0, 1.0), y0, DOPRI5, rtol=1e-4, t_eval=t_eval)
    else:
        result = integrate_fixed(_rhs, (0.0, 1.0), y0, 0.1, get_tableau("rk4"), t_eval=t_eval)
    assert all(y.dtype == np.float32 for y in result.y)
    reference = integrate_fixed(_rhs, (0.0, 1.0), y0.astype(float), 0.01, get_tableau("rk4"))
    np.testing.assert_allclose(result.y[-1], reference.y[-1], rtol=1e-3)


def test_rms_norm_is_the_root_mean_square_to_the_last_bit():
    from odecourse._arrays import rms_norm

    rng = np.random.default_rng(1)
    for x in (rng.standard_normal(7), rng.standard_normal((3, 5)) * 1e150, np.array([-0.0, 3.0])):
        assert rms_norm(x) == math.sqrt(float((abs(x) * abs(x)).mean()))
        tensor = torch.from_numpy(x)
        assert rms_norm(tensor) == math.sqrt(float((tensor.abs() * tensor.abs()).mean()))
    assert rms_norm(np.empty(0)) == 0.0 and rms_norm(torch.empty(0)) == 0.0
    assert rms_norm(np.ones(3, dtype=np.float32)) == 1.0


def test_dense_output_is_built_only_for_a_reader():
    problem = get_problem("van_der_pol")
    tableau = get_tableau("dopri5")
    plain = integrate_adaptive(problem.f, (0.0, 2.0), problem.y0, tableau, rtol=1e-6)
    dense = integrate_adaptive(
        problem.f, (0.0, 2.0), problem.y0, tableau, rtol=1e-6, dense_output=True
    )
    assert plain.interpolants is None and len(dense.interpolants) == dense.n_steps
    assert plain.nfev == dense.nfev and plain.n_steps == dense.n_steps
    for a, b in zip(plain.y, dense.y, strict=True):
        assert a.tobytes() == b.tobytes()
