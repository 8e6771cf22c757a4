"""Tests for odecourse.step_history: the observer reproduces integrate_adaptive exactly."""

import numpy as np
import pytest

from odecourse.adaptive import SAFETY, integrate_adaptive
from odecourse.ivp import get_problem
from odecourse.runge_kutta import get_tableau
from odecourse.step_history import adaptive_step_history

CASES = [
    ("van_der_pol", {"mu": 5.0}, (0.0, 20.0)),
    ("lotka_volterra", {}, (0.0, 15.0)),
    ("harmonic_oscillator", {}, (0.0, -6.0)),  # backwards in time
]


@pytest.mark.parametrize("method", ["dopri5", "bosh3"])
@pytest.mark.parametrize(("name", "params", "t_span"), CASES)
@pytest.mark.parametrize("rtol", [1e-3, 1e-6])
def test_accepted_steps_match_integrate_adaptive(method, name, params, t_span, rtol):
    problem = get_problem(name, **params)
    tableau = get_tableau(method)
    reference = integrate_adaptive(
        problem.f, t_span, problem.y0, tableau, rtol=rtol, atol=rtol * 1e-3
    )
    history = adaptive_step_history(
        problem.f, t_span, problem.y0, method, rtol=rtol, atol=rtol * 1e-3
    )
    assert history.success
    assert history.n_steps == reference.n_steps
    assert history.n_rejected == reference.n_rejected
    np.testing.assert_array_equal(history.t_accepted, reference.t)
    np.testing.assert_array_equal(history.y_accepted, np.stack(reference.y, axis=1))


def test_rejections_have_error_above_one_and_shrink_the_step():
    problem = get_problem("van_der_pol", mu=5.0, t_span=(0.0, 20.0))
    history = adaptive_step_history(problem.f, problem.t_span, problem.y0, "RK45", rtol=1e-4)
    assert history.n_rejected > 0
    assert np.all(history.error[history.accepted] < 1.0)
    assert np.all(history.error[~history.accepted] >= 1.0)
    rejected = np.flatnonzero(~history.accepted)
    # A retry starts where the rejected attempt started, with a smaller step.
    assert np.all(history.t[rejected + 1] == history.t[rejected])
    assert np.all(np.abs(history.h[rejected + 1]) < np.abs(history.h[rejected]))
    # The retry is the controller's prediction (clipped to [0.2, 10] times h).
    ratio = np.abs(history.h[rejected + 1] / history.h[rejected])
    expected = np.maximum(0.2, SAFETY * history.error[rejected] ** -0.2)
    np.testing.assert_allclose(ratio, expected, rtol=1e-12)


def test_stops_after_max_steps():
    problem = get_problem("lotka_volterra")
    history = adaptive_step_history(problem.f, problem.t_span, problem.y0, max_steps=5)
    assert not history.success and history.n_steps == 5


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"tableau": "rk4"}, ValueError, "embedded pair"),
        ({"tableau": "backward_euler"}, ValueError, "must be an explicit tableau"),
        ({"tableau": "nope"}, ValueError, "must be one of"),
        ({"rtol": -1.0}, ValueError, "rtol"),
        ({"atol": 0.0}, ValueError, "atol"),
        ({"max_steps": 0}, ValueError, "max_steps"),
        ({"first_step": -0.1}, ValueError, "first_step"),
        ({"f": 3}, TypeError, "`f` must be callable"),
        ({"t_span": (1.0, 1.0)}, ValueError, "t_span"),
    ],
)
def test_validation(kwargs, error, match):
    problem = get_problem("exponential_decay")
    arguments = {"f": problem.f, "t_span": problem.t_span, "y0": problem.y0, **kwargs}
    with pytest.raises(error, match=match):
        adaptive_step_history(**arguments)


def test_tableau_of_the_wrong_type_is_a_type_error():
    problem = get_problem("exponential_decay")
    with pytest.raises(TypeError, match="`tableau` must be a ButcherTableau or the name of one"):
        adaptive_step_history(problem.f, problem.t_span, problem.y0, tableau=5)


@pytest.mark.parametrize(
    ("f", "match"),
    [
        (lambda t, y: np.ones(2), r"`f` must return an array of shape \(1,\)"),
    ],
)
def test_a_bad_right_hand_side_is_reported_not_recorded(f, match):
    with pytest.raises(ValueError, match=match):
        adaptive_step_history(f, (0.0, 1.0), [1.0])


def test_a_non_finite_derivative_ends_in_failure_not_success():
    history = adaptive_step_history(lambda t, y: np.full(1, np.nan), (0.0, 1.0), [1.0])
    assert not history.success and history.t.size == 0
