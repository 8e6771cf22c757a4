"""Tests for odecourse.implicit: Newton on the stage equations, Jacobians, stiff stability."""

import numpy as np
import pytest

from odecourse.fixed_step import integrate_fixed
from odecourse.implicit import implicit_rk_step, implicit_stepper
from odecourse.ivp import get_problem
from odecourse.newton import NewtonConvergenceError, NewtonStats, finite_difference_jacobian
from odecourse.runge_kutta import get_tableau

IMPLICIT = ["backward_euler", "implicit_midpoint", "trapezoid"]
LAM = -1000.0


def _stiff(t, y):
    return LAM * (y - np.cos(t))


def _stiff_jac(t, y):
    return np.array([[LAM]])


@pytest.mark.parametrize("name", IMPLICIT)
def test_step_matches_closed_form_on_the_test_equation(name):
    """On y' = lam y one step multiplies by R(h lam): 1/(1-z) or (1+z/2)/(1-z/2)."""
    z = -0.7
    y_new = implicit_rk_step(
        lambda t, y: z * y, 0.0, np.ones(1), 1.0, get_tableau(name), lambda t, y: np.array([[z]])
    )
    expected = 1 / (1 - z) if name == "backward_euler" else (1 + z / 2) / (1 - z / 2)
    assert y_new[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", IMPLICIT)
def test_linear_problem_with_exact_jacobian_needs_one_newton_correction(name):
    # The first correction solves the linear stage equations exactly; the second iteration
    # finds a correction at rounding level and stops.  One Jacobian, one LU per step.
    stats, calls = NewtonStats(), []

    def counted(t, y):
        calls.append(t)
        return _stiff(t, y)

    y0 = np.ones(1)
    implicit_rk_step(counted, 0.0, y0, 0.1, get_tableau(name), _stiff_jac, stats=stats)
    assert stats.n_iter == 2 and stats.nlu == 1 and stats.njev == 1
    # One implicit stage for all three: f(t, y) once, then once per iteration.  The
    # trapezoidal rule's explicit first stage adds no unknowns (an n-dimensional solve),
    # and y_{n+1} comes from the stages without another evaluation.
    assert len(calls) == 1 + stats.n_iter


@pytest.mark.parametrize("name", IMPLICIT)
def test_stiff_decay_is_stable_with_large_steps(name):
    stepper = implicit_stepper(get_tableau(name), _stiff_jac)
    result = integrate_fixed(_stiff, (0.0, 2.0), np.ones(1), 0.1, stepper)
    assert result.success and stepper.stats.nlu == 20
    assert abs(result.y[-1][0] - np.cos(2.0)) < 0.01


def test_explicit_euler_is_unstable_on_the_same_problem():
    with np.errstate(over="ignore"):
        result = integrate_fixed(_stiff, (0.0, 2.0), np.zeros(1), 0.1, get_tableau("euler"))
    assert not np.isfinite(result.y[-1][0]) or abs(result.y[-1][0]) > 1e6


def test_finite_difference_jacobian_matches_exact():
    problem = get_problem("van_der_pol", mu=5.0)
    y = np.array([1.3, -0.4])
    np.testing.assert_allclose(
        finite_difference_jacobian(problem.f, 0.0, y),
        problem.jacobian(0.0, y),
        rtol=1e-6,
        atol=1e-6,
    )


def test_nonlinear_stiff_problem_with_finite_difference_jacobian():
    problem = get_problem("van_der_pol", mu=100.0)
    stepper = implicit_stepper(get_tableau("backward_euler"))
    result = integrate_fixed(problem.f, (0.0, 20.0), problem.y0, 0.1, stepper)
    assert result.success and np.all(np.isfinite(result.y[-1]))
    assert stepper.stats.njev == stepper.stats.nlu >= 200


def test_newton_failure_raises_with_time_and_advice():
    def f(t, y):
        return -(y**5) * 100.0

    with pytest.raises(NewtonConvergenceError, match=r"t = 0.*try a smaller step size `h`"):
        implicit_rk_step(f, 0.0, np.array([3.0]), 1.0, get_tableau("backward_euler"), max_iter=2)
    assert issubclass(NewtonConvergenceError, RuntimeError)


def test_finite_difference_jacobian_reads_integer_states_as_floats():
    problem = get_problem("linear_system")
    jacobian = finite_difference_jacobian(problem.f, 0.0, np.array([1, 2]))
    np.testing.assert_allclose(jacobian, problem.jacobian(0.0, None), rtol=1e-7)


def test_newton_settings_change_work_not_answer():
    """A looser tolerance stops Newton earlier; both answers agree to that tolerance."""
    problem = get_problem("van_der_pol", mu=10.0)
    tableau = get_tableau("implicit_midpoint")
    tight, loose = NewtonStats(), NewtonStats()
    y_tight = implicit_rk_step(problem.f, 0.0, problem.y0, 0.2, tableau, tol=1e-12, stats=tight)
    y_loose = implicit_rk_step(problem.f, 0.0, problem.y0, 0.2, tableau, tol=1e-3, stats=loose)
    assert loose.n_iter < tight.n_iter
    np.testing.assert_allclose(y_loose, y_tight, atol=1e-2)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"tol": 0.0}, ValueError, "`tol` must be positive; got 0.0"),
        ({"tol": "1e-8"}, TypeError, "`tol` must be a real number"),
        ({"max_iter": -1}, ValueError, "`max_iter` must be an integer >= 0; got -1"),
        ({"max_iter": 2.5}, TypeError, "`max_iter` must be an integer"),
    ],
)
def test_newton_settings_are_validated(kwargs, error, match):
    with pytest.raises(error, match=match):
        implicit_stepper(get_tableau("backward_euler"), **kwargs)
    with pytest.raises(error, match=match):
        implicit_rk_step(_stiff, 0.0, np.ones(1), 0.1, get_tableau("backward_euler"), **kwargs)


def test_stepper_rejects_a_non_tableau_or_non_callable_jacobian():
    with pytest.raises(TypeError, match="`tableau` must be a ButcherTableau"):
        implicit_stepper("backward_euler")
    with pytest.raises(TypeError, match="`jac` must be callable"):
        implicit_stepper(get_tableau("backward_euler"), np.eye(1))
