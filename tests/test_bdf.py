"""Tests for odecourse.bdf: the NDF coefficients, the difference array, accuracy, SciPy parity."""

import math
import re

import numpy as np
import pytest
import scipy.integrate
import scipy.sparse

from odecourse._loop import too_many_steps
from odecourse.bdf import (
    ALPHA,
    ERROR_CONSTANTS,
    GAMMA,
    KAPPA,
    MAX_ORDER,
    BdfInterpolant,
    integrate_bdf,
    rescale_differences,
)
from odecourse.convergence import observed_order

ORDERS = range(1, MAX_ORDER + 1)
LAM = -1000.0


def _backward_differences(values: np.ndarray) -> np.ndarray:
    """Rows D_j = nabla^j y_n from values y_n, y_{n-1}, ..., y_{n-k} (newest first)."""
    rows, current = [values[0]], values
    for _ in range(len(values) - 1):
        current = current[:-1] - current[1:]
        rows.append(current[0])
    return np.array(rows)


def _ndf_corrector(D: np.ndarray, k: int, h_fprime: float) -> float:
    """Solve the order-k NDF for y_{n+1} when f depends on t only (no Newton needed)."""
    predictor = D[: k + 1].sum()
    d = (h_fprime - GAMMA[1 : k + 1] @ D[1 : k + 1]) / ALPHA[k]
    return predictor + d


# --- The coefficients ---------------------------------------------------------------------


def test_kappa_are_shampine_reichelts_and_gamma_is_harmonic():
    assert KAPPA == pytest.approx([0.0, -0.1850, -1 / 9, -0.0823, -0.0415, 0.0], abs=0)
    assert GAMMA == pytest.approx([0.0, 1.0, 1.5, 11 / 6, 25 / 12, 137 / 60], rel=1e-15)
    assert ALPHA == pytest.approx((1 - KAPPA) * GAMMA, rel=1e-15)
    with pytest.raises(ValueError, match="read-only"):
        KAPPA[1] = 0.0


def test_ndf_error_constants_buy_shampine_reichelts_larger_steps():
    """(C_BDF / C_NDF)^(1/(k+1)): 26% larger steps at orders 1-3, 12% at 4, none at 5."""
    bdf_constants = 1 / (np.arange(MAX_ORDER + 1) + 1)
    assert ERROR_CONSTANTS[0] == 1 and ERROR_CONSTANTS[MAX_ORDER] == bdf_constants[MAX_ORDER]
    gain = [(bdf_constants[k] / ERROR_CONSTANTS[k]) ** (1 / (k + 1)) for k in ORDERS]
    assert np.round(gain, 2) == pytest.approx([1.26, 1.26, 1.26, 1.12, 1.0])


@pytest.mark.parametrize("k", ORDERS)
def test_ndf_of_order_k_is_exact_for_polynomials_of_degree_k(k):
    """On a constant step, y' = p'(t) with deg p = k is integrated exactly by NDF_k."""
    rng = np.random.default_rng(k)
    coefficients, h, t_n = rng.normal(size=k + 1), 0.3, 1.2
    p = np.polynomial.Polynomial(coefficients)
    D = _backward_differences(p(t_n - h * np.arange(k + 1)))
    y_new = _ndf_corrector(D, k, h * p.deriv()(t_n + h))
    assert y_new == pytest.approx(p(t_n + h), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("k", ORDERS)
def test_error_constant_is_the_defect_on_the_next_degree(k):
    """For deg p = k + 1 the error e of one step satisfies alpha_k e = C_k nabla^{k+1} p."""
    p = np.polynomial.Polynomial(np.arange(1.0, k + 3))
    h, t_n = 0.1, 0.5
    D = _backward_differences(p(t_n - h * np.arange(k + 1)))
    e = _ndf_corrector(D, k, h * p.deriv()(t_n + h)) - p(t_n + h)
    next_difference = _backward_differences(p(t_n + h - h * np.arange(k + 2)))[k + 1]
    assert ALPHA[k] * e == pytest.approx(ERROR_CONSTANTS[k] * next_difference, rel=1e-8)


# --- The difference array -----------------------------------------------------------------


@pytest.mark.parametrize("k", ORDERS)
@pytest.mark.parametrize("factor", [0.2, 0.5, 1.7, 10.0])
def test_rescaling_reproduces_the_same_interpolating_polynomial(k, factor):
    rng = np.random.default_rng(10 * k)
    D, h, t_n = rng.normal(size=(k + 3, 2)), 0.25, 3.0
    old = BdfInterpolant(t_n - h, t_n, h, D[: k + 1].copy())
    rescale_differences(D, k, factor)
    new = BdfInterpolant(t_n - factor * h, t_n, factor * h, D[: k + 1].copy())
    for t in t_n + h * np.linspace(-k, 1, 7):
        np.testing.assert_allclose(new(t), old(t), rtol=1e-10, atol=1e-10)
    rescale_differences(D, k, 1 / factor)
    np.testing.assert_allclose(D[: k + 1], old.D, rtol=1e-10, atol=1e-10)


def test_rescaling_by_one_changes_nothing_and_leaves_higher_rows_alone():
    D = np.random.default_rng(0).normal(size=(MAX_ORDER + 3, 3))
    original = D.copy()
    rescale_differences(D, 3, 1.0)
    np.testing.assert_allclose(D, original, rtol=1e-14, atol=1e-14)
    rescale_differences(D, 3, 0.5)
    np.testing.assert_array_equal(D[4:], original[4:])


@pytest.mark.parametrize("k", ORDERS)
def test_interpolant_passes_through_the_history(k):
    h, t_n = -0.2, 1.0  # a backward grid works the same way
    grid = t_n - h * np.arange(k + 1)
    values = np.stack([np.sin(grid), np.exp(grid)], axis=1)
    interpolant = BdfInterpolant(t_n - h, t_n, h, _backward_differences(values))
    for t, y in zip(grid, values, strict=True):
        np.testing.assert_allclose(interpolant(t), y, rtol=1e-12, atol=1e-12)


# --- Accuracy on problems with closed forms -----------------------------------------------


def _cosine(t, y):
    """y' = -1000 (y - cos t) - sin t, y(0) = 1: the solution is cos t."""
    return LAM * (y - np.cos(t)) - np.sin(t)


A_STIFF = np.array([[-500.5, 499.5], [499.5, -500.5]])  # eigenvalues -1 and -1000


def _linear(t, y):
    return A_STIFF @ y


def _linear_exact(t):
    """Solution of y' = A y with y(0) = (2, 0): e^{-t} (1, 1) + e^{-1000 t} (1, -1)."""
    return np.exp(-t) * np.ones(2) + np.exp(LAM * t) * np.array([1.0, -1.0])


def _global_error(result, exact):
    """Largest error over the trajectory, relative to 1 + |y| (atol = rtol: the tolerance scale)."""
    return max(
        np.max(np.abs(y - exact(t)) / (1 + np.abs(exact(t))))
        for t, y in zip(result.t, result.y, strict=True)
    )


@pytest.mark.parametrize(
    ("f", "y0", "exact", "t_end"),
    [
        (_cosine, [1.0], lambda t: np.array([np.cos(t)]), 10.0),
        (_linear, [2.0, 0.0], _linear_exact, 5.0),
    ],
    ids=["cosine", "eigenvalues-1-and-1000"],
)
def test_global_error_follows_the_tolerance(f, y0, exact, t_end):
    rtols = 10.0 ** -np.arange(3, 10)
    errors = []
    for rtol in rtols:
        result = integrate_bdf(f, (0.0, t_end), np.array(y0), rtol=rtol, atol=rtol)
        assert result.success and result.t[-1] == t_end
        errors.append(_global_error(result, exact))
    assert np.all(np.array(errors) < 10 * rtols)
    # At loose tolerances the damped fast mode keeps the error well below the tolerance,
    # so the slope is below one (0.7 for the cosine, 0.9 for the system; SciPy's BDF alike).
    assert np.all(np.diff(errors) < 0) and observed_order(rtols, errors) > 0.6


def test_integrates_backwards_in_time():
    result = integrate_bdf(lambda t, y: -y, (1.0, 0.0), np.array([1.0]), rtol=1e-8, atol=1e-10)
    assert result.success and result.t[-1] == 0.0
    assert result.y[-1][0] == pytest.approx(math.e, rel=1e-6)


def test_max_step_bounds_every_step_and_orders_stay_in_range():
    result = integrate_bdf(
        _cosine, (0.0, 10.0), np.array([1.0]), rtol=1e-7, atol=1e-7, max_step=0.5,
        dense_output=True,
    )  # fmt: skip
    assert np.all(np.abs(np.diff(result.t)) <= 0.5 * (1 + 1e-12))
    orders = {len(p.D) - 1 for p in result.interpolants}
    assert orders <= set(ORDERS) and max(orders) >= 3


# --- Dense output -------------------------------------------------------------------------


def test_dense_output_matches_states_at_step_ends_and_is_accurate_between():
    rtol = 1e-6
    result = integrate_bdf(
        _cosine, (0.0, 10.0), np.array([1.0]), rtol=rtol, atol=rtol, dense_output=True
    )
    assert len(result.interpolants) == result.n_steps
    for p, y_old, y_new in zip(result.interpolants, result.y[:-1], result.y[1:], strict=True):
        np.testing.assert_array_equal(p(p.t_new), y_new)
        np.testing.assert_allclose(p(p.t_old), y_old, rtol=1e-10, atol=1e-12)
        for t in np.linspace(p.t_old, p.t_new, 5)[1:-1]:
            assert abs(p(t)[0] - np.cos(t)) < 10 * rtol


def test_t_eval_is_filled_by_dense_output():
    t_eval = np.linspace(0.0, 10.0, 41)
    result = integrate_bdf(
        _cosine, (0.0, 10.0), np.array([1.0]), rtol=1e-6, atol=1e-6, t_eval=t_eval
    )
    np.testing.assert_array_equal(result.t, t_eval)
    np.testing.assert_allclose(np.ravel(result.y), np.cos(t_eval), atol=1e-5)


# --- The Jacobian -------------------------------------------------------------------------


def _forced(t, y):
    """A stiff linear system with forcing: y' = A y + (sin t, 0), y(0) = (2, 0)."""
    return A_STIFF @ y + np.array([np.sin(t), 0.0])


def _forced_exact(t):
    """Along the eigenvectors (1, 1) and (1, -1): u' = lam u + sin(t) / 2, u(0) = 1."""
    modes = []
    for lam in (-1.0, LAM):
        q = -0.5 / (1 + lam**2)  # u = (1 - q) e^{lam t} + q (lam sin t + cos t)
        modes.append((1 - q) * np.exp(lam * t) + q * (lam * np.sin(t) + np.cos(t)))
    return modes[0] * np.ones(2) + modes[1] * np.array([1.0, -1.0])


@pytest.mark.parametrize("rtol", [1e-4, 1e-7])
def test_jacobian_as_callable_matrix_or_differences_gives_the_same_solution(rtol):
    y0, kwargs = np.array([2.0, 0.0]), {"rtol": rtol, "atol": rtol}
    runs = {
        "callable": integrate_bdf(_forced, (0, 20), y0, jac=lambda t, y: A_STIFF, **kwargs),
        "matrix": integrate_bdf(_forced, (0, 20), y0, jac=A_STIFF.tolist(), **kwargs),
        "differences": integrate_bdf(_forced, (0, 20), y0, **kwargs),
    }
    reference = _forced_exact(20.0)
    for run in runs.values():
        assert run.success
        np.testing.assert_allclose(run.y[-1], reference, rtol=20 * rtol, atol=20 * rtol)
        assert run.njev < run.n_steps and run.nlu < run.n_steps
    assert runs["matrix"].njev == 0
    # As in SciPy, the n evaluations behind a finite-difference Jacobian are not in nfev.
    assert runs["differences"].njev > 0 and runs["differences"].nfev < 2 * runs["callable"].nfev


def _bad_jac_call(jac, n=2):
    return integrate_bdf(lambda t, y: -y, (0.0, 1.0), np.ones(n), jac=jac)


@pytest.mark.parametrize("sparse_jac", [True, False], ids=["matrix", "callable"])
def test_a_sparse_jacobian_is_accepted_and_gives_the_dense_result(sparse_jac):
    A = np.array([[-1.0, -5.0], [1.0, 1.0]])
    jac = scipy.sparse.csc_matrix(A) if sparse_jac else (lambda t, y: scipy.sparse.csr_matrix(A))
    sparse = integrate_bdf(lambda t, y: A @ y, (0.0, 2.0), np.array([0.0, 2.0]), jac=jac)
    dense = integrate_bdf(lambda t, y: A @ y, (0.0, 2.0), np.array([0.0, 2.0]), jac=A)
    np.testing.assert_array_equal(np.stack(sparse.y), np.stack(dense.y))


@pytest.mark.parametrize(
    ("jac", "error", "match"),
    [
        (np.eye(3), ValueError, r"`jac` must be an array of shape \(2, 2\); got shape \(3, 3\)"),
        ([1.0, 2.0], ValueError, r"`jac` must be an array of shape \(2, 2\); got shape \(2,\)"),
        ("identity", TypeError, r"`jac` must be an array of real numbers of shape \(2, 2\)"),
        ([[1.0, np.nan], [0, 1]], ValueError, r"`jac` must contain only finite values"),
        (lambda t, y: np.eye(3), ValueError, r"`jac\(t, y\)` must be an array of shape \(2, 2\)"),
        (lambda t, y: np.full((2, 2), np.inf), ValueError, r"`jac\(t, y\)` must be finite"),
    ],
    ids=["shape", "vector", "string", "nan", "call-shape", "call-inf"],
)
def test_invalid_jac_is_rejected_with_a_message_naming_it(jac, error, match):
    with pytest.raises(error, match=match):
        _bad_jac_call(jac)


# --- Honest failures ----------------------------------------------------------------------


def test_finite_time_blow_up_fails_with_a_message_naming_t_near_one():
    with np.errstate(over="ignore", invalid="ignore"):
        result = integrate_bdf(
            lambda t, y: y * y, (0.0, 2.0), np.array([1.0]), rtol=1e-3, atol=1e-6
        )
    assert not result.success and result.status == -1
    t_fail = float(re.search(r"at t = ([0-9.e+-]+)", result.message).group(1))
    assert t_fail == pytest.approx(result.t[-1], abs=1e-5)
    assert 0.98 < t_fail <= 1.0


def test_max_steps_stops_with_scipys_kind_of_message():
    result = integrate_bdf(_cosine, (0.0, 10.0), np.array([1.0]), max_steps=5)
    assert result.status == -1 and result.n_steps == 5
    assert result.message == too_many_steps(5, result.t[-1])


# --- Agreement with SciPy's BDF -----------------------------------------------------------


def _robertson(t, y):
    slow, medium, fast = 0.04 * y[0], 1e4 * y[1] * y[2], 3e7 * y[1] ** 2
    return np.array([-slow + medium, slow - medium - fast, fast])


def _robertson_jac(t, y):
    return np.array(
        [
            [-0.04, 1e4 * y[2], 1e4 * y[1]],
            [0.04, -1e4 * y[2] - 6e7 * y[1], -1e4 * y[1]],
            [0.0, 6e7 * y[1], 0.0],
        ]
    )


def _van_der_pol(t, y, mu=1000.0):
    return np.array([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]])


def _van_der_pol_jac(t, y, mu=1000.0):
    return np.array([[0.0, 1.0], [-2 * mu * y[0] * y[1] - 1, mu * (1 - y[0] ** 2)]])


#: y(3000) of Van der Pol, mu = 1000, y(0) = (2, 0), from SciPy's Radau at rtol 1e-12
#: (17 s, so computed once; rtol 1e-13 agrees to 13 digits).
VAN_DER_POL_3000 = np.array([-1.5106069367440982, 1.1783800007309398e-3])


class _CountedRhs:
    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, t, y):
        self.n += 1
        return self.f(t, y)


def _scaled_error(y, reference, rtol, atol):
    return float(np.sqrt(np.mean(((y - reference) / (atol + rtol * np.abs(reference))) ** 2)))


@pytest.fixture(scope="module")
def robertson_reference():
    return scipy.integrate.solve_ivp(
        _robertson, (0, 40), [1.0, 0, 0], method="Radau", rtol=1e-11, atol=1e-17,
        jac=_robertson_jac,
    ).y[:, -1]  # fmt: skip


@pytest.mark.parametrize(
    ("problem", "rtol", "use_jac"),
    [("robertson", 1e-4, True), ("robertson", 1e-7, True), ("robertson", 1e-4, False),
     ("van_der_pol", 1e-4, True)],
)  # fmt: skip
def test_matches_scipy_bdf_in_cost_and_accuracy(problem, rtol, use_jac, robertson_reference):
    """nfev within 1.25x of SciPy's (both counting every call of f), error within 3x."""
    f, jac, t_span, y0, reference = {
        "robertson": (_robertson, _robertson_jac, (0, 40), [1, 0, 0], robertson_reference),
        "van_der_pol": (_van_der_pol, _van_der_pol_jac, (0, 3000), [2, 0], VAN_DER_POL_3000),
    }[problem]
    atol, jac = rtol * 1e-3, jac if use_jac else None
    theirs_f = _CountedRhs(f)  # SciPy's nfev leaves out its finite-difference calls
    theirs = scipy.integrate.solve_ivp(
        theirs_f, t_span, y0, method="BDF", rtol=rtol, atol=atol, jac=jac
    )
    ours = integrate_bdf(f, t_span, np.array(y0, float), rtol=rtol, atol=atol, jac=jac)
    assert ours.success and theirs.success
    assert ours.nfev / theirs_f.n < 1.25
    ours_error = _scaled_error(ours.y[-1], reference, rtol, atol)
    theirs_error = _scaled_error(theirs.y[:, -1], reference, rtol, atol)
    assert ours_error < 3 * theirs_error
    assert _scaled_error(ours.y[-1], theirs.y[:, -1], rtol, atol) < 1  # agree to the tolerance
