"""Tests for odecourse.data: seeding, balance, shapes, dtypes and validation."""

import numpy as np
import pytest
import torch

from odecourse.data import (
    Dataset,
    concentric_circles,
    digits,
    split_balanced,
    two_moons,
    two_moons_log_density,
    two_spirals,
)

GENERATORS = [two_spirals, concentric_circles, two_moons]


def as_tuple(data: Dataset):
    return data.X_train, data.y_train, data.X_test, data.y_test


@pytest.mark.parametrize("make", GENERATORS)
def test_same_seed_same_data_different_seed_different(make):
    a, b, c = make(200, seed=4), make(200, seed=4), make(200, seed=5)
    for x, y in zip(as_tuple(a), as_tuple(b), strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a.X_train, c.X_train)


@pytest.mark.parametrize("make", GENERATORS)
@pytest.mark.parametrize("test_fraction", [0.25, 0.5])
def test_shapes_dtypes_and_balance(make, test_fraction):
    data = make(400, test_fraction=test_fraction, seed=0)
    n_test = round(400 * test_fraction)
    assert data.X_train.shape == (400 - n_test, 2) and data.X_test.shape == (n_test, 2)
    assert data.X_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.n_features == 2 and data.n_classes == 2
    for y in (data.y_train, data.y_test):
        counts = torch.bincount(y, minlength=2)
        assert counts[0] == counts[1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inputs_take_the_default_dtype(dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        data = two_spirals(100, seed=0)
    finally:
        torch.set_default_dtype(previous)
    assert data.X_train.dtype == dtype and data.X_test.dtype == dtype
    assert data.y_train.dtype == torch.int64
    # The same points, only the precision differs.
    reference = two_spirals(100, seed=0)
    assert torch.allclose(data.X_train.double(), reference.X_train.double(), atol=1e-6)


def test_train_and_test_are_disjoint():
    data = two_spirals(300 * 2, seed=1)
    train = {tuple(row) for row in data.X_train.tolist()}
    assert not any(tuple(row) in train for row in data.X_test.tolist())


def test_circles_have_the_stated_radii_without_noise():
    data = concentric_circles(200, factor=0.3, noise=0.0, seed=0)
    X = torch.cat([data.X_train, data.X_test])
    y = torch.cat([data.y_train, data.y_test])
    radius = X.norm(dim=1)
    torch.testing.assert_close(radius[y == 0], torch.ones(100))
    torch.testing.assert_close(radius[y == 1], torch.full((100,), 0.3))


def test_spiral_arms_are_point_reflections_of_each_other_without_noise():
    data = two_spirals(100, noise=0.0, seed=0)
    X = torch.cat([data.X_train, data.X_test]).double()
    y = torch.cat([data.y_train, data.y_test])
    arm0, arm1 = X[y == 0], X[y == 1]
    # every point of arm 1 is minus a point of arm 0
    distances = torch.cdist(-arm1, arm0).min(dim=1).values
    assert distances.max() < 1e-6
    assert X.norm(dim=1).max() <= 1.0 + 1e-6


def test_moons_are_shifted_unit_half_circles_without_noise():
    data = two_moons(400, noise=0.0, seed=0)
    X = torch.cat([data.X_train, data.X_test]).double()
    y = torch.cat([data.y_train, data.y_test])
    upper, lower = X[y == 0], X[y == 1]
    centre = torch.tensor([-0.5, -0.25], dtype=torch.float64)
    ones = torch.ones(200, dtype=torch.float64)
    torch.testing.assert_close((upper - centre).norm(dim=1), ones, rtol=0, atol=1e-6)
    assert bool((upper[:, 1] >= -0.25 - 1e-6).all())  # the upper half of its circle
    torch.testing.assert_close((lower + centre).norm(dim=1), ones, rtol=0, atol=1e-6)
    assert torch.cdist(-lower, upper).min(dim=1).values.max() < 1e-6  # class 1 is -class 0
    # The noise-free set is symmetric about the origin in distribution: its mean is near 0.
    assert X.mean(0).abs().max() < 0.1


def _cell_centres(half_width: float, n: int) -> tuple[torch.Tensor, float]:
    """Centres of an n x n grid of square cells covering [-half_width, half_width]^2."""
    width = 2 * half_width / n
    axis = -half_width + width * (torch.arange(n, dtype=torch.float64) + 0.5)
    xx, yy = torch.meshgrid(axis, axis, indexing="xy")
    return torch.stack([xx.ravel(), yy.ravel()], 1), width**2


@pytest.mark.parametrize(("noise", "half_width"), [(0.1, 2.0), (0.3, 3.0)])
def test_moons_log_density_integrates_to_one(noise, half_width):
    # Cells of half the noise level: the midpoint sum of a smooth density is very accurate.
    points, cell = _cell_centres(half_width, round(4 * half_width / noise))
    density = two_moons_log_density(points, noise=noise, n_panels=25).exp()
    assert abs(density.sum().item() * cell - 1) < 1e-3


def test_moons_log_density_matches_the_sampler():
    # The probability of each quadrant under the density equals the fraction of samples in it.
    points, cell = _cell_centres(2.0, 80)  # no cell straddles an axis
    density = two_moons_log_density(points, n_panels=25).exp()
    data = two_moons(40_000, noise=0.1, seed=3)
    X = torch.cat([data.X_train, data.X_test]).double()
    for sx, sy in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        inside = (sx * points[:, 0] > 0) & (sy * points[:, 1] > 0)
        probability = density[inside].sum().item() * cell
        fraction = ((sx * X[:, 0] > 0) & (sy * X[:, 1] > 0)).double().mean().item()
        standard_error = (probability * (1 - probability) / X.shape[0]) ** 0.5
        assert abs(fraction - probability) < 4 * standard_error + 1e-3


def test_moons_log_density_against_independent_quadrature():
    from scipy.integrate import quad

    x = torch.tensor(
        [[0.3, 0.6], [-1.2, -0.1], [0.0, 0.0], [1.0, 0.5], [1.5, 1.2]], dtype=torch.float64
    )
    s = 0.1
    ours = two_moons_log_density(x, noise=s)
    for point, value in zip(x.tolist(), ours.tolist(), strict=True):

        def integrand(theta, sign, point=point):
            cx, cy = sign * (np.cos(theta) - 0.5), sign * (np.sin(theta) - 0.25)
            squared = (point[0] - cx) ** 2 + (point[1] - cy) ** 2
            return np.exp(-squared / (2 * s**2)) / (2 * np.pi * s**2)

        total = sum(
            quad(integrand, 0, np.pi, args=(sign,), limit=200, epsabs=0, epsrel=1e-12)[0]
            for sign in (1, -1)
        )
        assert value == pytest.approx(np.log(total / (2 * np.pi)), abs=1e-8)
    # Point symmetry: the second moon is the first reflected through the origin.
    torch.testing.assert_close(two_moons_log_density(-x), ours)
    # The composite Gauss rule has converged long before the default number of panels.
    torch.testing.assert_close(two_moons_log_density(x, n_panels=25), ours, rtol=0, atol=1e-6)


def test_moons_log_density_keeps_the_dtype_and_validates():
    x32 = torch.zeros(3, 2, dtype=torch.float32)
    assert two_moons_log_density(x32).dtype == torch.float32
    with pytest.raises(ValueError, match="`noise`"):
        two_moons_log_density(x32, noise=0.0)
    with pytest.raises(ValueError, match="`n_panels`"):
        two_moons_log_density(x32, n_panels=0)
    with pytest.raises(ValueError, match="2 columns"):
        two_moons_log_density(torch.zeros(3, 3))
    with pytest.raises(TypeError, match="`x`"):
        two_moons_log_density(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="finite"):
        two_moons_log_density(torch.full((1, 2), float("nan")))


def test_digits_is_stratified_and_scaled():
    data = digits(test_fraction=0.25, seed=0)
    assert data.n_features == 64 and data.n_classes == 10
    assert data.X_train.shape[0] + data.X_test.shape[0] == 1797
    assert 0.0 <= float(data.X_train.min()) and float(data.X_train.max()) <= 1.0
    train = torch.bincount(data.y_train, minlength=10).numpy()
    test = torch.bincount(data.y_test, minlength=10).numpy()
    share = test / (train + test)
    np.testing.assert_allclose(share, 0.25, atol=0.01)
    assert torch.equal(digits(seed=0).y_train, data.y_train)
    assert not torch.equal(digits(seed=1).y_train, data.y_train)


@pytest.mark.parametrize("make", GENERATORS)
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_samples": 201}, ValueError, "`n_samples`"),
        ({"n_samples": 2}, ValueError, "`n_samples`"),
        ({"n_samples": 100.0}, TypeError, "`n_samples`"),
        ({"noise": -0.1}, ValueError, "`noise`"),
        ({"test_fraction": 1.0}, ValueError, "`test_fraction`"),
        ({"test_fraction": 0}, ValueError, "`test_fraction`"),
        ({"seed": -1}, ValueError, "`seed`"),
    ],
)
def test_validation(make, kwargs, error, match):
    with pytest.raises(error, match=match):
        make(**kwargs)


def test_generator_specific_validation():
    with pytest.raises(ValueError, match="`turns`"):
        two_spirals(turns=0)
    with pytest.raises(ValueError, match="`factor`"):
        concentric_circles(factor=1.5)
    with pytest.raises(ValueError, match="`test_fraction`"):
        digits(test_fraction=-0.2)


def test_split_balanced_keeps_every_class_in_both_splits():
    X = np.arange(12.0).reshape(6, 2)
    y = np.array([0, 0, 1, 1, 1, 1])
    data = split_balanced(X, y, test_fraction=0.9, rng=np.random.default_rng(0))
    for labels in (data.y_train, data.y_test):
        assert set(labels.tolist()) == {0, 1}
    assert len(data.y_train) + len(data.y_test) == 6
    rows = torch.cat([data.X_train, data.X_test])[:, 0].sort().values
    assert torch.equal(rows, torch.tensor(X[:, 0], dtype=torch.float32))


@pytest.mark.parametrize(
    ("X", "y", "rng", "error", "match"),
    [
        (np.zeros(4), np.array([0, 0, 1, 1]), None, ValueError, "`X` must have 2 dimension"),
        (
            np.zeros((4, 2)),
            np.array([0, 0, 1]),
            None,
            ValueError,
            r"`y` must be an integer .*\(4,\)",
        ),
        (np.zeros((4, 2)), np.array([0.0, 0, 1, 1]), None, ValueError, "`y` must be an integer"),
        (np.zeros((3, 2)), np.array([0, 0, 1]), None, ValueError, "class 1 has 1"),
        (np.zeros((4, 2)), np.array([0, 0, 1, 1]), 0, TypeError, "`rng` must be a numpy"),
    ],
)
def test_split_balanced_validation(X, y, rng, error, match):
    rng = np.random.default_rng(0) if rng is None else rng
    with pytest.raises(error, match=match):
        split_balanced(X, y, test_fraction=0.25, rng=rng)
