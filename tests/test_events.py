"""Events, `args` and honest failures of solve_ivp, checked against closed forms and SciPy."""

import math
import warnings

import numpy as np
import pytest
import scipy.integrate

from odecourse.ivp import get_problem
from odecourse.solve import solve_ivp


def decay(t, y):
    return -y


def half(t, y):
    return y[0] - 0.5


def oscillator(t, y):
    return np.array([y[1], -y[0]])


def crossing(t, y):
    return y[0]


@pytest.mark.parametrize("method", ["RK45", "RK23", "DOP853"])
def test_event_time_matches_the_closed_form_and_scipy(method):
    kwargs = {"method": method, "rtol": 1e-8, "atol": 1e-10, "events": half}
    ours = solve_ivp(decay, (0.0, 2.0), [1.0], **kwargs)
    theirs = scipy.integrate.solve_ivp(decay, (0.0, 2.0), [1.0], **kwargs)
    assert ours.status == 0 and ours.success
    assert ours.t_events[0] == pytest.approx(math.log(2), abs=1e-7)
    np.testing.assert_allclose(ours.t_events[0], theirs.t_events[0], rtol=1e-9)
    np.testing.assert_allclose(ours.y_events[0], theirs.y_events[0], rtol=1e-9)
    assert ours.y_events[0].shape == (1, 1)
    assert ours.nfev == theirs.nfev


@pytest.mark.parametrize(("direction", "expected"), [(0, 3), (1, 2), (-1, 1)])
def test_direction_selects_the_crossings(direction, expected):
    # y0 = (0, 1): sin t crosses zero upwards at 0 and 2 pi, downwards at pi.
    def event(t, y):
        return y[0]

    event.direction = direction
    kwargs = {"rtol": 1e-9, "atol": 1e-12, "events": event}
    ours = solve_ivp(oscillator, (0.0, 7.0), [0.0, 1.0], **kwargs)
    theirs = scipy.integrate.solve_ivp(oscillator, (0.0, 7.0), [0.0, 1.0], **kwargs)
    assert len(ours.t_events[0]) == len(theirs.t_events[0]) == expected
    np.testing.assert_allclose(ours.t_events[0], theirs.t_events[0], atol=1e-12)


@pytest.mark.parametrize("terminal", [True, 1, 2])
def test_terminal_event_stops_at_the_requested_occurrence(terminal):
    def event(t, y):
        return y[0]

    event.terminal = terminal
    event.direction = -1  # sin t crosses downwards at pi, 3 pi, ...
    ours = solve_ivp(oscillator, (0.0, 20.0), [0.0, 1.0], rtol=1e-10, atol=1e-12, events=event)
    occurrences = int(terminal)
    assert ours.status == 1 and ours.success
    assert ours.message == "A termination event occurred."
    assert len(ours.t_events[0]) == occurrences
    t_stop = (2 * occurrences - 1) * math.pi
    assert ours.t[-1] == ours.t_events[0][-1] == pytest.approx(t_stop, abs=1e-8)
    np.testing.assert_allclose(ours.y[:, -1], ours.y_events[0][-1])


def test_terminal_event_with_t_eval_and_dense_output():
    def ground(t, y):
        return y[0]

    ground.terminal, ground.direction = True, -1

    def fall(t, y):
        return np.array([y[1], -9.81])

    t_eval = np.linspace(0.0, 5.0, 51)
    ours = solve_ivp(fall, (0.0, 5.0), [10.0, 0.0], t_eval=t_eval, dense_output=True, events=ground)
    t_hit = math.sqrt(2 * 10.0 / 9.81)
    assert ours.status == 1 and ours.t_events[0][0] == pytest.approx(t_hit, rel=1e-10)
    assert ours.t[-1] <= t_hit and len(ours.t) == int(t_hit * 10) + 1
    assert ours.sol.ts[-1] == ours.t_events[0][0]
    assert ours.sol(t_hit)[0] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("method", "h"), [("rk4", 0.05), ("AB4", 0.01), ("backward_euler", 1e-3)])
def test_events_with_fixed_step_methods(method, h):
    # The interpolant of a fixed step is accurate to the method, so the root is too.
    ours = solve_ivp(decay, (0.0, 2.0), [1.0], method=method, h=h, events=half)
    tol = 1e-6 if method != "backward_euler" else 2e-3
    assert ours.t_events[0] == pytest.approx(math.log(2), abs=tol)


def test_lotka_volterra_period_from_events_agrees_with_scipy():
    problem = get_problem("lotka_volterra")

    def prey_max(t, y):
        return problem.f(t, y)[0]  # the prey population is extremal where its derivative is 0

    prey_max.direction = -1
    kwargs = {"rtol": 1e-10, "atol": 1e-12, "events": prey_max}
    ours = solve_ivp(problem.f, (0.0, 40.0), problem.y0, **kwargs)
    theirs = scipy.integrate.solve_ivp(problem.f, (0.0, 40.0), problem.y0, **kwargs)
    np.testing.assert_allclose(ours.t_events[0], theirs.t_events[0], rtol=1e-9)
    periods = np.diff(ours.t_events[0])
    assert periods.size >= 2 and np.ptp(periods) < 1e-7 * periods.mean()


def test_results_always_have_event_fields():
    result = solve_ivp(decay, (0.0, 1.0), [1.0])
    assert result.t_events is None and result.y_events is None
    assert "t_events" in result.keys()


def test_args_reach_fun_jac_and_events():
    def fun(t, y, rate):
        return -rate * y

    def jac(t, y, rate):
        return np.array([[-rate]])

    def level(t, y, rate):
        return y[0] - math.exp(-rate)  # reached at t = 1 for any rate

    for method, extra in (("RK45", {}), ("backward_euler", {"h": 1e-3, "jac": jac})):
        result = solve_ivp(
            fun, (0.0, 2.0), [1.0], method=method, args=(3.0,), events=level, **extra
        )
        assert result.t_events[0] == pytest.approx(1.0, abs=2e-3)
    theirs = scipy.integrate.solve_ivp(fun, (0.0, 2.0), [1.0], args=(3.0,), events=level)
    ours = solve_ivp(fun, (0.0, 2.0), [1.0], args=(3.0,), events=level)
    np.testing.assert_allclose(ours.t_events[0], theirs.t_events[0], rtol=1e-12)


@pytest.mark.parametrize(
    ("attribute", "value", "error", "match"),
    [
        ("terminal", "yes", ValueError, "The `terminal` attribute of event 0 must be a bool or"),
        ("terminal", -1, ValueError, "The `terminal` attribute of event 0"),
        ("direction", "up", ValueError, "`direction` of event 0 must be a real number"),
    ],
)
def test_event_attributes_are_validated(attribute, value, error, match):
    def event(t, y):
        return y[0]

    setattr(event, attribute, value)
    with pytest.raises(error, match=match):
        solve_ivp(decay, (0.0, 1.0), [1.0], events=event)


def test_an_event_must_return_a_number():
    with pytest.raises(TypeError, match="event 0 must return a real number"):
        solve_ivp(oscillator, (0.0, 1.0), [1.0, 0.0], events=lambda t, y: y)


def test_tiny_rtol_is_floored_with_a_warning_like_scipy():
    with pytest.warns(UserWarning, match=r"`rtol` = 1e-16 is below 100 \* eps"):
        ours = solve_ivp(decay, (0.0, 1.0), [1.0], rtol=1e-16, atol=1e-16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = scipy.integrate.solve_ivp(decay, (0.0, 1.0), [1.0], rtol=1e-16, atol=1e-16)
    assert ours.nfev == theirs.nfev


def test_inert_scipy_options_warn_like_scipy():
    with pytest.warns(UserWarning, match="no effect for method 'RK45': `jac`"):
        result = solve_ivp(decay, (0.0, 1.0), [1.0], jac=lambda t, y: -np.eye(1))
    assert result.success


def test_atol_zero_with_a_zero_component_fails_clearly():
    result = solve_ivp(decay, (0.0, 1.0), [1.0, 0.0], atol=0.0)
    assert result.status == -1 and "`atol` is 0" in result.message


def test_atol_zero_is_accepted_when_no_component_is_zero():
    result = solve_ivp(decay, (0.0, 1.0), [1.0], atol=0.0, rtol=1e-8)
    assert result.success and result.y[0, -1] == pytest.approx(math.exp(-1), rel=1e-7)


def test_a_non_finite_first_derivative_fails_with_the_time():
    result = solve_ivp(lambda t, y: np.full(1, np.nan), (0.0, 1.0), [1.0])
    assert result.status == -1 and "at t = 0" in result.message


@pytest.mark.parametrize("method", ["rk4", "AB3", "backward_euler"])
def test_max_steps_guards_memory_for_a_tiny_step(method):
    # 1e12 steps would not fit in memory as a grid; the lazy grid stops after ten.
    result = solve_ivp(decay, (0.0, 1e9), [1.0], method=method, h=1e-3, max_steps=10)
    assert result.status == -1 and "maximum number of steps (10)" in result.message
    assert result.n_steps == 10


def test_fixed_step_blow_up_is_a_failure_with_the_time():
    with np.errstate(over="ignore", invalid="ignore"):
        result = solve_ivp(lambda t, y: y**2, (0.0, 2.0), [1.0], method="rk4", h=0.01)
    assert result.status == -1 and not result.success
    t_fail = float(result.message.split("t = ")[1].split()[0])
    assert 0.9 < t_fail < 1.1


def test_adaptive_blow_up_is_a_failure_with_the_time():
    with np.errstate(over="ignore", invalid="ignore"):
        result = solve_ivp(lambda t, y: y**2, (0.0, 2.0), [1.0])
    assert result.status == -1 and not result.success
    t_fail = float(result.message.split("at t = ")[1].split(";")[0])
    assert t_fail == pytest.approx(1.0, abs=1e-3)


def _stiff_pair(t, y):
    return np.array([-1000.0 * (y[0] - np.cos(t)) - np.sin(t), -y[1]])


@pytest.mark.parametrize("method", ["BDF", "Radau", "DOP853"])
def test_events_on_stiff_and_high_order_methods_match_scipy(method):
    def half_life(t, y):
        return y[1] - 0.5

    kwargs = {"method": method, "rtol": 1e-8, "atol": 1e-10, "events": half_life}
    ours = solve_ivp(_stiff_pair, (0.0, 2.0), [1.0, 1.0], **kwargs)
    theirs = scipy.integrate.solve_ivp(_stiff_pair, (0.0, 2.0), [1.0, 1.0], **kwargs)
    assert ours.t_events[0] == pytest.approx(math.log(2), abs=1e-7)
    np.testing.assert_allclose(ours.t_events[0], theirs.t_events[0], rtol=1e-7)


@pytest.mark.parametrize("method", ["BDF", "Radau", "RK45"])
def test_rtol_per_component(method):
    result = solve_ivp(_stiff_pair, (0.0, 2.0), [1.0, 1.0], method=method, rtol=[1e-7, 1e-4])
    assert result.success
    assert abs(result.y[0, -1] - math.cos(2.0)) < 1e-5
    assert abs(result.y[1, -1] - math.exp(-2.0)) < 1e-3
