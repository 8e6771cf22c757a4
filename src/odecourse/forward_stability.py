r"""Stability of forward propagation: residual blocks whose Jacobians we can see.

A residual layer :math:`x_{l+1} = x_l + h f(x_l)` is one explicit Euler step, so a
small perturbation is multiplied by :math:`I + h\, \partial f / \partial x` at every
layer.  Its growth over many layers is governed by where the eigenvalues
:math:`z = h\lambda` of :math:`h\, \partial f/\partial x` lie: in the right half-plane
the continuous dynamics itself amplifies perturbations, in the left half-plane it damps
them, and the Euler step adds its own amplification outside the disc :math:`|1 + z| \le 1`.
Haber and Ruthotto make the weight antisymmetric so that the eigenvalues stay near the
imaginary axis: perturbations neither explode nor vanish.

Taught in Chapter 6.

References
----------
haber2017: E. Haber, L. Ruthotto, Stable architectures for deep neural networks, 2017.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ._validation import check_callable, check_choice, check_int, check_positive
from .networks import ACTIVATIONS

__all__ = ["AntisymmetricBlock", "LayerBlock", "increment_eigenvalues", "propagate"]


def _check_batch(name: str, x: object, width: int | None = None) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor; got {type(x).__name__}.")
    if x.ndim == 0 or (width is not None and x.shape[-1] != width):
        expected = "w" if width is None else width
        raise ValueError(f"`{name}` must have shape (..., {expected}); got {tuple(x.shape)}.")
    return x


class LayerBlock(nn.Module):
    r"""The single-layer residual block of Haber and Ruthotto with a free weight.

    .. math::

        x \mapsto x + h\, \sigma(W x + b), \qquad W = K - \gamma I,

    with :math:`K` drawn from :math:`N(0, \text{std}^2 / w)` (its eigenvalues fill
    roughly the disc of radius ``std``).  :class:`AntisymmetricBlock` changes :math:`W`.

    Parameters
    ----------
    width : int
        State width :math:`w`.
    h : float
        Step size :math:`h > 0`.
    gamma : float
        Shift :math:`\gamma \ge 0` of the spectrum of :math:`W` to the left.
    std : float
        Scale of the entries of :math:`K`.
    activation : str
        A key of :data:`odecourse.networks.ACTIVATIONS` (default ``"tanh"``).

    References
    ----------
    haber2017.

    Taught in Chapter 6.
    """

    def __init__(
        self,
        width: int,
        *,
        h: float,
        gamma: float = 0.0,
        std: float = 1.0,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        self.width = check_int("width", width, minimum=1)
        self.h = check_positive("h", h)
        self.gamma = check_positive("gamma", gamma, allow_zero=True)
        std = check_positive("std", std)
        check_choice("activation", activation, ACTIVATIONS)
        self.K = nn.Parameter(torch.randn(width, width) * (std / math.sqrt(width)))
        self.b = nn.Parameter(torch.zeros(width))
        self.activation = ACTIVATIONS[activation]()

    @property
    def weight(self) -> Tensor:
        """The weight :math:`W = K - \\gamma I`."""
        return self.K - self.gamma * torch.eye(self.width, dtype=self.K.dtype, device=self.K.device)

    def increment(self, x: Tensor) -> Tensor:
        """The layer's vector field :math:`f(x) = \\sigma(W x + b)` for ``x`` of shape (..., w)."""
        return self.activation(_check_batch("x", x, self.width) @ self.weight.T + self.b)

    def forward(self, x: Tensor) -> Tensor:
        """Return :math:`x + h f(x)`."""
        return x + self.h * self.increment(x)


class AntisymmetricBlock(LayerBlock):
    r"""A residual block with an antisymmetric weight (Haber and Ruthotto 2017).

    .. math::

        x \mapsto x + h\, \sigma(W x + b), \qquad W = K - K^{\mathsf T} - \gamma I .

    The Jacobian of the increment is :math:`h D W` with :math:`D = \operatorname{diag}
    \sigma'(Wx + b)`.  For :math:`D > 0` it is similar to :math:`h D^{1/2} W D^{1/2}`,
    whose symmetric part is :math:`-h\gamma D`, so every eigenvalue :math:`\lambda`
    satisfies :math:`-h\gamma \max_i D_{ii} \le \operatorname{Re}\lambda \le
    -h\gamma \min_i D_{ii} \le 0`: close to the imaginary axis for small :math:`\gamma`.

    Parameters are those of :class:`LayerBlock`.  Taught in Chapter 6.
    """

    @property
    def weight(self) -> Tensor:
        """The weight :math:`W = K - K^T - \\gamma I`."""
        eye = torch.eye(self.width, dtype=self.K.dtype, device=self.K.device)
        return self.K - self.K.T - self.gamma * eye


def increment_eigenvalues(f: Callable[[Tensor], Tensor], x: Tensor, h: float = 1.0) -> np.ndarray:
    r"""Eigenvalues of :math:`h\, \partial f / \partial x` at each state of a batch.

    These are the numbers :math:`z = h\lambda` that the Euler step
    :math:`x + h f(x)` sees; forward propagation is linearly stable where they lie in the
    stability region :math:`|1 + z| \le 1`.

    Parameters
    ----------
    f : callable
        The layer's vector field, ``f(x)`` for ``x`` of shape (w,), returning shape (w,).
    x : torch.Tensor, shape (n, w) or (w,)
        States at which the Jacobian is evaluated (by automatic differentiation).
    h : float
        Step size.

    Returns
    -------
    ndarray of complex, shape (n, w)

    Taught in Chapter 6.
    """
    check_callable("f", f)
    h = check_positive("h", h)
    _check_batch("x", x)
    batch = x.detach().reshape(-1, x.shape[-1])
    eigenvalues = [
        torch.linalg.eigvals(h * torch.autograd.functional.jacobian(f, state)) for state in batch
    ]
    return torch.stack(eigenvalues).cpu().numpy()


def propagate(
    blocks: Sequence[Callable[[Tensor], Tensor]], x0: Tensor, v: Tensor | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    r"""Push states (and optionally a perturbation) through a stack of blocks.

    Returns the norms :math:`\|x_l\|` of the states and, if ``v`` is given, the norms of
    the linearised perturbation :math:`\delta x_l = (\partial x_l / \partial x_0)\, v`
    (a Jacobian-vector product), for :math:`l = 0, \dots, L`.  Norms are Frobenius
    norms over the batch.

    Parameters
    ----------
    blocks : sequence of callables
        The layer maps :math:`x_{l+1} = B_l(x_l)`.
    x0 : torch.Tensor, shape (n, w)
        Input states.
    v : torch.Tensor, shape (n, w), optional
        Input perturbation.

    Returns
    -------
    state_norms : ndarray, shape (L + 1,)
    perturbation_norms : ndarray, shape (L + 1,) or None

    Taught in Chapter 6.
    """
    for l, block in enumerate(blocks):  # noqa: E741 - l is the layer index of the text
        check_callable(f"blocks[{l}]", block)
    _check_batch("x0", x0)
    if v is not None:
        _check_batch("v", v)
        if v.shape != x0.shape:
            raise ValueError(
                f"`v` must have the shape of `x0` {tuple(x0.shape)}; got {tuple(v.shape)}."
            )

    def trajectory(x: Tensor) -> Tensor:
        states = [x]
        for block in blocks:
            states.append(block(states[-1]))
        return torch.stack(states)

    with torch.no_grad():
        if v is None:
            return _norms(trajectory(x0)), None
    states, tangents = torch.autograd.functional.jvp(trajectory, x0.detach(), v)
    return _norms(states), _norms(tangents)


def _norms(stacked: Tensor) -> np.ndarray:
    """The Frobenius norm of each entry along the first dimension, as a NumPy array."""
    return stacked.detach().flatten(1).norm(dim=1).cpu().numpy()
