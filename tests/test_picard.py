"""Tests for odecourse.picard: Picard iterates and their factorial convergence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from odecourse.ivp import get_problem
from odecourse.picard import PicardIterates, picard_error_bound, picard_iterates

#: Trapezoid error on the default grid of [0, 1] is about e * dt^2 / 12 ~ 6e-8.
QUADRATURE_TOL = 2e-7


def _taylor_exp(t: np.ndarray, k: int) -> np.ndarray:
    return sum(t**j / math.factorial(j) for j in range(k + 1))


@pytest.fixture(scope="module")
def exp_iterates() -> PicardIterates:
    return picard_iterates(lambda t, y: y, (0.0, 1.0), 1.0, 12)


def test_shapes(exp_iterates):
    assert exp_iterates.t.shape == (2001,)
    assert exp_iterates.iterates.shape == (13, 1, 2001)
    assert exp_iterates.n_iterations == 12
    np.testing.assert_array_equal(exp_iterates.iterates[0], 1.0)


def test_iterates_of_y_prime_equals_y_are_taylor_partial_sums(exp_iterates):
    for k in range(13):
        expected = _taylor_exp(exp_iterates.t, k)
        np.testing.assert_allclose(exp_iterates.iterates[k, 0], expected, atol=QUADRATURE_TOL)


def test_error_decays_at_the_factorial_rate(exp_iterates):
    errors = exp_iterates.errors(np.exp(exp_iterates.t))
    k = np.arange(13)
    bound = picard_error_bound(k, L=1.0, M=1.0, h=1.0)
    assert np.all(errors <= bound + QUADRATURE_TOL)
    # Before the quadrature floor the error is the series tail, between 1/(k+1)! and e/(k+1)!.
    factorial = np.array([math.factorial(j + 1) for j in k[:9]], dtype=float)
    assert np.all(errors[:9] >= 1.0 / factorial)
    assert np.all(errors[:9] <= math.e / factorial + QUADRATURE_TOL)


def test_nonlinear_iterates_converge_to_the_solution():
    """y' = cos y, y(0) = 0 has solution arcsin(tanh t); L = 1 and |f(t, y0)| = 1."""
    result = picard_iterates(lambda t, y: np.cos(y), np.linspace(0.0, 2.0, 4001), 0.0, 15)
    errors = result.errors(np.arcsin(np.tanh(result.t)))
    bound = picard_error_bound(np.arange(16), L=1.0, M=1.0, h=2.0)
    assert np.all(errors <= bound + 1e-6)
    assert errors[-1] < 1e-6


def test_systems_are_iterated_componentwise():
    problem = get_problem("harmonic_oscillator")
    result = picard_iterates(problem.f, (0.0, 1.0), problem.y0, 14)
    assert result.iterates.shape == (15, 2, 2001)
    assert result.errors(problem.exact(result.t))[-1] < 1e-6


def test_grid_is_used_as_given():
    grid = np.array([0.0, 0.1, 0.3, 0.7, 1.0])
    result = picard_iterates(lambda t, y: np.ones(1), grid, [2.0], 1)
    np.testing.assert_array_equal(result.t, grid)
    np.testing.assert_allclose(result.iterates[1, 0], 2.0 + grid)


def test_error_bound_values():
    np.testing.assert_allclose(
        picard_error_bound([0, 1, 2], L=2.0, M=3.0, h=0.5),
        3.0 * np.array([0.5, 2.0 * 0.25 / 2, 4.0 * 0.125 / 6]) * np.exp(1.0),
    )
    assert picard_error_bound(3, L=1.0, M=1.0, h=1.0).shape == ()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"f": None}, TypeError, "`f` must be callable"),
        ({"t": (1.0, 0.0)}, ValueError, "`t` must be increasing"),
        ({"t": [0.0, 0.5, 0.4]}, ValueError, "`t` must be an interval .* strictly increasing"),
        ({"t": [0.0]}, ValueError, "`t` must be an interval"),
        ({"t": [[0.0, 1.0]]}, ValueError, "`t` must have 1 dimension"),
        ({"t": (0.0, np.nan)}, ValueError, "`t` must contain only finite values"),
        ({"y0": [np.inf]}, ValueError, "`y0` must contain only finite values"),
        ({"n_iterations": -1}, ValueError, "`n_iterations` must be an integer >= 0; got -1"),
        ({"n_iterations": 2.5}, TypeError, "`n_iterations` must be an integer"),
        ({"n_points": 2}, ValueError, "`n_points` must be an integer >= 3"),
        ({"f": lambda t, y: np.zeros(3)}, ValueError, r"`f\(t, y\)` must return 1 value"),
    ],
)
def test_picard_iterates_validation(kwargs, error, match):
    arguments = {"f": lambda t, y: y, "t": (0.0, 1.0), "y0": 1.0, "n_iterations": 2}
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        picard_iterates(**arguments)


@pytest.mark.parametrize(
    ("k", "kwargs", "match"),
    [
        (-1, {}, "`k` must be a non-negative integer"),
        (1.5, {}, "`k` must be a non-negative integer"),
        (1, {"L": 0.0}, "`L` must be positive"),
        (1, {"M": -1.0}, "`M` must be non-negative"),
        (1, {"h": -0.5}, "`h` must be positive"),
    ],
)
def test_error_bound_validation(k, kwargs, match):
    arguments = {"L": 1.0, "M": 1.0, "h": 1.0}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        picard_error_bound(k, **arguments)


def test_errors_validates_the_reference(exp_iterates):
    with pytest.raises(ValueError, match=r"`reference` must have shape \(1, 2001\)"):
        exp_iterates.errors(np.zeros((2, 2001)))


def test_errors_rejects_a_flattened_reference_for_a_system():
    problem = get_problem("harmonic_oscillator")
    result = picard_iterates(problem.f, (0.0, 1.0), problem.y0, 2, n_points=11)
    reference = problem.exact(result.t)
    assert result.errors(reference).shape == (3,)
    with pytest.raises(ValueError, match=r"`reference` must have shape \(2, 11\); got \(1, 22\)"):
        result.errors(reference.ravel())
