"""Tests for odecourse.training: determinism, learning, evaluation, gradient and Jacobian probes."""

import math

import numpy as np
import pytest
import torch

from odecourse.data import concentric_circles, two_spirals
from odecourse.networks import PlainMLP, ResidualMLP
from odecourse.seeding import seed_everything
from odecourse.training import (
    History,
    activation_norms,
    block_jacobians,
    default_device,
    evaluate,
    gradient_norms,
    state_jacobian,
    train,
)


@pytest.fixture(scope="module")
def circles():
    return concentric_circles(400, seed=0)


def fresh(cls=ResidualMLP, seed=0, **kwargs):
    seed_everything(seed)
    args = {"depth": 2, "width": 16, **kwargs}
    return cls(2, 2, **args)


def test_training_is_deterministic_under_a_seed(circles):
    runs = [
        train(fresh(), circles, epochs=5, batch_size=32, lr=1e-2, seed=3, device="cpu")
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    other = train(fresh(), circles, epochs=5, batch_size=32, lr=1e-2, seed=4, device="cpu")
    assert other.train_loss != runs[0].train_loss


@pytest.mark.parametrize("cls", [PlainMLP, ResidualMLP])
def test_small_net_learns_concentric_circles(cls, circles):
    model = fresh(cls)
    history = train(model, circles, lr=1e-2, epochs=40, batch_size=50, seed=0)
    assert isinstance(history, History) and history.epochs == 40
    assert history.train_accuracy[-1] > 0.95
    assert history.test_accuracy[-1] > 0.95
    assert history.train_loss[-1] < history.train_loss[0]


def test_history_matches_evaluate(circles):
    model = fresh()
    history = train(model, circles, epochs=3, lr=1e-2, device="cpu")
    loss, accuracy = evaluate(model, circles.X_test, circles.y_test)
    assert history.test_loss[-1] == pytest.approx(loss)
    assert history.test_accuracy[-1] == pytest.approx(accuracy)
    assert 0.0 <= accuracy <= 1.0


def test_evaluate_returns_cross_entropy_and_accuracy():
    model = fresh()
    X = torch.randn(10, 2)
    logits = model(X).detach()
    y = logits.argmax(dim=1)
    loss, accuracy = evaluate(model, X, y)
    assert accuracy == 1.0
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-6)


def test_sgd_and_callable_optimizer(circles):
    a = train(fresh(), circles, optimizer="sgd", lr=0.1, epochs=2, device="cpu")
    b = train(fresh(), circles, optimizer=torch.optim.SGD, lr=0.1, epochs=2, device="cpu")
    assert a == b


def test_progress_goes_to_stderr_only_when_asked(circles, capsys):
    train(fresh(), circles, epochs=2, device="cpu")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    train(fresh(), circles, epochs=2, device="cpu", progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "epoch 2/2" in captured.err


def test_default_device():
    assert default_device() == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("cls", [PlainMLP, ResidualMLP])
@pytest.mark.parametrize("wrt", ["parameters", "activations"])
def test_gradient_norms_one_finite_value_per_layer(cls, wrt):
    data = two_spirals(100, seed=0)
    model = fresh(cls, depth=6, width=8)
    norms = gradient_norms(model, data.X_train, data.y_train, wrt=wrt)
    assert norms.shape == (6,)
    assert np.all(np.isfinite(norms)) and np.all(norms >= 0)
    assert all(p.grad is None for p in model.parameters())


def test_gradient_norms_match_backward():
    data = two_spirals(100, seed=0)
    model = fresh(PlainMLP, depth=3, width=5)
    norms = gradient_norms(model, data.X_train, data.y_train)
    loss = torch.nn.functional.cross_entropy(model(data.X_train), data.y_train)
    loss.backward()
    for norm, block in zip(norms, model.blocks, strict=True):
        expected = math.sqrt(sum((p.grad**2).sum().item() for p in block.parameters()))
        assert norm == pytest.approx(expected, rel=1e-5)


def test_residual_gradients_do_not_vanish_with_depth():
    data = two_spirals(200, seed=0)
    plain = gradient_norms(fresh(PlainMLP, depth=24, width=16), data.X_train, data.y_train)
    residual = gradient_norms(fresh(ResidualMLP, depth=24, width=16), data.X_train, data.y_train)
    assert plain[0] / plain[-1] < 1e-4
    assert residual[0] / residual[-1] > 1e-1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"optimizer": "rmsprop"}, ValueError, "`optimizer`"),
        ({"optimizer": 3}, TypeError, "`optimizer`"),
        ({"lr": 0.0}, ValueError, "`lr`"),
        ({"lr": math.nan}, ValueError, "`lr`"),
        ({"epochs": 0}, ValueError, "`epochs`"),
        ({"batch_size": 0}, ValueError, "`batch_size`"),
        ({"seed": 1.5}, TypeError, "`seed`"),
    ],
)
def test_train_validation(circles, kwargs, error, match):
    with pytest.raises(error, match=match):
        train(fresh(), circles, **kwargs)


def test_type_validation(circles):
    with pytest.raises(TypeError, match="`model`"):
        train("net", circles)
    with pytest.raises(TypeError, match="`data`"):
        train(fresh(), (circles.X_train, circles.y_train))
    with pytest.raises(TypeError, match="`model`"):
        evaluate(None, circles.X_test, circles.y_test)
    with pytest.raises(TypeError, match="`model`"):
        gradient_norms(torch.nn.Linear(2, 2), circles.X_test, circles.y_test)
    with pytest.raises(ValueError, match="`wrt`"):
        gradient_norms(fresh(), circles.X_test, circles.y_test, wrt="inputs")


def test_data_and_device_validation(circles):
    with pytest.raises(TypeError, match=r"`X` must be a torch\.Tensor with one row per sample"):
        evaluate(fresh(), circles.X_test.numpy(), circles.y_test)
    with pytest.raises(ValueError, match=r"`y` must hold one label per row of `X` \(100\)"):
        evaluate(fresh(), circles.X_test, circles.y_test[:-1])
    with pytest.raises(TypeError, match=r"`y` must be a torch\.Tensor"):
        gradient_norms(fresh(), circles.X_test, list(circles.y_test))
    with pytest.raises(ValueError, match=r"`device` must be a torch\.device or a device string"):
        train(fresh(), circles, epochs=1, device="gpu0")


@pytest.mark.parametrize("model_dtype", [torch.float32, torch.float64])
def test_inputs_follow_the_model_dtype(circles, model_dtype):
    # float32 data trains a float64 model (and the reverse); the model keeps its dtype.
    data = circles
    seed_everything(0)
    model = PlainMLP(2, 2, depth=2, width=8).to(model_dtype)
    history = train(model, data, epochs=2, batch_size=50)
    assert all(p.dtype == model_dtype for p in model.parameters())
    assert all(math.isfinite(v) for v in history.train_loss)
    X64 = data.X_train.double() if model_dtype == torch.float32 else data.X_train.float()
    loss, _ = evaluate(model, X64, data.y_train)
    assert loss == pytest.approx(history.train_loss[-1], rel=1e-5)
    assert gradient_norms(model, X64, data.y_train).shape == (2,)


def test_evaluate_accepts_a_model_without_parameters():
    X = torch.tensor([[2.0, -1.0], [0.0, 3.0]])
    loss, accuracy = evaluate(torch.nn.Identity(), X, torch.tensor([0, 1]))
    assert accuracy == 1.0
    assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(X, torch.tensor([0, 1]))))


@pytest.mark.parametrize("cls", [PlainMLP, ResidualMLP])
@pytest.mark.parametrize("centred", [False, True])
def test_activation_norms_are_batch_means_of_state_norms(cls, centred):
    X = two_spirals(60, seed=1).X_train.double()
    model = fresh(cls, depth=5, width=7).double()
    norms = activation_norms(model, X, centred=centred)
    assert norms.shape == (6,)
    with torch.no_grad():
        states = model.hidden_states(X)
    for norm, state in zip(norms, states, strict=True):
        if centred:
            state = state - state.mean(dim=0)
        rows = [math.sqrt(sum(v * v for v in row)) for row in state.tolist()]
        assert norm == pytest.approx(sum(rows) / len(rows), rel=1e-12)


def test_activation_norms_of_zero_branches():
    # Zero residual branches: every state is x_0.  Zero plain weights: every
    # input is mapped to the bias b_l, a constant state with centred norm zero.
    X = two_spirals(60, seed=1).X_train.double()
    residual = fresh(ResidualMLP, depth=4, width=6).double()
    plain = fresh(PlainMLP, depth=4, width=6).double()
    with torch.no_grad():
        for block in residual.blocks:
            block.linear.weight.zero_()
            block.linear.bias.zero_()
        for block in plain.blocks:
            block.linear.weight.zero_()
    norms = activation_norms(residual, X)
    assert np.allclose(norms, norms[0], rtol=1e-14)
    norms = activation_norms(plain, X)
    biases = [block.linear.bias.norm().item() for block in plain.blocks]
    assert np.allclose(norms[1:], biases, rtol=1e-14)
    assert np.all(activation_norms(plain, X, centred=True)[1:] < 1e-14)


def wide_relu_growth(cls):
    # Measured and predicted geometric growth per block of the mean square of
    # the states of a wide ReLU network with default weights and zero biases.
    seed_everything(0)
    model = cls(4, 2, depth=8, width=256)
    with torch.no_grad():
        for block in model.blocks:
            block.linear.bias.zero_()
    X = torch.randn(1000, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        states = model.hidden_states(X)
    ms = np.array([(s**2).sum(dim=1).mean().item() for s in states])
    kept = np.array([(torch.relu(s) ** 2).sum().item() / (s**2).sum().item() for s in states])
    return (ms[-1] / ms[0]) ** (1 / 8), kept[:-1]


def test_residual_mean_square_grows_like_one_plus_a_third_of_what_relu_keeps():
    # Default weights have variance 1/(3w), so E|W s|^2 = |s|^2 / 3 and the cross
    # term <x, W s> has mean zero: |x_{l+1}|^2 ~ |x_l|^2 (1 + kept / 3) with
    # kept = |relu(x_l)|^2 / |x_l|^2, about 1/2: the factor 7/6 per block.
    rate, kept = wide_relu_growth(ResidualMLP)
    predicted = np.exp(np.mean(np.log(1 + kept / 3)))
    assert rate == pytest.approx(predicted, abs=0.05)
    assert 1.12 < predicted < 1.18


def test_plain_mean_square_shrinks_like_a_third_of_what_relu_keeps():
    rate, kept = wide_relu_growth(PlainMLP)
    predicted = np.exp(np.mean(np.log(kept / 3)))
    assert rate == pytest.approx(predicted, abs=0.03)
    assert 0.12 < predicted < 0.18


def test_activation_norms_validation():
    X = two_spirals(20, seed=0).X_train
    with pytest.raises(TypeError, match=r"`model` must be an odecourse\.networks\.MLP"):
        activation_norms(torch.nn.Linear(2, 2), X)
    with pytest.raises(TypeError, match="`centred` must be True or False; got 'yes'"):
        activation_norms(fresh(), X, centred="yes")
    with pytest.raises(
        ValueError, match=r"`X` must be a torch\.Tensor of shape \(n, 2\).*got \(0, 2\)"
    ):
        activation_norms(fresh(), X[:0])
    with pytest.raises(ValueError, match=r"`X` must be a torch\.Tensor.*got ndarray"):
        activation_norms(fresh(), X.numpy())
    with pytest.raises(ValueError, match="`x` must have shape"):
        activation_norms(fresh(), torch.zeros(3, 5))


@pytest.mark.parametrize("cls", [PlainMLP, ResidualMLP])
def test_relu_block_jacobians_have_the_closed_form(cls):
    # Plain: J_l = W_l D_l; residual: J_l = I + h W_l D_l, D_l = diag(1[x_l > 0]).
    X = two_spirals(40, seed=2).X_train.double()[:7]
    kwargs = {"h": 0.3} if cls is ResidualMLP else {}
    model = fresh(cls, depth=4, width=6, **kwargs).double()
    jacobians = block_jacobians(model, X)
    assert jacobians.shape == (7, 4, 6, 6) and not jacobians.requires_grad
    with torch.no_grad():
        states = model.hidden_states(X)
    for layer, block in enumerate(model.blocks):
        D = (states[layer] > 0).double()  # (n, w): the diagonal of D_l for each input
        branch = block.linear.weight * D[:, None, :]
        expected = (
            torch.eye(6, dtype=torch.float64) + 0.3 * branch if cls is ResidualMLP else branch
        )
        assert torch.allclose(jacobians[:, layer], expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("cls", [PlainMLP, ResidualMLP])
def test_state_jacobian_matches_central_differences(cls):
    # A smooth activation, so that finite differences converge: error O(eps^2).
    X = two_spirals(40, seed=3).X_train.double()[:3]
    model = fresh(cls, depth=5, width=4, activation="tanh").double()
    jacobian = state_jacobian(model, X, start=1, stop=4)
    assert jacobian.shape == (3, 4, 4)
    with torch.no_grad():
        x1 = model.hidden_states(X)[1]

        def forward(s):
            for block in model.blocks[1:4]:
                s = block(s)
            return s

        eps = 1e-6
        for k in range(4):
            step = torch.zeros(4)
            step[k] = eps
            column = (forward(x1 + step) - forward(x1 - step)) / (2 * eps)
            assert torch.allclose(jacobian[:, :, k], column, rtol=0, atol=1e-8)


def test_state_jacobian_is_the_product_of_block_jacobians():
    X = two_spirals(40, seed=4).X_train.double()[:5]
    model = fresh(ResidualMLP, depth=6, width=5).double()
    blocks = block_jacobians(model, X)
    full = state_jacobian(model, X)
    product = torch.eye(5, dtype=torch.float64).expand(5, -1, -1)
    for layer in range(6):
        product = blocks[:, layer] @ product
    assert torch.allclose(full, product, rtol=1e-13, atol=1e-13)
    # The chain rule splits at any intermediate state.
    assert torch.allclose(
        full, state_jacobian(model, X, start=2) @ state_jacobian(model, X, stop=2), atol=1e-12
    )
    assert torch.equal(
        state_jacobian(model, X, start=3, stop=3),
        torch.eye(5, dtype=torch.float64).expand(5, -1, -1),
    )


def test_zero_residual_branches_give_the_identity_jacobian():
    X = two_spirals(40, seed=5).X_train.double()[:4]
    model = fresh(ResidualMLP, depth=3, width=6).double()
    with torch.no_grad():
        for block in model.blocks:
            block.linear.weight.zero_()
    identity = torch.eye(6, dtype=torch.float64).expand(4, -1, -1)
    assert torch.equal(state_jacobian(model, X), identity)


def test_jacobian_validation():
    X = two_spirals(20, seed=0).X_train
    model = fresh(depth=3)
    with pytest.raises(TypeError, match=r"`model` must be an odecourse\.networks\.MLP"):
        block_jacobians(torch.nn.Linear(2, 2), X)
    with pytest.raises(ValueError, match=r"`X` must be a torch\.Tensor of shape \(n, 2\)"):
        state_jacobian(model, X[:0])
    with pytest.raises(ValueError, match=r"`X` must be a torch\.Tensor.*got list"):
        block_jacobians(model, X.tolist())
    with pytest.raises(ValueError, match=r"0 <= start <= stop <= 3.*got start=2, stop=1"):
        state_jacobian(model, X, start=2, stop=1)
    with pytest.raises(ValueError, match=r"got start=0, stop=4"):
        state_jacobian(model, X, stop=4)
    with pytest.raises(ValueError, match="`start`"):
        state_jacobian(model, X, start=-1)
    with pytest.raises(TypeError, match="`stop`"):
        state_jacobian(model, X, stop=2.0)
