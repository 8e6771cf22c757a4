r"""Neural ODE models: a learned vector field, the ODE block, augmentation, trajectory fitting.

A neural ODE replaces a stack of residual blocks :math:`z_{l+1} = z_l + F(z_l)`
by the flow of a learned vector field,

.. math:: \dot z(t) = f_\theta(t, z(t)), \qquad z(0) = x, \qquad \text{output } z(T),

computed by :func:`odecourse.odeint.odeint` (backprop through the solver) or
:func:`odecourse.adjoint.odeint_adjoint` (the adjoint method).  This module
holds the pieces Chapter 7 trains: :class:`ODEFunc` (an MLP field that counts
its evaluations), :class:`ODEBlock` (``x -> z(T)``, optionally augmented with
zeros as in Dupont et al.), :class:`ODEClassifier` (block plus linear
readout) and :func:`fit_trajectory` (learn :math:`\dot y = f(y)` from samples
of one trajectory); :func:`evaluate_with_solvers` (the solver-swap test of
ott2021: is a trained model an ODE, or a ResNet tied to its training solver?)
and :func:`field_statistics` (how large and how fast-varying a learned field is
along its trajectories).

Taught in Chapter 7.

References
----------
chen2018: R. T. Q. Chen et al., Neural ordinary differential equations, NeurIPS 2018.
dupont2019: E. Dupont, A. Doucet, Y. W. Teh, Augmented neural ODEs, NeurIPS 2019.
ott2021: K. Ott, P. Katiyar, P. Hennig, M. Tiemann, ResNet after all? Neural ODEs and their
numerical solution, ICLR 2021.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from odecourse._torch_args import check_options, check_tolerance, resolve_method
from odecourse._validation import check_callable, check_choice, check_int, check_positive
from odecourse.adjoint import odeint_adjoint
from odecourse.networks import ACTIVATIONS
from odecourse.odeint import odeint
from odecourse.runge_kutta import ButcherTableau
from odecourse.training import evaluate

__all__ = [
    "GRADIENTS",
    "FieldStatistics",
    "ODEBlock",
    "ODEClassifier",
    "ODEFunc",
    "SolverEvaluation",
    "TrajectoryFit",
    "evaluate_with_solvers",
    "field_statistics",
    "fit_trajectory",
    "jacobians",
]

#: How :class:`ODEBlock` differentiates the solve.
GRADIENTS = ("backprop", "adjoint")


class ODEFunc(nn.Module):
    r"""An MLP vector field :math:`f_\theta(t, z)` that counts its evaluations.

    Parameters
    ----------
    dim : int
        State dimension :math:`d`; ``z`` has shape (..., d).
    hidden : int
        Width of the hidden layers.
    depth : int
        Number of hidden layers (at least 1).
    activation : str
        A key of :data:`odecourse.networks.ACTIVATIONS` (``"tanh"``, ``"softplus"``,
        ``"relu"``, ``"elu"``, ...).
    time_dependent : bool
        Feed :math:`t` to the first layer as an extra input.

    Notes
    -----
    ``nfe`` counts calls to ``forward``; ``reset()`` sets it to zero.  A
    smooth activation (tanh, softplus) keeps the field Lipschitz and smooth,
    which adaptive solvers need.  Taught in Chapter 7.
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 32,
        depth: int = 2,
        activation: str = "tanh",
        *,
        time_dependent: bool = False,
    ) -> None:
        super().__init__()
        self.dim = check_int("dim", dim, minimum=1)
        check_int("hidden", hidden, minimum=1)
        check_int("depth", depth, minimum=1)
        check_choice("activation", activation, ACTIVATIONS)
        self.time_dependent = bool(time_dependent)
        widths = [dim + self.time_dependent] + [hidden] * depth
        layers: list[nn.Module] = []
        for n_in, n_out in itertools.pairwise(widths):
            layers += [nn.Linear(n_in, n_out), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(hidden, dim))
        self.net = nn.Sequential(*layers)
        self.nfe = 0

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        self.nfe += 1
        if self.time_dependent:
            z = torch.cat([z, t.expand(*z.shape[:-1], 1)], dim=-1)
        return self.net(z)

    def reset(self) -> None:
        """Set the evaluation counter ``nfe`` back to zero."""
        self.nfe = 0


class ODEBlock(nn.Module):
    r"""Map :math:`x` to :math:`z(T)` where :math:`\dot z = f(t, z)`, :math:`z(0) = [x, 0]`.

    Parameters
    ----------
    func : nn.Module
        The vector field ``func(t, z)`` on states of size ``data_dim + augment_dim``.
    T : float
        End time of the integration.
    method, rtol, atol, options
        Solver settings, passed to :func:`~odecourse.odeint.odeint` (validated here).
    gradient : str
        ``"backprop"`` (through the solver) or ``"adjoint"``
        (:func:`~odecourse.adjoint.odeint_adjoint`).
    augment_dim : int
        Number of zeros appended to the input before integrating (dupont2019);
        0 is a plain neural ODE.

    Notes
    -----
    ``forward(x)`` takes ``x`` of shape (batch, data_dim) and returns the whole
    state :math:`z(T)` of shape (batch, data_dim + augment_dim).  A plain flow
    cannot let trajectories cross, so in one dimension it cannot map
    :math:`x \mapsto -x`; with one extra dimension it can.  Taught in Chapter 7.
    """

    def __init__(
        self,
        func: nn.Module,
        T: float = 1.0,
        *,
        method: str | ButcherTableau = "dopri5",
        rtol: float = 1e-3,
        atol: float = 1e-4,
        options: Mapping[str, Any] | None = None,
        gradient: str = "backprop",
        augment_dim: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(func, nn.Module):
            raise TypeError(f"`func` must be an nn.Module; got {type(func).__name__}.")
        self.func = func
        self.T = check_positive("T", T)
        self.gradient = check_choice("gradient", gradient, GRADIENTS)
        self.augment_dim = check_int("augment_dim", augment_dim, minimum=0)
        self.solver = _solver_settings(method=method, rtol=rtol, atol=atol, options=options)

    @contextlib.contextmanager
    def temporary_solver(self, **settings: Any) -> Iterator[ODEBlock]:
        """Integrate with other solver settings inside a ``with`` block, then restore them.

        Parameters
        ----------
        **settings
            ``method``, ``rtol``, ``atol``, ``options`` as in the constructor; the ones
            not given take the constructor's defaults (dopri5, 1e-3, 1e-4, no options),
            not the block's current values, so that a fixed-step ``step_size`` is never
            carried over to an adaptive method.

        Examples
        --------
        >>> block = ODEBlock(ODEFunc(2), method="euler", options={"step_size": 0.25})
        >>> with block.temporary_solver(method="dopri5", rtol=1e-8, atol=1e-10):
        ...     block.solver["method"]
        'dopri5'
        >>> block.solver["method"]
        'euler'
        """
        new = _solver_settings(**settings)
        old, self.solver = self.solver, new
        try:
            yield self
        finally:
            self.solver = old

    def augment(self, x: Tensor) -> Tensor:
        """Append ``augment_dim`` zeros to the last dimension of ``x``."""
        if self.augment_dim == 0:
            return x
        return torch.cat([x, x.new_zeros(*x.shape[:-1], self.augment_dim)], dim=-1)

    def trajectory(self, x: Tensor, t: Tensor) -> Tensor:
        """The (augmented) state at every time of ``t``: shape (len(t), batch, dim)."""
        solve = odeint if self.gradient == "backprop" else odeint_adjoint
        return solve(self.func, self.augment(x), t.to(x), **self.solver)

    def forward(self, x: Tensor) -> Tensor:
        t = torch.tensor([0.0, self.T], dtype=x.dtype, device=x.device)
        return self.trajectory(x, t)[-1]

    @property
    def nfe(self) -> int:
        """Evaluations counted by ``func`` (0 if it does not count)."""
        return getattr(self.func, "nfe", 0)


class ODEClassifier(nn.Module):
    """An :class:`ODEBlock` on an :class:`ODEFunc` followed by a linear readout.

    Parameters
    ----------
    data_dim, n_outputs : int
        Input and output sizes.
    hidden, depth, activation
        Of the :class:`ODEFunc` on ``data_dim + augment_dim`` dimensions.
    augment_dim : int
        Extra zero dimensions (dupont2019).
    **block
        Keyword arguments of :class:`ODEBlock` (``T``, ``method``, ``rtol``, ...).

    Taught in Chapter 7.
    """

    def __init__(
        self,
        data_dim: int,
        n_outputs: int,
        *,
        hidden: int = 32,
        depth: int = 2,
        activation: str = "tanh",
        augment_dim: int = 0,
        **block: Any,
    ) -> None:
        super().__init__()
        check_int("n_outputs", n_outputs, minimum=1)
        augment_dim = check_int("augment_dim", augment_dim, minimum=0)
        dim = check_int("data_dim", data_dim, minimum=1) + augment_dim
        func = ODEFunc(dim, hidden, depth, activation)
        self.block = ODEBlock(func, augment_dim=augment_dim, **block)
        self.readout = nn.Linear(dim, n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self.block(x))


_SOLVER_KEYS = ("method", "rtol", "atol", "options")


def _solver_settings(**settings: Any) -> dict[str, Any]:
    """Validated solver settings of an :class:`ODEBlock`, with the block's defaults."""
    for key in settings:
        if key not in _SOLVER_KEYS:
            raise TypeError(
                f"unknown solver setting {key!r}; accepted: {', '.join(map(repr, _SOLVER_KEYS))}."
            )
    solver = {"method": "dopri5", "rtol": 1e-3, "atol": 1e-4, "options": None} | settings
    check_options(solver["options"], resolve_method(solver["method"]))
    check_tolerance("rtol", solver["rtol"])
    check_tolerance("atol", solver["atol"])
    return solver


@dataclass(frozen=True)
class SolverEvaluation:
    """A classifier's test result with one solver: see :func:`evaluate_with_solvers`.

    Attributes
    ----------
    accuracy : float
        Fraction of correctly classified points, in [0, 1].
    loss : float
        Mean cross-entropy.
    nfe : int
        Evaluations of the field in the forward solve (0 if it does not count them).
    """

    accuracy: float
    loss: float
    nfe: int


def evaluate_with_solvers(
    model: nn.Module, X: Tensor, y: Tensor, solvers: Mapping[str, Mapping[str, Any]]
) -> dict[str, SolverEvaluation]:
    r"""Evaluate a trained neural ODE classifier with other solvers than it was trained with.

    A neural ODE is meant to be the flow of its field, whatever solver computes it; a model
    trained with a coarse fixed step may instead have learned the *discrete* map of that
    solver, a residual network (ott2021).  Swapping the solver at test time tells the two
    apart: a model that learned a flow keeps its accuracy with any solver that resolves the
    flow; a model that learned its solver's discrete map loses it when the solver changes.

    Parameters
    ----------
    model : nn.Module
        A classifier with an :class:`ODEBlock` as ``model.block`` (an :class:`ODEClassifier`),
        returning logits of shape (n, c).
    X : Tensor, shape (n, d)
        Inputs.
    y : Tensor of int, shape (n,)
        Class labels.
    solvers : mapping of str to mapping
        Name -> solver settings (``method``, ``rtol``, ``atol``, ``options``; see
        :meth:`ODEBlock.temporary_solver`), e.g.
        ``{"euler, N = 8": {"method": "euler", "options": {"step_size": T / 8}}}``.

    Returns
    -------
    dict of str to SolverEvaluation
        Accuracy, mean cross-entropy and forward NFE per solver, in the order given.  The
        block's own settings are restored afterwards, also if a solve fails.

    Taught in Chapter 7.
    """
    block = getattr(model, "block", None) if isinstance(model, nn.Module) else None
    if not isinstance(block, ODEBlock):
        raise TypeError(
            "`model` must be an nn.Module with an ODEBlock as `model.block` (an "
            f"ODEClassifier); got {type(model).__name__}."
        )
    if not isinstance(solvers, Mapping):
        raise TypeError(f"`solvers` must be a dict of name -> settings; got {solvers!r:.60}.")
    if not solvers:
        raise ValueError("`solvers` must name at least one solver; got an empty dict.")
    results = {}
    for name, settings in solvers.items():
        if not isinstance(settings, Mapping):
            raise TypeError(
                f"`solvers[{name!r}]` must be a dict of solver settings; "
                f"got {type(settings).__name__}."
            )
        with block.temporary_solver(**settings):
            before = block.nfe
            loss, accuracy = evaluate(model, X, y)
            results[name] = SolverEvaluation(accuracy, loss, block.nfe - before)
    return results


def jacobians(
    func: Callable[[Tensor, Tensor], Tensor], z: Tensor, t: Tensor | None = None
) -> Tensor:
    r"""The Jacobians :math:`\partial f/\partial z` of a field at a batch of states.

    Parameters
    ----------
    func : callable
        The field ``func(t, z)``, mapping states of shape (B, d) to (B, d), each row
        depending only on its own state (true of :class:`ODEFunc`).
    z : Tensor, shape (B, d)
        The states.
    t : Tensor, optional
        The time passed to ``func`` (default 0).

    Returns
    -------
    Tensor, shape (B, d, d)
        ``J[b, i, j]`` is :math:`\partial f_i/\partial z_j` at ``z[b]``; computed by ``d``
        reverse passes, without a graph for the result.

    Taught in Chapter 7.
    """
    check_callable("func", func)
    if not isinstance(z, Tensor) or not z.is_floating_point():
        got = z.dtype if isinstance(z, Tensor) else type(z).__name__
        raise TypeError(f"`z` must be a floating-point torch tensor; got {got}.")
    if z.ndim != 2:
        raise ValueError(f"`z` must have shape (B, d); got {tuple(z.shape)}.")
    t = z.new_zeros(()) if t is None else t
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        value = func(t, z)
        rows = [
            torch.autograd.grad(value[:, i].sum(), z, retain_graph=i + 1 < z.shape[1])[0]
            for i in range(z.shape[1])
        ]
    return torch.stack(rows, dim=1)


@dataclass(frozen=True)
class FieldStatistics:
    r"""Size and variation of a field over a set of states: see :func:`field_statistics`.

    Attributes
    ----------
    speed : float
        Mean of :math:`\|f(z)\|`.
    jacobian_frobenius : float
        Mean Frobenius norm of :math:`\partial f/\partial z`.
    jacobian_spectral : float
        Largest spectral norm of :math:`\partial f/\partial z` (a local Lipschitz
        constant of the field at the worst state).
    """

    speed: float
    jacobian_frobenius: float
    jacobian_spectral: float


def field_statistics(
    func: Callable[[Tensor, Tensor], Tensor], z: Tensor, t: Tensor | None = None
) -> FieldStatistics:
    r"""How large and how fast-varying the field ``func`` is at the states ``z``.

    Parameters
    ----------
    func, z, t
        As in :func:`jacobians`; ``z`` of shape (B, d) (e.g. the states of a trajectory).

    Returns
    -------
    FieldStatistics
        Mean :math:`\|f\|`, mean :math:`\|\partial f/\partial z\|_F` and the largest
        :math:`\|\partial f/\partial z\|_2` over the states.

    Taught in Chapter 7.
    """
    J = jacobians(func, z, t)
    with torch.no_grad():
        speed = func(z.new_zeros(()) if t is None else t, z).norm(dim=1).mean()
    return FieldStatistics(
        float(speed),
        float(torch.linalg.matrix_norm(J).mean()),
        float(torch.linalg.matrix_norm(J, ord=2).max()),
    )


@dataclass
class TrajectoryFit:
    """Result of :func:`fit_trajectory`: the trained field and the loss history."""

    func: ODEFunc
    losses: list[float] = field(default_factory=list)

    def predict(self, y0: Tensor, t: Tensor, **solver: Any) -> Tensor:
        """Integrate the learned field from ``y0`` over ``t`` (no gradients)."""
        with torch.no_grad():
            return odeint(self.func, y0, t, **solver)


def fit_trajectory(
    t: Tensor,
    y: Tensor,
    *,
    func: ODEFunc | None = None,
    n_iters: int = 300,
    lr: float = 1e-2,
    segment: int = 10,
    batch_size: int = 16,
    method: str = "rk4",
    seed: int = 0,
) -> TrajectoryFit:
    r"""Learn an autonomous field :math:`\dot y = f_\theta(y)` from samples of one trajectory.

    Each iteration draws ``batch_size`` random windows of ``segment`` samples,
    integrates the field from the first sample of each window over the window's
    times, and takes an Adam step on the mean squared error

    .. math::

        \mathcal{L}(\theta) = \frac{1}{BS} \sum_{b,k}
        \big\| \hat y(t_{s_b+k}) - y_{s_b+k} \big\|^2 .

    Parameters
    ----------
    t : Tensor, shape (N,)
        Sample times, increasing and equally spaced.
    y : Tensor, shape (N, d)
        Observed states.
    func : ODEFunc, optional
        The field to train; default ``ODEFunc(d, hidden=32, depth=2)``.
    n_iters, lr, segment, batch_size, seed
        Training settings; ``segment`` must be between 2 and N.  ``seed`` seeds
        the draw of the windows and, when ``func`` is None, torch's global
        generator before the default field is initialised.
    method : str
        Solver of the training solves (fixed-step methods step between samples).

    Returns
    -------
    TrajectoryFit
        The trained field and the loss after each iteration.

    Taught in Chapter 7.
    """
    _check_trajectory(t, y, segment)
    check_int("batch_size", batch_size, minimum=1)
    if func is not None and not isinstance(func, nn.Module):
        raise TypeError(f"`func` must be an nn.Module (an ODEFunc) or None; got {func!r:.60}.")
    generator = torch.Generator().manual_seed(check_int("seed", seed))
    if func is None:
        torch.manual_seed(seed)
        func = ODEFunc(y.shape[1]).to(y)
    optimiser = torch.optim.Adam(func.parameters(), lr=check_positive("lr", lr))
    window = t[:segment] - t[0]
    fit = TrajectoryFit(func)
    for _ in range(check_int("n_iters", n_iters, minimum=1)):
        starts = torch.randint(0, len(t) - segment + 1, (batch_size,), generator=generator)
        index = starts[:, None] + torch.arange(segment)  # (B, S)
        target = y[index].transpose(0, 1)  # (S, B, d)
        optimiser.zero_grad()
        loss = (odeint(func, target[0], window, method=method) - target).pow(2).mean()
        loss.backward()
        optimiser.step()
        fit.losses.append(loss.item())
    return fit


def _check_trajectory(t: Tensor, y: Tensor, segment: int) -> None:
    for name, value in (("t", t), ("y", y)):
        if not isinstance(value, Tensor) or not value.is_floating_point():
            got = value.dtype if isinstance(value, Tensor) else type(value).__name__
            raise TypeError(f"`{name}` must be a floating-point torch tensor; got {got}.")
    if t.ndim != 1 or y.ndim != 2 or y.shape[0] != t.shape[0]:
        raise ValueError(
            f"`t` must have shape (N,) and `y` shape (N, d); got {tuple(t.shape)} and "
            f"{tuple(y.shape)}."
        )
    check_int("segment", segment, minimum=2)
    if segment > len(t):
        raise ValueError(f"`segment` must be at most len(t) = {len(t)}; got {segment}.")
    steps = t[1:] - t[:-1]
    # Differences of rounded times carry an error of a few ulps of |t|, not of the step.
    slack = 8 * torch.finfo(t.dtype).eps * float(t.abs().max())
    if not bool((steps > 0).all()) or float((steps - steps.mean()).abs().max()) > slack:
        raise ValueError(f"`t` must be increasing and equally spaced; got {t!r:.80}.")
