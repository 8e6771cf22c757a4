"""Training loop, evaluation, and gradient, activation and Jacobian probes for Chapter 5.

One function trains any of the course's classifiers with cross-entropy loss
under a fixed budget (optimiser, learning rate, epochs, batch size) and a
seed, and returns the per-epoch history.  Runs on the GPU when one is
available and on the CPU otherwise, with no change in the calling code.

Taught in Chapter 5.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ._validation import check_callable, check_choice, check_int, check_positive
from .data import Dataset
from .networks import MLP
from .seeding import seed_everything

__all__ = [
    "OPTIMIZERS",
    "History",
    "activation_norms",
    "block_jacobians",
    "default_device",
    "evaluate",
    "gradient_norms",
    "state_jacobian",
    "train",
]

#: Optimisers by name; each is called as ``OPTIMIZERS[name](parameters, lr=lr)``.
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}


@dataclass
class History:
    """Per-epoch record of a training run (one entry per epoch, after that epoch).

    Attributes
    ----------
    train_loss, train_accuracy, test_loss, test_accuracy : list of float
        Mean cross-entropy and fraction of correct predictions on each split.
    """

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        """Number of recorded epochs."""
        return len(self.train_loss)


def default_device() -> str:
    """Return ``"cuda"`` when PyTorch sees a GPU, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _on_model(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """``X`` moved to the device and floating dtype of the model's first parameter.

    A model without parameters takes ``X`` as it is.  Converting the inputs
    (never the model) lets a ``float32`` data set train a ``float64`` model and
    the other way round, as the caller chose when building the model.
    """
    parameter = next(model.parameters(), None)
    if parameter is None:
        return X
    dtype = parameter.dtype if parameter.is_floating_point() else X.dtype
    return X.to(device=parameter.device, dtype=dtype)


def _loss(logits: Any, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Cross-entropy of ``logits`` against ``y``, after checking that their shapes fit."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != len(y):
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(
            f"`model` must return logits of shape ({len(y)}, n_classes) for {len(y)} samples; "
            f"got {got}."
        )
    if logits.shape[1] < n_classes:
        raise ValueError(
            f"`model` returns {logits.shape[1]} logit(s) per sample, but the labels have "
            f"{n_classes} classes; give the model's last layer {n_classes} outputs."
        )
    return F.cross_entropy(logits, y)


def _check_data(X: object, y: object) -> None:
    for name, value in (("X", X), ("y", y)):
        if not isinstance(value, torch.Tensor) or value.ndim == 0:
            raise TypeError(
                f"`{name}` must be a torch.Tensor with one row per sample; got {value!r:.60}."
            )
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"`y` must hold one label per row of `X` ({X.shape[0]}); got shape {tuple(y.shape)}."
        )
    if y.is_floating_point() or y.is_complex():
        raise TypeError(
            f"`y` must be an integer tensor of class indices; got {y.dtype} (use y.long())."
        )


def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor, **kwargs) -> tuple[float, float]:
    """Return the mean cross-entropy loss and the accuracy of ``model`` on ``(X, y)``.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier returning logits of shape ``(n, c)``.
    X : torch.Tensor, shape (n, d)
    y : torch.Tensor of int, shape (n,)
    **kwargs
        Passed to the model's forward pass (for example ``drop=3``).

    Returns
    -------
    loss, accuracy : float
        Accuracy is a fraction in [0, 1].
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module; got {type(model).__name__}.")
    _check_data(X, y)
    X = _on_model(model, X)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        y = y.to(X.device)
        logits = model(X, **kwargs)
        loss = _loss(logits, y, int(y.max()) + 1 if y.numel() else 0).item()
        accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    model.train(was_training)
    return loss, accuracy


def _make_optimizer(optimizer: str | Callable, parameters, lr: float) -> torch.optim.Optimizer:
    if isinstance(optimizer, str):
        check_choice("optimizer", optimizer, OPTIMIZERS)
        return OPTIMIZERS[optimizer](parameters, lr=lr)
    check_callable("optimizer", optimizer)
    return optimizer(parameters, lr=lr)


class _Progress:
    """A one-line progress report on stderr, rewritten with a carriage return."""

    def __init__(self, enabled: bool | None, epochs: int) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self.epochs = epochs

    def update(self, epoch: int, history: History) -> None:
        if not self.enabled:
            return
        done = int(30 * epoch / self.epochs)
        bar = "#" * done + "." * (30 - done)
        sys.stderr.write(
            f"\r[{bar}] epoch {epoch}/{self.epochs} "
            f"loss {history.train_loss[-1]:.4f} acc {history.train_accuracy[-1]:.3f}"
        )
        if epoch == self.epochs:
            sys.stderr.write("\n")
        sys.stderr.flush()


def train(
    model: nn.Module,
    data: Dataset,
    *,
    optimizer: str | Callable = "adam",
    lr: float = 1e-3,
    epochs: int = 100,
    batch_size: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool | None = None,
) -> History:
    """Train ``model`` on ``data`` with cross-entropy loss; return the per-epoch history.

    Every random source is seeded with ``seed`` (by
    :func:`odecourse.seeding.seed_everything`) before training, and the
    minibatch order comes from a generator seeded with ``seed``, so two calls
    on identically initialised models give identical histories.  The model is
    moved to ``device`` and trained in place.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier mapping ``(n, d)`` inputs to ``(n, c)`` logits.
    data : Dataset
        Train and test split; the test split is only evaluated, never trained on.
    optimizer : {"adam", "sgd"} or callable
        A name from :data:`OPTIMIZERS`, or a callable ``optimizer(parameters, lr=lr)``
        returning a ``torch.optim.Optimizer``.
    lr : float
        Learning rate, positive.
    epochs : int
        Number of passes over the training set, at least 1.
    batch_size : int, optional
        Minibatch size; ``None`` (default) means full-batch gradient steps.
    seed : int
        Seed for every random source.
    device : str or torch.device, optional
        Where to train; default :func:`default_device`.
    progress : bool, optional
        Show a progress line on stderr.  ``None`` (default) shows it only when
        stderr is a terminal, so notebooks and the book stay clean.

    Returns
    -------
    History
        Loss and accuracy on both splits after every epoch.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module; got {type(model).__name__}.")
    if not isinstance(data, Dataset):
        raise TypeError(f"`data` must be an odecourse.data.Dataset; got {type(data).__name__}.")
    lr = check_positive("lr", lr)
    epochs = check_int("epochs", epochs, minimum=1)
    n_train = data.X_train.shape[0]
    batch_size = n_train if batch_size is None else check_int("batch_size", batch_size, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    device = _check_device(default_device() if device is None else device)

    seed_everything(seed)
    model.to(device)
    X = _on_model(model, data.X_train)
    y = data.y_train.to(X.device)
    opt = _make_optimizer(optimizer, model.parameters(), lr)
    generator = torch.Generator().manual_seed(seed)
    history = History()
    bar = _Progress(progress, epochs)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n_train, generator=generator).to(X.device)
        for start in range(0, n_train, batch_size):
            batch = order[start : start + batch_size]
            opt.zero_grad()
            _loss(model(X[batch]), y[batch], data.n_classes).backward()
            opt.step()
        _record(history, model, data)
        bar.update(epoch, history)
    return history


def _check_device(device: object) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"`device` must be a torch.device or a device string such as 'cpu' or 'cuda'; "
            f"got {device!r:.60}."
        ) from exc


def _record(history: History, model: nn.Module, data: Dataset) -> None:
    loss, accuracy = evaluate(model, data.X_train, data.y_train)
    history.train_loss.append(loss)
    history.train_accuracy.append(accuracy)
    loss, accuracy = evaluate(model, data.X_test, data.y_test)
    history.test_loss.append(loss)
    history.test_accuracy.append(accuracy)


def gradient_norms(
    model: MLP, X: torch.Tensor, y: torch.Tensor, *, wrt: str = "parameters"
) -> np.ndarray:
    """Return the norm of the loss gradient at each hidden block, one value per block.

    With ``wrt="parameters"`` (default) entry ``l`` is the Euclidean norm of
    :math:`\\partial \\mathcal{L} / \\partial (W_l, b_l)`, the gradient with
    respect to all parameters of hidden block ``l``.  With
    ``wrt="activations"`` it is the Frobenius norm of
    :math:`\\partial \\mathcal{L} / \\partial x_{l+1}`, the gradient with respect
    to the block's output over the batch.  The loss is the mean cross-entropy
    on ``(X, y)``.  The model's stored gradients are left untouched.

    Parameters
    ----------
    model : MLP
        A :class:`~odecourse.networks.PlainMLP` or :class:`~odecourse.networks.ResidualMLP`.
    X : torch.Tensor, shape (n, d)
    y : torch.Tensor of int, shape (n,)
    wrt : {"parameters", "activations"}

    Returns
    -------
    ndarray, shape (depth,)
        Non-negative gradient norms, block 0 (nearest the input) first.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"`model` must be an odecourse.networks.MLP; got {type(model).__name__}.")
    check_choice("wrt", wrt, ("parameters", "activations"))
    _check_data(X, y)
    X = _on_model(model, X)
    y = y.to(X.device)
    states = model.hidden_states(X)
    loss = F.cross_entropy(model.output(states[-1]), y)
    if wrt == "activations":
        grads = torch.autograd.grad(loss, states[1:])
        return np.array([g.norm().item() for g in grads])
    params = [list(block.parameters()) for block in model.blocks]
    flat = torch.autograd.grad(loss, [p for group in params for p in group])
    norms, i = [], 0
    for group in params:
        chunk = flat[i : i + len(group)]
        norms.append(torch.sqrt(sum((g**2).sum() for g in chunk)).item())
        i += len(group)
    return np.array(norms)


def _check_batch(model: MLP, X: object) -> None:
    if not isinstance(model, MLP):
        raise TypeError(f"`model` must be an odecourse.networks.MLP; got {type(model).__name__}.")
    if not isinstance(X, torch.Tensor) or X.ndim != 2 or X.shape[0] == 0:
        got = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
        raise ValueError(
            f"`X` must be a torch.Tensor of shape (n, {model.in_features}) with n >= 1; got {got}."
        )


def activation_norms(model: MLP, X: torch.Tensor, *, centred: bool = False) -> np.ndarray:
    """Return the mean Euclidean norm of the hidden state after each block, over a batch.

    Entry ``l`` is :math:`\\frac1n \\sum_{i=1}^n \\lVert x_l^{(i)} \\rVert`, the mean
    over the ``n`` rows of ``X`` of the norm of the hidden state :math:`x_l`,
    for :math:`l = 0, \\dots, N` (``x_0`` is the output of the input layer and
    ``x_{l+1}`` that of hidden block ``l``; ``N`` is the depth).  With
    ``centred=True`` each state is first centred on its batch mean,
    :math:`x_l^{(i)} - \\bar x_l`, which keeps only the part of the state that
    depends on the input: a network that maps every input to the same state
    has centred norms of zero however large its states are.

    Parameters
    ----------
    model : MLP
        A :class:`~odecourse.networks.PlainMLP` or :class:`~odecourse.networks.ResidualMLP`.
    X : torch.Tensor, shape (n, d)
        A batch of inputs, ``n >= 1``.
    centred : bool
        Subtract the batch mean of each state before taking norms.

    Returns
    -------
    ndarray, shape (depth + 1,)
        Non-negative mean norms, ``x_0`` first.

    Taught in Chapter 5.
    """
    _check_batch(model, X)
    if not isinstance(centred, bool):
        raise TypeError(f"`centred` must be True or False; got {centred!r:.60}.")
    with torch.no_grad():
        states = model.hidden_states(_on_model(model, X))
        if centred:
            states = [state - state.mean(dim=0) for state in states]
        return np.array([state.norm(dim=1).mean().item() for state in states])


def block_jacobians(model: MLP, X: torch.Tensor) -> torch.Tensor:
    """Return the Jacobian of every hidden block at the hidden states of each input.

    Entry ``[i, l]`` is :math:`J_l = \\partial x_{l+1} / \\partial x_l`, the
    Jacobian of hidden block ``l`` evaluated at the state :math:`x_l` that the
    ``i``-th row of ``X`` produces.  For a ReLU network with :math:`D_l =
    \\operatorname{diag}(\\sigma'(x_l))` this is :math:`W_l D_l` for a plain block
    and :math:`I + h\\,W_l D_l` for a residual one.  Each block is differentiated
    one input at a time, so blocks that mix the rows of a batch are not supported.

    Parameters
    ----------
    model : MLP
        A :class:`~odecourse.networks.PlainMLP` or :class:`~odecourse.networks.ResidualMLP`.
    X : torch.Tensor, shape (n, d)
        Inputs, ``n >= 1``.

    Returns
    -------
    torch.Tensor, shape (n, N, w, w)
        The block Jacobians, detached from the autograd graph; ``N`` is the depth
        and ``w`` the width.  Row index = output coordinate.

    Taught in Chapter 5.
    """
    _check_batch(model, X)
    with torch.no_grad():
        states = model.hidden_states(_on_model(model, X))[:-1]
    jacobians = []
    for block, state in zip(model.blocks, states, strict=True):

        def one_input(s: torch.Tensor, block: nn.Module = block) -> torch.Tensor:
            return block(s.unsqueeze(0)).squeeze(0)

        jacobians.append(torch.func.vmap(torch.func.jacrev(one_input))(state))
    return torch.stack(jacobians, dim=1).detach()


def state_jacobian(
    model: MLP, X: torch.Tensor, *, start: int = 0, stop: int | None = None
) -> torch.Tensor:
    """Return :math:`\\partial x_{\\text{stop}} / \\partial x_{\\text{start}}` at each input.

    By the chain rule this is the product of the block Jacobians of
    :func:`block_jacobians`,

    .. math::

        \\frac{\\partial x_{\\text{stop}}}{\\partial x_{\\text{start}}}
        = J_{\\text{stop}-1} \\cdots J_{\\text{start}+1} J_{\\text{start}},

    the matrix that carries a perturbation of :math:`x_{\\text{start}}` forwards to
    :math:`x_{\\text{stop}}`; its transpose carries the gradient
    :math:`\\partial\\mathcal{L}/\\partial x_{\\text{stop}}` backwards.  With
    ``start == stop`` it is the identity.

    Parameters
    ----------
    model : MLP
        A :class:`~odecourse.networks.PlainMLP` or :class:`~odecourse.networks.ResidualMLP`.
    X : torch.Tensor, shape (n, d)
        Inputs, ``n >= 1``.
    start, stop : int
        Indices of the states, ``0 <= start <= stop <= N``; ``stop=None`` (default)
        means ``N``, the last state.

    Returns
    -------
    torch.Tensor, shape (n, w, w)
        One Jacobian per input, detached from the autograd graph.

    Taught in Chapter 5.
    """
    _check_batch(model, X)
    stop = model.depth if stop is None else check_int("stop", stop, minimum=0)
    start = check_int("start", start, minimum=0)
    if not start <= stop <= model.depth:
        raise ValueError(
            f"`start` and `stop` must satisfy 0 <= start <= stop <= {model.depth} (the depth); "
            f"got start={start}, stop={stop}."
        )
    jacobians = block_jacobians(model, X)
    n, width = jacobians.shape[0], model.width
    product = torch.eye(width, dtype=jacobians.dtype, device=jacobians.device).expand(n, -1, -1)
    for layer in range(start, stop):
        product = jacobians[:, layer] @ product
    return product
