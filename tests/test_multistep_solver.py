"""The generic multistep integrator: orders, correctors, start-up and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from odecourse.convergence import observed_order
from odecourse.multistep import LinearMultistepMethod, get_multistep_method
from odecourse.multistep_solver import MultistepStepper, multistep_solve
from odecourse.runge_kutta import get_tableau


def oscillator(t, y):
    return np.array([y[1], -y[0]])


def oscillator_exact(t):
    return np.array([np.cos(t), -np.sin(t)])


def oscillator_jacobian(t, y):
    return np.array([[0.0, 1.0], [-1.0, 0.0]])


Y0 = np.array([1.0, 0.0])
T1 = 4.0
STEPS = np.array([0.1, 0.05, 0.025, 0.0125])

CASES = (
    [(f"AB{p}", "newton") for p in range(1, 6)]
    + [(f"AM{p}", "newton") for p in range(1, 6)]
    + [(f"AM{p}", "pece") for p in range(2, 6)]
    + [(f"BDF{p}", "newton") for p in range(1, 7)]
)


@pytest.mark.parametrize(("name", "corrector"), CASES)
def test_observed_order_matches_theory(name, corrector):
    method = get_multistep_method(name)
    errors = []
    for h in STEPS:
        solution = multistep_solve(oscillator, (0.0, T1), Y0, h, method, corrector=corrector)
        errors.append(np.max(np.abs(solution.y[-1] - oscillator_exact(T1))))
    assert observed_order(STEPS, errors) == pytest.approx(method.computed_order(), abs=0.2)


def test_the_grid_is_uniform_and_ends_at_t1():
    solution = multistep_solve(oscillator, (0.0, 1.0), Y0, 0.3, get_multistep_method("AB2"))
    assert solution.t[0] == 0.0 and solution.t[-1] == 1.0
    assert np.allclose(np.diff(solution.t), 0.25, rtol=0, atol=1e-15)


def test_backward_integration_returns_to_the_start():
    method = get_multistep_method("AB4")
    forward = multistep_solve(oscillator, (0.0, 2.0), Y0, 0.01, method)
    backward = multistep_solve(oscillator, (2.0, 0.0), forward.y[-1], 0.01, method)
    assert np.allclose(backward.y[-1], Y0, atol=1e-6)
    assert np.all(np.diff(backward.t) < 0)


def test_function_evaluation_counts():
    n_steps = 40
    h = 1.0 / n_steps
    ab = multistep_solve(oscillator, (0.0, 1.0), Y0, h, get_multistep_method("AB4"))
    # One evaluation per grid point, plus 3 start-up steps of Dormand-Prince, each with five
    # stages beyond the first (reused) and the last (f at the new grid point, FSAL).
    assert ab.nfev == (n_steps + 1) + 3 * 5
    pece = multistep_solve(
        oscillator, (0.0, 1.0), Y0, h, get_multistep_method("AM4"), corrector="pece"
    )
    assert pece.nfev == (n_steps + 1) + 3 * 5 + (n_steps - 3)  # P(EC)E: two per step
    bdf2 = get_multistep_method("BDF2")
    newton = multistep_solve(
        oscillator, (0.0, 1.0), Y0, h, bdf2, jac=oscillator_jacobian, starter="dopri5"
    )
    assert newton.njev == newton.nlu == n_steps - 1
    # The default stiff start adds the Jacobians and factorisations of its BDF sub-solve.
    stiff_start = multistep_solve(oscillator, (0.0, 1.0), Y0, h, bdf2, jac=oscillator_jacobian)
    assert stiff_start.njev > n_steps - 1 and stiff_start.nlu > n_steps - 1


def test_pece_runs_on_torch_tensors_with_gradients():
    method = get_multistep_method("AM4")
    omega = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)

    def f(t, y):
        return torch.stack([y[1], -(omega**2) * y[0]])

    y0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    solution = multistep_solve(f, (0.0, 2.0), y0, 0.01, method, corrector="pece")
    solution.y[-1][0].backward()
    exact_derivative = -2.0 * np.sin(1.3 * 2.0)  # d/d omega of cos(2 omega)
    assert omega.grad.item() == pytest.approx(exact_derivative, rel=1e-5)
    as_numpy = multistep_solve(
        lambda t, y: np.array([y[1], -(1.3**2) * y[0]]),
        (0.0, 2.0),
        np.array([1.0, 0.0]),
        0.01,
        method,
        corrector="pece",
    )
    assert np.allclose(solution.y[-1].detach().numpy(), as_numpy.y[-1], rtol=0, atol=1e-13)


def test_a_zero_unstable_method_blows_up_as_h_shrinks():
    method = LinearMultistepMethod("order-3 two-step", [-5, 4, 1], [2, 4, 0])
    sizes = [
        np.max(np.abs(multistep_solve(oscillator, (0.0, 1.0), Y0, h, method).y[-1]))
        for h in (0.1, 0.05, 0.025)
    ]
    assert sizes[0] < sizes[1] < sizes[2]
    assert sizes[2] > 1e10


def test_bdf_is_stable_on_a_stiff_problem_where_ab_is_not():
    lam = -1000.0

    def stiff(t, y):
        return lam * (y - np.cos(t))

    y0 = np.array([1.0])
    bdf2 = multistep_solve(stiff, (0.0, 1.0), y0, 0.05, get_multistep_method("BDF2"))
    ab2 = multistep_solve(stiff, (0.0, 1.0), y0, 0.05, get_multistep_method("AB2"))
    assert abs(bdf2.y[-1][0] - np.cos(1.0)) < 1e-2
    assert not abs(ab2.y[-1][0]) < 1e3


def test_newton_failure_is_reported():
    # Backward Euler for y' = y^2 from y = 1 asks for y - h y^2 = 1, which has no real
    # solution when h > 1/4: Newton cannot converge.
    with np.errstate(over="ignore", invalid="ignore"):
        result = multistep_solve(
            lambda t, y: y**2, (0.0, 0.9), np.array([1.0]), 0.9, get_multistep_method("AM1")
        )
    assert result.status == -1 and not result.success
    assert "t = 0.9" in result.message and "Newton" in result.message


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"h": -0.1}, ValueError, "`h` must be positive"),
        ({"h": 0.0}, ValueError, "`h` must be positive"),
        ({"t_span": (1.0, 1.0)}, ValueError, "non-empty"),
        ({"method": "AB4"}, TypeError, "LinearMultistepMethod"),
        ({"corrector": "fixed-point"}, ValueError, "`corrector`"),
        ({"f": 3}, TypeError, "`f` must be callable"),
        ({"h": 0.5}, ValueError, "too few|fewer than"),
        (
            {"starter": "rk5"},
            ValueError,
            "`starter` must be 'BDF' \\(an adaptive BDF start\\) or the name of a Runge-Kutta",
        ),
        ({"starter": 4}, TypeError, "`starter` must be a ButcherTableau or the name of one"),
        ({"jac": np.eye(2)}, TypeError, "`jac` must be callable"),
        ({"y0": [[1.0, 0.0]]}, ValueError, "`y0` must have 1 dimension"),
        ({"y0": [np.inf, 0.0]}, ValueError, "`y0` must contain only finite values"),
        ({"t_eval": [0.0, 2.0]}, ValueError, "`t_eval` must lie within `t_span`"),
        ({"t_eval": [0.5, 0.2]}, ValueError, "`t_eval` must be strictly increasing"),
        ({"max_steps": 0}, ValueError, "`max_steps` must be an integer >= 1"),
    ],
)
def test_validation_errors(kwargs, error, match):
    arguments = {
        "f": oscillator,
        "t_span": (0.0, 1.0),
        "y0": Y0,
        "h": 0.1,
        "method": get_multistep_method("AB4"),
    }
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        multistep_solve(**arguments)


@pytest.mark.parametrize("name", ["AB4", "AM3", "ABM4", "BDF2"])
def test_multistep_methods_are_reachable_through_solve_ivp(name):
    from odecourse import solve_ivp

    t_eval = np.linspace(0.0, T1, 7)
    result = solve_ivp(oscillator, (0.0, T1), Y0, method=name, h=0.01, t_eval=t_eval)
    assert result.success
    assert result.y.shape == (2, 7)
    order = get_multistep_method(name.replace("ABM", "AM")).computed_order()
    assert np.allclose(result.y, oscillator_exact(t_eval), atol=10 * 0.01**order)
    assert result.nfev > 400
    assert (result.njev > 0) == (name in {"AM3", "BDF2"})


def test_solve_ivp_rejects_a_multistep_method_without_h():
    from odecourse import solve_ivp

    with pytest.raises(ValueError, match="fixed step: pass the step size"):
        solve_ivp(oscillator, (0.0, 1.0), Y0, method="AB4")


def test_stepper_validates_its_arguments():
    method = get_multistep_method("BDF2")
    with pytest.raises(TypeError, match="`method` must be a LinearMultistepMethod"):
        MultistepStepper("BDF2")
    with pytest.raises(ValueError, match="`corrector` must be one of"):
        MultistepStepper(method, corrector="fixed-point")
    assert MultistepStepper(method, starter="rk4").starter is get_tableau("rk4")
    assert MultistepStepper(method, starter="trapezoid").starter is get_tableau("trapezoid")
    assert MultistepStepper(method).starter == "BDF"  # implicit by Newton: the stable start
    assert MultistepStepper(method, corrector="pece").starter is get_tableau("dopri5")
    assert MultistepStepper(get_multistep_method("AB3")).starter is get_tableau("dopri5")


def test_a_jacobian_of_the_wrong_shape_is_reported():
    """A (2,) vector must not be broadcast into the (2, 2) Newton matrix."""
    with pytest.raises(
        ValueError, match=r"`jac\(t, y\)` must (return|be) an array of shape \(2, 2\)"
    ):
        multistep_solve(
            oscillator, (0.0, 1.0), Y0, 0.1, get_multistep_method("BDF2"), jac=lambda t, y: y
        )


@pytest.mark.parametrize("t_span", [(0.0, 1.0), (1.0, 0.0)])
def test_t_eval_at_the_end_points(t_span):
    method = get_multistep_method("BDF3")
    every_step = multistep_solve(oscillator, t_span, Y0, 0.05, method)
    ends = multistep_solve(oscillator, t_span, Y0, 0.05, method, t_eval=list(t_span))
    assert ends.t == list(t_span) and ends.nfev == every_step.nfev
    np.testing.assert_array_equal(ends.y[0], Y0)
    np.testing.assert_array_equal(ends.y[-1], every_step.y[-1])


def _stiff_cosine(t, y):
    return -1000.0 * (y - np.cos(t)) - np.sin(t)


@pytest.mark.parametrize("name", ["BDF2", "BDF3", "BDF4", "AM3"])
def test_stiff_start_keeps_the_whole_trajectory_accurate(name):
    # y' = -1000 (y - cos t) - sin t, y(0) = 1 has the solution cos t.  Started with an explicit
    # full step, BDF3 and BDF4 used to be wrong by 1e9 and 1e16 somewhere along the way.
    from odecourse import solve_ivp

    result = solve_ivp(_stiff_cosine, (0.0, 1.0), [1.0], method=name, h=0.05)
    assert result.success
    error = np.max(np.abs(result.y[0] - np.cos(result.t)))
    assert error < 1e-3, error


def test_explicit_starter_on_a_stiff_problem_is_caught_not_reported_as_success():
    from odecourse import solve_ivp

    with np.errstate(over="ignore", invalid="ignore"):
        result = solve_ivp(
            _stiff_cosine, (0.0, 1.0), [1.0], method="BDF4", h=0.05, starter="dopri5"
        )
    error = np.max(np.abs(result.y[0] - np.cos(result.t)))
    # The garbage start either ends in an honest failure or is visible in the trajectory.
    assert not result.success or error > 1.0


def test_stiff_van_der_pol_bdf2_is_bounded_or_fails_honestly():
    from odecourse import solve_ivp
    from odecourse.ivp import get_problem

    problem = get_problem("van_der_pol", mu=1000.0)
    with np.errstate(over="ignore", invalid="ignore"):
        result = solve_ivp(
            problem.f, (0.0, 100.0), problem.y0, method="BDF2", h=0.1, jac=problem.jacobian
        )
    assert result.success
    assert np.max(np.abs(result.y[0])) < 2.5  # the limit cycle has |y1| <= 2.02
