"""Tests for odecourse.networks: shapes, parameter counts, the residual update, lesions."""

import math

import pytest
import torch

from odecourse.networks import (
    ACTIVATIONS,
    MLP,
    PlainBlock,
    PlainMLP,
    ResidualBlock,
    ResidualMLP,
    count_parameters,
)

NETWORKS = [PlainMLP, ResidualMLP]


def closed_form_count(d: int, c: int, width: int, depth: int) -> int:
    return (d + 1) * width + depth * (width + 1) * width + (width + 1) * c


@pytest.mark.parametrize("cls", NETWORKS)
@pytest.mark.parametrize(
    ("d", "c", "width", "depth"), [(2, 2, 16, 1), (64, 10, 8, 5), (3, 4, 1, 2)]
)
def test_shapes_and_parameter_count(cls, d, c, width, depth):
    model = cls(d, c, depth=depth, width=width)
    x = torch.randn(7, d)
    assert model(x).shape == (7, c)
    states = model.hidden_states(x)
    assert len(states) == depth + 1
    assert all(s.shape == (7, width) for s in states)
    assert model.depth == depth
    assert count_parameters(model) == closed_form_count(d, c, width, depth)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_residual_block_with_zero_branch_is_identity(activation):
    block = ResidualBlock(5, activation, h=0.7)
    torch.nn.init.zeros_(block.linear.weight)
    torch.nn.init.zeros_(block.linear.bias)
    x = torch.randn(4, 5)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)


def test_h_scales_the_update():
    torch.manual_seed(0)
    x = torch.randn(6, 4)
    one = ResidualBlock(4, "tanh", h=1.0)
    for h in (0.5, 0.1, 2.0):
        block = ResidualBlock(4, "tanh", h=h)
        block.load_state_dict(one.state_dict())
        torch.testing.assert_close(block(x) - x, h * (one(x) - x))


def test_residual_block_is_euler_step_of_its_branch():
    torch.manual_seed(1)
    block = ResidualBlock(3, "relu", h=0.25)
    x = torch.randn(5, 3)
    expected = x + 0.25 * (block.linear(torch.relu(x)))
    torch.testing.assert_close(block(x), expected)


def test_plain_and_residual_differ_only_by_the_shortcut():
    torch.manual_seed(2)
    plain = PlainMLP(2, 3, depth=4, width=6, activation="tanh")
    residual = ResidualMLP(2, 3, depth=4, width=6, activation="tanh")
    residual.load_state_dict(plain.state_dict())
    x = torch.randn(8, 2)
    states = residual.hidden_states(x)
    for block, plain_block, before, after in zip(
        residual.blocks, plain.blocks, states[:-1], states[1:], strict=True
    ):
        torch.testing.assert_close(after, before + plain_block(before))
        assert isinstance(block, ResidualBlock) and isinstance(plain_block, PlainBlock)


@pytest.mark.parametrize("cls", NETWORKS)
def test_dropping_a_block_replaces_it_by_identity(cls):
    torch.manual_seed(3)
    model = cls(2, 2, depth=3, width=4)
    x = torch.randn(5, 2)
    states = model.hidden_states(x, drop=1)
    torch.testing.assert_close(states[2], states[1])
    torch.testing.assert_close(states[3], model.blocks[2](states[1]))
    torch.testing.assert_close(model(x, drop=[1]), model.output(states[3]))
    everything = model(x, drop=range(3))
    torch.testing.assert_close(everything, model.output(model.input(x)))


def test_residual_network_with_zero_branches_is_affine():
    model = ResidualMLP(2, 2, depth=5, width=4)
    for block in model.blocks:
        torch.nn.init.zeros_(block.linear.weight)
        torch.nn.init.zeros_(block.linear.bias)
    x = torch.randn(3, 2)
    torch.testing.assert_close(model(x), model.output(model.input(x)))


@pytest.mark.parametrize("cls", NETWORKS)
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"depth": 0}, ValueError, "`depth`"),
        ({"depth": 2.0}, TypeError, "`depth`"),
        ({"width": 0}, ValueError, "`width`"),
        ({"width": "8"}, TypeError, "`width`"),
        ({"activation": "softsign"}, ValueError, "`activation`"),
    ],
)
def test_size_validation(cls, kwargs, error, match):
    args = {"depth": 2, "width": 4, **kwargs}
    with pytest.raises(error, match=match):
        cls(2, 2, **args)


@pytest.mark.parametrize(
    ("h", "error"),
    [
        (0.0, ValueError),
        (-0.5, ValueError),
        (math.inf, ValueError),
        (math.nan, ValueError),
        ("1", TypeError),
        (None, TypeError),
        (True, TypeError),
    ],
)
def test_bad_h(h, error):
    with pytest.raises(error, match="`h`"):
        ResidualMLP(2, 2, depth=2, width=4, h=h)
    with pytest.raises(error, match="`h`"):
        ResidualBlock(4, h=h)


@pytest.mark.parametrize("cls", NETWORKS)
def test_forward_input_validation(cls):
    model = cls(3, 2, depth=2, width=4)
    with pytest.raises(ValueError, match=r"`x` must have shape \(n, 3\)"):
        model(torch.randn(5, 2))
    with pytest.raises(ValueError, match="`x`"):
        model(torch.randn(3))
    with pytest.raises(TypeError, match="`x`"):
        model([[0.0, 1.0, 2.0]])
    with pytest.raises(ValueError, match="`drop`"):
        model(torch.randn(5, 3), drop=2)
    with pytest.raises(TypeError, match="`drop`"):
        model(torch.randn(5, 3), drop=[1.5])


def test_count_parameters_rejects_non_modules():
    with pytest.raises(TypeError, match="`model`"):
        count_parameters([torch.zeros(3)])


def test_mlp_base_class_validates_its_width():
    with pytest.raises(ValueError, match="`width` must be an integer >= 1; got 0"):
        MLP(2, 2, [], 0)
    with pytest.raises(TypeError, match="`width` must be an integer"):
        MLP(2, 2, [], 4.0)
