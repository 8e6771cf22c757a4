"""Tests for odecourse.neural_ode: shapes, gradients, augmentation, trajectory fitting,
solver swaps and field statistics."""

import pytest
import torch
from torch import nn

from odecourse.networks import ACTIVATIONS
from odecourse.neural_ode import (
    ODEBlock,
    ODEClassifier,
    ODEFunc,
    evaluate_with_solvers,
    field_statistics,
    fit_trajectory,
    jacobians,
)
from odecourse.seeding import seed_everything
from odecourse.training import evaluate


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("time_dependent", [False, True])
def test_odefunc_shapes_and_counter(activation, time_dependent):
    func = ODEFunc(3, hidden=8, depth=2, activation=activation, time_dependent=time_dependent)
    z = torch.randn(5, 3)
    assert func(torch.tensor(0.5), z).shape == (5, 3)
    assert func(torch.tensor(0.5), z[0]).shape == (3,)
    assert func.nfe == 2
    func.reset()
    assert func.nfe == 0
    first = func.net[0]
    assert first.in_features == 3 + time_dependent and len(func.net) == 2 * 2 + 1


def test_time_input_changes_the_field():
    torch.manual_seed(0)
    func = ODEFunc(2, time_dependent=True)
    z = torch.randn(4, 2)
    assert not torch.allclose(func(torch.tensor(0.0), z), func(torch.tensor(1.0), z))


@pytest.mark.parametrize("gradient", ["backprop", "adjoint"])
@pytest.mark.parametrize("augment_dim", [0, 2])
def test_odeblock_shapes_and_gradients(gradient, augment_dim):
    torch.manual_seed(0)
    func = ODEFunc(3 + augment_dim, hidden=8)
    block = ODEBlock(func, T=0.5, gradient=gradient, augment_dim=augment_dim)
    x = torch.randn(6, 3, requires_grad=True)
    z = block(x)
    assert z.shape == (6, 3 + augment_dim) and block.nfe > 0
    z.pow(2).sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in func.parameters())
    traj = block.trajectory(x, torch.linspace(0.0, 0.5, 4))
    assert traj.shape == (4, 6, 3 + augment_dim)
    torch.testing.assert_close(traj[-1], z, rtol=1e-5, atol=1e-6)
    if augment_dim:
        assert torch.equal(traj[0][:, 3:], torch.zeros(6, augment_dim))


def test_adjoint_and_backprop_blocks_agree():
    torch.manual_seed(0)
    func = ODEFunc(2, hidden=8).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    grads = []
    for gradient in ("backprop", "adjoint"):
        block = ODEBlock(func, gradient=gradient, rtol=1e-10, atol=1e-12)
        grads.append(torch.autograd.grad(block(x).sum(), tuple(func.parameters())))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


def _train_reflection(augment_dim):
    """Fit x -> -x on {-1, 1}, reading the answer off the first coordinate of z(T)."""
    seed_everything(0)
    x = torch.tensor([[-1.0], [1.0]])
    func = ODEFunc(1 + augment_dim, hidden=16, depth=1)
    block = ODEBlock(func, method="rk4", options={"step_size": 0.1}, augment_dim=augment_dim)
    optimiser = torch.optim.Adam(block.parameters(), lr=0.05)
    for _ in range(80):
        optimiser.zero_grad()
        loss = (block(x)[:, :1] + x).pow(2).mean()
        loss.backward()
        optimiser.step()
    return loss.item()


def test_augmentation_solves_the_reflection_that_a_plain_flow_cannot():
    # A 1-D flow is increasing in x, so it cannot send -1 to 1 and 1 to -1: the best it can do
    # is send both to (about) 0, a loss of about 1.  One extra dimension lets them pass.
    assert _train_reflection(0) > 0.9
    assert _train_reflection(1) < 0.02


def test_classifier_shapes():
    torch.manual_seed(0)
    model = ODEClassifier(2, 3, hidden=8, augment_dim=1, method="rk4", options={"step_size": 0.25})
    assert model(torch.randn(7, 2)).shape == (7, 3)
    assert model.block.func.dim == 3


def test_fit_trajectory_learns_a_rotation():
    t = torch.linspace(0.0, 4.0, 41)
    y = torch.stack([torch.cos(t), -torch.sin(t)], dim=1)
    fit = fit_trajectory(t, y, n_iters=120, segment=8, batch_size=8)
    assert fit.losses[-1] < 0.02 * fit.losses[0]
    predicted = fit.predict(y[0], t, method="rk4")
    assert float((predicted - y).abs().max()) < 0.2


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: ODEFunc(0), ValueError, "`dim` must be an integer >= 1"),
        (lambda: ODEFunc(2, activation="swish"), ValueError, "`activation` must be one of"),
        (lambda: ODEFunc(2, depth=0), ValueError, "`depth`"),
        (lambda: ODEBlock(lambda t, z: z), TypeError, "`func` must be an nn.Module"),
        (lambda: ODEBlock(ODEFunc(2), T=0.0), ValueError, "`T` must be positive"),
        (lambda: ODEBlock(ODEFunc(2), gradient="exact"), ValueError, "`gradient` must be one of"),
        (lambda: ODEBlock(ODEFunc(2), augment_dim=-1), ValueError, "`augment_dim`"),
        (lambda: fit_trajectory(torch.zeros(5), torch.zeros(4, 2)), ValueError, "shape"),
        (lambda: fit_trajectory(torch.arange(5.0), torch.zeros(5, 2), segment=6), ValueError,
         "`segment` must be at most"),
        (lambda: fit_trajectory(torch.tensor([0.0, 1.0, 3.0]), torch.zeros(3, 2), segment=2),
         ValueError, "equally spaced"),
        (lambda: fit_trajectory([0.0, 1.0], torch.zeros(2, 2)), TypeError,
         "`t` must be a floating-point torch tensor; got list"),
        (lambda: fit_trajectory(torch.arange(5), torch.zeros(5, 2)), TypeError,
         "`t` must be a floating-point torch tensor; got torch.int64"),
        (lambda: fit_trajectory(torch.arange(5.0), torch.zeros(5, 2), segment=2,
         batch_size=0), ValueError,
         "`batch_size` must be an integer >= 1"),
        (lambda: fit_trajectory(torch.arange(5.0), torch.zeros(5, 2), segment=2,
         func=lambda t, y: y),
         TypeError, "`func` must be an nn.Module"),
        (lambda: ODEBlock(ODEFunc(2), method="dopri8"), ValueError, "does not implement"),
        (lambda: ODEBlock(ODEFunc(2), rtol=-1.0), ValueError, "`rtol` must be non-negative"),
        (lambda: ODEBlock(ODEFunc(2), options={"step_size": 0.1}), ValueError,
         "unknown option 'step_size'"),
        (lambda: ODEClassifier(2, 2, augment_dim=-1), ValueError, "`augment_dim` must be an"),
        (lambda: ODEClassifier(2, 2, augment_dim=1.5), TypeError, "`augment_dim` must be an"),
    ],
)  # fmt: skip
def test_validation_errors(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_fit_trajectory_accepts_a_float32_linspace_grid():
    # linspace(0, 25, 1000) in float32 has steps that differ by ~1e-6 (rounding of t ~ 25),
    # far above a relative 1e-5 of the step but a few ulps of |t|: it is equally spaced.
    t = torch.linspace(0.0, 25.0, 1000)
    y = torch.stack([torch.cos(t), -torch.sin(t)], dim=1)
    fit = fit_trajectory(t, y, n_iters=2, segment=5, batch_size=4, seed=0)
    assert fit is not None


EULER4 = {"method": "euler", "options": {"step_size": 0.25}}


def _euler_classifier():
    seed_everything(0)
    model = ODEClassifier(2, 2, hidden=8, **EULER4).double()
    X = torch.randn(40, 2, dtype=torch.float64)
    y = (X.norm(dim=1) > 1).long()
    return model, X, y


def test_temporary_solver_swaps_and_restores_the_settings():
    model, X, _ = _euler_classifier()
    block = model.block
    before = dict(block.solver)
    with block.temporary_solver(method="dopri5", rtol=1e-8, atol=1e-10):
        assert block.solver == {"method": "dopri5", "rtol": 1e-8, "atol": 1e-10, "options": None}
        fine = block(X)
    assert block.solver == before
    with pytest.raises(RuntimeError, match="inside"), block.temporary_solver(method="rk4"):
        raise RuntimeError("inside")
    assert block.solver == before
    # Euler with step 1/4 is not the flow that dopri5 computes to 1e-8
    with torch.no_grad():
        assert float((block(X) - fine).abs().max()) > 1e-4


def test_evaluate_with_solvers_reproduces_the_training_solver_and_restores_it():
    model, X, y = _euler_classifier()
    before = dict(model.block.solver)
    loss, accuracy = evaluate(model, X, y)
    solvers = {
        "train": EULER4,
        "euler 8": {"method": "euler", "options": {"step_size": 0.125}},
        "dopri5": {"method": "dopri5", "rtol": 1e-8, "atol": 1e-10},
    }
    results = evaluate_with_solvers(model, X, y, solvers)
    assert model.block.solver == before
    assert list(results) == list(solvers)
    assert results["train"].accuracy == accuracy and results["train"].loss == loss
    # one evaluation at t = 0 and one at the end of each of the four steps
    assert results["train"].nfe == 4 + 1
    assert results["euler 8"].nfe == 2 * results["train"].nfe - 1
    assert results["dopri5"].nfe > results["euler 8"].nfe
    for result in results.values():
        assert 0.0 <= result.accuracy <= 1.0 and result.loss > 0


def test_evaluate_with_solvers_restores_the_settings_when_a_solve_fails():
    model, X, y = _euler_classifier()
    before = dict(model.block.solver)
    failing = {"method": "dopri5", "options": {"max_num_steps": 1}, "rtol": 1e-12, "atol": 1e-14}
    with pytest.raises(RuntimeError):
        evaluate_with_solvers(model, X, y, {"ok": EULER4, "fails": failing})
    assert model.block.solver == before


def test_jacobians_and_field_statistics_of_a_linear_field():
    A = torch.tensor([[0.0, 2.0], [-1.0, -3.0]], dtype=torch.float64)

    class Linear(nn.Module):
        def forward(self, t, z):
            return z @ A.T

    z = torch.randn(7, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    J = jacobians(Linear(), z)
    torch.testing.assert_close(J, A.expand(7, 2, 2))
    stats = field_statistics(Linear(), z)
    assert stats.speed == pytest.approx(float((z @ A.T).norm(dim=1).mean()), rel=1e-12)
    assert stats.jacobian_frobenius == pytest.approx(float(torch.linalg.matrix_norm(A)), rel=1e-12)
    assert stats.jacobian_spectral == pytest.approx(
        float(torch.linalg.matrix_norm(A, ord=2)), rel=1e-12
    )


def test_jacobians_of_an_odefunc_match_finite_differences():
    torch.manual_seed(0)
    func = ODEFunc(3, hidden=8).double()
    z = torch.randn(4, 3, dtype=torch.float64)
    J = jacobians(func, z)
    eps = 1e-6
    for j in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[j] = eps
        with torch.no_grad():
            column = (func(None, z + e) - func(None, z - e)) / (2 * eps)
        torch.testing.assert_close(J[:, :, j], column, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m, X, y: evaluate_with_solvers(m.block, X, y, {"a": EULER4}), TypeError,
         "`model` must be an nn.Module with an ODEBlock"),
        (lambda m, X, y: evaluate_with_solvers(m, X, y, {}), ValueError,
         "`solvers` must name at least one solver"),
        (lambda m, X, y: evaluate_with_solvers(m, X, y, [EULER4]), TypeError,
         "`solvers` must be a dict"),
        (lambda m, X, y: evaluate_with_solvers(m, X, y, {"a": "euler"}), TypeError,
         r"`solvers\['a'\]` must be a dict of solver settings; got str"),
        (lambda m, X, y: evaluate_with_solvers(m, X, y, {"a": {"step_size": 0.1}}), TypeError,
         "unknown solver setting 'step_size'"),
        (lambda m, X, y: evaluate_with_solvers(m, X, y, {"a": {"method": "euler", "rtol": -1}}),
         ValueError, "`rtol` must be non-negative"),
        (lambda m, X, y: evaluate_with_solvers(m, X, y, {"a": {"options": {"step_size": 0.1}}}),
         ValueError, "unknown option 'step_size'"),
        (lambda m, X, y: evaluate_with_solvers(m, X, y.double(), {"a": EULER4}), TypeError, "`y`"),
        (lambda m, X, y: jacobians(m.block.func, [[0.0, 1.0]]), TypeError,
         "`z` must be a floating-point torch tensor; got list"),
        (lambda m, X, y: jacobians(m.block.func, X[0]), ValueError,
         r"`z` must have shape \(B, d\); got \(2,\)"),
        (lambda m, X, y: field_statistics("f", X), TypeError, "`func`"),
    ],
)  # fmt: skip
def test_solver_swap_and_statistics_validation(call, error, match):
    model, X, y = _euler_classifier()
    before = dict(model.block.solver)
    with pytest.raises(error, match=match):
        call(model, X, y)
    assert model.block.solver == before
