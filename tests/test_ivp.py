"""Tests for odecourse.ivp: the IVP dataclass and the registry of standard problems."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from odecourse.ivp import IVP, PROBLEMS, get_problem

WITH_EXACT = ("exponential_decay", "logistic", "harmonic_oscillator", "linear_system", "blow_up")


def _sample_times(problem: IVP, count: int = 7) -> np.ndarray:
    t0, t1 = problem.t_span
    return np.linspace(t0, t1, count + 2)[1:-1]


def test_registry_lists_the_course_problems():
    assert set(PROBLEMS) == {
        "exponential_decay",
        "logistic",
        "harmonic_oscillator",
        "linear_system",
        "lotka_volterra",
        "van_der_pol",
        "robertson",
        "blow_up",
        "non_unique",
    }
    assert {name for name in PROBLEMS if get_problem(name).exact is not None} == set(WITH_EXACT)


@pytest.mark.parametrize("name", PROBLEMS)
def test_problem_fields_follow_the_interface(name):
    problem = get_problem(name)
    assert problem.name == name
    assert problem.y0.ndim == 1 and problem.y0.dtype == float
    assert not problem.y0.flags.writeable
    t0, t1 = problem.t_span
    assert t0 < t1
    assert problem.f(t0, problem.y0).shape == (problem.dim,)
    assert problem.stiff == (name == "robertson")


@pytest.mark.parametrize("name", WITH_EXACT)
def test_exact_solution_satisfies_the_ode(name):
    """Central differences of exact(t) match f(t, exact(t)) at interior times."""
    problem = get_problem(name)
    delta = 1e-5
    for t in _sample_times(problem):
        derivative = (problem.exact(t + delta) - problem.exact(t - delta)) / (2 * delta)
        rhs = problem.f(t, problem.exact(t))
        np.testing.assert_allclose(derivative, rhs, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("name", WITH_EXACT)
def test_exact_solution_shapes_and_initial_value(name):
    problem = get_problem(name)
    times = _sample_times(problem)
    assert problem.exact(float(times[0])).shape == (problem.dim,)
    values = problem.exact(times)
    assert values.shape == (problem.dim, times.size)
    np.testing.assert_allclose(values[:, 2], problem.exact(times[2]))
    np.testing.assert_allclose(problem.exact(problem.t_span[0]), problem.y0)


@pytest.mark.parametrize("name", WITH_EXACT)
def test_exact_solution_agrees_with_scipy(name):
    problem = get_problem(name)
    times = _sample_times(problem)
    sol = solve_ivp(problem.f, problem.t_span, problem.y0, t_eval=times, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sol.y, problem.exact(times), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("name", [n for n in PROBLEMS if get_problem(n).jacobian is not None])
def test_jacobian_matches_finite_differences(name):
    problem = get_problem(name)
    rng = np.random.default_rng(0)
    y = problem.y0 + 0.1 * rng.standard_normal(problem.dim) + 0.5
    t = float(np.mean(problem.t_span))
    delta = 1e-6
    columns = [
        (problem.f(t, y + delta * e) - problem.f(t, y - delta * e)) / (2 * delta)
        for e in np.eye(problem.dim)
    ]
    jacobian = problem.jacobian(t, y)
    # Robertson's entries span eleven orders of magnitude: scale the tolerance by the largest.
    scale = max(1.0, np.abs(jacobian).max())
    np.testing.assert_allclose(jacobian, np.array(columns).T, rtol=1e-6, atol=1e-7 * scale)


def test_lotka_volterra_conserves_its_invariant():
    problem = get_problem("lotka_volterra")
    sol = solve_ivp(problem.f, problem.t_span, problem.y0, rtol=1e-10, atol=1e-12)
    x, y = sol.y
    invariant = 0.25 * x - np.log(x) + 0.5 * y - 1.0 * np.log(y)
    assert np.ptp(invariant) < 1e-7


def test_robertson_conserves_total_mass():
    problem = get_problem("robertson")
    sol = solve_ivp(problem.f, problem.t_span, problem.y0, method="Radau", rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(sol.y.sum(axis=0), 1.0, atol=1e-8)


def test_non_unique_problem_has_two_solutions():
    """Both y = 0 and y = t^2 solve y' = 2 sqrt|y|, y(0) = 0."""
    problem = get_problem("non_unique")
    for t in (0.3, 1.0, 1.7):
        assert problem.f(t, np.array([0.0]))[0] == 0.0
        assert problem.f(t, np.array([t**2]))[0] == pytest.approx(2 * t)


def test_parameters_change_the_problem():
    assert get_problem("van_der_pol", mu=1000.0).stiff
    assert get_problem("van_der_pol", mu=0.0).t_span == (0.0, 20.0)
    decay = get_problem("exponential_decay", lam=3.0, y0=2.0, t_span=(1.0, 2.0))
    np.testing.assert_allclose(decay.exact(1.5), [2.0 * np.exp(-1.5)])
    assert get_problem("blow_up", y0=2.0).t_span == (0.0, 0.45)
    big = get_problem("linear_system", A=np.diag([-1.0, -2.0, -3.0]), y0=[1.0, 1.0, 1.0])
    np.testing.assert_allclose(big.exact(1.0), np.exp([-1.0, -2.0, -3.0]))


def test_ivp_accepts_a_scalar_y0_and_copies_it():
    y0 = np.array([1.0, 2.0])
    problem = IVP(f=lambda t, y: -y, t_span=(0, 1), y0=y0)
    y0[0] = 5.0
    np.testing.assert_array_equal(problem.y0, [1.0, 2.0])
    assert IVP(f=lambda t, y: -y, t_span=(0, 1), y0=3).y0.shape == (1,)
    with pytest.raises(ValueError, match="read-only"):
        problem.y0[0] = 1.0


def _ok(**changes):
    fields = {"f": lambda t, y: -y, "t_span": (0.0, 1.0), "y0": [1.0]}
    fields.update(changes)
    return IVP(**fields)


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"f": 3.0}, TypeError, "`f` must be callable"),
        ({"t_span": (1.0, 0.0)}, ValueError, r"`t_span` must be increasing"),
        ({"t_span": (0.0, 0.0)}, ValueError, "`t_span` must be a non-empty interval"),
        ({"t_span": (0.0, np.inf)}, ValueError, r"`t_span\[1\]` must be finite"),
        ({"t_span": 1.0}, ValueError, r"`t_span` must be a pair"),
        ({"y0": [1.0, np.nan]}, ValueError, "`y0` must contain only finite values"),
        ({"y0": [[1.0]]}, ValueError, "`y0` must have 0 or 1 dimension"),
        ({"y0": []}, ValueError, "`y0` must have at least one component"),
        ({"y0": "abc"}, TypeError, "`y0` must be an array of real numbers"),
        ({"exact": "sin"}, TypeError, "`exact` must be callable"),
        ({"jacobian": 1}, TypeError, "`jacobian` must be callable"),
        ({"name": ""}, TypeError, "`name` must be a non-empty string"),
        ({"stiff": "yes"}, TypeError, "`stiff` must be a bool"),
        ({"description": 3}, TypeError, "`description` must be a string"),
        ({"f": lambda t, y: np.zeros(2)}, ValueError, r"`f\(t0, y0\)` must return .* \(1,\)"),
        ({"jacobian": lambda t, y: 1.0}, ValueError, r"`jacobian\(t0, y0\)` must return"),
        ({"exact": lambda t: np.zeros((2,))}, ValueError, r"`exact\(t0\)` must return"),
        ({"exact": lambda t: np.array([2.0])}, ValueError, r"`exact\(t0\)` must equal `y0`"),
    ],
)
def test_ivp_validation(changes, error, match):
    with pytest.raises(error, match=match):
        _ok(**changes)


@pytest.mark.parametrize(
    ("name", "params", "error", "match"),
    [
        ("pendulum", {}, ValueError, "`name` must be one of .*'van_der_pol'.*; got 'pendulum'"),
        (3, {}, TypeError, "`name` must be a string"),
        ("van_der_pol", {"nu": 1.0}, TypeError, "unknown parameter.*nu.*accepted: mu, y0, t_span"),
        ("van_der_pol", {"mu": -1.0}, ValueError, "`mu` must be non-negative; got -1.0"),
        ("van_der_pol", {"mu": "big"}, TypeError, "`mu` must be a real number"),
        ("van_der_pol", {"y0": [1.0]}, ValueError, r"`y0` must have shape \(2,\)"),
        ("exponential_decay", {"lam": 0.0}, ValueError, "`lam` must be positive; got 0.0"),
        ("logistic", {"K": -1.0}, ValueError, "`K` must be positive"),
        ("logistic", {"y0": 0.0}, ValueError, "`y0` must be positive"),
        ("harmonic_oscillator", {"omega": np.nan}, ValueError, "`omega` must be finite"),
        ("linear_system", {"A": np.ones((2, 3))}, ValueError, "`A` must be a square matrix"),
        ("linear_system", {"A": np.eye(3)}, ValueError, r"`y0` must have shape \(3,\)"),
        ("lotka_volterra", {"y0": [1.0, -1.0]}, ValueError, "`y0` must have positive"),
        ("lotka_volterra", {"beta": -0.5}, ValueError, "`beta` must be positive"),
        ("robertson", {"k2": 0.0}, ValueError, "`k2` must be positive"),
        ("blow_up", {"t_span": (0.0, 1.0)}, ValueError, "must end before the blow-up time"),
        ("blow_up", {"y0": np.inf}, ValueError, "`y0` must be finite"),
        ("non_unique", {"t_span": (2.0, 0.0)}, ValueError, "`t_span` must be increasing"),
    ],
)
def test_get_problem_validation(name, params, error, match):
    with pytest.raises(error, match=match):
        get_problem(name, **params)
