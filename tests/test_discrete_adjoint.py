"""Tests for odecourse.discrete_adjoint: exact discrete gradients, the O(h) Euler gap,
the vanishing midpoint gap, convergence to the continuous gradient, validation."""

import numpy as np
import pytest
import torch

from odecourse.convergence import observed_order
from odecourse.discrete_adjoint import (
    SCHEMES,
    AdjointGradients,
    TanhField,
    adjoint_gap,
    backprop_gradient,
    continuous_adjoint_gradient,
)
from odecourse.odeint import odeint

F64 = torch.float64
T = 2.0
Z0 = torch.tensor([0.5, -1.0, 0.3], dtype=F64)


def _loss(z):
    return (z**2).sum() + z[0]


class _Forced(torch.nn.Module):
    """A time-dependent field on a (2, 2) state: z' = tanh(z W^T) * (1 + s sin t)."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(3)
        self.W = torch.nn.Parameter(torch.randn(2, 2, generator=gen, dtype=F64))
        self.s = torch.nn.Parameter(torch.tensor(0.7, dtype=F64))

    def forward(self, t, z):
        return torch.tanh(z @ self.W.T) * (1.0 + self.s * torch.sin(t))


def _discrete_loss(func, z0, n_steps, scheme):
    """g(z_N) computed with plain steps (Newton to 1e-15 for the midpoint rule)."""
    h, z = T / n_steps, z0.clone()
    with torch.no_grad():
        for n in range(n_steps):
            t = torch.tensor(n * h, dtype=F64)
            if scheme == "euler":
                z = z + h * func(t, z)
                continue
            z_new = z + h * func(t, z)
            for _ in range(200):  # fixed point: h * Lipschitz / 2 < 1 here
                z_new, old = z + h * func(t + h / 2, (z + z_new) / 2), z_new
                if (z_new - old).abs().max() < 1e-15:
                    break
            z = z_new
        return _loss(z.reshape(-1)).item()


def _finite_differences(func, z0, n_steps, scheme, eps=1e-6):
    """Central differences of the discrete loss by every entry of z0 and of the parameters."""

    def central(bump):
        up = bump(eps)
        down = bump(-eps)
        return (up - down) / (2 * eps)

    by_z0 = []
    for i in range(z0.numel()):
        e = torch.zeros(z0.numel(), dtype=F64)
        e[i] = 1.0
        e = e.view(z0.shape)
        by_z0.append(central(lambda d, e=e: _discrete_loss(func, z0 + d * e, n_steps, scheme)))
    by_params = []
    for p in func.parameters():
        flat = p.data.view(-1)
        for i in range(flat.numel()):

            def bumped(d, flat=flat, i=i):
                old = flat[i].item()
                flat[i] = old + d
                try:
                    return _discrete_loss(func, z0, n_steps, scheme)
                finally:
                    flat[i] = old

            by_params.append(central(bumped))
    return torch.tensor(by_z0, dtype=F64), torch.tensor(by_params, dtype=F64)


def _flat_loss(z):
    return _loss(z.reshape(-1))


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("field", ["tanh", "forced"])
def test_backprop_is_the_derivative_of_the_discrete_loss(scheme, field):
    func = TanhField(3, seed=1) if field == "tanh" else _Forced()
    z0 = Z0 if field == "tanh" else torch.tensor([[0.4, -0.2], [0.1, 0.9]], dtype=F64)
    grads = backprop_gradient(func, z0, T, 10, _flat_loss, scheme)
    fd_z0, fd_params = _finite_differences(func, z0, 10, scheme)
    assert isinstance(grads, AdjointGradients)
    torch.testing.assert_close(grads.z0, fd_z0, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(grads.params, fd_params, rtol=1e-7, atol=1e-7)
    # ... and the continuous adjoint on the same grid is a different number for Euler.
    adjoint = continuous_adjoint_gradient(func, z0, T, 10, _flat_loss, scheme)
    gap = (adjoint.flat - grads.flat).norm() / grads.flat.norm()
    assert (gap > 1e-3) if scheme == "euler" else (gap < 1e-12)


def test_euler_gap_shrinks_like_h():
    n_steps = np.array([8, 16, 32, 64, 128])
    gaps = adjoint_gap(TanhField(3, seed=0), Z0, T, n_steps, _loss, "euler")
    assert np.all(gaps > 0)
    assert np.all(np.diff(gaps) < 0)
    assert 0.9 <= observed_order(T / n_steps, gaps) <= 1.1


def test_midpoint_gap_vanishes():
    gaps = adjoint_gap(TanhField(3, seed=1), Z0, T, [4, 8, 16, 32, 64], _loss, "midpoint")
    assert np.all(gaps < 1e-10)


@pytest.fixture(scope="module")
def reference():
    """Backprop through rk4 with h = 5e-3: the continuous gradient to about 1e-9."""
    return _reference_gradient(TanhField(3, seed=0), Z0, 400)


def _reference_gradient(func, z0, n_steps):
    start = z0.clone().requires_grad_(True)
    t = torch.tensor([0.0, T], dtype=F64)
    z = odeint(func, start, t, method="rk4", options={"step_size": T / n_steps})[-1]
    params = [p for p in func.parameters() if p.requires_grad]
    grads = torch.autograd.grad(_loss(z), (start, *params))
    return torch.cat([g.reshape(-1) for g in grads])


@pytest.mark.parametrize(("scheme", "order"), [("euler", 1), ("midpoint", 2)])
def test_both_gradients_converge_to_the_continuous_gradient(scheme, order, reference):
    func = TanhField(3, seed=0)
    n_steps = np.array([8, 16, 32, 64])
    for route in (backprop_gradient, continuous_adjoint_gradient):
        errors = [
            ((route(func, Z0, T, int(n), _loss, scheme).flat - reference).norm()).item()
            for n in n_steps
        ]
        assert order - 0.15 <= observed_order(T / n_steps, errors) <= order + 0.15


def test_tanh_field():
    func = TanhField(4, seed=2)
    z = torch.ones(4, dtype=F64)
    torch.testing.assert_close(func(torch.tensor(0.0), z), torch.tanh(func.W @ z + func.b))
    assert torch.equal(TanhField(4, seed=2).W, func.W)
    assert not torch.equal(TanhField(4, seed=3).W, func.W)


@pytest.mark.parametrize("route", [backprop_gradient, continuous_adjoint_gradient])
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"func": lambda t, z: z}, TypeError, "`func`"),
        ({"z0": [0.5, -1.0, 0.3]}, TypeError, "`z0`"),
        ({"z0": Z0.float()}, TypeError, "`z0`.*float64"),
        ({"z0": torch.tensor([0.5, float("nan"), 0.3], dtype=F64)}, ValueError, "`z0`"),
        ({"z0": torch.zeros(0, dtype=F64)}, ValueError, "`z0`"),
        ({"z0": torch.zeros(2, dtype=F64)}, ValueError, "func"),
        ({"T": -1.0}, ValueError, "`T`"),
        ({"T": "2"}, TypeError, "`T`"),
        ({"n_steps": 0}, ValueError, "`n_steps`"),
        ({"n_steps": 2.5}, TypeError, "`n_steps`"),
        ({"loss": 3}, TypeError, "`loss`"),
        ({"loss": lambda z: z}, ValueError, "`loss`.*one element"),
        ({"loss": lambda z: 1.0}, TypeError, "`loss`.*tensor"),
        ({"scheme": "rk4"}, ValueError, "`scheme`"),
    ],
)
def test_validation(route, kwargs, error, match):
    args = {"func": TanhField(3), "z0": Z0, "T": T, "n_steps": 4, "loss": _loss}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        route(**args)


@pytest.mark.parametrize(
    ("n_steps_list", "error", "match"),
    [
        (8, TypeError, "`n_steps_list`"),
        ([], ValueError, "`n_steps_list`"),
        ([8, 0], ValueError, r"`n_steps_list\[1\]`"),
        ([8, 1.5], TypeError, r"`n_steps_list\[1\]`"),
    ],
)
def test_adjoint_gap_validation(n_steps_list, error, match):
    with pytest.raises(error, match=match):
        adjoint_gap(TanhField(3), Z0, T, n_steps_list, _loss)


def test_tanh_field_validation():
    with pytest.raises(ValueError, match="`dim`"):
        TanhField(0)
    with pytest.raises(TypeError, match="`seed`"):
        TanhField(3, seed=1.5)


def test_euler_backprop_is_the_left_endpoint_recursion():
    """a_n = a_{n+1} + h J(z_n)^T a_{n+1}, grad += h F(z_n)^T a_{n+1}: the Jacobians at the
    left end of each step (the continuous adjoint with Euler takes them at the right end)."""
    func, n_steps = TanhField(3, seed=0), 16
    h = T / n_steps
    states = [Z0]
    with torch.no_grad():
        for _ in range(n_steps):
            states.append(states[-1] + h * func(torch.tensor(0.0), states[-1]))
    z = states[-1].clone().requires_grad_(True)
    (a,) = torch.autograd.grad(_loss(z), z)
    grad_theta = torch.zeros(12, dtype=F64)
    for n in range(n_steps - 1, -1, -1):
        z = states[n].clone().requires_grad_(True)
        jta, *fta = torch.autograd.grad(func(torch.tensor(0.0), z), (z, *func.parameters()), a)
        a, grad_theta = a + h * jta, grad_theta + h * torch.cat([g.reshape(-1) for g in fta])
    grads = backprop_gradient(func, Z0, T, n_steps, _loss, "euler")
    torch.testing.assert_close(grads.z0, a, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(grads.params, grad_theta, rtol=1e-13, atol=1e-13)
