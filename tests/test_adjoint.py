"""Tests for odecourse.adjoint: gradcheck, agreement with backprop, seminorm, validation."""

import pytest
import torch

from odecourse.adjoint import odeint_adjoint
from odecourse.odeint import CountedFunc, SolveStats, odeint

F64 = torch.float64


class _Field(torch.nn.Module):
    """y' = tanh(W y + c) * s(t): smooth, nonlinear, time-dependent, with three parameters."""

    def __init__(self, seed=0, dim=2):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.W = torch.nn.Parameter(torch.randn(dim, dim, generator=gen, dtype=F64))
        self.c = torch.nn.Parameter(torch.randn(dim, generator=gen, dtype=F64) * 0.3)
        self.s = torch.nn.Parameter(torch.tensor(0.7, dtype=F64))

    def forward(self, t, y):
        return torch.tanh(y @ self.W.T + self.c) * (1.0 + self.s * torch.sin(t))


def _y0(batch=3, dim=2):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(batch, dim, generator=gen, dtype=F64, requires_grad=True)


@pytest.mark.parametrize(
    ("method", "tol"),
    [("dopri5", {"rtol": 1e-10, "atol": 1e-12}), ("bosh3", {"rtol": 1e-7, "atol": 1e-9}),
     ("rk4", {"options": {"step_size": 0.05}})],
)  # fmt: skip
def test_gradcheck(method, tol):
    W = torch.tensor([[0.3, -1.0], [0.8, 0.1]], dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 0.3, 0.6], dtype=F64)

    def solve(y0, W):
        return odeint_adjoint(
            lambda t, y: torch.tanh(y @ W.T), y0, t, method=method, adjoint_params=(W,), **tol
        )

    # The adjoint is exact only up to the solver's accuracy: rk4 at h = 0.05 is ~1e-6.
    atol = 1e-5 if method == "rk4" else 1e-6
    assert torch.autograd.gradcheck(solve, (_y0(), W), atol=atol, rtol=1e-4)


@pytest.mark.parametrize("seminorm", [False, True])
def test_adjoint_agrees_with_backprop_through_the_solver(seminorm):
    func, y0 = _Field(), _y0()
    t = torch.linspace(0.0, 2.0, 5, dtype=F64)
    kwargs = {"rtol": 1e-10, "atol": 1e-12}
    weights = torch.linspace(-1.0, 1.0, 5 * 3 * 2, dtype=F64).reshape(5, 3, 2)
    inputs = (y0, *func.parameters())
    ys = odeint(func, y0, t, **kwargs)
    reference = torch.autograd.grad((weights * ys).sum() + ys[-1].pow(2).sum(), inputs)
    options = {"norm": "seminorm"} if seminorm else None
    ys_adj = odeint_adjoint(func, y0, t, adjoint_options=options, **kwargs)
    torch.testing.assert_close(ys_adj, ys, rtol=0, atol=0)  # the same forward solve
    grads = torch.autograd.grad((weights * ys_adj).sum() + ys_adj[-1].pow(2).sum(), inputs)
    assert len(grads) == 4
    for g, r in zip(grads, reference, strict=True):
        assert g.abs().sum() > 0
        assert float((g - r).norm() / r.norm()) < 1e-6


def test_seminorm_reduces_backward_evaluations():
    func, y0 = _Field(dim=4), _y0(batch=16, dim=4)
    t = torch.tensor([0.0, 3.0], dtype=F64)
    counts = {}
    for norm in (None, "seminorm"):
        stats = SolveStats()
        options = None if norm is None else {"norm": norm}
        ys = odeint_adjoint(func, y0, t, rtol=1e-6, atol=1e-8, adjoint_options=options, stats=stats)
        ys[-1].sum().backward()
        assert stats.nfe > 0 and stats.nfe_backward > 0
        counts[norm] = stats.nfe_backward
    assert counts["seminorm"] < counts[None]


def test_counted_func_separates_forward_and_backward_evaluations():
    func = CountedFunc(_Field())
    stats = SolveStats()
    ys = odeint_adjoint(func, _y0(), torch.tensor([0.0, 1.0], dtype=F64), stats=stats)
    assert func.nfe == stats.nfe
    func.reset()
    ys.sum().backward()
    assert func.nfe == stats.nfe_backward > 0


def test_tuple_state_gradients_match_backprop():
    func = _Field()
    q0 = _y0()
    p0 = torch.tensor([0.5, -0.2], dtype=F64, requires_grad=True)

    def pair(t, state):
        q, p = state
        return func(t, q) + p, -p * func.s

    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    kwargs = {"rtol": 1e-10, "atol": 1e-12}
    inputs = (q0, p0, *func.parameters())
    ref = torch.autograd.grad(
        sum(s.pow(2).sum() for s in odeint(pair, (q0, p0), t, **kwargs)), inputs
    )
    qs, ps = odeint_adjoint(pair, (q0, p0), t, adjoint_params=tuple(func.parameters()), **kwargs)
    assert qs.shape == (3, 3, 2) and ps.shape == (3, 2)
    grads = torch.autograd.grad(qs.pow(2).sum() + ps.pow(2).sum(), inputs)
    for g, r in zip(grads, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-6, atol=1e-9)


def test_parameters_without_grad_are_skipped_and_unused_ones_get_zero():
    func = _Field()
    func.s.requires_grad_(False)
    unused = torch.nn.Parameter(torch.ones(3, dtype=F64))
    func.register_parameter("unused", unused)
    ys = odeint_adjoint(func, _y0(), torch.tensor([0.0, 1.0], dtype=F64))
    ys.sum().backward()
    assert func.s.grad is None and torch.equal(unused.grad, torch.zeros(3, dtype=F64))
    assert func.W.grad is not None


def test_fixed_step_adjoint_with_its_own_method():
    func, y0 = _Field(), _y0()
    t = torch.tensor([0.0, 1.0], dtype=F64)
    ys = odeint_adjoint(func, y0, t, method="rk4", options={"step_size": 0.1},
                        adjoint_method="dopri5", adjoint_options={}, adjoint_rtol=1e-10,
                        adjoint_atol=1e-12)  # fmt: skip
    (grad,) = torch.autograd.grad(ys[-1].sum(), y0)
    (ref,) = torch.autograd.grad(odeint(func, y0, t, rtol=1e-10, atol=1e-12)[-1].sum(), y0)
    torch.testing.assert_close(grad, ref, rtol=1e-4, atol=1e-6)  # rk4 forward is ~1e-5


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"func": lambda t, y: -y}, TypeError, "must be an nn.Module .* unless `adjoint_params`"),
        ({"func": CountedFunc(lambda t, y: -y)}, TypeError, "must be an nn.Module"),
        ({"adjoint_params": torch.ones(2)}, TypeError, "`adjoint_params` must be an iterable"),
        ({"adjoint_params": [1.0]}, TypeError, r"`adjoint_params\[0\]` must be a tensor"),
        ({"adjoint_method": "dopri8"}, ValueError, "does not implement"),
        ({"adjoint_options": {"step_size": 0.1}}, ValueError, "unknown option 'step_size'"),
        ({"adjoint_options": 3}, TypeError, "`adjoint_options` must be a dict"),
        ({"adjoint_rtol": -1.0}, ValueError, "`adjoint_rtol` must be non-negative"),
        ({"options": {"bad": 1}}, ValueError, "unknown option 'bad'"),
        ({"y0": [1.0]}, TypeError, "`y0` must be a torch.Tensor"),
    ],
)
def test_validation_errors(kwargs, error, match):
    arguments = {"func": _Field(), "y0": _y0(), "t": torch.tensor([0.0, 1.0], dtype=F64), **kwargs}
    func, y0, t = arguments.pop("func"), arguments.pop("y0"), arguments.pop("t")
    with pytest.raises(error, match=match):
        odeint_adjoint(func, y0, t, **arguments)


def test_plain_function_with_adjoint_params_works():
    theta = torch.tensor(-0.5, dtype=F64, requires_grad=True)
    y0 = torch.tensor([1.0], dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 2.0], dtype=F64)
    ys = odeint_adjoint(lambda t, y: theta * y, y0, t, adjoint_params=[theta],
                        rtol=1e-10, atol=1e-12)  # fmt: skip
    grad_y0, grad_theta = torch.autograd.grad(ys[-1].sum(), (y0, theta))
    exact = torch.exp(2.0 * theta.detach())  # y(2) = y0 exp(2 theta)
    torch.testing.assert_close(grad_y0, exact.reshape(1), rtol=1e-8, atol=0)
    torch.testing.assert_close(grad_theta, 2.0 * exact, rtol=1e-8, atol=0)


def _backprop_and_adjoint_gradients(func, y0, t, params, **kwargs):
    """Gradients of one loss through odeint and through odeint_adjoint."""
    inputs = (y0, *params)
    weights = torch.linspace(-1.0, 1.0, len(t), dtype=F64)

    def loss(ys):
        return (weights.reshape(-1, *([1] * (ys.ndim - 1))) * ys.pow(2)).sum()

    reference = torch.autograd.grad(loss(odeint(func, y0, t, **kwargs)), inputs)
    ys = odeint_adjoint(func, y0, t, adjoint_params=params, **kwargs)
    return torch.autograd.grad(loss(ys), inputs), reference


@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_reversed_time_gradients_match_backprop(method):
    func, y0 = _Field(), _y0()
    t = torch.tensor([1.5, 1.0, 0.2, -0.4], dtype=F64)
    kwargs = {"rtol": 1e-10, "atol": 1e-12} if method == "dopri5" else {}
    options = {"options": {"step_size": 0.01}} if method == "rk4" else {}
    grads, reference = _backprop_and_adjoint_gradients(
        func, y0, t, tuple(func.parameters()), method=method, **kwargs, **options
    )
    tol = 1e-7 if method == "dopri5" else 1e-5  # rk4's adjoint is exact to O(h^4) only
    for g, r in zip(grads, reference, strict=True):
        torch.testing.assert_close(g, r, rtol=tol, atol=tol)


def test_no_grad_context_gives_a_plain_solution():
    func, y0 = _Field(), _y0()
    t = torch.tensor([0.0, 1.0], dtype=F64)
    with torch.no_grad():
        ys = odeint_adjoint(func, y0, t)
    assert not ys.requires_grad
    torch.testing.assert_close(ys, odeint(func, y0.detach(), t), rtol=0, atol=0)


def test_only_parameters_require_grad():
    func = _Field()
    y0 = _y0().detach()
    ys = odeint_adjoint(func, y0, torch.tensor([0.0, 1.0], dtype=F64), rtol=1e-10, atol=1e-12)
    ys[-1].sum().backward()
    assert y0.grad is None and func.W.grad is not None


def test_a_parameter_listed_twice_gets_its_gradient_once():
    theta = torch.tensor(-0.5, dtype=F64, requires_grad=True)
    y0 = torch.tensor([1.0], dtype=F64)
    t = torch.tensor([0.0, 2.0], dtype=F64)
    ys = odeint_adjoint(lambda t, y: theta * y, y0, t, adjoint_params=[theta, theta],
                        rtol=1e-10, atol=1e-12)  # fmt: skip
    (grad,) = torch.autograd.grad(ys[-1].sum(), theta)
    torch.testing.assert_close(grad, 2.0 * torch.exp(2.0 * theta.detach()), rtol=1e-8, atol=0)


def test_field_independent_of_the_state_passes_gradients_through():
    # y' = 1: y(t) = y0 + t, so dL/dy0 is the sum of the incoming gradients.
    y0 = torch.zeros(2, dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    ys = odeint_adjoint(lambda t, y: torch.ones_like(y), y0, t, adjoint_params=())
    (grad,) = torch.autograd.grad(ys.sum(), y0)
    torch.testing.assert_close(grad, torch.full((2,), 3.0, dtype=F64), rtol=0, atol=1e-12)


def test_float64_times_are_not_rounded_to_the_state_dtype():
    # 1 + 1e-9 and 1 are the same float32 number: rounding t to y0's dtype would merge them.
    theta = torch.tensor(-0.5, requires_grad=True)
    y0 = torch.ones(2)
    t = torch.tensor([0.0, 1.0, 1.0 + 1e-9], dtype=F64)
    ys = odeint_adjoint(lambda t, y: theta * y, y0, t, adjoint_params=[theta])
    torch.testing.assert_close(ys, odeint(lambda t, y: theta * y, y0, t), rtol=0, atol=0)
    ys[-1].sum().backward()
    torch.testing.assert_close(theta.grad, 2.0 * torch.exp(theta.detach()), rtol=1e-5, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"method": 5}, TypeError, "`method` must be a ButcherTableau or the name of one"),
        ({"adjoint_method": 5}, TypeError, "`method` must be a ButcherTableau or the name of one"),
        ({"adjoint_atol": -1.0}, ValueError, "`adjoint_atol` must be non-negative"),
        ({"rtol": -1.0}, ValueError, "`rtol` must be non-negative"),
        ({"adjoint_options": {"norm": "seminorms"}}, TypeError, "`norm` must be callable"),
    ],
)
def test_more_validation_errors(kwargs, error, match):
    test_validation_errors(kwargs, error, match)
