"""Tests for odecourse.radau: the Radau IIA (order 5) coefficients and the stiff solver."""

import math
import re

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.sparse

import odecourse.radau as radau
from odecourse._loop import TERMINATION_MESSAGE, Recorder
from odecourse.convergence import observed_order
from odecourse.events import prepare_events
from odecourse.ivp import get_problem
from odecourse.order_conditions import algebraic_order
from odecourse.radau import (
    ERROR_WEIGHTS,
    MU_COMPLEX,
    MU_REAL,
    RADAU_IIA5,
    T_INV,
    T,
    integrate_radau,
)
from odecourse.stability import stability_function

SQRT6 = math.sqrt(6.0)
A, B, C = RADAU_IIA5.A, RADAU_IIA5.b, RADAU_IIA5.c
ROBERTSON = get_problem("robertson")
VDP = get_problem("van_der_pol", mu=1000.0)


def _stiff_cos(t, y):
    """y' = -1000 (y - cos t) - sin t, with solution cos t from y(0) = 1."""
    return -1000.0 * (y - np.cos(t)) - np.sin(t)


def _scaled(y, reference, rtol, atol):
    """Largest error in units of the tolerance."""
    return float(np.max(np.abs(y - reference) / (atol + rtol * np.abs(reference))))


# ----------------------------------------------------------------------------- coefficients


def test_coefficients_have_their_closed_forms():
    np.testing.assert_allclose(C, [(4 - SQRT6) / 10, (4 + SQRT6) / 10, 1.0], rtol=1e-15)
    closed = [
        [(88 - 7 * SQRT6) / 360, (296 - 169 * SQRT6) / 1800, (-2 + 3 * SQRT6) / 225],
        [(296 + 169 * SQRT6) / 1800, (88 + 7 * SQRT6) / 360, (-2 - 3 * SQRT6) / 225],
        [(16 - SQRT6) / 36, (16 + SQRT6) / 36, 1 / 9],
    ]
    np.testing.assert_allclose(A, closed, rtol=1e-13)
    np.testing.assert_array_equal(B, A[-1])  # stiffly accurate
    assert MU_REAL == pytest.approx(3 + 3 ** (2 / 3) - 3 ** (1 / 3), rel=1e-14)
    alpha, beta = 3 + (3 ** (1 / 3) - 3 ** (2 / 3)) / 2, (3 ** (5 / 6) + 3 ** (7 / 6)) / 2
    assert MU_COMPLEX == pytest.approx(complex(alpha, -beta), rel=1e-14)
    expected = np.array([-13 - 7 * SQRT6, -13 + 7 * SQRT6, -1]) / 3
    np.testing.assert_allclose(ERROR_WEIGHTS, expected, rtol=1e-12)


def test_simplifying_assumptions_b5_c3_d2_and_order_five():
    for k in range(1, 6):  # B(5), and not B(6)
        assert B @ C ** (k - 1) == pytest.approx(1 / k, rel=1e-13)
    assert B @ C**5 != pytest.approx(1 / 6, rel=1e-6)
    for k in range(1, 4):  # C(3): stage order 3
        np.testing.assert_allclose(A @ C ** (k - 1), C**k / k, rtol=1e-13)
    for k in range(1, 3):  # D(2)
        np.testing.assert_allclose((B * C ** (k - 1)) @ A, B * (1 - C**k) / k, atol=1e-14)
    assert algebraic_order(RADAU_IIA5, max_order=6) == 5


def test_transformation_block_diagonalises_a_inverse():
    alpha, beta = MU_COMPLEX.real, -MU_COMPLEX.imag
    block = np.array([[MU_REAL, 0, 0], [0, alpha, beta], [0, -beta, alpha]])
    np.testing.assert_allclose(T_INV @ np.linalg.inv(A) @ T, block, atol=1e-12)
    np.testing.assert_allclose(T @ T_INV, np.eye(3), atol=1e-14)
    np.testing.assert_allclose(T[-1], [1.0, 1.0, 0.0], atol=1e-14)  # Hairer's normalisation
    eigenvalues = np.linalg.eigvals(A)  # gamma0 = 1 / MU_REAL is the real eigenvalue of A
    assert min(abs(eigenvalues - 1 / MU_REAL)) < 1e-13


def test_stability_function_is_l_stable():
    R = stability_function(RADAU_IIA5)
    z = -(10.0 ** np.arange(4, 13))
    np.testing.assert_allclose(z * R(z), -3.0, rtol=1e-2)  # R(z) ~ -3/z -> 0: L-stable
    y = np.linspace(-50, 50, 1001)
    assert np.all(np.abs(R(1j * y)) <= 1 + 1e-12)  # A-stable on the imaginary axis
    rng = np.random.default_rng(0)
    left = -rng.exponential(5, 500) + 1j * rng.normal(0, 20, 500)
    assert np.all(np.abs(R(left)) <= 1 + 1e-12)
    assert R(np.array(-0.3))[()] == pytest.approx(np.exp(-0.3), rel=1e-6)


def test_embedded_formula_has_order_three():
    """On y' = p(t) the unfiltered estimate f_n + e^T Z / h is zero for deg p <= 2, not 3."""
    h = 0.37
    for degree in range(5):
        F = lambda t, d=degree: t ** (d + 1) / (d + 1)  # noqa: E731 (antiderivative of t^d)
        Z = np.array([F(c * h) for c in C])
        estimate = (0.0 if degree else 1.0) + ERROR_WEIGHTS @ Z / h
        assert (abs(estimate) < 1e-13) == (degree <= 2)


def test_dense_output_coefficients_are_the_collocation_polynomial():
    """b_j(theta) = P[j] . (theta, theta^2, theta^3): b(c_i) = A[i] (C(3)) and b(1) = b."""
    powers = C[:, None] ** np.arange(1, 4)
    np.testing.assert_allclose(powers @ RADAU_IIA5.P.T, A, atol=1e-14)
    np.testing.assert_allclose(RADAU_IIA5.P.sum(axis=1), B, atol=1e-14)


# ----------------------------------------------------------------------------- accuracy


def test_error_falls_with_the_tolerance_at_the_expected_rate():
    """Step ends have local error O(h^6) while h ~ tol^(1/4): global error ~ tol^(5/4)."""
    problem = get_problem("harmonic_oscillator")
    tols = 10.0 ** -np.arange(3, 9)
    errors = []
    for tol in tols:
        sol = integrate_radau(problem.f, problem.t_span, problem.y0, rtol=tol, atol=tol)
        errors.append(
            max(np.max(np.abs(y - problem.exact(t))) for t, y in zip(sol.t, sol.y, strict=True))
        )
        assert sol.success and errors[-1] < tol
    assert 1.0 <= observed_order(tols, errors) <= 1.5


@pytest.mark.parametrize("tol", [1e-3, 1e-5, 1e-7])
def test_global_error_on_a_stiff_problem_stays_near_the_tolerance(tol):
    sol = integrate_radau(_stiff_cos, (0.0, 10.0), np.array([1.0]), rtol=tol, atol=tol)
    assert sol.success and sol.n_steps < 60
    error = max(abs(y[0] - math.cos(t)) for t, y in zip(sol.t, sol.y, strict=True))
    assert error < 3 * tol


def test_backward_integration_and_t_eval():
    t_eval = np.linspace(1.0, 0.0, 11)
    sol = integrate_radau(lambda t, y: y, (1.0, 0.0), np.array([math.e]), t_eval=t_eval)
    assert sol.success and sol.t == list(t_eval)
    np.testing.assert_allclose(np.ravel(sol.y), np.exp(t_eval), rtol=1e-3)


# ----------------------------------------------------------------------------- against SciPy


@pytest.fixture(scope="module")
def references():
    """Tight solutions (SciPy's Radau at rtol 1e-10) at the ends of the comparison runs."""
    spans = {"robertson": (0.0, 40.0), "van_der_pol": (0.0, 1000.0)}
    problems = {"robertson": ROBERTSON, "van_der_pol": VDP}
    return {
        name: scipy.integrate.solve_ivp(
            p.f, spans[name], p.y0, method="Radau", rtol=1e-10, atol=1e-13, jac=p.jacobian
        ).y[:, -1]
        for name, p in problems.items()
    }


@pytest.mark.parametrize(
    "name, t1, rtol, exact_jac",
    [
        ("robertson", 40.0, 1e-4, True),
        ("robertson", 40.0, 1e-7, True),
        ("robertson", 40.0, 1e-4, False),
        ("van_der_pol", 1000.0, 1e-4, True),
    ],
)
def test_agrees_with_scipy_radau_at_no_greater_cost(references, name, t1, rtol, exact_jac):
    """Same final state to the tolerance; nfev within 1.25x and error within 3x of SciPy's.

    SciPy's ``nfev`` leaves out its finite-difference Jacobians; ours counts them, so the
    cost is compared by counting SciPy's calls of ``f`` directly.
    """
    problem, atol = (ROBERTSON if name == "robertson" else VDP), 1e-3 * rtol
    jac = problem.jacobian if exact_jac else None
    calls = []

    def f(t, y):
        calls.append(t)
        return problem.f(t, y)

    theirs = scipy.integrate.solve_ivp(
        f, (0.0, t1), problem.y0, method="Radau", rtol=rtol, atol=atol, jac=jac
    )
    ours = integrate_radau(problem.f, (0.0, t1), problem.y0, rtol=rtol, atol=atol, jac=jac)
    assert ours.success and theirs.success
    assert _scaled(ours.y[-1], theirs.y[:, -1], rtol, atol) < 1.0
    assert ours.nfev <= 1.25 * len(calls)
    reference = references[name]
    ours_error = _scaled(ours.y[-1], reference, rtol, atol)
    assert ours_error <= 3 * _scaled(theirs.y[:, -1], reference, rtol, atol)


def test_counts_every_evaluation_and_factorisations_in_pairs():
    calls = []

    def f(t, y):
        calls.append(t)
        return ROBERTSON.f(t, y)

    sol = integrate_radau(f, (0.0, 40.0), ROBERTSON.y0, rtol=1e-4, atol=1e-7)
    # As in SciPy, nfev leaves out the n = 3 evaluations of each finite-difference Jacobian.
    assert sol.nfev + 3 * sol.njev == len(calls)
    assert sol.nlu % 2 == 0 and 0 < sol.njev < sol.n_steps  # real + complex LU per pair


# ----------------------------------------------------------------------------- dense output


def test_dense_output_matches_step_ends_and_is_accurate_between_them():
    problem = get_problem("harmonic_oscillator")
    tol = 1e-6
    sol = integrate_radau(
        problem.f, problem.t_span, problem.y0, rtol=tol, atol=tol, dense_output=True
    )
    assert len(sol.interpolants) == sol.n_steps
    worst = 0.0
    for k, piece in enumerate(sol.interpolants):
        assert (piece.t_old, piece.t_new) == (sol.t[k], sol.t[k + 1])
        np.testing.assert_allclose(piece(piece.t_old), sol.y[k], rtol=0, atol=1e-14)
        np.testing.assert_allclose(piece(piece.t_new), sol.y[k + 1], rtol=0, atol=1e-14)
        for t in np.linspace(piece.t_old, piece.t_new, 7):
            worst = max(worst, float(np.max(np.abs(piece(t) - problem.exact(t)))))
    assert worst < 2 * tol


# ----------------------------------------------------------------------------- Jacobians


def test_jacobian_callable_matrix_and_differences_agree_and_are_reused():
    M = np.array([[-1000.0, 1.0], [0.0, -0.5]])
    exact = scipy.linalg.expm(M * 2.0) @ np.array([1.0, 1.0])
    rtol, atol = 1e-6, 1e-9
    solutions = [
        integrate_radau(lambda t, y: M @ y, (0.0, 2.0), np.ones(2), rtol=rtol, atol=atol, jac=j)
        for j in (lambda t, y: M, M, M.tolist(), None)
    ]
    for sol in solutions:
        assert sol.success and _scaled(sol.y[-1], exact, rtol, atol) < 3
    assert solutions[1].njev == 0 and solutions[1].nfev == solutions[0].nfev
    for jac in (ROBERTSON.jacobian, None):
        args = (ROBERTSON.f, ROBERTSON.t_span, ROBERTSON.y0)
        sol = integrate_radau(*args, rtol=1e-5, atol=1e-9, jac=jac)
        assert sol.njev < sol.n_steps / 2


def test_non_finite_jacobian_at_run_time_fails_honestly():
    def jac(t, y):
        return np.full((1, 1), np.nan if t > 0.5 else -1.0)

    sol = integrate_radau(lambda t, y: -(y**3), (0.0, 5.0), np.ones(1), jac=jac)
    assert not sol.success and "non-finite" in sol.message and "t = " in sol.message


@pytest.mark.parametrize(
    "jac, error, match",
    [
        (np.eye(2), ValueError, r"`jac` \(None, a callable .* shape \(3, 3\); got shape"),
        (np.ones(3), ValueError, r"shape \(3, 3\); got shape \(3,\)"),
        ("identity", TypeError, r"`jac` .* array of real numbers of shape \(3, 3\); got str"),
        (1j * np.eye(3), TypeError, r"array of real numbers"),
        (np.full((3, 3), np.inf), ValueError, r"`jac` must contain only finite values"),
        (lambda t, y: np.eye(2), ValueError, r"`jac\(t, y\)` must be an array of shape"),
        (lambda t, y: None, TypeError, r"`jac\(t, y\)` must be an array of real numbers.*None"),
    ],
)
def test_jac_validation(jac, error, match):
    with pytest.raises(error, match=match):
        integrate_radau(lambda t, y: -y, (0.0, 1.0), np.ones(3), jac=jac)


def test_a_sparse_jacobian_is_accepted_and_gives_the_dense_result():
    A = np.array([[-1.0, -5.0], [1.0, 1.0]])
    y0 = np.array([0.0, 2.0])
    sparse = integrate_radau(lambda t, y: A @ y, (0.0, 2.0), y0, jac=scipy.sparse.csc_matrix(A))
    dense = integrate_radau(lambda t, y: A @ y, (0.0, 2.0), y0, jac=A)
    np.testing.assert_array_equal(np.stack(sparse.y), np.stack(dense.y))


def test_jac_message_names_the_shapes():
    expected = "`jac(t, y)` must be an array of shape (3, 3); got shape (2, 2)."
    with pytest.raises(ValueError, match=re.escape(expected)):
        integrate_radau(lambda t, y: -y, (0.0, 1.0), np.ones(3), jac=lambda t, y: np.eye(2))


# ----------------------------------------------------------------------------- failures


@pytest.mark.parametrize("jac", [None, lambda t, y: np.array([[2.0 * y[0]]])])
def test_blow_up_fails_near_the_singularity(jac):
    """y' = y^2, y(0) = 1 has y = 1/(1 - t): no solution reaches t = 2."""
    sol = integrate_radau(lambda t, y: y * y, (0.0, 2.0), np.ones(1), jac=jac)
    assert not sol.success and sol.status == -1
    t_fail = float(re.search(r"at t = ([-+.\deE]+)", sol.message).group(1))
    assert t_fail == pytest.approx(1.0, abs=1e-3) and sol.t[-1] < 1.001


def test_non_finite_right_hand_side_is_never_success():
    def f(t, y):
        return -y if t < 0.5 else np.full_like(y, np.nan)

    sol = integrate_radau(f, (0.0, 1.0), np.ones(2))
    assert not sol.success and "t = 0.5" in sol.message


def test_max_steps_and_max_step():
    sol = integrate_radau(_stiff_cos, (0.0, 10.0), np.array([1.0]), max_steps=3)
    assert sol.status == -1 and "maximum number of steps (3)" in sol.message
    sol = integrate_radau(_stiff_cos, (0.0, 10.0), np.array([1.0]), max_step=0.5)
    assert sol.success and np.max(np.diff(sol.t)) <= 0.5 * (1 + 1e-12)


def test_a_terminal_event_stops_the_integration_on_the_collocation_polynomial():
    half = lambda t, y: y[0] - 0.5  # noqa: E731
    half.terminal = True
    sol = integrate_radau(
        lambda t, y: -y, (0.0, 5.0), np.ones(1), rtol=1e-8, atol=1e-10, events=prepare_events(half)
    )
    assert sol.status == 1 and sol.message == TERMINATION_MESSAGE
    assert sol.t[-1] == pytest.approx(math.log(2.0), rel=1e-7)


def test_terminated_recorder_stops_with_status_one(monkeypatch):
    class StopAfterTwo(Recorder):
        def record(self, t_new, y_new, interpolant):
            super().record(t_new, y_new, interpolant)
            self.terminated = len(self.t) > 2

    monkeypatch.setattr(radau, "Recorder", StopAfterTwo)
    sol = integrate_radau(_stiff_cos, (0.0, 10.0), np.array([1.0]))
    assert sol.status == 1 and sol.success and sol.message == TERMINATION_MESSAGE
    assert sol.n_steps == 2


def test_lu_solve_is_scipys_to_the_last_bit():
    from odecourse._arrays import lu_solve

    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 6)) + 6 * np.eye(6)
    real = scipy.linalg.lu_factor(A)
    pair = scipy.linalg.lu_factor(A + 0.5j * np.eye(6))
    b = rng.standard_normal(6)
    for factors, rhs in ((real, b), (pair, b + 1j * b[::-1]), (real, rng.standard_normal((6, 2)))):
        ours, theirs = lu_solve(factors, rhs), scipy.linalg.lu_solve(factors, rhs)
        assert ours.dtype == theirs.dtype and ours.tobytes() == theirs.tobytes()
    with pytest.raises(ValueError, match="incompatible"):  # SciPy's own error
        lu_solve(real, np.ones(5))
    with pytest.raises(ValueError, match="infs or NaNs"):
        lu_solve(real, np.full(6, np.nan))
    assert np.isnan(lu_solve(real, np.full(6, np.nan), check_finite=False)).all()
