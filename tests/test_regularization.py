"""Tests for odecourse.regularization: the RNODE penalties, Hutchinson's estimator, training."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from odecourse.data import concentric_circles
from odecourse.neural_ode import ODEFunc
from odecourse.odeint import SolveStats
from odecourse.regularization import (
    PROBES,
    RegularizedDynamics,
    RegularizedODEClassifier,
    RNODEHistory,
    RNODESolution,
    draw_probe,
    exact_frobenius,
    frobenius_estimate,
    rnode_solve,
    train_rnode,
)
from odecourse.seeding import seed_everything

DTYPE = torch.float64
A_NP = np.array([[-0.5, 1.2, 0.0], [-0.8, 0.1, 0.4], [0.3, -0.2, -0.3]])
A = torch.tensor(A_NP, dtype=DTYPE)


def linear_field(t, z):
    """f(z) = A z, applied row by row."""
    return z @ A.T


def kinetic_closed_form(z0: np.ndarray, T: float) -> float:
    """int_0^T |A e^{At} z0|^2 dt by Van Loan's block exponential."""
    d = A_NP.shape[0]
    Q = A_NP.T @ A_NP
    M = np.block([[-A_NP.T, Q], [np.zeros((d, d)), A_NP]])
    E = scipy.linalg.expm(M * T)
    gramian = E[d:, d:].T @ E[:d, d:]  # int_0^T e^{A^T t} Q e^{A t} dt
    return float(z0 @ gramian @ z0)


# --------------------------------------------------------------------------- linear fields


def test_van_loan_matches_quadrature():
    """The closed form used below agrees with dense Gauss-Legendre quadrature."""
    z0, T = np.array([1.0, -0.5, 2.0]), 1.5
    nodes, weights = np.polynomial.legendre.leggauss(40)
    ts = 0.5 * T * (nodes + 1)
    values = [np.sum((A_NP @ scipy.linalg.expm(A_NP * t) @ z0) ** 2) for t in ts]
    assert kinetic_closed_form(z0, T) == pytest.approx(0.5 * T * np.dot(weights, values), rel=1e-12)


@pytest.mark.parametrize("error_control", ["state", "all"])
@pytest.mark.parametrize("rtol", [1e-4, 1e-7])
def test_kinetic_energy_of_linear_field(rtol, error_control):
    torch.manual_seed(0)
    z0 = torch.randn(5, 3, dtype=DTYPE)
    T = 1.5
    solution = rnode_solve(
        linear_field, z0, T, rtol=rtol, atol=rtol * 1e-2, error_control=error_control
    )
    expected = torch.tensor([kinetic_closed_form(z, T) for z in z0.numpy()], dtype=DTYPE)
    torch.testing.assert_close(solution.kinetic, expected, rtol=20 * rtol, atol=0)
    exact_z = z0 @ torch.tensor(scipy.linalg.expm(A_NP * T), dtype=DTYPE).T
    torch.testing.assert_close(solution.z, exact_z, rtol=20 * rtol, atol=0)


def test_kinetic_error_shrinks_with_tolerance():
    """The quadrature of |f|^2 converges with the solver: a looser tolerance is worse."""
    z0 = torch.tensor([[1.0, -0.5, 2.0]], dtype=DTYPE)
    expected = kinetic_closed_form(z0[0].numpy(), 1.0)
    errors = [
        abs(rnode_solve(linear_field, z0, rtol=r, atol=r * 1e-2).kinetic.item() - expected)
        for r in (1e-3, 1e-6, 1e-9)
    ]
    assert errors[0] > 100 * errors[1] and errors[1] > 100 * errors[2]


@pytest.mark.parametrize("kind", PROBES)
def test_jacobian_term_of_linear_field_is_T_times_estimate(kind):
    """The integrand |eps^T A|^2 is constant in time: J = T |eps^T A|^2 for each sample."""
    generator = torch.Generator().manual_seed(1)
    z0 = torch.randn(6, 3, dtype=DTYPE, generator=generator)
    probe = draw_probe(z0, kind, generator)
    T = 2.5
    solution = rnode_solve(linear_field, z0, T, probe=probe)
    expected = T * (probe @ A).pow(2).sum(dim=1)
    torch.testing.assert_close(solution.jacobian, expected, rtol=1e-13, atol=0)


def _estimator_variance(kind: str) -> float:
    """Variance of eps^T B eps with B = A A^T: 2|B|_F^2 (Gaussian), minus 2 sum B_ii^2 (+-1)."""
    B = A_NP @ A_NP.T
    variance = 2 * np.sum(B**2)
    return variance - 2 * np.sum(np.diag(B) ** 2) if kind == "rademacher" else variance


@pytest.mark.parametrize("kind", PROBES)
def test_jacobian_term_is_unbiased(kind):
    """Over many probes, the mean of J approaches T |A|_F^2 within the known standard error."""
    n, T = 4000, 0.5
    generator = torch.Generator().manual_seed(2)
    z0 = torch.ones(n, 3, dtype=DTYPE)
    solution = rnode_solve(linear_field, z0, T, probe=kind, generator=generator)
    target = T * np.sum(A_NP**2)
    standard_error = T * math.sqrt(_estimator_variance(kind) / n)
    assert abs(solution.jacobian.mean().item() - target) < 4 * standard_error
    # and the sample variance matches the theory (the estimator is the one we think it is)
    observed = solution.jacobian.var().item() / T**2
    assert observed == pytest.approx(_estimator_variance(kind), rel=0.2)


def test_rademacher_has_smaller_variance_than_gaussian():
    assert _estimator_variance("rademacher") < _estimator_variance("gaussian")


# --------------------------------------------------------------------------- the integrand


def _small_mlp() -> ODEFunc:
    torch.manual_seed(3)
    return ODEFunc(4, hidden=6, depth=2, activation="tanh", time_dependent=True).double()


def test_exact_frobenius_matches_full_jacobian():
    func = _small_mlp()
    z = torch.randn(5, 4, dtype=DTYPE)
    t = torch.tensor(0.3, dtype=DTYPE)
    expected = torch.stack(
        [
            torch.autograd.functional.jacobian(lambda v: func(t, v[None])[0], row).pow(2).sum()
            for row in z
        ]
    )
    torch.testing.assert_close(exact_frobenius(func, t, z), expected, rtol=1e-12, atol=0)


def test_frobenius_estimate_is_quadratic_form_of_the_jacobian():
    func = _small_mlp()
    z = torch.randn(5, 4, dtype=DTYPE, requires_grad=True)
    t = torch.tensor(0.3, dtype=DTYPE)
    probe = draw_probe(z, "gaussian", torch.Generator().manual_seed(0))
    estimate = frobenius_estimate(func(t, z), z, probe)
    expected = torch.stack(
        [
            (eps @ torch.autograd.functional.jacobian(lambda v: func(t, v[None])[0], row))
            .pow(2)
            .sum()
            for eps, row in zip(probe, z.detach(), strict=True)
        ]
    )
    torch.testing.assert_close(estimate, expected, rtol=1e-12, atol=0)
    assert estimate.requires_grad  # create_graph: differentiable for training


def test_frobenius_estimate_of_field_independent_of_z_is_zero():
    z = torch.randn(3, 2, dtype=DTYPE, requires_grad=True)
    bias = torch.ones(2, dtype=DTYPE, requires_grad=True)
    for f_value in (bias.expand(3, 2), torch.ones(3, 2, dtype=DTYPE)):
        estimate = frobenius_estimate(f_value, z, torch.ones_like(z))
        assert estimate.shape == (3,) and bool((estimate == 0).all())


@pytest.mark.parametrize("kind", PROBES)
def test_draw_probe_moments_and_reproducibility(kind):
    z = torch.zeros(4000, 20, dtype=DTYPE)
    probe = draw_probe(z, kind, torch.Generator().manual_seed(4))
    again = draw_probe(z, kind, torch.Generator().manual_seed(4))
    assert torch.equal(probe, again) and probe.dtype == DTYPE and probe.shape == z.shape
    if kind == "rademacher":
        assert set(probe.unique().tolist()) == {-1.0, 1.0}
    # E[eps eps^T] = I: second moments within 5 standard errors (var of eps_i eps_j <= 2)
    second = probe.T @ probe / probe.shape[0]
    assert (second - torch.eye(20)).abs().max() < 5 * math.sqrt(2 / probe.shape[0])


# --------------------------------------------------------------------------- the solve


def test_dynamics_outside_grad_mode_and_probe_checks():
    func = _small_mlp()
    dynamics = RegularizedDynamics(func)
    z = torch.randn(3, 4, dtype=DTYPE)
    state = (z, torch.zeros(3), torch.zeros(3))
    t = torch.tensor(0.0, dtype=DTYPE)
    with pytest.raises(RuntimeError, match="set_probe"):
        dynamics(t, state)
    dynamics.set_probe(torch.ones(3, 4, dtype=DTYPE))
    with torch.no_grad():
        f_value, kinetic, jacobian = dynamics(t, state)
    assert not f_value.requires_grad and not jacobian.requires_grad
    torch.testing.assert_close(kinetic, func(t, z).detach().pow(2).sum(1))
    assert kinetic.shape == jacobian.shape == (3,) and bool((jacobian > 0).all())
    assert len(list(dynamics.parameters())) == len(list(func.parameters()))
    dynamics.set_probe(torch.ones(2, 4, dtype=DTYPE))
    with pytest.raises(ValueError, match="`probe` must have the shape"):
        dynamics(t, state)


def test_rnode_solve_under_no_grad_matches_grad_mode():
    func = _small_mlp()
    z0 = torch.randn(4, 4, dtype=DTYPE)
    probe = draw_probe(z0, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        quiet = rnode_solve(func, z0, probe=probe)
    loud = rnode_solve(func, z0, probe=probe)
    assert isinstance(quiet, RNODESolution) and not quiet.jacobian.requires_grad
    assert loud.jacobian.requires_grad and loud.kinetic.requires_grad
    for name in ("z", "kinetic", "jacobian"):
        a, b = getattr(quiet, name), getattr(loud, name)
        torch.testing.assert_close(a, b.detach(), rtol=1e-12, atol=1e-14)


def test_state_error_control_takes_the_steps_of_the_plain_solve():
    from odecourse.odeint import odeint

    func = _small_mlp()
    z0 = torch.randn(4, 4, dtype=DTYPE)
    t = torch.tensor([0.0, 1.0], dtype=DTYPE)
    plain_stats, state_stats, all_stats = SolveStats(), SolveStats(), SolveStats()
    plain = odeint(func, z0, t, rtol=1e-6, atol=1e-8, stats=plain_stats)[-1]
    state = rnode_solve(func, z0, rtol=1e-6, atol=1e-8, stats=state_stats)
    rnode_solve(func, z0, rtol=1e-6, atol=1e-8, error_control="all", stats=all_stats)
    assert torch.equal(state.z, plain)
    assert state_stats.nfe == plain_stats.nfe and state_stats.n_steps == plain_stats.n_steps
    assert all_stats.n_steps >= state_stats.n_steps


def _parameter_gradient_check(penalty: str) -> None:
    torch.manual_seed(6)
    func = ODEFunc(2, hidden=3, depth=1, activation="tanh").double()
    z0 = torch.randn(3, 2, dtype=DTYPE)
    probe = draw_probe(z0, "gaussian", torch.Generator().manual_seed(7))
    solver = {"method": "rk4", "options": {"step_size": 0.25}}

    def objective() -> torch.Tensor:
        solution = rnode_solve(func, z0, 1.0, probe=probe, **solver)
        return getattr(solution, penalty).sum()

    params = list(func.parameters())
    grads = torch.autograd.grad(objective(), params)
    h = 1e-6
    with torch.no_grad():
        for p, g in zip(params, grads, strict=True):
            flat, gflat = p.view(-1), g.reshape(-1)
            for i in range(flat.numel()):
                keep = flat[i].item()
                flat[i] = keep + h
                up = objective().item()
                flat[i] = keep - h
                down = objective().item()
                flat[i] = keep
                assert gflat[i].item() == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("penalty", ["kinetic", "jacobian"])
def test_penalty_gradients_match_finite_differences(penalty):
    _parameter_gradient_check(penalty)


def test_jacobian_penalty_gradcheck_in_initial_state():
    torch.manual_seed(8)
    func = ODEFunc(2, hidden=3, depth=1, activation="tanh").double()
    probe = torch.tensor([[1.0, -1.0], [-1.0, -1.0]], dtype=DTYPE)

    def penalties(z0):
        solution = rnode_solve(func, z0, 0.5, probe=probe, method="rk4")
        return solution.kinetic, solution.jacobian

    z0 = torch.randn(2, 2, dtype=DTYPE, requires_grad=True)
    assert torch.autograd.gradcheck(penalties, (z0,))


# --------------------------------------------------------------------------- the classifier


def _circles():
    data = concentric_circles(120, seed=0)
    return data.X_train.to(DTYPE), data.y_train


def _model(**solver) -> RegularizedODEClassifier:
    seed_everything(0)
    return RegularizedODEClassifier(2, 2, hidden=8, depth=2, **solver).double()


def test_classifier_attributes_and_forward():
    model = _model(augment_dim=1)
    X, _ = _circles()
    assert isinstance(model.func, ODEFunc) and model.func is model.block.func
    assert model.readout.in_features == 3
    model.func.reset()
    logits = model(X)
    plain_nfe = model.nfe
    assert logits.shape == (X.shape[0], 2) and plain_nfe > 0
    model.func.reset()
    logits2, kinetic, jacobian = model.forward_with_penalties(
        X, generator=torch.Generator().manual_seed(0)
    )
    assert model.nfe == plain_nfe and torch.equal(logits, logits2)
    assert kinetic.ndim == jacobian.ndim == 0 and kinetic.item() > 0 and jacobian.item() > 0
    with pytest.raises(TypeError, match="gradient"):
        RegularizedODEClassifier(2, 2, gradient="adjoint")


def test_weight_zero_reproduces_plain_training():
    X, y = _circles()
    plain = _model()
    optimiser = torch.optim.Adam(plain.parameters(), lr=0.01)
    losses, nfes = [], []
    for _ in range(8):
        plain.func.reset()
        optimiser.zero_grad()
        loss = F.cross_entropy(plain(X), y)
        nfes.append(plain.nfe)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    history = train_rnode(_model(), X, y, weight=0.0, n_iters=8)
    assert history.nfe == nfes
    np.testing.assert_allclose(history.loss, losses, rtol=1e-12, atol=0)
    assert history.loss == history.cross_entropy
    assert all(k > 0 for k in history.kinetic) and all(j > 0 for j in history.jacobian)


def test_regularisation_reduces_the_kinetic_energy():
    X, y = _circles()
    runs = {w: train_rnode(_model(), X, y, weight=w, n_iters=25, lr=0.05) for w in (0.0, 0.1)}
    for history in runs.values():
        assert isinstance(history, RNODEHistory) and len(history.nfe) == 25
        assert all(math.isfinite(v) for v in history.loss + history.kinetic + history.jacobian)
    assert runs[0.1].kinetic[-1] < 0.8 * runs[0.0].kinetic[-1]
    assert max(runs[0.1].nfe[-5:]) < min(runs[0.0].nfe[-5:])  # cheaper solves, the aim
    loss = runs[0.1]
    expected = [
        c + 0.1 * (k + j)
        for c, k, j in zip(loss.cross_entropy, loss.kinetic, loss.jacobian, strict=True)
    ]
    np.testing.assert_allclose(loss.loss, expected, rtol=1e-12)


# --------------------------------------------------------------------------- validation


def test_validation_of_the_integrand_functions():
    z = torch.zeros(2, 3, dtype=DTYPE, requires_grad=True)
    with pytest.raises(TypeError, match="`z` must be a floating"):
        frobenius_estimate(z, torch.zeros(2, 3, dtype=torch.int64), z)
    with pytest.raises(ValueError, match="`f_value` must have the shape"):
        frobenius_estimate(torch.zeros(2, 2), z, torch.ones_like(z))
    with pytest.raises(ValueError, match="`probe` must have the shape"):
        frobenius_estimate(z * 2, z, torch.ones(3, 3))
    with pytest.raises(ValueError, match="`z` must require grad"):
        frobenius_estimate(z * 2, z.detach(), torch.ones(2, 3))
    with pytest.raises(TypeError, match="`func` must be callable"):
        exact_frobenius(3, 0.0, z)
    with pytest.raises(ValueError, match="`z` must have shape"):
        exact_frobenius(linear_field, 0.0, torch.zeros(3))
    with pytest.raises(ValueError, match="`kind` must be one of"):
        draw_probe(z, "uniform")
    with pytest.raises(TypeError, match=r"`generator` must be a torch\.Generator"):
        draw_probe(z, generator=0)
    with pytest.raises(TypeError, match="`z` must be a floating"):
        draw_probe([1.0, 2.0])
    with pytest.raises(TypeError, match="`func` must be callable"):
        RegularizedDynamics("f")
    with pytest.raises(TypeError, match="`probe` must be a floating"):
        RegularizedDynamics(linear_field).set_probe(np.ones((2, 3)))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"func": None}, TypeError, "`func` must be callable"),
        ({"z0": np.zeros((2, 3))}, TypeError, "`z0` must be a floating"),
        ({"z0": torch.zeros(3, dtype=DTYPE)}, ValueError, r"`z0` must have shape \(batch, d\)"),
        ({"z0": torch.zeros(0, 3, dtype=DTYPE)}, ValueError, "`z0` must have shape"),
        ({"T": 0.0}, ValueError, "`T` must be positive"),
        ({"T": "1"}, TypeError, "`T`"),
        ({"probe": "uniform"}, ValueError, "`probe` must be one of"),
        ({"probe": 1}, TypeError, "`probe` must be one of"),
        ({"probe": torch.ones(2, 2)}, ValueError, "`probe` must have the shape"),
        ({"generator": 1}, TypeError, "`generator` must be a torch.Generator"),
        ({"rtol": -1.0}, ValueError, "`rtol` must be non-negative"),
        ({"atol": float("nan")}, ValueError, "`atol`"),
        ({"method": "leapfrog"}, ValueError, "method"),
        ({"options": {"bogus": 1}}, ValueError, "unknown option 'bogus'"),
        ({"error_control": "z"}, ValueError, "`error_control` must be one of"),
    ],
)
def test_rnode_solve_validation(kwargs, error, match):
    arguments = {"func": linear_field, "z0": torch.zeros(2, 3, dtype=DTYPE)} | kwargs
    func, z0 = arguments.pop("func"), arguments.pop("z0")
    with pytest.raises(error, match=match):
        rnode_solve(func, z0, **arguments)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model": torch.nn.Linear(2, 2)}, TypeError, "`model` must be a RegularizedODEClassifier"),
        ({"X": torch.zeros(4, 2, dtype=torch.int64)}, TypeError, "`X` must be a floating"),
        ({"X": torch.zeros(4, 3, dtype=DTYPE)}, ValueError, r"`X` must have shape \(n, 2\)"),
        ({"y": torch.zeros(4, dtype=DTYPE)}, TypeError, "`y` must be an integer tensor"),
        ({"y": torch.zeros(3, dtype=torch.int64)}, ValueError, r"`y` must have shape \(4,\)"),
        ({"y": torch.tensor([0, 1, 2, 0])}, ValueError, r"`y` must hold class indices in \[0, 1\]"),
        ({"weight": -0.1}, ValueError, "`weight` must be finite and non-negative"),
        ({"weight": float("inf")}, ValueError, "`weight`"),
        ({"weight": "0.1"}, TypeError, "`weight`"),
        ({"n_iters": 0}, ValueError, "`n_iters` must be an integer >= 1"),
        ({"n_iters": 2.5}, TypeError, "`n_iters` must be an integer"),
        ({"lr": 0.0}, ValueError, "`lr` must be positive"),
        ({"seed": -1}, ValueError, "`seed` must be an integer >= 0"),
        ({"probe": "uniform"}, ValueError, "`probe` must be one of"),
    ],
)
def test_train_rnode_validation(kwargs, error, match):
    arguments = {
        "model": _model(),
        "X": torch.zeros(4, 2, dtype=DTYPE),
        "y": torch.tensor([0, 1, 1, 0]),
        "weight": 0.1,
        "n_iters": 1,
    } | kwargs
    model, X, y = arguments.pop("model"), arguments.pop("X"), arguments.pop("y")
    with pytest.raises(error, match=match):
        train_rnode(model, X, y, **arguments)


def test_forward_with_penalties_validation():
    model = _model()
    with pytest.raises(TypeError, match="`x` must be a floating"):
        model.forward_with_penalties([[0.0, 1.0]])
    with pytest.raises(ValueError, match="`x` must have shape"):
        model.forward_with_penalties(torch.zeros(2, dtype=DTYPE))
