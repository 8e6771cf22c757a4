"""Tests for odecourse.solve: SciPy agreement, closed forms, dense output, validation, registry."""

import numpy as np
import pytest
import scipy.integrate

from odecourse.fixed_step import integrate_fixed
from odecourse.ivp import get_problem
from odecourse.runge_kutta import TABLEAUS, get_tableau
from odecourse.solve import METHODS, OdeResult, OdeSolution, register_method, solve_ivp

# Runge-Kutta methods only: the multistep methods that register themselves are tested in
# tests/test_multistep_solver.py.
FIXED = sorted(name for name in TABLEAUS if METHODS[name].fixed_step)


@pytest.mark.parametrize("method", ["RK45", "RK23"])
@pytest.mark.parametrize("problem_name", ["harmonic_oscillator", "lotka_volterra", "van_der_pol"])
@pytest.mark.parametrize("rtol", [1e-3, 1e-7])
def test_agrees_with_scipy(method, problem_name, rtol):
    problem = get_problem(problem_name)
    args = (problem.f, problem.t_span, problem.y0)
    kwargs = {"method": method, "rtol": rtol, "atol": rtol * 1e-3}
    ours, theirs = solve_ivp(*args, **kwargs), scipy.integrate.solve_ivp(*args, **kwargs)
    assert ours.success and ours.status == 0 and ours.message == theirs.message
    assert abs(ours.nfev - theirs.nfev) <= 0.1 * theirs.nfev
    assert ours.n_steps == pytest.approx(len(theirs.t) - 1, rel=0.1)
    assert ours.y.shape == (problem.y0.size, ours.t.size)
    np.testing.assert_allclose(ours.y[:, -1], theirs.y[:, -1], rtol=100 * rtol, atol=1e-8)


@pytest.mark.parametrize("method", FIXED)
def test_fixed_step_methods_match_closed_form(method):
    problem = get_problem("linear_system")
    options = {"jac": problem.jacobian} if "jac" in METHODS[method].options else {}
    result = solve_ivp(problem.f, (0.0, 1.0), problem.y0, method=method, h=0.01, **options)
    assert result.success and result.n_steps == 100
    order = get_tableau(method).order
    np.testing.assert_allclose(result.y[:, -1], problem.exact(1.0), atol=0.01**order)


@pytest.mark.parametrize("method", ["RK45", "bosh3", "rk4", "backward_euler"])
def test_backward_integration(method):
    problem = get_problem("exponential_decay")
    options = {"h": 0.01} if METHODS[method].fixed_step else {"rtol": 1e-8, "atol": 1e-10}
    y5 = problem.exact(5.0)
    result = solve_ivp(problem.f, (5.0, 0.0), y5, method=method, **options)
    assert result.t[0] == 5.0 and result.t[-1] == 0.0 and np.all(np.diff(result.t) < 0)
    np.testing.assert_allclose(
        result.y[:, -1], problem.y0, rtol=5e-2 if "euler" in method else 1e-6
    )


@pytest.mark.parametrize("method", ["RK45", "RK23", "rk4", "trapezoid"])
def test_dense_output_and_t_eval(method):
    problem = get_problem("harmonic_oscillator")
    options = {"h": 0.01} if METHODS[method].fixed_step else {"rtol": 1e-8, "atol": 1e-10}
    t_eval = np.linspace(0.0, 10.0, 37)
    result = solve_ivp(
        problem.f, problem.t_span, problem.y0, method=method, t_eval=t_eval, dense_output=True,
        **options,
    )  # fmt: skip
    np.testing.assert_array_equal(result.t, t_eval)
    tol = 1e-4 if method == "trapezoid" else 1e-6
    np.testing.assert_allclose(result.y, problem.exact(t_eval), atol=tol)
    assert isinstance(result.sol, OdeSolution)
    assert result.sol(3.3).shape == (2,) and result.sol(t_eval).shape == (2, 37)
    np.testing.assert_allclose(result.sol(t_eval), problem.exact(t_eval), atol=tol)


def test_dense_output_matches_scipy_sol_for_backward_integration():
    problem = get_problem("lotka_volterra")
    t_span = (problem.t_span[1], problem.t_span[0])
    y1 = scipy.integrate.solve_ivp(problem.f, problem.t_span, problem.y0, rtol=1e-10).y[:, -1]
    kwargs = {"rtol": 1e-6, "atol": 1e-9, "dense_output": True}
    ours = solve_ivp(problem.f, t_span, y1, **kwargs)
    theirs = scipy.integrate.solve_ivp(problem.f, t_span, y1, **kwargs)
    t = np.linspace(*problem.t_span, 50)
    np.testing.assert_allclose(ours.sol(t), theirs.sol(t), rtol=1e-10, atol=1e-10)


def test_result_fields_and_dict_access():
    result = solve_ivp(lambda t, y: -y, (0.0, 1.0), [1.0])
    assert isinstance(result, OdeResult)
    assert result["nfev"] == result.nfev and "n_rejected" in result.keys()
    assert result.sol is None and result.njev == 0 and result.nlu == 0
    with pytest.raises(KeyError):
        result["nope"]


def test_tableau_passed_directly_and_array_atol():
    problem = get_problem("harmonic_oscillator")
    args = (problem.f, problem.t_span, problem.y0)
    by_name = solve_ivp(*args, method="dopri5", atol=[1e-8, 1e-8])
    by_tableau = solve_ivp(*args, method=TABLEAUS["dopri5"], atol=np.array([1e-8, 1e-8]))
    np.testing.assert_array_equal(by_name.y, by_tableau.y)


def test_implicit_method_counts_and_jacobian_option():
    problem = get_problem("linear_system")
    args = (problem.f, (0.0, 1.0), problem.y0)
    exact_jac = solve_ivp(*args, method="backward_euler", h=0.1, jac=problem.jacobian)
    fd_jac = solve_ivp(*args, method="backward_euler", h=0.1)
    assert exact_jac.njev == exact_jac.nlu == 10
    assert fd_jac.njev >= 10 and fd_jac.nfev > exact_jac.nfev
    np.testing.assert_allclose(exact_jac.y, fd_jac.y, rtol=1e-8)


def test_register_method_hook():
    def solver(fun, t_span, y0, *, t_eval, dense_output, h, max_steps=1000):
        return integrate_fixed(fun, t_span, y0, h, TABLEAUS["heun"], t_eval=t_eval)

    register_method("my_heun", solver, fixed_step=True)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_method("my_heun", solver, fixed_step=True)
        result = solve_ivp(lambda t, y: -y, (0.0, 1.0), [1.0], method="my_heun", h=0.1)
        reference = solve_ivp(lambda t, y: -y, (0.0, 1.0), [1.0], method="heun", h=0.1)
        np.testing.assert_array_equal(result.y, reference.y)
    finally:
        del METHODS["my_heun"]


def _f(t, y):
    return -y


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"fun": 3}, TypeError, "`fun` must be callable"),
        ({"t_span": (0.0,)}, ValueError, r"`t_span` must be a pair"),
        ({"t_span": (np.inf, 1.0)}, ValueError, r"`t_span\[0\]` must be finite"),
        ({"t_span": (0.0, np.nan)}, ValueError, r"`t_span\[1\]` must be a number"),
        ({"y0": [[1.0]]}, ValueError, "`y0` must have 1 dimension"),
        ({"y0": [np.nan]}, ValueError, "All components of the initial state `y0` must be finite"),
        ({"fun": lambda t, y: np.ones(2)}, ValueError, r"shape \(1,\) like `y0`; got shape \(2,\)"),
        ({"fun": lambda t, y: ["a"]}, TypeError, r"`fun` must return an array of real numbers"),
        ({"rtol": -1.0}, ValueError, "`rtol` must be non-negative"),
        ({"rtol": [1e-3, 1e-3]}, ValueError, r"`rtol` must be non-negative, a scalar or of shape"),
        ({"atol": -1e-6}, ValueError, "`atol` must be non-negative"),
        ({"atol": [1e-6, 1e-6]}, ValueError, r"`atol` must be non-negative, a scalar or of shape"),
        ({"args": 3.0}, TypeError, r"`args` must be a tuple.*args=\(value,\)"),
        ({"events": 3}, TypeError, "`events` must be a callable or a sequence"),
        ({"events": [_f, 3]}, TypeError, r"`events\[1\]` must be callable"),
        ({"method": "RK99"}, ValueError, "`method` must be one of.*'dopri5'"),
        ({"method": 4}, TypeError, "`method` must be a method name or a ButcherTableau"),
        ({"method": "rk4"}, ValueError, "takes a fixed step: pass the step size"),
        ({"method": "rk4", "h": -0.1}, ValueError, "`h` must be positive; got -0.1"),
        ({"method": "rk4", "h": 0.1, "rtoll": 1}, TypeError, "unknown option.*'rtoll'"),
        ({"h": 0.1}, ValueError, "`h` is only for fixed-step methods"),
        ({"foo": None}, TypeError, "unknown option.*'foo'"),
        ({"max_steps": 0}, ValueError, "`max_steps` must be an integer >= 1"),
        ({"first_step": 0.0}, ValueError, "`first_step` must be positive"),
        ({"max_step": -1.0}, ValueError, "`max_step` must be positive"),
        ({"t_eval": [0.0, 3.0]}, ValueError, "`t_eval` must lie within `t_span`"),
        ({"t_eval": [0.5, 0.2]}, ValueError, "`t_eval` must be strictly increasing"),
        ({"t_span": (2.0, 0.0), "t_eval": [0.5, 1.0]}, ValueError, "strictly decreasing"),
    ],
)
def test_validation_errors(kwargs, error, message):
    arguments = {"fun": _f, "t_span": (0.0, 2.0), "y0": [1.0], **kwargs}
    with pytest.raises(error, match=message):
        solve_ivp(**arguments)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"newton_tol": -1.0}, ValueError, "`newton_tol` must be positive"),
        ({"newton_max_iter": -1}, ValueError, "`newton_max_iter` must be an integer >= 0"),
        ({"jac": "x"}, TypeError, "`jac` must be an array of real numbers"),
    ],
)
def test_implicit_method_options_are_validated(options, error, message):
    with pytest.raises(error, match=message):
        solve_ivp(_f, (0.0, 1.0), [1.0], method="backward_euler", h=0.1, **options)


def test_t_eval_errors_quote_the_offending_values():
    with pytest.raises(ValueError, match=r"`t_eval` must lie within .*got 3\.0 outside it"):
        solve_ivp(_f, (0.0, 2.0), [1.0], t_eval=[0.0, 3.0])
    with pytest.raises(ValueError, match=r"got 0\.5 followed by 0\.5"):
        solve_ivp(_f, (0.0, 2.0), [1.0], t_eval=[0.2, 0.5, 0.5])


@pytest.mark.parametrize("method", ["RK45", "rk4", "backward_euler"])
@pytest.mark.parametrize("t_span", [(0.0, 0.5), (0.5, 0.0)])
def test_t_eval_at_the_end_points_and_a_single_step(method, t_span):
    """t_eval = t_span returns y0 and the final state; h longer than the interval is one step.

    (Backward Euler run backwards with h = 1 on y' = -y would sit on the pole z = 1 of
    R(z) = 1/(1 - z), hence the half-unit interval.)
    """
    options = {"h": 2.0} if METHODS[method].fixed_step else {}
    full = solve_ivp(_f, t_span, [1.0, 2.0], method=method, dense_output=True, **options)
    ends = solve_ivp(_f, t_span, [1.0, 2.0], method=method, t_eval=list(t_span), **options)
    np.testing.assert_array_equal(ends.t, t_span)
    np.testing.assert_array_equal(ends.y[:, 0], [1.0, 2.0])
    np.testing.assert_array_equal(ends.y[:, -1], full.y[:, -1])
    np.testing.assert_allclose(full.sol(np.array(t_span)), ends.y, rtol=1e-15)
    if METHODS[method].fixed_step:
        assert full.n_steps == 1


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (("", _f), {"fixed_step": True}, TypeError, "`name` must be a non-empty string"),
        ((3, _f), {"fixed_step": True}, TypeError, "`name` must be a non-empty string"),
        (("x", 3), {"fixed_step": True}, TypeError, "`solver` must be callable"),
        (("x", _f), {"fixed_step": True, "options": "jac"}, TypeError, "`options` must be"),
        (("RK45", _f), {"fixed_step": False}, ValueError, "already registered"),
    ],
)
def test_register_method_validation(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        register_method(*args, **kwargs)
    assert "x" not in METHODS


def test_vectorized_fun_takes_states_as_columns_as_in_scipy():
    seen = []

    def columns(t, y):
        seen.append(y.shape)
        return np.vstack([y[1], -y[0]])

    ours = solve_ivp(columns, (0.0, 3.0), [1.0, 0.0], vectorized=True, rtol=1e-8, atol=1e-10)
    plain = solve_ivp(lambda t, y: [y[1], -y[0]], (0.0, 3.0), [1.0, 0.0], rtol=1e-8, atol=1e-10)
    assert set(seen) == {(2, 1)}
    np.testing.assert_array_equal(ours.y, plain.y)
