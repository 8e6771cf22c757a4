"""Tests for odecourse.residual and odecourse.continuous_depth: integrators as architectures."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from odecourse.adjoint import odeint_adjoint
from odecourse.continuous_depth import (
    EvaluationRecorder,
    TimeDependentField,
    continuous_depth_errors,
)
from odecourse.multistep import adams_bashforth, adams_moulton
from odecourse.networks import ResidualMLP, count_parameters
from odecourse.odeint import SolveStats, odeint
from odecourse.residual import (
    LayerField,
    MultistepResNet,
    ResidualClassifier,
    RKResNet,
    make_classifier,
    make_layer_fields,
    residual_network,
)
from odecourse.runge_kutta import TABLEAUS, get_tableau
from odecourse.seeding import seed_everything

EXPLICIT = [name for name, tableau in TABLEAUS.items() if tableau.explicit]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def field():
    seed_everything(0)
    return TimeDependentField(2, 16, dtype=torch.float64)


@pytest.fixture
def x0():
    return torch.linspace(-1.0, 1.0, 10, dtype=torch.float64).reshape(5, 2)


class Linear(nn.Module):
    """f(t, x) = x A^T, a linear autonomous field with known flow."""

    def __init__(self, A):
        super().__init__()
        self.A = A

    def forward(self, t, x):
        return x @ self.A.T


def test_field_parameters_are_smooth_in_time(field):
    W1, _, _, b2 = field.parameters_at(0.0)
    assert torch.equal(W1, field.W1[0]) and torch.equal(b2, field.b2[0])
    W1_half = field.parameters_at(0.5)[0]
    assert torch.allclose(W1_half, field.W1[0] + 0.5 * field.W1[1] + field.W1[2])
    assert count_parameters(field) == 3 * (2 * 16 * 2 + 16 + 2)
    t = torch.tensor(0.3, dtype=torch.float64)
    assert torch.equal(
        field(t, torch.zeros(3, 2, dtype=torch.float64)),
        field(0.3, torch.zeros(3, 2, dtype=torch.float64)),
    )


@pytest.mark.parametrize("L", [1, 7, 32])
def test_euler_resnet_is_odeint_euler_on_the_grid(field, x0, L):
    t = torch.linspace(0.0, 1.5, L + 1, dtype=torch.float64)
    expected = odeint(field, x0, t, method="euler")
    states = torch.stack(RKResNet(field, depth=L, T=1.5).states(x0))
    assert torch.allclose(states, expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("name", ["midpoint", "heun", "rk4"])
def test_rk_resnet_is_odeint_fixed_method_on_the_grid(field, x0, name):
    t = torch.linspace(0.0, 1.0, 9, dtype=torch.float64)
    expected = odeint(field, x0, t, method=name)
    states = torch.stack(RKResNet(field, depth=8, T=1.0, tableau=name).states(x0))
    assert torch.allclose(states, expected, rtol=0, atol=1e-13)


def test_midpoint_layer_on_a_linear_field_is_the_stability_polynomial(x0):
    A = torch.tensor([[-1.0, 2.0], [-2.0, -0.5]], dtype=torch.float64)
    h = 0.25
    layer = RKResNet(Linear(A), depth=1, T=h, tableau="midpoint")
    M = torch.eye(2, dtype=torch.float64) + h * A + (h * A) @ (h * A) / 2
    assert torch.allclose(layer(x0), x0 @ M.T, atol=1e-15)


@pytest.mark.parametrize(("scheme", "order"), [("euler", 1), ("midpoint", 2), ("rk4", 4)])
def test_continuous_depth_limit_has_the_order_of_the_integrator(field, x0, scheme, order):
    depths = [8, 16, 32, 64] if order < 4 else [4, 8, 16, 32]
    study = continuous_depth_errors(field, x0, 1.0, depths, scheme)
    assert abs(study.order - order) < 0.2
    assert np.all(np.diff(study.errors) < 0)
    assert np.allclose(study.h, 1.0 / np.array(depths))


def test_ab2_resnet_converges_at_order_two(field, x0):
    study = continuous_depth_errors(field, x0, 1.0, [8, 16, 32, 64], adams_bashforth(2))
    assert abs(study.order - 2) < 0.2


def test_ab2_layer_formula_and_euler_start(field, x0):
    net = MultistepResNet(field, depth=3, T=0.6, method=adams_bashforth(2))
    x = net.states(x0)
    h = 0.2
    F = [field(i * h, x[i]) for i in range(3)]
    assert torch.allclose(x[1], x0 + h * F[0], atol=1e-15)
    assert torch.allclose(x[2], x[1] + h * (1.5 * F[1] - 0.5 * F[0]), atol=1e-14)
    assert torch.allclose(x[3], x[2] + h * (1.5 * F[2] - 0.5 * F[1]), atol=1e-14)


def test_ab1_resnet_is_the_euler_resnet(field, x0):
    ab1 = MultistepResNet(field, depth=10, T=1.0, method=adams_bashforth(1))
    euler = RKResNet(field, depth=10, T=1.0)
    assert torch.allclose(ab1(x0), euler(x0), atol=1e-14)


@pytest.mark.parametrize(("starter", "order"), [("heun", 3), ("euler", 2)])
def test_ab3_order_is_limited_by_the_starter(field, x0, starter, order):
    # A starter of order q contributes O(h^(q+1)) once: global order min(3, q + 1).
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    exact = odeint(field, x0, t, rtol=1e-12, atol=1e-12)[-1]
    depths = np.array([16, 32, 64, 128])
    errors = []
    for L in depths:
        net = MultistepResNet(field, depth=int(L), method=adams_bashforth(3), starter=starter)
        errors.append((net(x0) - exact).abs().max().item())
    slope = np.polyfit(np.log(1.0 / depths), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.25


def test_per_layer_fields_give_independent_parameters():
    seed_everything(0)
    fields = make_layer_fields(4, 8, "tanh")
    net = RKResNet(fields, depth=4, T=2.0, tableau="midpoint")
    assert count_parameters(net) == 4 * (8 + 1) * 8
    assert not torch.equal(fields[0].linear.weight, fields[1].linear.weight)
    x = torch.randn(3, 8)
    h = 0.5
    k1 = fields[0](0.0, x)
    expected = x + h * fields[0](h / 2, x + h / 2 * k1)
    assert torch.allclose(net.states(x)[1], expected, atol=1e-6)


@pytest.mark.parametrize("scheme", ["euler", "midpoint", "rk4", adams_bashforth(2)])
def test_classifiers_share_the_parameter_budget(scheme):
    d, c, L, w = 2, 2, 6, 12
    expected = (d + 1) * w + L * (w + 1) * w + (w + 1) * c
    model = make_classifier(scheme, d, c, depth=L, width=w)
    assert count_parameters(model) == expected
    assert model(torch.zeros(5, d)).shape == (5, c)


def test_euler_classifier_with_unit_step_is_the_chapter_5_resnet():
    seed_everything(3)
    ours = make_classifier("euler", 2, 3, depth=5, width=8)
    seed_everything(3)
    reference = ResidualMLP(2, 3, depth=5, width=8, h=1.0)
    u = torch.randn(7, 2)
    assert torch.allclose(ours(u), reference(u), atol=1e-6)


def test_same_seed_gives_the_same_initial_weights_for_every_scheme():
    seed_everything(1)
    euler = make_classifier("euler", 2, 2, depth=4, width=8)
    seed_everything(1)
    ab2 = make_classifier(adams_bashforth(2), 2, 2, depth=4, width=8)
    for p, q in zip(euler.parameters(), ab2.parameters(), strict=True):
        assert torch.equal(p, q)


def test_recorder_records_every_evaluation(field, x0):
    recorder = EvaluationRecorder(field)
    stats = SolveStats()
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    odeint(recorder, x0, t, rtol=1e-6, atol=1e-8, stats=stats)
    assert recorder.nfe == stats.nfe == len(recorder.states)
    assert recorder.times[0] == 0.0 and max(recorder.times) == pytest.approx(1.0)
    assert torch.equal(recorder.states[0], x0)
    assert sum(p.numel() for p in recorder.parameters()) == count_parameters(field)
    recorder.reset()
    assert recorder.nfe == 0


def test_recorder_on_a_resnet_sees_the_layer_times(field, x0):
    recorder = EvaluationRecorder(field)
    RKResNet(recorder, depth=4, T=1.0)(x0)
    assert recorder.times == [0.0, 0.25, 0.5, 0.75]


# --------------------------------------------------------------------------- validation


def test_validation_errors(field, x0):
    with pytest.raises(ValueError, match="`depth` must be an integer >= 1; got 0"):
        RKResNet(field, depth=0)
    with pytest.raises(TypeError, match="`depth` must be an integer"):
        RKResNet(field, depth=2.5)
    with pytest.raises(ValueError, match=r"`T` must be positive; got -1\.0"):
        RKResNet(field, depth=4, T=-1.0)
    with pytest.raises(ValueError, match="`T` must be finite"):
        RKResNet(field, depth=4, T=math.inf)
    with pytest.raises(ValueError, match="`tableau` must be an explicit tableau; 'trapezoid'"):
        RKResNet(field, depth=4, tableau=get_tableau("trapezoid"))
    with pytest.raises(ValueError, match=r"`tableau` must be one of .*'rk4'.*; got 'nonsense'"):
        RKResNet(field, depth=4, tableau="nonsense")
    with pytest.raises(
        TypeError, match="`tableau` must be a ButcherTableau or the name of one; got int"
    ):
        RKResNet(field, depth=4, tableau=4)
    with pytest.raises(TypeError, match="`field` must be callable"):
        RKResNet(3.0, depth=4)
    with pytest.raises(ValueError, match="sequence of `depth` = 4 callables; got a sequence of 3"):
        RKResNet(make_layer_fields(3, 4), depth=4)
    with pytest.raises(ValueError, match=r"`x` must have shape \(\.\.\., 2\); got \(5, 3\)"):
        RKResNet(field, depth=4)(torch.zeros(5, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"`x` must be a torch\.Tensor"):
        RKResNet(field, depth=4)(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="must be explicit"):
        MultistepResNet(field, depth=4, method=adams_moulton(2))
    with pytest.raises(TypeError, match="`method` must be a LinearMultistepMethod"):
        MultistepResNet(field, depth=4, method="AB2")
    with pytest.raises(ValueError, match="`starter` must be an explicit tableau"):
        MultistepResNet(field, depth=4, method=adams_bashforth(2), starter="backward_euler")
    with pytest.raises(ValueError, match="at least two different depths"):
        continuous_depth_errors(field, x0, 1.0, [4, 4])
    with pytest.raises(ValueError, match=r"`scheme` must be one of .*; got 'nonsense'"):
        continuous_depth_errors(field, x0, 1.0, [4, 8], "nonsense")
    with pytest.raises(ValueError, match="`dim` must be an integer >= 1"):
        TimeDependentField(0, 4)
    with pytest.raises(ValueError, match="`activation` must be one of"):
        LayerField(4, "swish")
    with pytest.raises(ValueError, match=r"`u` must be a tensor of shape \(n, 2\); got \(3, 5\)"):
        make_classifier("euler", 2, 2, depth=2, width=4)(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="the widths must agree"):
        ResidualClassifier(
            nn.Linear(2, 5), RKResNet(make_layer_fields(2, 4), depth=2), nn.Linear(4, 2)
        )
    with pytest.raises(TypeError, match="`body` must be an RKResNet or a MultistepResNet"):
        ResidualClassifier(nn.Linear(2, 4), nn.Identity(), nn.Linear(4, 2))


@pytest.mark.parametrize("name", EXPLICIT)
def test_every_explicit_tableau_builds_a_network(field, x0, name):
    assert RKResNet(field, depth=3, tableau=name)(x0).shape == x0.shape


@pytest.mark.parametrize(
    ("scheme", "error", "match"),
    [
        (3, TypeError, "`scheme` must be a tableau name, a ButcherTableau or a Linear"),
        ("nonsense", ValueError, "`scheme` must be one of"),
        ("trapezoid", ValueError, "`scheme` must be an explicit tableau; 'trapezoid'"),
        (adams_moulton(2), ValueError, "`scheme` must be explicit"),
    ],
)
def test_make_classifier_names_the_scheme_in_its_errors(scheme, error, match):
    with pytest.raises(error, match=match):
        make_classifier(scheme, 2, 2, depth=2, width=4)


def test_make_classifier_validates_T():
    with pytest.raises(ValueError, match=r"`T` must be positive; got -1\.0"):
        make_classifier("euler", 2, 2, depth=2, width=4, T=-1.0)


def test_recorder_is_a_counted_func_that_odeint_adjoint_accepts(field, x0):
    recorder = EvaluationRecorder(field)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    ys = odeint_adjoint(recorder, x0, t, rtol=1e-6, atol=1e-8)  # finds field's parameters
    forward = recorder.nfe
    ys[-1].sum().backward()
    assert recorder.nfe > forward > 0 and len(recorder.times) == recorder.nfe
    assert all(p.grad is not None for p in field.parameters())


def test_residual_network_picks_the_family_of_its_scheme(field):
    assert isinstance(residual_network(field, depth=4, T=1.0, scheme="midpoint"), RKResNet)
    multistep = residual_network(field, depth=4, T=1.0, scheme=adams_bashforth(2))
    assert isinstance(multistep, MultistepResNet)
    with pytest.raises(ValueError, match="`scheme` must be explicit"):
        residual_network(field, depth=4, T=1.0, scheme=adams_moulton(2))
