"""Tests for odecourse.depth_limits: random-layer limits and trained layer weights."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from odecourse.data import concentric_circles
from odecourse.depth_limits import (
    BRANCHES,
    SCALINGS,
    EulerClassifier,
    depth_gap,
    linear_limit_quantiles,
    linear_mean_square,
    max_increment,
    random_depth_study,
    random_resnet_outputs,
    step_size,
    train_full_batch,
)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def x0():
    return torch.tensor([[1.0, 0.0], [0.6, -0.8], [-0.5, 0.5]], dtype=torch.float64)


@pytest.fixture(scope="module")
def circles():
    return concentric_circles(200, noise=0.05, seed=0)


# --------------------------------------------------------------------------- step sizes


def test_step_size_scalings():
    assert step_size(2.0, 16, "1/N") == 0.125
    assert step_size(2.0, 16, "1/sqrt(N)") == 0.5


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((0.0, 4, "1/N"), ValueError, "`T` must be positive"),
        ((1.0, 0, "1/N"), ValueError, "`depth` must be an integer >= 1"),
        ((1.0, 2.5, "1/N"), TypeError, "`depth` must be an integer"),
        ((1.0, 4, "1/N^2"), ValueError, "`scaling` must be one of"),
    ],
)
def test_step_size_rejects_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        step_size(*args)


# --------------------------------------------------------------------------- random layers


@pytest.mark.parametrize("branch", BRANCHES)
def test_one_random_layer_is_one_euler_step(x0, branch):
    g = torch.Generator().manual_seed(3)
    out = random_resnet_outputs(x0, 1, T=0.5, branch=branch, sigma=2.0, n_draws=4, generator=g)
    g = torch.Generator().manual_seed(3)
    W = torch.randn(4, 2, 2, generator=g, dtype=torch.float64) * (2.0 / math.sqrt(2))
    if branch == "linear":
        expected = x0 + 0.5 * x0 @ W.mT
    else:
        b = torch.randn(4, 1, 2, generator=g, dtype=torch.float64) * (2.0 / math.sqrt(2))
        expected = x0 + 0.5 * (torch.tanh(x0) @ W.mT + b)
    assert out.shape == (4, 3, 2)
    assert torch.allclose(out, expected, atol=1e-15)


def test_random_networks_are_martingales(x0):
    """E x_N = x_0: the mean over draws is within a few standard errors of x_0."""
    g = torch.Generator().manual_seed(0)
    out = random_resnet_outputs(
        x0, 32, scaling="1/sqrt(N)", branch="tanh", n_draws=4000, generator=g
    )
    error = out.std(dim=0) / math.sqrt(4000)
    assert torch.all((out.mean(dim=0) - x0).abs() < 4 * error)


@pytest.mark.parametrize("scaling", SCALINGS)
def test_linear_mean_square_matches_the_closed_form(x0, scaling):
    depths = [2, 8, 32]
    study = random_depth_study(x0, depths, scaling=scaling, n_draws=4000, seed=1)
    norm2 = (x0**2).sum(dim=1).mean().item()
    exact = np.array([linear_mean_square(n, scaling=scaling) for n in depths]) * norm2
    assert np.all(np.abs(study.mean_square - exact) < 4 * study.standard_error)
    assert study.scaling == scaling and study.branch == "linear"


@pytest.mark.parametrize("branch", BRANCHES)
def test_identity_limit_under_one_over_n(x0, branch):
    study = random_depth_study(x0, [4, 16, 64], branch=branch, n_draws=2000)
    assert abs(study.slope + 1) < 0.1


def test_tanh_branch_has_a_nonzero_limit_under_one_over_sqrt_n(x0):
    """E||x_N - x_0||^2 = h^2 sum_l E||F||^2 with sigma^2 <= E||F||^2 <= (1 + d) sigma^2."""
    sigma, T = 0.8, 1.5
    study = random_depth_study(
        x0, [4, 16, 64], T=T, scaling="1/sqrt(N)", branch="tanh", sigma=sigma, n_draws=2000
    )
    assert abs(study.slope) < 0.1
    low, high = (T * sigma) ** 2, 3 * (T * sigma) ** 2
    assert np.all(study.mean_square > low) and np.all(study.mean_square < high)


def test_linear_mean_square_limits():
    assert linear_mean_square(math.inf, scaling="1/N") == 0.0
    assert linear_mean_square(math.inf, T=2.0, scaling="1/sqrt(N)", sigma=0.5) == pytest.approx(
        math.e - 1
    )
    # explicit product for N = 3, h = T / 3
    assert linear_mean_square(3, T=1.5, sigma=2.0) == pytest.approx((1 + 1.0**2) ** 3 - 1)
    # 1/N scaling: N times the mean square tends to T^2 sigma^2
    assert 1e6 * linear_mean_square(10**6, T=1.0, sigma=1.0) == pytest.approx(1.0, rel=1e-5)
    values = [linear_mean_square(n, scaling="1/sqrt(N)") for n in (1, 10, 100, 1000)]
    assert np.all(np.diff(values) > 0) and values[-1] < math.e - 1


def test_linear_limit_quantiles_closed_form():
    T, sigma = 1.5, 0.8
    s = T * sigma
    q = linear_limit_quantiles([0.5, 0.8413447460685429, 0.15865525393145707], T=T, sigma=sigma)
    # the median is exp(-s^2/2); one standard deviation of B(1) either side multiplies it by e^(+-s)
    assert q == pytest.approx(np.exp(-(s**2) / 2) * np.array([1.0, np.exp(s), np.exp(-s)]))
    grid = linear_limit_quantiles(np.linspace(0.01, 0.99, 50))
    assert np.all(np.diff(grid) > 0)


def test_deep_random_linear_resnet_has_the_lognormal_quantiles():
    """d = 1, h = T/sqrt(N): x_N / x_0 is distributed (nearly) like exp(B(1) - 1/2)."""
    g = torch.Generator().manual_seed(5)
    x0 = torch.ones(1, 1, dtype=torch.float64)
    out = random_resnet_outputs(x0, 256, scaling="1/sqrt(N)", n_draws=20000, generator=g)
    p = np.array([0.1, 0.25, 0.5, 0.75, 0.9])
    empirical = np.quantile(out[:, 0, 0].numpy(), p)
    assert empirical == pytest.approx(linear_limit_quantiles(p), rel=0.05)
    # a normal law with the same mean and variance is far off (its 10% quantile is negative)
    normal = 1 + np.sqrt(np.e - 1) * np.array([-1.2815515655446004, 0, 0, 0, 0])
    assert normal[0] < 0 < empirical[0]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"probabilities": [0.5, 1.0]}, ValueError, "strictly between 0 and 1"),
        ({"probabilities": [0.0]}, ValueError, "strictly between 0 and 1"),
        ({"probabilities": [np.nan]}, ValueError, "`probabilities` must contain only finite"),
        ({"probabilities": "a"}, TypeError, "`probabilities` must be an array of real numbers"),
        ({"sigma": 0.0}, ValueError, "`sigma` must be positive"),
        ({"T": -1.0}, ValueError, "`T` must be positive"),
    ],
)
def test_linear_limit_quantiles_rejects_bad_arguments(kwargs, error, match):
    kwargs = {"probabilities": [0.5]} | kwargs
    with pytest.raises(error, match=match):
        linear_limit_quantiles(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"x0": [[1.0, 2.0]]}, TypeError, "`x0` must be a floating torch.Tensor"),
        ({"x0": torch.ones(3)}, ValueError, r"`x0` must have shape \(n, d\)"),
        ({"branch": "relu"}, ValueError, "`branch` must be one of"),
        ({"scaling": "1/N^2"}, ValueError, "`scaling` must be one of"),
        ({"sigma": -1.0}, ValueError, "`sigma` must be positive"),
        ({"n_draws": 0}, ValueError, "`n_draws` must be an integer >= 1"),
        ({"generator": 3}, TypeError, "`generator` must be a torch.Generator"),
    ],
)
def test_random_resnet_outputs_rejects_bad_arguments(x0, kwargs, error, match):
    kwargs = {"x0": x0, "depth": 2} | kwargs
    with pytest.raises(error, match=match):
        random_resnet_outputs(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"depths": [4, 4]}, ValueError, "at least two different depths"),
        ({"depths": "48"}, TypeError, "`depths` must be a sequence"),
        ({"depths": [4, 0]}, ValueError, "`depths` must be an integer >= 1"),
        ({"n_draws": 1}, ValueError, "`n_draws` must be an integer >= 2"),
        ({"seed": -1}, ValueError, "`seed` must be an integer >= 0"),
    ],
)
def test_random_depth_study_rejects_bad_arguments(x0, kwargs, error, match):
    kwargs = {"depths": [2, 4]} | kwargs
    with pytest.raises(error, match=match):
        random_depth_study(x0, **kwargs)


# --------------------------------------------------------------------------- trained layers


def test_classifier_is_an_euler_resnet_with_shared_fixed_ends():
    a = EulerClassifier(2, 3, depth=5, width=4, T=2.0, init="iid", seed=7, dtype=torch.float64)
    b = EulerClassifier(2, 3, depth=9, width=4, init="smooth", seed=7, dtype=torch.float64)
    for name in ("A", "a", "C", "c"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert {name for name, _ in a.named_parameters()} == {"weight", "bias"}
    assert a.theta().shape == (5, 4 * 4 + 4)
    assert np.allclose(a.times(), 0.4 * np.arange(5))
    u = torch.randn(6, 2, dtype=torch.float64)
    x = u @ a.A.T + a.a
    for W, bias in zip(a.weight, a.bias, strict=True):
        x = x + 0.4 * (torch.tanh(x) @ W.T + bias)
    assert torch.allclose(a(u), x @ a.C.T + a.c, atol=1e-13)


def test_smooth_initialisation_samples_one_function_of_depth():
    nets = {
        n: EulerClassifier(2, 2, depth=n, width=6, init="smooth", seed=1, dtype=torch.float64)
        for n in (8, 16, 32)
    }
    # the same function for every depth: layer 2l of the 16-layer net is layer l of the 8
    assert np.allclose(nets[16].theta()[::2], nets[8].theta(), atol=1e-14)
    rough = [max_increment(nets[n].theta()) for n in (8, 16, 32)]
    assert rough[0] / rough[1] == pytest.approx(2, rel=0.1)
    assert rough[1] / rough[2] == pytest.approx(2, rel=0.1)


def test_iid_initialisation_stays_rough():
    rough = [
        max_increment(EulerClassifier(2, 2, depth=n, width=6, seed=1).theta()) for n in (8, 64)
    ]
    assert rough[1] > 0.8 * rough[0]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"init": "zeros"}, ValueError, "`init` must be one of"),
        ({"depth": 0}, ValueError, "`depth` must be an integer >= 1"),
        ({"width": 1.5}, TypeError, "`width` must be an integer"),
        ({"T": -1.0}, ValueError, "`T` must be positive"),
        ({"scale": 0.0}, ValueError, "`scale` must be positive"),
    ],
)
def test_classifier_rejects_bad_arguments(kwargs, error, match):
    kwargs = {"depth": 3, "width": 4} | kwargs
    with pytest.raises(error, match=match):
        EulerClassifier(2, 2, **kwargs)


def test_set_theta_round_trip():
    net = EulerClassifier(2, 2, depth=3, width=4, dtype=torch.float64)
    theta = np.arange(3 * 20, dtype=float).reshape(3, 20)
    net.set_theta(theta)
    assert np.array_equal(net.theta(), theta)
    assert net.weight[1, 2, 3].item() == theta[1, 2 * 4 + 3]
    assert net.bias[2, 1].item() == theta[2, 16 + 1]
    with pytest.raises(ValueError, match=r"`theta` must have shape \(3, 20\); got \(3, 16\)"):
        net.set_theta(theta[:, :16])


def test_classifier_rejects_bad_inputs():
    net = EulerClassifier(2, 2, depth=3, width=4)
    with pytest.raises(ValueError, match=r"`u` must be a tensor of shape \(n, 2\)"):
        net(torch.ones(5, 3))


def test_training_decreases_the_loss(circles):
    net = EulerClassifier(2, 2, depth=4, width=6, init="smooth", dtype=torch.float64)
    losses = train_full_batch(net, circles, steps=60, lr=0.05)
    assert len(losses) == 61
    X = circles.X_train.to(torch.float64)
    assert losses[-1] == pytest.approx(nn.functional.cross_entropy(net(X), circles.y_train).item())
    assert losses[-1] < 0.5 * losses[0]


def test_sgd_is_plain_gradient_descent(circles):
    net = EulerClassifier(2, 2, depth=5, width=4, init="smooth", dtype=torch.float64)
    X = circles.X_train.to(torch.float64)
    loss = nn.functional.cross_entropy(net(X), circles.y_train)
    grads = torch.autograd.grad(loss, [net.weight, net.bias])
    expected = [p.detach() - 0.1 * g for p, g in zip([net.weight, net.bias], grads, strict=True)]
    losses = train_full_batch(net, circles, steps=1, lr=0.1, optimizer="sgd")
    assert losses[0] == pytest.approx(loss.item())
    assert torch.allclose(net.weight, expected[0], atol=1e-15)
    assert torch.allclose(net.bias, expected[1], atol=1e-15)


def test_gradient_descent_moves_layers_by_order_h(circles):
    """The gradient of layer l is h a_{l+1} (tanh(x_l), 1): one step moves a layer by O(h)."""
    moves = []
    for n in (8, 32):
        net = EulerClassifier(2, 2, depth=n, width=6, init="smooth", dtype=torch.float64)
        before = net.theta()
        train_full_batch(net, circles, steps=1, lr=1.0, optimizer="sgd")
        moves.append(np.linalg.norm(net.theta() - before, axis=1).max())
    assert moves[0] / moves[1] == pytest.approx(4, rel=0.1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"optimizer": "rmsprop"}, ValueError, "`optimizer` must be one of 'adam', 'sgd'"),
        ({"model": "net"}, TypeError, "`model` must be a torch.nn.Module"),
        ({"data": (1, 2)}, TypeError, "`data` must be an odecourse.data.Dataset"),
        ({"steps": 0}, ValueError, "`steps` must be an integer >= 1"),
        ({"lr": -0.1}, ValueError, "`lr` must be positive"),
        ({"model": nn.ReLU()}, ValueError, "`model` has no trainable parameters"),
    ],
)
def test_train_full_batch_rejects_bad_arguments(circles, kwargs, error, match):
    kwargs = {"model": EulerClassifier(2, 2, depth=2, width=3), "data": circles} | kwargs
    with pytest.raises(error, match=match):
        train_full_batch(**kwargs)


# --------------------------------------------------------------------------- roughness


def test_max_increment_of_known_sequences():
    t = np.linspace(0.0, 1.0, 101)
    smooth = np.stack([np.sin(2 * np.pi * t), t**2], axis=1)
    # max_l |theta_{l+1} - theta_l| ~ h max |theta'(t)| = 0.01 |(2 pi, 2)|, at t = 1
    assert max_increment(smooth) == pytest.approx(0.01 * np.hypot(2 * np.pi, 2), rel=1e-2)
    assert max_increment([0.0, 3.0, 1.0, 1.5]) == 3.0
    assert max_increment(torch.tensor([[0.0, 0.0], [3.0, 4.0]])) == 5.0


@pytest.mark.parametrize(
    ("theta", "error", "match"),
    [
        ([[1.0, 2.0]], ValueError, r"N >= 2; got \(1, 2\)"),
        (np.zeros((3, 2, 2)), ValueError, "shape"),
        ([1.0, np.nan], ValueError, "`theta` must be finite"),
        (["a", "b"], TypeError, "`theta` must be a real array"),
    ],
)
def test_max_increment_rejects_bad_arguments(theta, error, match):
    with pytest.raises(error, match=match):
        max_increment(theta)


def _samples(n, shift=0.0):
    """(sin 3t, t^2) at the layer times t_l = l/n, moved by ``shift`` layers."""
    t = (np.arange(n) + shift) / n
    return np.stack([np.sin(3 * t), t**2], axis=1)


def test_depth_gap_at_common_times():
    # samples of one function agree at the common times
    assert depth_gap(_samples(8), _samples(32)) == pytest.approx(0.0, abs=1e-15)
    # samples at the midpoints of the layers instead: an O(h) shift, so the gap halves
    gaps = [depth_gap(_samples(n, 0.5), _samples(2 * n, 0.5)) for n in (16, 32, 64)]
    assert gaps[0] / gaps[1] == pytest.approx(2, rel=0.05)
    assert gaps[1] / gaps[2] == pytest.approx(2, rel=0.05)
    assert depth_gap([0.0, 1.0], [0.0, 5.0, 4.0, 7.0]) == 3.0
    assert depth_gap(torch.zeros(2, 2), torch.tensor([[3.0, 4.0], [0, 0], [0, 0], [0, 0]])) == 5.0


@pytest.mark.parametrize(
    ("coarse", "fine", "error", "match"),
    [
        (
            np.zeros((3, 2)),
            np.zeros((8, 2)),
            ValueError,
            r"whole multiple .* \(3, 2\) and \(8, 2\)",
        ),
        (np.zeros((2, 2)), np.zeros((4, 3)), ValueError, "as many parameters per layer"),
        (np.zeros((0, 2)), np.zeros((4, 2)), ValueError, "`coarse` must have shape"),
        (np.zeros(2), [np.inf] * 4, ValueError, "`fine` must be finite"),
        (["a"], [1.0], TypeError, "`coarse` must be a real array"),
    ],
)
def test_depth_gap_rejects_bad_arguments(coarse, fine, error, match):
    with pytest.raises(error, match=match):
        depth_gap(coarse, fine)
