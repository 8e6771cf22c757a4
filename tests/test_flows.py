"""Tests for odecourse.flows: the change of variables on closed forms, traces, gradients, errors."""

import math

import pytest
import torch
from torch import nn

from odecourse.flows import (
    CNF,
    FlowHistory,
    fit_flow,
    hutchinson_variance,
    standard_normal_log_prob,
    trace_exact,
    trace_hutchinson,
)
from odecourse.neural_ode import ODEFunc
from odecourse.regularization import draw_probe, exact_frobenius, frobenius_estimate

DT = torch.float64


class Linear(nn.Module):
    """f(t, z) = A z, row by row."""

    def __init__(self, A: torch.Tensor) -> None:
        super().__init__()
        self.A = nn.Parameter(A.clone())

    def forward(self, t, z):
        return z @ self.A.T


class Tanh(nn.Module):
    """A small smooth nonlinear field with time input: W2 tanh(W1 [z, t] + b1) + b2."""

    def __init__(self, d: int = 2, width: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.inner = nn.Linear(d + 1, width).double()
        self.outer = nn.Linear(width, d).double()

    def forward(self, t, z):
        return self.outer(torch.tanh(self.inner(torch.cat([z, t.expand(z.shape[0], 1)], -1))))


def _matrix(d: int, seed: int, scale: float = 0.6) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(d, d, generator=generator, dtype=DT)


def _points(n: int, d: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=DT)


def _linear_log_prob(A: torch.Tensor, x: torch.Tensor, t1: float) -> torch.Tensor:
    """log N(e^{-A t1} x) - t1 tr(A): the density of the linear flow in closed form."""
    z0 = x @ torch.linalg.matrix_exp(-A * t1).T
    return standard_normal_log_prob(z0) - t1 * torch.trace(A)


# --------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("d", [1, 2, 4])
@pytest.mark.parametrize("t1", [0.5, 1.7])
@pytest.mark.parametrize("adjoint", [False, True])
def test_linear_flow_matches_the_closed_form(d, t1, adjoint):
    A = _matrix(d, seed=d)
    x = _points(6, d)
    cnf = CNF(Linear(A), t1=t1, rtol=1e-10, atol=1e-10, adjoint=adjoint)
    torch.testing.assert_close(cnf.log_prob(x), _linear_log_prob(A, x, t1), rtol=0, atol=1e-7)
    assert cnf.log_prob(x).shape == (6,)


def test_standard_normal_log_prob_is_the_gaussian_density():
    z = _points(5, 3)
    expected = torch.distributions.MultivariateNormal(
        torch.zeros(3, dtype=DT), torch.eye(3, dtype=DT)
    ).log_prob(z)
    torch.testing.assert_close(standard_normal_log_prob(z), expected)


def test_the_solver_error_shrinks_with_the_tolerance():
    A = _matrix(3, seed=5)
    x = _points(8, 3)
    errors = [
        float(
            (CNF(Linear(A), rtol=tol, atol=tol).log_prob(x).detach() - _linear_log_prob(A, x, 1.0))
            .abs()
            .max()
        )
        for tol in (1e-3, 1e-6, 1e-9)
    ]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-7


def test_rademacher_hutchinson_is_exact_for_a_diagonal_field():
    A = torch.diag(torch.tensor([0.3, -0.8, 1.1], dtype=DT))
    x = _points(5, 3)
    cnf = CNF(Linear(A), trace="hutchinson", rtol=1e-10, atol=1e-10)
    log_prob = cnf.log_prob(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(log_prob, _linear_log_prob(A, x, 1.0), rtol=0, atol=1e-7)


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_log_prob_is_unbiased(probe):
    """For A z the estimate is exact minus t1 (e^T A e - tr A): mean zero, known variance."""
    A = _matrix(3, seed=11)
    x = _points(2000, 3)  # one probe per row: 2000 independent estimates
    cnf = CNF(Linear(A), trace="hutchinson", probe=probe, rtol=1e-8, atol=1e-8)
    with torch.no_grad():
        error = cnf.log_prob(x, torch.Generator().manual_seed(3)) - _linear_log_prob(A, x, 1.0)
    sigma = math.sqrt(float(hutchinson_variance(A, probe)))
    assert abs(float(error.mean())) < 5 * sigma / math.sqrt(len(x))
    assert 0.85 < float(error.std()) / sigma < 1.15  # and the spread is the predicted one


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
@pytest.mark.parametrize("seed", [0, 1])
def test_hutchinson_variance_matches_monte_carlo(probe, seed):
    A = _matrix(5, seed=seed)
    probes = draw_probe(torch.zeros(40000, 5, dtype=DT), probe, torch.Generator().manual_seed(9))
    estimates = ((probes @ A) * probes).sum(-1)
    assert abs(float(estimates.mean()) - float(torch.trace(A))) < 5 * float(estimates.std()) / 200
    assert float(estimates.var()) / float(hutchinson_variance(A, probe)) == pytest.approx(
        1, abs=0.05
    )


def test_hutchinson_variance_special_cases():
    D = torch.diag(torch.tensor([1.0, -2.0, 3.0], dtype=DT))
    assert float(hutchinson_variance(D, "rademacher")) == 0.0
    assert float(hutchinson_variance(D, "gaussian")) == pytest.approx(2 * 14)
    S = _matrix(4, seed=2)
    S = S + S.T
    off = S - torch.diag(torch.diagonal(S))
    assert float(hutchinson_variance(S, "gaussian")) == pytest.approx(2 * float(S.pow(2).sum()))
    assert float(hutchinson_variance(S, "rademacher")) == pytest.approx(2 * float(off.pow(2).sum()))
    K = S - S.T  # antisymmetric: the quadratic form vanishes
    assert float(hutchinson_variance(K, "gaussian")) == 0.0


# --------------------------------------------------------------------------- traces


def test_traces_agree_with_the_jacobian():
    field = Tanh(d=3)
    z = _points(4, 3).requires_grad_(True)
    t = torch.tensor(0.3, dtype=DT)
    value = field(t, z)
    jac = torch.stack(
        [torch.autograd.functional.jacobian(lambda v: field(t, v[None])[0], row) for row in z]
    )
    trace, frobenius = trace_exact(value, z)
    torch.testing.assert_close(trace, torch.diagonal(jac, dim1=1, dim2=2).sum(-1))
    torch.testing.assert_close(frobenius, jac.pow(2).sum((1, 2)))
    torch.testing.assert_close(frobenius, exact_frobenius(field, t, z.detach()))
    probe = draw_probe(z, "gaussian", torch.Generator().manual_seed(0))
    estimate, frob_estimate = trace_hutchinson(value, z, probe)
    torch.testing.assert_close(estimate, torch.einsum("bi,bij,bj->b", probe, jac, probe))
    torch.testing.assert_close(frob_estimate, frobenius_estimate(value, z, probe))


def test_traces_of_a_field_that_ignores_z_are_zero():
    z = _points(3, 2).requires_grad_(True)
    constant = torch.ones(3, 2, dtype=DT)
    for trace, frobenius in (
        trace_exact(constant, z),
        trace_hutchinson(constant * 2, z, z.detach()),
    ):
        assert torch.equal(trace, torch.zeros(3, dtype=DT)) and torch.equal(frobenius, trace)


# --------------------------------------------------------------------------- sampling and gradients


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_samples_have_finite_log_prob(trace):
    torch.manual_seed(0)
    cnf = CNF(ODEFunc(2, hidden=8, time_dependent=True).double(), trace=trace, dim=2)
    samples = cnf.sample(50, torch.Generator().manual_seed(1))
    assert samples.shape == (50, 2) and samples.dtype == DT
    log_prob = cnf.log_prob(samples, torch.Generator().manual_seed(2))
    assert log_prob.shape == (50,) and bool(torch.isfinite(log_prob).all())


def test_log_prob_inverts_sample():
    """Sampling pushes z0 forward; log_prob pulls it back: for A z, p(x) = N(z0) e^{-t1 tr A}."""
    A = _matrix(2, seed=4)
    cnf = CNF(Linear(A), t1=0.8, rtol=1e-10, atol=1e-10, dim=2)
    z0 = torch.randn(7, 2, generator=torch.Generator().manual_seed(5), dtype=DT)
    x = cnf.sample(7, torch.Generator().manual_seed(5))
    expected = standard_normal_log_prob(z0) - 0.8 * torch.trace(A)
    torch.testing.assert_close(cnf.log_prob(x).detach(), expected.detach(), rtol=0, atol=1e-7)


def test_dimension_is_inferred_then_fixed():
    cnf = CNF(Linear(_matrix(3, seed=0)))
    with pytest.raises(ValueError, match="dimension d is not known"):
        cnf.sample(2)
    cnf.log_prob(_points(2, 3))
    assert cnf.dim == 3 and cnf.sample(4).shape == (4, 3)
    with pytest.raises(ValueError, match="d = 3 columns"):
        cnf.log_prob(_points(2, 2))


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_log_prob_passes_gradcheck(trace):
    cnf = CNF(Tanh(d=2, width=3), trace=trace, method="rk4", options={"step_size": 0.25})
    x = _points(3, 2)
    names = [name for name, _ in cnf.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in cnf.parameters())

    def log_prob(*values):  # the same probe at every call: a fixed function of the parameters
        generator = torch.Generator().manual_seed(0)
        return torch.func.functional_call(
            cnf, dict(zip(names, values, strict=True)), (x, generator)
        )

    assert torch.autograd.gradcheck(log_prob, params)
    x_var = x.clone().requires_grad_(True)  # and with respect to the data (the score)
    assert torch.autograd.gradcheck(
        lambda v: cnf.log_prob(v, torch.Generator().manual_seed(0)), (x_var,)
    )


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_adjoint_gradients_match_backprop(trace):
    field = Tanh(d=2, width=4, seed=3)
    x = _points(5, 2)
    grads = []
    for adjoint in (False, True):
        cnf = CNF(field, trace=trace, adjoint=adjoint, rtol=1e-10, atol=1e-10)
        x_var = x.clone().requires_grad_(True)
        loss = -cnf.log_prob(x_var, torch.Generator().manual_seed(1)).mean()
        grads.append(torch.autograd.grad(loss, (x_var, *field.parameters())))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)


def test_nfe_counts_the_augmented_dynamics():
    cnf = CNF(Linear(_matrix(2, seed=0)), method="rk4", options={"step_size": 0.25})
    cnf.log_prob(_points(3, 2))
    assert cnf.nfe >= 16
    cnf.reset_nfe()
    assert cnf.nfe == 0


# --------------------------------------------------------------------------- RNODE penalties


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_penalties_of_a_diagonal_linear_flow(trace):
    lam = torch.tensor([0.5, -0.7], dtype=DT)
    A, t1 = torch.diag(lam), 1.3
    x = _points(4, 2)
    weights = {"kinetic": 0.3, "jacobian": 0.2}
    cnf = CNF(Linear(A), t1=t1, trace=trace, rtol=1e-10, atol=1e-10, regularization=weights)
    log_prob, penalty = cnf.log_prob_and_penalty(x, torch.Generator().manual_seed(0))
    # z(t) = e^{lam (t - t1)} x: int_0^t1 |A z|^2 dt = sum lam^2 x^2 (1 - e^{-2 lam t1}) / (2 lam)
    kinetic = (lam**2 * x**2 * (1 - torch.exp(-2 * lam * t1)) / (2 * lam)).sum(-1)
    jacobian = t1 * lam.pow(2).sum()  # a Rademacher probe reads a diagonal exactly
    torch.testing.assert_close(penalty, 0.3 * kinetic + 0.2 * jacobian, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(log_prob, _linear_log_prob(A, x, t1), rtol=0, atol=1e-7)


def test_without_regularization_the_penalty_is_zero():
    cnf = CNF(Linear(_matrix(2, seed=0)))
    log_prob, penalty = cnf.log_prob_and_penalty(_points(3, 2))
    assert torch.equal(penalty, torch.zeros(3, dtype=DT))
    torch.testing.assert_close(log_prob, cnf.log_prob(_points(3, 2)))


# --------------------------------------------------------------------------- training


def _gaussian_data(n: int = 400) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.tensor([1.5, -1.0], dtype=DT) + 0.5 * torch.randn(
        n, 2, generator=generator, dtype=DT
    )


def test_fit_flow_lowers_the_nll_and_monitors_nfe():
    torch.manual_seed(0)
    field = ODEFunc(2, hidden=16, time_dependent=True).double()
    cnf = CNF(field, method="rk4", options={"step_size": 0.25}, regularization={"kinetic": 0.01})
    monitor = CNF(field, rtol=1e-5, atol=1e-5)
    x = _gaussian_data()
    history = fit_flow(
        cnf, x, n_iters=60, batch_size=64, lr=0.03, monitor=monitor, monitor_every=25
    )
    assert isinstance(history, FlowHistory) and len(history.losses) == 60
    assert sum(history.losses[-10:]) / 10 < sum(history.losses[:10]) / 10 - 0.5
    assert history.checkpoints == [0, 25, 50, 60] and all(n > 0 for n in history.nfe)
    assert all(p > 0 for p in history.penalties)
    # The data are N(mu, I/4): the best possible NLL is log(2 pi / 4) + 1 = 1.45.
    with torch.no_grad():
        assert float(-monitor.log_prob(x).mean()) < 1.45 + 0.2


def test_fit_flow_is_reproducible():
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        cnf = CNF(ODEFunc(2, hidden=8).double(), trace="hutchinson", method="rk4")
        losses.append(fit_flow(cnf, _gaussian_data(100), n_iters=5, batch_size=32).losses)
    assert losses[0] == losses[1]


# --------------------------------------------------------------------------- errors


def _field():
    return Linear(_matrix(2, seed=0))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"field": lambda t, z: z}, TypeError, "`field` must be an nn.Module"),
        ({"t1": 0.0}, ValueError, "`t1` must be positive"),
        ({"t1": "1"}, TypeError, "`t1` must be a real number"),
        ({"trace": "hutch"}, ValueError, "`trace` must be one of"),
        ({"probe": "normal"}, ValueError, "`probe` must be one of"),
        ({"adjoint": 1}, TypeError, "`adjoint` must be True or False"),
        ({"dim": 0}, ValueError, "`dim` must be an integer >= 1"),
        ({"method": "rk5"}, ValueError, "method"),
        ({"rtol": -1.0}, ValueError, "`rtol` must be non-negative"),
        ({"options": {"step_size": 0.1}}, ValueError, "unknown option 'step_size'"),
        ({"regularization": 0.1}, TypeError, "`regularization` must be None or a dict"),
        ({"regularization": {}}, ValueError, "at least one penalty"),
        ({"regularization": {"kinetc": 1.0}}, ValueError, "`regularization key` must be one of"),
        ({"regularization": {"kinetic": -1.0}}, ValueError, "regularization\\['kinetic'\\]"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    arguments = {"field": _field(), **kwargs}
    with pytest.raises(error, match=match):
        CNF(**arguments)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        ([[0.0, 1.0]], TypeError, "`x` must be a floating torch.Tensor"),
        (torch.zeros(2, 2, dtype=torch.int64), TypeError, "`x` must be a floating"),
        (torch.zeros(2, dtype=DT), ValueError, "`x` must have shape \\(batch, d\\)"),
        (torch.zeros(0, 2, dtype=DT), ValueError, "`x` must have shape \\(batch, d\\)"),
        (torch.tensor([[0.0, math.nan]], dtype=DT), ValueError, "only finite values"),
    ],
)
def test_log_prob_errors(x, error, match):
    with pytest.raises(error, match=match):
        CNF(_field()).log_prob(x)


def test_other_call_errors():
    cnf = CNF(_field(), dim=2)
    with pytest.raises(TypeError, match=r"`generator` must be a torch\.Generator"):
        cnf.log_prob(_points(2, 2), generator=0)
    with pytest.raises(ValueError, match="`n` must be an integer >= 1"):
        cnf.sample(0)
    with pytest.raises(TypeError, match=r"`generator` must be a torch\.Generator"):
        cnf.sample(3, generator="seed")

    class Wrong(nn.Module):
        def forward(self, t, z):
            return z[:, :1]

    with pytest.raises(ValueError, match="`field\\(t, z\\)` must return a tensor shaped like z"):
        CNF(Wrong()).log_prob(_points(2, 2))
    with pytest.raises(ValueError, match="`A` must be a square matrix"):
        hutchinson_variance(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="`kind` must be one of"):
        hutchinson_variance(torch.eye(2), "uniform")


def test_fit_flow_errors():
    cnf = CNF(_field())
    x = _points(10, 2)
    with pytest.raises(TypeError, match="`cnf` must be a CNF"):
        fit_flow(_field(), x)
    with pytest.raises(ValueError, match="`monitor` must be None or a CNF that shares"):
        fit_flow(cnf, x, monitor=CNF(_field()))
    with pytest.raises(ValueError, match="`n_iters` must be an integer >= 1"):
        fit_flow(cnf, x, n_iters=0)
    with pytest.raises(ValueError, match="`lr` must be positive"):
        fit_flow(cnf, x, lr=0.0)
    with pytest.raises(ValueError, match="`x` must have shape"):
        fit_flow(cnf, x[0])
