r"""What deep residual networks converge to: random layers, and layers after training.

A residual network :math:`x_{l+1} = x_l + h\, F(x_l, \theta_l)`, :math:`l = 0, \dots, N-1`,
converges to an ODE as :math:`N \to \infty` when :math:`\theta_l = \theta(t_l)` samples a
smooth function (:mod:`odecourse.continuous_depth`).  This module measures the two other
cases of Chapter 6.

*Independent random layers.*  With i.i.d. mean-zero parameters the increments
:math:`h F(x_l, \theta_l)` have conditional mean zero, so :math:`x_N - x_0` is a martingale
whose variance is of order :math:`h^2 N`.  With :math:`h = T/N` the network tends to the
identity; with :math:`h = T/\sqrt N` the limit is a stochastic differential equation; a
step that shrinks more slowly (such as :math:`h = 1`) makes it explode.
:func:`random_depth_study` measures :math:`\mathbb E\,\|x_N - x_0\|^2` against :math:`N`
for both scalings, :func:`linear_mean_square` gives its closed form for the linear
branch :math:`F(x, W) = W x`, and :func:`linear_limit_quantiles` the quantiles of the
limit in one dimension.

*Trained layers.*  :class:`EulerClassifier` is an Euler ResNet whose layer weights are
stacked in one tensor (so that they can be plotted against :math:`t_l = l h`), with
i.i.d. or smooth initial weights; :func:`train_full_batch` trains it (Adam or plain
gradient descent), :func:`max_increment` measures how far the weights are from samples of
a smooth function, and :func:`depth_gap` compares the weights of two depths at their
common layer times.

Taught in Chapter 6.

References
----------
peluchetti2020: S. Peluchetti, S. Favaro, Infinitely deep neural networks as diffusion
processes, AISTATS 2020.
marion2022: P. Marion, A. Fermanian, G. Biau, J.-P. Vert, Scaling ResNets in the large-depth
regime, 2022.
sander2022: M. E. Sander, P. Ablin, G. Peyre, Do residual neural networks discretize neural
ordinary differential equations?, NeurIPS 2022.
cohen2021: A.-S. Cohen, R. Cont, A. Rossier, R. Xu, Scaling properties of deep residual
networks, ICML 2021.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ._validation import check_choice, check_finite_array, check_int, check_positive
from .data import Dataset

__all__ = [
    "BRANCHES",
    "INITS",
    "OPTIMIZERS",
    "SCALINGS",
    "EulerClassifier",
    "RandomDepthStudy",
    "depth_gap",
    "linear_limit_quantiles",
    "linear_mean_square",
    "max_increment",
    "random_depth_study",
    "random_resnet_outputs",
    "step_size",
    "train_full_batch",
]

#: Step-size scalings :math:`h(N)` for a network of total depth :math:`T`.
SCALINGS = ("1/N", "1/sqrt(N)")
#: Residual branches with i.i.d. mean-zero parameters (see :func:`random_resnet_outputs`).
BRANCHES = ("linear", "tanh")
#: Initialisations of :class:`EulerClassifier`.
INITS = ("iid", "smooth")
#: Optimisers of :func:`train_full_batch`: Adam, or plain (full-batch) gradient descent.
OPTIMIZERS = ("adam", "sgd")


def step_size(T: float, depth: int, scaling: str) -> float:
    r"""The step :math:`h = T/N` (``"1/N"``) or :math:`h = T/\sqrt N` (``"1/sqrt(N)"``)."""
    T = check_positive("T", T)
    depth = check_int("depth", depth, minimum=1)
    check_choice("scaling", scaling, SCALINGS)
    return T / depth if scaling == "1/N" else T / math.sqrt(depth)


# --------------------------------------------------------------------------- random layers


def _check_states(x0: Any) -> Tensor:
    if not isinstance(x0, Tensor) or not x0.is_floating_point():
        raise TypeError(f"`x0` must be a floating torch.Tensor; got {type(x0).__name__}.")
    if x0.ndim != 2 or x0.shape[0] == 0 or x0.shape[1] == 0:
        raise ValueError(f"`x0` must have shape (n, d) with n, d >= 1; got {tuple(x0.shape)}.")
    return x0


def random_resnet_outputs(
    x0: Tensor,
    depth: int,
    *,
    T: float = 1.0,
    scaling: str = "1/N",
    branch: str = "linear",
    sigma: float = 1.0,
    n_draws: int = 1000,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Outputs :math:`x_N` of ``n_draws`` independent ResNets with i.i.d. random layers.

    Every network applies :math:`x_{l+1} = x_l + h\, F(x_l, \theta_l)` for
    :math:`l = 0, \dots, N-1` with fresh parameters in every layer and every draw:

    - ``"linear"``: :math:`F(x, W) = W x`;
    - ``"tanh"``: :math:`F(x, (W, b)) = W \tanh(x) + b`;

    with all entries of :math:`W` and :math:`b` independent :math:`N(0, \sigma^2/d)`.  The
    step is :math:`h = T/N` or :math:`h = T/\sqrt N` (``scaling``).

    Parameters
    ----------
    x0 : torch.Tensor, shape (n, d)
        Inputs; every draw maps all of them.
    depth : int
        Number of layers :math:`N \ge 1`.
    T : float
        Total depth :math:`T > 0`.
    scaling : {"1/N", "1/sqrt(N)"}
        How :math:`h` shrinks with :math:`N`.
    branch : {"linear", "tanh"}
        The residual branch.
    sigma : float
        Scale of the parameters, positive.
    n_draws : int
        Number of independent networks.
    generator : torch.Generator, optional
        Source of the parameters (torch's global generator by default).

    Returns
    -------
    torch.Tensor, shape (n_draws, n, d)
        :math:`x_N` for every draw and input, in the dtype of ``x0``.

    Taught in Chapter 6.
    """
    x0 = _check_states(x0)
    h = step_size(T, depth, scaling)
    check_choice("branch", branch, BRANCHES)
    sigma = check_positive("sigma", sigma)
    n_draws = check_int("n_draws", n_draws, minimum=1)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator; got {type(generator).__name__}.")
    d = x0.shape[1]
    scale = sigma / math.sqrt(d)
    kw = {"dtype": x0.dtype, "device": x0.device, "generator": generator}
    x = x0.expand(n_draws, *x0.shape)
    for _ in range(depth):
        W = torch.randn(n_draws, d, d, **kw) * scale
        if branch == "linear":
            increment = x @ W.mT
        else:
            b = torch.randn(n_draws, 1, d, **kw) * scale
            increment = torch.tanh(x) @ W.mT + b
        x = x + h * increment
    return x


@dataclass(frozen=True)
class RandomDepthStudy:
    r"""Mean squared displacement :math:`\mathbb E\,\|x_N - x_0\|^2` of random ResNets.

    Attributes
    ----------
    depths : ndarray of int, shape (m,)
        Numbers of layers :math:`N`.
    scaling, branch : str
        As in :func:`random_resnet_outputs`.
    mean_square : ndarray, shape (m,)
        Mean of :math:`\|x_N - x_0\|^2` over draws and inputs.
    standard_error : ndarray, shape (m,)
        Its standard error over the independent draws.
    """

    depths: np.ndarray
    scaling: str
    branch: str
    mean_square: np.ndarray
    standard_error: np.ndarray

    @property
    def slope(self) -> float:
        r"""Least-squares slope of :math:`\log \mathbb E\|x_N - x_0\|^2` against :math:`\log N`."""
        return float(np.polyfit(np.log(self.depths), np.log(self.mean_square), 1)[0])


def random_depth_study(
    x0: Tensor,
    depths: Sequence[int],
    *,
    T: float = 1.0,
    scaling: str = "1/N",
    branch: str = "linear",
    sigma: float = 1.0,
    n_draws: int = 1000,
    seed: int = 0,
) -> RandomDepthStudy:
    r"""Measure :math:`\mathbb E\,\|x_N - x_0\|^2` for random ResNets of several depths.

    For each :math:`N` in ``depths``, :func:`random_resnet_outputs` maps ``x0`` through
    ``n_draws`` networks (parameters from a generator seeded with ``seed + N``); the mean
    of :math:`\|x_N - x_0\|^2` over draws and inputs, and its standard error over the
    draws, are recorded.  Since the increments have conditional mean zero,
    :math:`\mathbb E\, x_N = x_0` and this is the total variance of :math:`x_N`.

    Parameters
    ----------
    x0 : torch.Tensor, shape (n, d)
        Inputs.
    depths : sequence of int
        At least two different depths :math:`N \ge 1`.
    T, scaling, branch, sigma, n_draws
        As in :func:`random_resnet_outputs`; ``n_draws`` at least 2.
    seed : int
        Seed of the parameters, non-negative.

    Returns
    -------
    RandomDepthStudy

    Taught in Chapter 6.
    """
    x0 = _check_states(x0)
    if isinstance(depths, str | bytes) or not isinstance(depths, Sequence):
        raise TypeError(f"`depths` must be a sequence of integers; got {depths!r:.60}.")
    depths = [check_int("depths", depth, minimum=1) for depth in depths]
    if len(set(depths)) < 2:
        raise ValueError(f"`depths` must hold at least two different depths; got {depths}.")
    n_draws = check_int("n_draws", n_draws, minimum=2)
    seed = check_int("seed", seed, minimum=0)
    means, errors = [], []
    for depth in depths:
        generator = torch.Generator(device=x0.device).manual_seed(seed + depth)
        xN = random_resnet_outputs(
            x0,
            depth,
            T=T,
            scaling=scaling,
            branch=branch,
            sigma=sigma,
            n_draws=n_draws,
            generator=generator,
        )
        per_draw = ((xN - x0) ** 2).sum(dim=-1).mean(dim=-1)  # (n_draws,)
        means.append(per_draw.mean().item())
        errors.append(per_draw.std().item() / math.sqrt(n_draws))
    return RandomDepthStudy(np.array(depths), scaling, branch, np.array(means), np.array(errors))


def linear_mean_square(
    depth: int | float, *, T: float = 1.0, scaling: str = "1/N", sigma: float = 1.0
) -> float:
    r"""Exact :math:`\mathbb E\,\|x_N - x_0\|^2 / \|x_0\|^2` for the ``"linear"`` branch.

    Each layer multiplies by :math:`I + h W` with :math:`\mathbb E W = 0` and
    :math:`\mathbb E\,\|W x\|^2 = \sigma^2 \|x\|^2`, independently of the past, so
    :math:`\mathbb E\,\|x_{l+1}\|^2 = (1 + h^2 \sigma^2)\, \mathbb E\,\|x_l\|^2` and
    :math:`\mathbb E\, x_N = x_0`:

    .. math::

        \frac{\mathbb E\,\|x_N - x_0\|^2}{\|x_0\|^2} = (1 + h^2\sigma^2)^N - 1
        \;\to\; \begin{cases} 0, & h = T/N \ (\approx T^2\sigma^2/N), \\
        e^{T^2\sigma^2} - 1, & h = T/\sqrt N. \end{cases}

    With :math:`h = T/\sqrt N` the network is the Euler-Maruyama scheme, with step
    :math:`1/N`, of the Ito SDE :math:`dX = (T\sigma/\sqrt d)\, dB\, X` on
    :math:`[0, 1]`, :math:`B` a :math:`d \times d` matrix of independent standard Brownian
    motions; :math:`\mathbb E\,\|X(1)\|^2 = e^{T^2\sigma^2} \|x_0\|^2`, so the second
    limit is its normalised mean squared displacement
    :math:`\mathbb E\,\|X(1) - x_0\|^2 / \|x_0\|^2`.  With :math:`h` fixed (e.g. the
    usual :math:`h = 1`) the value :math:`(1 + h^2\sigma^2)^N - 1` explodes.  Pass
    ``depth=math.inf`` for the limit.

    Taught in Chapter 6.
    """
    T = check_positive("T", T)
    sigma = check_positive("sigma", sigma)
    check_choice("scaling", scaling, SCALINGS)
    if depth == math.inf:
        return 0.0 if scaling == "1/N" else math.expm1((T * sigma) ** 2)
    h = step_size(T, depth, scaling)
    return math.expm1(depth * math.log1p((h * sigma) ** 2))


def linear_limit_quantiles(probabilities: Any, *, T: float = 1.0, sigma: float = 1.0) -> np.ndarray:
    r"""Quantiles of :math:`X(1)/x_0` for the SDE limit of the linear branch in one dimension.

    For :math:`d = 1` and :math:`h = T/\sqrt N` the random linear ResNet
    :math:`x_{l+1} = (1 + h w_l)\, x_l`, :math:`w_l \sim N(0, \sigma^2)`, is the
    Euler-Maruyama scheme of the geometric Brownian motion :math:`dX = T\sigma X\, dB` on
    :math:`[0, 1]`, whose solution is lognormal:

    .. math::

        \frac{X(1)}{x_0} = \exp\bigl(T\sigma B(1) - T^2\sigma^2/2\bigr), \qquad
        q_p = \exp\bigl(T\sigma\, \Phi^{-1}(p) - T^2\sigma^2/2\bigr),

    with :math:`\Phi` the standard normal distribution function.

    Parameters
    ----------
    probabilities : array_like
        Probabilities :math:`p`, each strictly between 0 and 1.
    T, sigma : float
        As in :func:`linear_mean_square`, positive.

    Returns
    -------
    ndarray
        The quantiles :math:`q_p`, shaped like ``probabilities``.

    Taught in Chapter 6.
    """
    p = check_finite_array("probabilities", probabilities)
    if np.any((p <= 0) | (p >= 1)):
        raise ValueError(f"`probabilities` must lie strictly between 0 and 1; got {p!r:.80}.")
    T = check_positive("T", T)
    sigma = check_positive("sigma", sigma)
    inverse = np.vectorize(NormalDist().inv_cdf, otypes=[float])
    return np.exp(T * sigma * inverse(p) - (T * sigma) ** 2 / 2)


# --------------------------------------------------------------------------- trained layers


class EulerClassifier(nn.Module):
    r"""A classifier with an Euler ResNet body whose layer weights are stacked by depth.

    .. math::

        x_0 = A u + a, \qquad x_{l+1} = x_l + h\,\big(W_l \tanh(x_l) + b_l\big), \qquad
        z = C x_N + c, \qquad h = T/N .

    The lift :math:`(A, a)` and the read-out :math:`(C, c)` are fixed (not trained) and
    depend only on ``seed`` and the sizes, so networks of every depth and initialisation
    share them; only :math:`\theta_l = (W_l, b_l)` are parameters.  ``init`` chooses the
    initial :math:`\theta_l`:

    - ``"iid"``: every entry independent :math:`N(0, \text{scale}^2/w)`;
    - ``"smooth"``: :math:`\theta_l = \theta(t_l)` with
      :math:`\theta(t) = P \cos(\pi t/T) + Q \sin(\pi t/T)`, the entries of :math:`P, Q`
      independent :math:`N(0, \text{scale}^2/w)`: for every :math:`t` the same
      distribution as ``"iid"``, but a smooth function of depth, the same for every
      :math:`N`.

    Parameters
    ----------
    in_features, out_features : int
        Input dimension :math:`d` and number of classes :math:`c`.
    depth, width : int
        Number of layers :math:`N` and width :math:`w`.
    T : float
        Total depth :math:`T > 0`.
    init : {"iid", "smooth"}
        Initialisation of the layer weights.
    scale : float
        Scale of the initial layer weights, positive.
    seed : int
        Seed of every random draw (a private generator; the global one is untouched).
    dtype : torch.dtype, optional
        Parameter dtype (default: torch's default dtype).

    Taught in Chapter 6.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        depth: int,
        width: int,
        T: float = 1.0,
        init: str = "iid",
        scale: float = 1.0,
        seed: int = 0,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        d = check_int("in_features", in_features, minimum=1)
        c = check_int("out_features", out_features, minimum=1)
        self.depth = check_int("depth", depth, minimum=1)
        self.width = w = check_int("width", width, minimum=1)
        self.T = check_positive("T", T)
        self.h = self.T / self.depth
        self.init = check_choice("init", init, INITS)
        scale = check_positive("scale", scale)
        seed = check_int("seed", seed, minimum=0)
        dtype = torch.get_default_dtype() if dtype is None else dtype
        g = torch.Generator().manual_seed(seed)

        def normal(*shape: int, std: float) -> Tensor:
            return torch.randn(*shape, generator=g, dtype=dtype) * std

        self.register_buffer("A", normal(w, d, std=1 / math.sqrt(d)))
        self.register_buffer("a", normal(w, std=1 / math.sqrt(d)))
        self.register_buffer("C", normal(c, w, std=1 / math.sqrt(w)))
        self.register_buffer("c", torch.zeros(c, dtype=dtype))
        std = scale / math.sqrt(w)
        if init == "iid":
            W, b = normal(depth, w, w, std=std), normal(depth, w, std=std)
        else:
            t = torch.arange(depth, dtype=dtype) * self.h
            basis = torch.stack([torch.cos(math.pi * t / T), torch.sin(math.pi * t / T)], dim=1)
            W = torch.einsum("lk,kij->lij", basis, normal(2, w, w, std=std))
            b = basis @ normal(2, w, std=std)
        self.weight, self.bias = nn.Parameter(W), nn.Parameter(b)

    def times(self) -> np.ndarray:
        """The layer times :math:`t_l = l h`, :math:`l = 0, \\dots, N-1`."""
        return np.arange(self.depth) * self.h

    def theta(self) -> np.ndarray:
        r"""The layer parameters as an array of shape (N, w^2 + w): row l is :math:`(W_l, b_l)`."""
        flat = torch.cat([self.weight.detach().flatten(1), self.bias.detach()], dim=1)
        return flat.cpu().numpy()

    def set_theta(self, theta: Any) -> None:
        """Overwrite the layer parameters with ``theta``, shaped as :meth:`theta` returns."""
        w = self.width
        if isinstance(theta, Tensor):
            theta = theta.detach().cpu().numpy()
        array = np.asarray(theta, dtype=float)
        if array.shape != (self.depth, w * w + w):
            raise ValueError(
                f"`theta` must have shape ({self.depth}, {w * w + w}); got {array.shape}."
            )
        new = torch.as_tensor(array, dtype=self.weight.dtype, device=self.weight.device)
        with torch.no_grad():
            self.weight.copy_(new[:, : w * w].reshape(self.depth, w, w))
            self.bias.copy_(new[:, w * w :])

    def forward(self, u: Tensor) -> Tensor:
        """Return logits of shape (n, c) for inputs ``u`` of shape (n, d)."""
        d = self.A.shape[1]
        if not isinstance(u, Tensor) or u.ndim != 2 or u.shape[1] != d:
            got = tuple(u.shape) if isinstance(u, Tensor) else type(u).__name__
            raise ValueError(f"`u` must be a tensor of shape (n, {d}); got {got}.")
        x = torch.addmm(self.a, u.to(self.A.dtype), self.A.T)
        steps = (self.h * self.weight).mT.unbind(0)  # h W_l^T, layer by layer
        shifts = (self.h * self.bias).unbind(0)  # h b_l
        for hW, hb in zip(steps, shifts, strict=True):
            x = torch.addmm(x + hb, torch.tanh(x), hW)
        return torch.addmm(self.c, x, self.C.T)


def train_full_batch(
    model: nn.Module,
    data: Dataset,
    *,
    steps: int = 300,
    lr: float = 1e-2,
    optimizer: str = "adam",
) -> list[float]:
    r"""Train ``model`` full-batch on cross-entropy; return the loss before each step.

    ``"sgd"`` is plain gradient descent,
    :math:`\theta \leftarrow \theta - \text{lr}\, \nabla_\theta \mathcal L`, whose step for
    a layer of :class:`EulerClassifier` is proportional to :math:`h` because its gradient is;
    ``"adam"`` divides every coordinate of the gradient by a running root mean square,
    which removes that factor.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier mapping ``(n, d)`` inputs to ``(n, c)`` logits (e.g.
        :class:`EulerClassifier`); trained in place.
    data : Dataset
        Only the training split is used.
    steps : int
        Number of optimisation steps, at least 1.
    lr : float
        Learning rate, positive.
    optimizer : {"adam", "sgd"}
        Adam (:class:`torch.optim.Adam`) or gradient descent (:class:`torch.optim.SGD`
        without momentum).

    Returns
    -------
    list of float
        ``steps + 1`` training losses: before every step and after the last.

    Taught in Chapter 6.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module; got {type(model).__name__}.")
    if not isinstance(data, Dataset):
        raise TypeError(f"`data` must be an odecourse.data.Dataset; got {type(data).__name__}.")
    steps = check_int("steps", steps, minimum=1)
    lr = check_positive("lr", lr)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("`model` has no trainable parameters.")
    X = data.X_train.to(dtype=parameters[0].dtype, device=parameters[0].device)
    y = data.y_train.to(X.device)
    make = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    stepper = make(parameters, lr=lr)
    losses = []
    for _ in range(steps):
        stepper.zero_grad()
        loss = F.cross_entropy(model(X), y)
        losses.append(loss.item())
        loss.backward()
        stepper.step()
    with torch.no_grad():
        losses.append(F.cross_entropy(model(X), y).item())
    return losses


def max_increment(theta: Any) -> float:
    r"""The roughness :math:`\max_l \|\theta_{l+1} - \theta_l\|` of a sequence of parameters.

    For samples :math:`\theta_l = \theta(t_l)` of a smooth function on a grid of step
    :math:`h = T/N` it is about :math:`h \max \|\theta'\|`, so it falls like :math:`1/N`;
    for independent :math:`\theta_l` it does not shrink with :math:`N`.

    Parameters
    ----------
    theta : array_like, shape (N, p) or (N,)
        Row ``l`` holds the parameters of layer ``l``; :math:`N \ge 2`.

    Returns
    -------
    float
        The largest Euclidean norm of the difference of consecutive rows.

    Taught in Chapter 6.
    """
    array = _layer_rows("theta", theta)
    if array.shape[0] < 2:
        raise ValueError(f"`theta` must have shape (N, p) or (N,) with N >= 2; got {array.shape}.")
    return float(np.linalg.norm(np.diff(array, axis=0), axis=1).max())


def depth_gap(coarse: Any, fine: Any) -> float:
    r"""The largest distance between the layers of two depths at their common times.

    .. math:: \max_l \bigl\|\theta^{\text{fine}}_{k l} - \theta^{\text{coarse}}_l\bigr\|

    ``coarse`` holds the layer parameters of a network with :math:`N` layers at
    :math:`t_l = l T/N`, ``fine`` those of one with :math:`kN` layers over the same
    :math:`[0, T]`; layer :math:`k l` of the fine network sits at the time of layer
    :math:`l` of the coarse one.  If both sample one smooth function the gap is zero; if
    each converges at rate :math:`1/N` to a common limit, the gap falls like :math:`1/N`.

    Parameters
    ----------
    coarse : array_like, shape (N, p) or (N,)
        Row ``l`` holds the parameters of layer ``l`` of the coarse network.
    fine : array_like, shape (kN, p) or (kN,)
        The same for the fine network, :math:`k \ge 1` an integer.

    Returns
    -------
    float
        The largest Euclidean distance between corresponding rows.

    Taught in Chapter 6.
    """
    coarse, fine = _layer_rows("coarse", coarse), _layer_rows("fine", fine)
    n, m = coarse.shape[0], fine.shape[0]
    if m % n != 0 or coarse.shape[1] != fine.shape[1]:
        raise ValueError(
            "`fine` must have a whole multiple of the layers of `coarse` and as many "
            f"parameters per layer; got shapes {coarse.shape} and {fine.shape}."
        )
    return float(np.linalg.norm(fine[:: m // n] - coarse, axis=1).max())


def _layer_rows(name: str, theta: Any) -> np.ndarray:
    """``theta`` as a finite float array of shape (N, p), N >= 1; a vector is one column."""
    if isinstance(theta, Tensor):
        theta = theta.detach().cpu().numpy()
    try:
        array = np.asarray(theta, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`{name}` must be a real array; got {type(theta).__name__}.") from exc
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] < 1:
        raise ValueError(f"`{name}` must have shape (N, p) or (N,); got {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must be finite.")
    return array
