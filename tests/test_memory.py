"""Tests for odecourse.memory: bytes saved for backward, on closed forms and on ODE solves."""

import numpy as np
import pytest
import torch

from odecourse.adjoint import odeint_adjoint
from odecourse.memory import saved_tensor_bytes
from odecourse.neural_ode import ODEFunc
from odecourse.odeint import odeint


def test_product_saves_the_other_factor():
    w = torch.ones(5, requires_grad=True)
    x = torch.ones(5, dtype=torch.float32)
    result, nbytes = saved_tensor_bytes(lambda: (w * x).sum())
    assert nbytes == 5 * 4  # d(w*x)/dw needs x only
    result.backward()
    assert torch.equal(w.grad, x)


def test_both_factors_and_arguments_are_passed():
    a = torch.ones(4, dtype=torch.float64, requires_grad=True)
    b = torch.ones(4, dtype=torch.float64, requires_grad=True)
    _, nbytes = saved_tensor_bytes(torch.dot, a, b)
    assert nbytes == 2 * 4 * 8


def test_views_of_one_storage_count_once():
    x = torch.ones(10, requires_grad=True)
    y = x.exp()  # saves its output, a new storage of 40 bytes
    _, nbytes = saved_tensor_bytes(lambda: (y[:5] * y[5:]).sum())
    assert nbytes == 40


def test_nothing_saved_without_grad():
    x = torch.ones(8)
    _, nbytes = saved_tensor_bytes(lambda: torch.tanh(x).sum())
    assert nbytes == 0
    with torch.no_grad():
        _, nbytes = saved_tensor_bytes(lambda: torch.tanh(x.requires_grad_()).sum())
    assert nbytes == 0


def _rk4_bytes(solve, n_steps):
    torch.manual_seed(0)
    func = ODEFunc(2, hidden=8, depth=1)
    y0 = torch.randn(4, 2)
    t = torch.tensor([0.0, 1.0])
    options = {"step_size": 1.0 / n_steps}
    loss, nbytes = saved_tensor_bytes(
        lambda: solve(func, y0, t, method="rk4", options=options)[-1].pow(2).sum()
    )
    loss.backward()  # the graph is still usable
    return nbytes


def test_backprop_through_rk4_grows_linearly_and_adjoint_is_flat():
    steps = np.array([2, 4, 8, 16])
    backprop = np.array([_rk4_bytes(odeint, n) for n in steps])
    adjoint = np.array([_rk4_bytes(odeint_adjoint, n) for n in steps])
    increments = np.diff(backprop) / np.diff(steps)
    assert np.all(increments == increments[0]) and increments[0] > 0
    # one tanh layer of width 8, batch 4, float32: each of the 4 stages keeps
    # the input (4 x 2) and the tanh output (4 x 8)
    assert increments[0] == 4 * 4 * (2 + 8) * 4
    assert np.all(adjoint == adjoint[0])
    assert adjoint[0] == 2 * 4 * 2 * 4  # the two stored outputs y(0), y(1)


def test_fn_must_be_callable():
    with pytest.raises(TypeError, match="`fn` must be callable"):
        saved_tensor_bytes(3)
