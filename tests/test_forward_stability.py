"""Tests for odecourse.forward_stability: Haber-Ruthotto blocks and their Jacobians."""

import numpy as np
import pytest
import torch

from odecourse.forward_stability import (
    AntisymmetricBlock,
    LayerBlock,
    increment_eigenvalues,
    propagate,
)
from odecourse.seeding import seed_everything


@pytest.fixture(autouse=True)
def _seed():
    seed_everything(0)


def test_antisymmetric_weight_has_the_stated_form():
    block = AntisymmetricBlock(6, h=0.1, gamma=0.3)
    W = block.weight.detach()
    shifted = W + 0.3 * torch.eye(6)
    assert torch.allclose(shifted, -shifted.T)


@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_antisymmetric_eigenvalues_at_zero_are_minus_h_gamma_plus_imaginary(gamma):
    # At x = 0 with b = 0, tanh'(0) = 1: the Jacobian of h f is exactly h (K - K^T - gamma I).
    block = AntisymmetricBlock(8, h=0.2, gamma=gamma, std=2.0)
    z = increment_eigenvalues(block.increment, torch.zeros(1, 8), h=block.h)
    assert z.shape == (1, 8)
    assert np.allclose(z.real, -0.2 * gamma, atol=1e-6)
    assert np.allclose(np.sort(z.imag[0]), -np.sort(z.imag[0])[::-1], atol=1e-6)  # pairs


def test_antisymmetric_real_parts_lie_in_the_gamma_band_away_from_zero():
    # Re(lambda) of h D W lies in [-h gamma max D, -h gamma min D] for D = diag(tanh') > 0.
    block = AntisymmetricBlock(8, h=0.5, gamma=0.4, std=1.5)
    with torch.no_grad():
        block.b.normal_()
    x = torch.randn(20, 8)
    z = increment_eigenvalues(block.increment, x, h=block.h)
    with torch.no_grad():
        D = 1 - torch.tanh(x @ block.weight.T + block.b) ** 2
    lower = -0.5 * 0.4 * D.max(dim=1).values.numpy()[:, None]
    upper = -0.5 * 0.4 * D.min(dim=1).values.numpy()[:, None]
    assert np.all(z.real >= lower - 1e-6) and np.all(z.real <= upper + 1e-6)


def test_free_block_eigenvalues_at_zero_are_those_of_h_times_the_weight():
    block = LayerBlock(5, h=0.3, gamma=1.0)
    z = increment_eigenvalues(block.increment, torch.zeros(5), h=0.3)
    expected = np.linalg.eigvals(0.3 * block.weight.detach().numpy())
    assert np.allclose(np.sort_complex(z[0]), np.sort_complex(expected), atol=1e-5)


def test_block_is_one_euler_step_of_its_increment():
    block = LayerBlock(4, h=0.25, activation="tanh")
    x = torch.randn(3, 4)
    assert torch.allclose(block(x), x + 0.25 * torch.tanh(x @ block.weight.T + block.b))


def test_propagate_norms_and_linearised_perturbations():
    blocks = [lambda x: 2.0 * x] * 5
    x0, v = torch.ones(2, 3), torch.full((2, 3), 0.5)
    states, perturbations = propagate(blocks, x0, v)
    assert np.allclose(states, np.sqrt(6) * 2.0 ** np.arange(6))
    assert np.allclose(perturbations, 0.5 * np.sqrt(6) * 2.0 ** np.arange(6))
    assert propagate(blocks, x0)[1] is None


def test_propagate_perturbation_matches_finite_differences():
    blocks = [LayerBlock(4, h=0.5, std=2.0).double() for _ in range(10)]
    x0 = torch.randn(3, 4, dtype=torch.float64)
    v = torch.randn(3, 4, dtype=torch.float64)
    _, perturbations = propagate(blocks, x0, v)
    eps = 1e-6
    x, y = x0, x0 + eps * v
    for block in blocks:
        x, y = block(x), block(y)
    assert perturbations[-1] == pytest.approx(((y - x) / eps).norm().item(), rel=1e-4)


def test_validation_errors():
    with pytest.raises(ValueError, match="`h` must be positive"):
        AntisymmetricBlock(4, h=0.0)
    with pytest.raises(ValueError, match="`gamma` must be non-negative"):
        LayerBlock(4, h=0.1, gamma=-1.0)
    with pytest.raises(ValueError, match="`activation` must be one of"):
        LayerBlock(4, h=0.1, activation="swish")
    with pytest.raises(ValueError, match=r"`x` must have shape \(\.\.\., 4\); got \(2, 3\)"):
        LayerBlock(4, h=0.1)(torch.zeros(2, 3))
    with pytest.raises(TypeError, match="`f` must be callable"):
        increment_eigenvalues(None, torch.zeros(3))
    with pytest.raises(ValueError, match=r"`v` must have the shape of `x0` \(2, 3\); got \(3,\)"):
        propagate([], torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(TypeError, match=r"`v` must be a torch\.Tensor; got list"):
        propagate([], torch.zeros(2, 3), [0.0, 0.0, 0.0])
    with pytest.raises(TypeError, match=r"`blocks\[1\]` must be callable"):
        propagate([LayerBlock(3, h=0.1), 2.0], torch.zeros(2, 3))
    with pytest.raises(TypeError, match=r"`x0` must be a torch\.Tensor"):
        propagate([], np.zeros((2, 3)))
