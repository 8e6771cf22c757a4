"""Plain and residual multilayer perceptrons of configurable depth.

Both networks share one layout, so that the only difference between them is
the shortcut:

.. math::

    x_0 = A_{\\text{in}} u + a_{\\text{in}}, \\qquad
    x_{l+1} = B_l(x_l) \\quad (l = 0, \\dots, N-1), \\qquad
    \\text{logits} = A_{\\text{out}} x_N + a_{\\text{out}},

where a plain block is :math:`B_l(x) = W_l\\,\\sigma(x) + b_l` and a residual
block is :math:`B_l(x) = x + h\\,(W_l\\,\\sigma(x) + b_l)`.  The depth :math:`N`
is the number of hidden blocks; every hidden state has the same width.  The
nonlinearity comes first in each block ("pre-activation", as in He et al.,
*Identity mappings in deep residual networks*, 2016), so that the residual
branch can move the state in either direction and the shortcut is a clean
identity.

Taught in Chapter 5 (and used again in Chapter 6).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ._validation import check_choice, check_int, check_positive

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "PlainBlock",
    "PlainMLP",
    "ResidualBlock",
    "ResidualMLP",
    "count_parameters",
]

#: Activation functions by name.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "elu": nn.ELU,
}


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable scalar parameters of ``model``.

    For a :class:`PlainMLP` or :class:`ResidualMLP` with ``d`` inputs, ``c``
    outputs, width ``w`` and depth ``N`` this is
    :math:`(d + 1) w + N (w + 1) w + (w + 1) c`.

    Taught in Chapter 5.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module; got {type(model).__name__}.")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class PlainBlock(nn.Module):
    """One plain hidden layer: a nonlinearity followed by an affine map.

    .. math::

        x \\mapsto W\\,\\sigma(x) + b

    Parameters
    ----------
    width : int
        Size of the input and output, ``w``.
    activation : str
        A key of :data:`ACTIVATIONS`.

    Taught in Chapter 5.
    """

    def __init__(self, width: int, activation: str = "relu") -> None:
        super().__init__()
        width = check_int("width", width, minimum=1)
        check_choice("activation", activation, ACTIVATIONS)
        self.linear = nn.Linear(width, width)
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch ``x`` of shape ``(n, w)`` to ``W sigma(x) + b``, shape ``(n, w)``."""
        return self.linear(self.activation(x))


class ResidualBlock(nn.Module):
    """A residual unit: one explicit Euler step of :math:`\\dot x = F(x)`.

    The block adds a learned residual to its input through an identity
    shortcut,

    .. math::

        x \\mapsto x + h\\,F(x), \\qquad F(x) = W\\,\\sigma(x) + b,

    which is exactly one explicit (forward) Euler step of size ``h`` for the
    autonomous ODE :math:`\\mathrm{d}x/\\mathrm{d}t = F(x)`.  With ``h = 1``
    it is the classic ResNet update.

    Parameters
    ----------
    width : int
        Size of the input and output, ``w``.
    activation : str
        A key of :data:`ACTIVATIONS`.
    h : float
        Step size, positive and finite.

    References
    ----------
    He, Zhang, Ren, Sun (2016), Deep residual learning for image recognition.

    Taught in Chapter 5; the Euler reading is the subject of Chapter 6.
    """

    def __init__(self, width: int, activation: str = "relu", h: float = 1.0) -> None:
        super().__init__()
        width = check_int("width", width, minimum=1)
        check_choice("activation", activation, ACTIVATIONS)
        self.h = check_positive("h", h)
        self.linear = nn.Linear(width, width)
        self.activation = ACTIVATIONS[activation]()

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch :math:`F(x) = W\\,\\sigma(x) + b`, shape ``(n, w)``."""
        return self.linear(self.activation(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch ``x`` of shape ``(n, w)`` to ``x + h F(x)``, shape ``(n, w)``."""
        return x + self.h * self.residual(x)


class MLP(nn.Module):
    """A multilayer perceptron: input layer, ``depth`` hidden blocks, output layer.

    Use :class:`PlainMLP` or :class:`ResidualMLP`; this base class holds the
    shared layout and the probes (hidden states, lesioned forward pass).

    Parameters
    ----------
    in_features, out_features : int
        Input dimension ``d`` and number of outputs (classes) ``c``.
    blocks : iterable of torch.nn.Module
        The hidden blocks, each mapping width ``w`` to width ``w``.
    width : int
        Hidden width ``w``.

    Taught in Chapter 5.
    """

    def __init__(
        self, in_features: int, out_features: int, blocks: Iterable[nn.Module], width: int
    ) -> None:
        super().__init__()
        self.in_features = check_int("in_features", in_features, minimum=1)
        self.out_features = check_int("out_features", out_features, minimum=1)
        self.width = width = check_int("width", width, minimum=1)
        self.input = nn.Linear(self.in_features, width)
        self.blocks = nn.ModuleList(blocks)
        self.output = nn.Linear(width, self.out_features)

    @property
    def depth(self) -> int:
        """Number of hidden blocks ``N``."""
        return len(self.blocks)

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"`x` must be a torch.Tensor; got {type(x).__name__}.")
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"`x` must have shape (n, {self.in_features}); got {tuple(x.shape)}.")

    def _check_drop(self, drop: int | Iterable[int] | None) -> set[int]:
        if drop is None:
            return set()
        indices = [drop] if isinstance(drop, int) else list(drop)
        for k in indices:
            check_int("drop", k, minimum=0)
            if k >= self.depth:
                raise ValueError(
                    f"`drop` must hold block indices in [0, {self.depth - 1}]; got {k}."
                )
        return set(indices)

    def hidden_states(
        self, x: torch.Tensor, *, drop: int | Iterable[int] | None = None
    ) -> list[torch.Tensor]:
        """Return the hidden states ``[x_0, x_1, ..., x_N]``, each of shape ``(n, w)``.

        ``x_0`` is the output of the input layer and ``x_{l+1}`` the output of
        block ``l``.  Blocks listed in ``drop`` are replaced by the identity
        (their state is then a copy of the previous one).
        """
        self._check_input(x)
        dropped = self._check_drop(drop)
        states = [self.input(x)]
        for index, block in enumerate(self.blocks):
            previous = states[-1]
            states.append(previous if index in dropped else block(previous))
        return states

    def forward(self, x: torch.Tensor, *, drop: int | Iterable[int] | None = None) -> torch.Tensor:
        """Return the logits, shape ``(n, c)``, for inputs ``x`` of shape ``(n, d)``.

        Parameters
        ----------
        x : torch.Tensor, shape (n, d)
            A batch of inputs.
        drop : int or iterable of int, optional
            Indices of hidden blocks to remove (replace by the identity), for a
            lesion study.  ``None`` runs the full network.
        """
        return self.output(self.hidden_states(x, drop=drop)[-1])


def _check_sizes(depth: int, width: int, activation: str) -> tuple[int, int]:
    depth = check_int("depth", depth, minimum=1)
    width = check_int("width", width, minimum=1)
    check_choice("activation", activation, ACTIVATIONS)
    return depth, width


class PlainMLP(MLP):
    """A plain deep network: ``depth`` blocks :math:`x \\mapsto W\\,\\sigma(x) + b`.

    Parameters
    ----------
    in_features, out_features : int
        Input dimension ``d`` and number of outputs ``c``.
    depth : int
        Number of hidden blocks ``N >= 1``.
    width : int
        Hidden width ``w >= 1``.
    activation : str
        A key of :data:`ACTIVATIONS` (default ``"relu"``).

    Taught in Chapter 5.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        depth: int,
        width: int,
        activation: str = "relu",
    ) -> None:
        depth, width = _check_sizes(depth, width, activation)
        blocks = [PlainBlock(width, activation) for _ in range(depth)]
        super().__init__(in_features, out_features, blocks, width)


class ResidualMLP(MLP):
    """A residual network: ``depth`` blocks :math:`x \\mapsto x + h\\,(W\\,\\sigma(x) + b)`.

    Each block is one explicit Euler step of size ``h`` (see
    :class:`ResidualBlock`); ``h = 1`` is the classic ResNet.  Apart from the
    shortcut it has exactly the layers and parameters of :class:`PlainMLP`.

    Parameters
    ----------
    in_features, out_features : int
        Input dimension ``d`` and number of outputs ``c``.
    depth : int
        Number of residual blocks ``N >= 1``.
    width : int
        Hidden width ``w >= 1``.
    activation : str
        A key of :data:`ACTIVATIONS` (default ``"relu"``).
    h : float
        Residual step size, positive and finite (default 1).

    References
    ----------
    He, Zhang, Ren, Sun (2016), Identity mappings in deep residual networks.

    Taught in Chapter 5.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        depth: int,
        width: int,
        activation: str = "relu",
        h: float = 1.0,
    ) -> None:
        depth, width = _check_sizes(depth, width, activation)
        h = check_positive("h", h)
        blocks = [ResidualBlock(width, activation, h) for _ in range(depth)]
        super().__init__(in_features, out_features, blocks, width)
        self.h = h
