"""Tests for odecourse.convergence: observed order of every method, work-precision data."""

import numpy as np
import pytest

from odecourse.convergence import convergence_study, observed_order, work_precision
from odecourse.ivp import get_problem
from odecourse.runge_kutta import TABLEAUS

PROBLEM = get_problem("logistic", t_span=(0.0, 2.0))


def test_observed_order_recovers_a_power_law():
    h = np.array([0.1, 0.05, 0.025, 0.0125])
    assert observed_order(h, 3.0 * h**2.5) == pytest.approx(2.5, abs=1e-12)


@pytest.mark.parametrize(
    ("h", "errors", "message"),
    [
        ([0.1], [1.0], "same length >= 2"),
        ([0.1, 0.2], [1.0, 2.0, 3.0], "same length >= 2"),
        ([0.1, -0.2], [1.0, 2.0], "must be positive"),
        ([0.1, 0.2], [0.0, 2.0], "must be positive"),
        ([0.1, 0.1], [1.0, 2.0], "two distinct values"),
        ([0.1, np.nan], [1.0, 2.0], "finite"),
    ],
)
def test_observed_order_validation(h, errors, message):
    with pytest.raises(ValueError, match=message):
        observed_order(h, errors)


@pytest.mark.parametrize("name", sorted(TABLEAUS))
def test_observed_order_is_the_theoretical_order(name):
    tableau = TABLEAUS[name]
    n_steps = (8, 16, 32, 64) if tableau.order >= 4 else (32, 64, 128, 256)
    study = convergence_study(PROBLEM, name, n_steps)
    assert study.order == pytest.approx(tableau.order, abs=0.2)
    assert np.all(np.diff(study.errors) < 0)
    np.testing.assert_array_equal(study.n_steps, n_steps)
    assert study.nfev[-1] > study.nfev[0]


def test_work_precision_for_tolerances_and_step_sizes():
    adaptive = work_precision(PROBLEM, "RK45", rtols=[1e-3, 1e-6, 1e-9])
    assert np.all(np.diff(adaptive.errors) < 0) and np.all(np.diff(adaptive.nfev) > 0)
    fixed = work_precision(PROBLEM, "rk4", hs=[0.1, 0.05])
    assert fixed.errors[1] < fixed.errors[0] / 10 and fixed.method == "rk4"
    with pytest.raises(ValueError, match="exactly one of"):
        work_precision(PROBLEM, "RK45")
    with pytest.raises(ValueError, match="no exact solution"):
        work_precision(get_problem("lotka_volterra"), "RK45", rtols=[1e-3])


@pytest.mark.parametrize(
    ("n_steps", "error", "match"),
    [
        ((16,), ValueError, "at least two distinct step counts"),
        ((16, 16), ValueError, "at least two distinct step counts"),
        (16, TypeError, "`n_steps` must be a sequence of integers"),
        ((16, 32.0), TypeError, "`n_steps` must be an integer"),
        ((0, 16), ValueError, "`n_steps` must be an integer >= 1"),
    ],
)
def test_convergence_study_validation(n_steps, error, match):
    with pytest.raises(error, match=match):
        convergence_study(PROBLEM, "rk4", n_steps)


def test_method_and_atol_ratio_are_validated():
    with pytest.raises(TypeError, match="`method` must be a ButcherTableau or the name of one"):
        convergence_study(PROBLEM, 4, (16, 32))
    with pytest.raises(ValueError, match="`method` must be one of"):
        convergence_study(PROBLEM, "rk5", (16, 32))
    with pytest.raises(ValueError, match=r"`atol_ratio` must be positive; got -0\.001"):
        work_precision(PROBLEM, "RK45", rtols=[1e-3], atol_ratio=-1e-3)


def test_adaptive_tableau_in_a_convergence_study_uses_its_propagated_weights():
    """dopri5 run at fixed steps is order 5 and agrees step for step with its b weights."""
    study = convergence_study(PROBLEM, "dopri5", (8, 16, 32))
    assert study.order == pytest.approx(5, abs=0.3)
    as_fixed = convergence_study(PROBLEM, TABLEAUS["dopri5"], (8, 16, 32))
    np.testing.assert_array_equal(study.errors, as_fixed.errors)
