r"""Regularised neural ODEs (RNODE): kinetic energy and Jacobian penalties along the solve.

A neural ODE :math:`\dot z = f(t, z)` on :math:`[0, T]` can learn a field that
fits the data but makes the adaptive solver take many steps.  RNODE
(finlay2020; kelly2020 for the link between such penalties and solver cost)
adds two integrals, computed alongside the state by the same solve,

.. math::
    K = \int_0^T \|f(t, z(t))\|^2 \, dt, \qquad
    J = \int_0^T \Big\| \frac{\partial f}{\partial z}(t, z(t)) \Big\|_F^2 \, dt,

and trains on :math:`\mathcal{L} + \lambda (K + J)`.  The Frobenius norm is
estimated with Hutchinson's trick (hutchinson1989): for a probe
:math:`\varepsilon` with :math:`E[\varepsilon \varepsilon^\top] = I`,
:math:`\|A\|_F^2 = E\big[\|\varepsilon^\top A\|^2\big]`, and
:math:`\varepsilon^\top A` costs one vector-Jacobian product.  One probe per
sample is drawn once per solve and held fixed during it, so the integrand is a
smooth function of time and the adaptive solver can integrate it.

The pieces: :func:`frobenius_estimate` and :func:`exact_frobenius` (the
integrand), :func:`draw_probe`, :class:`RegularizedDynamics` (the augmented
field on the state ``(z, K, J)``), :func:`rnode_solve`,
:class:`RegularizedODEClassifier` and :func:`train_rnode`.

Taught in Chapter 7.

References
----------
finlay2020: C. Finlay, J.-H. Jacobsen, L. Nurbekyan, A. Oberman, How to train your
neural ODE: the world of Jacobian and kinetic regularization, ICML 2020.
kelly2020: J. Kelly, J. Bettencourt, M. J. Johnson, D. Duvenaud, Learning differential
equations that are easy to solve, NeurIPS 2020.
hutchinson1989: M. F. Hutchinson, A stochastic estimator of the trace of the influence
matrix for Laplacian smoothing splines, 1989.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odecourse._arrays import rms_norm
from odecourse._torch_args import check_options, check_tolerance, resolve_method
from odecourse._validation import (
    check_callable,
    check_choice,
    check_int,
    check_positive,
    check_real,
)
from odecourse.neural_ode import ODEClassifier, ODEFunc
from odecourse.odeint import SolveStats, odeint
from odecourse.runge_kutta import ButcherTableau
from odecourse.seeding import seed_everything

__all__ = [
    "ERROR_CONTROLS",
    "PROBES",
    "RNODEHistory",
    "RNODESolution",
    "RegularizedDynamics",
    "RegularizedODEClassifier",
    "draw_probe",
    "exact_frobenius",
    "frobenius_estimate",
    "rnode_solve",
    "train_rnode",
]

#: Distributions of the Hutchinson probe: both have :math:`E[\varepsilon\varepsilon^\top] = I`.
PROBES = ("rademacher", "gaussian")
#: What the adaptive step-size control of :func:`rnode_solve` measures: the state ``z`` only,
#: or the state and the two penalty integrals.
ERROR_CONTROLS = ("state", "all")


# --------------------------------------------------------------------------- the integrand


def _check_tensor(name: str, value: Any) -> Tensor:
    if not isinstance(value, Tensor) or not value.is_floating_point():
        got = f"{value.dtype} tensor" if isinstance(value, Tensor) else type(value).__name__
        raise TypeError(f"`{name}` must be a floating torch.Tensor; got {got}.")
    return value


def _check_like(name: str, value: Any, z: Tensor, like: str = "z") -> Tensor:
    value = _check_tensor(name, value)
    if value.shape != z.shape:
        raise ValueError(
            f"`{name}` must have the shape of `{like}` {tuple(z.shape)}; got {tuple(value.shape)}."
        )
    return value


def frobenius_estimate(
    f_value: Tensor, z: Tensor, probe: Tensor, *, create_graph: bool = True
) -> Tensor:
    r"""Hutchinson's estimate :math:`\|\varepsilon^\top \partial f / \partial z\|^2` per sample.

    Parameters
    ----------
    f_value : Tensor, shape (batch, d)
        :math:`f(t, z)`, computed from ``z`` in the current autograd graph.
    z : Tensor, shape (batch, d)
        The state; it must require grad.
    probe : Tensor, shape (batch, d)
        One probe :math:`\varepsilon` per sample (see :func:`draw_probe`).
    create_graph : bool
        Record the vector-Jacobian product so that the estimate is differentiable
        (with respect to the parameters of ``f`` and to ``z``), as training needs.

    Returns
    -------
    Tensor, shape (batch,)
        :math:`\|\varepsilon_b^\top A_b\|^2` with :math:`A_b = \partial f_b / \partial z_b`,
        summed over the last dimension.  Its expectation over the probe is
        :math:`\|A_b\|_F^2`.

    Notes
    -----
    One vector-Jacobian product gives :math:`\varepsilon^\top A` for every sample at
    once, because each :math:`f_b` depends on its own :math:`z_b` only (true for a
    field applied row by row, such as an MLP).  A field that does not depend on ``z``
    gives zeros.  Taught in Chapter 7.

    References
    ----------
    hutchinson1989; finlay2020.
    """
    _check_tensor("z", z)
    _check_like("f_value", f_value, z)
    _check_like("probe", probe, z)
    if not z.requires_grad:
        raise ValueError(
            "`z` must require grad (the estimate differentiates `f_value` with respect to "
            "it); use z = z.detach().requires_grad_() before computing `f_value`."
        )
    if not f_value.requires_grad:  # f does not depend on z, nor on anything else
        return f_value.new_zeros(z.shape[:-1])
    (row,) = torch.autograd.grad(
        f_value, z, grad_outputs=probe, create_graph=create_graph, retain_graph=True,
        allow_unused=True,
    )  # fmt: skip
    if row is None:
        return f_value.new_zeros(z.shape[:-1])
    return row.pow(2).sum(dim=-1)


def _leaf_if_needed(z: Tensor) -> Tensor:
    """``z`` itself if it requires grad, else a detached copy that does."""
    return z if z.requires_grad else z.detach().requires_grad_()


def exact_frobenius(func: Callable[[Tensor, Tensor], Tensor], t: Any, z: Tensor) -> Tensor:
    r"""The exact :math:`\|\partial f / \partial z\|_F^2` per sample, by ``d`` autograd passes.

    Parameters
    ----------
    func : callable
        ``func(t, z)`` returning a tensor shaped like ``z``, row by row.
    t : Tensor or float
        Time passed to ``func``.
    z : Tensor, shape (batch, d)
        States.

    Returns
    -------
    Tensor, shape (batch,)
        :math:`\sum_i \|e_i^\top A_b\|^2`, the sum of the squared rows of each
        sample's Jacobian; differentiable when grad is enabled.  Costs ``d``
        vector-Jacobian products: for tests and small ``d``.  Taught in Chapter 7.
    """
    check_callable("func", func)
    z = _check_tensor("z", z)
    if z.ndim != 2:
        raise ValueError(f"`z` must have shape (batch, d); got {tuple(z.shape)}.")
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        z = _leaf_if_needed(z)
        f_value = func(t, z)
        basis = torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
        rows = [
            frobenius_estimate(f_value, z, e.expand_as(z), create_graph=create_graph) for e in basis
        ]
    return torch.stack(rows).sum(dim=0)


def _check_generator(generator: Any) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"`generator` must be a torch.Generator or None; got {type(generator).__name__}."
        )
    return generator


def draw_probe(
    z: Tensor, kind: str = "rademacher", generator: torch.Generator | None = None
) -> Tensor:
    r"""A Hutchinson probe shaped like ``z``: entries :math:`\pm 1` or standard normal.

    Parameters
    ----------
    z : Tensor
        Gives the shape, dtype and device.
    kind : str
        ``"rademacher"`` (each entry :math:`\pm 1` with probability 1/2) or
        ``"gaussian"`` (:math:`N(0, 1)` entries).  Both have
        :math:`E[\varepsilon \varepsilon^\top] = I`; Rademacher has the smaller
        variance (hutchinson1989).
    generator : torch.Generator, optional
        Source of randomness (drawn on its device, then moved to ``z``'s).

    Returns
    -------
    Tensor
        Of ``z``'s shape, dtype and device.

    Examples
    --------
    >>> probe = draw_probe(torch.zeros(2, 3), generator=torch.Generator().manual_seed(0))
    >>> sorted(set(probe.flatten().tolist())) <= [-1.0, 1.0]
    True

    Taught in Chapter 7.
    """
    z = _check_tensor("z", z)
    check_choice("kind", kind, PROBES)
    _check_generator(generator)
    device = z.device if generator is None else generator.device
    if kind == "gaussian":
        probe = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=device)
    else:
        bits = torch.randint(0, 2, z.shape, generator=generator, device=device)
        probe = (2 * bits - 1).to(z.dtype)
    return probe.to(z.device)


# --------------------------------------------------------------------------- the solve


class RegularizedDynamics(nn.Module):
    r"""The field on the state :math:`(z, K, J)`: :math:`(f, \|f\|^2, \|\varepsilon^\top f_z\|^2)`.

    Parameters
    ----------
    func : callable
        The vector field ``func(t, z)``, ``z`` of shape (batch, d); a module is
        registered as a submodule (so its parameters are this module's).

    Notes
    -----
    Call :meth:`set_probe` before solving.  ``forward`` differentiates ``f`` with
    respect to ``z`` inside ``torch.enable_grad()``, also when the caller disabled
    grad (a state that does not require grad is replaced by a detached copy that
    does); the vector-Jacobian product is then not recorded.  The two penalty
    components never feed back into ``z``.  Taught in Chapter 7.
    """

    def __init__(self, func: Callable[[Tensor, Tensor], Tensor]) -> None:
        super().__init__()
        self.func = check_callable("func", func)
        self.probe: Tensor | None = None

    def set_probe(self, probe: Tensor) -> None:
        """Hold ``probe`` (shape (batch, d), like the state ``z``) fixed for the next solves."""
        self.probe = _check_tensor("probe", probe).detach()

    def forward(self, t: Tensor, state: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, ...]:
        z = state[0]
        if self.probe is None:
            raise RuntimeError("RegularizedDynamics: call set_probe(probe) before solving.")
        _check_like("probe", self.probe, z)
        recording = torch.is_grad_enabled()
        with torch.enable_grad():
            z = _leaf_if_needed(z)
            f_value = self.func(t, z)
            jacobian = frobenius_estimate(f_value, z, self.probe, create_graph=recording)
        kinetic = f_value.pow(2).sum(dim=-1)
        if not recording:
            f_value, kinetic, jacobian = f_value.detach(), kinetic.detach(), jacobian.detach()
        return f_value, kinetic, jacobian


@dataclass
class RNODESolution:
    r"""Result of :func:`rnode_solve`.

    Attributes
    ----------
    z : Tensor, shape (batch, d)
        The state :math:`z(T)`.
    kinetic : Tensor, shape (batch,)
        :math:`\int_0^T \|f\|^2 dt` per sample.
    jacobian : Tensor, shape (batch,)
        :math:`\int_0^T \|\varepsilon^\top \partial f/\partial z\|^2 dt` per sample.
    """

    z: Tensor
    kinetic: Tensor
    jacobian: Tensor


def _check_state(z0: Any, name: str = "z0") -> Tensor:
    z0 = _check_tensor(name, z0)
    if z0.ndim != 2 or 0 in z0.shape:
        raise ValueError(
            f"`{name}` must have shape (batch, d) with batch, d >= 1; got {tuple(z0.shape)}."
        )
    return z0


def _probe_for(z0: Tensor, probe: Any, generator: Any) -> Tensor:
    """The probe of one solve: drawn from ``probe``'s distribution, or the given tensor."""
    _check_generator(generator)
    if isinstance(probe, Tensor):
        return _check_like("probe", probe, z0, "z0").to(z0)
    if not isinstance(probe, str):
        raise TypeError(
            f"`probe` must be one of {', '.join(map(repr, PROBES))} or a tensor like `z0`; "
            f"got {type(probe).__name__}."
        )
    return draw_probe(z0, check_choice("probe", probe, PROBES), generator)


def _state_norm(scaled: tuple[Tensor, ...]) -> float:
    """The default RMS error norm, of the ``z`` component only."""
    return rms_norm(scaled[0])


def rnode_solve(
    func: Callable[[Tensor, Tensor], Tensor],
    z0: Tensor,
    T: float = 1.0,
    *,
    method: str | ButcherTableau = "dopri5",
    rtol: float = 1e-3,
    atol: float = 1e-4,
    options: Mapping[str, Any] | None = None,
    probe: str | Tensor = "rademacher",
    generator: torch.Generator | None = None,
    error_control: str = "state",
    stats: SolveStats | None = None,
) -> RNODESolution:
    r"""Solve :math:`\dot z = f(t, z)` on :math:`[0, T]` with the RNODE penalties alongside.

    Integrates the augmented system

    .. math::
        \dot z = f(t, z), \quad \dot K = \|f(t, z)\|^2, \quad
        \dot J = \|\varepsilon^\top \partial_z f(t, z)\|^2, \qquad K(0) = J(0) = 0,

    with :func:`odecourse.odeint.odeint` (backprop through the solver), one probe
    :math:`\varepsilon` per sample held fixed during the solve.

    Parameters
    ----------
    func : callable
        ``func(t, z)``, ``z`` of shape (batch, d), applied row by row (an ``nn.Module``
        such as :class:`~odecourse.neural_ode.ODEFunc`, or a function).
    z0 : Tensor, shape (batch, d)
        Initial states, float32 or float64.
    T : float
        End time, positive.
    method, rtol, atol, options
        Solver settings of :func:`~odecourse.odeint.odeint` (tolerances are numbers here).
    probe : str or Tensor
        ``"rademacher"`` or ``"gaussian"`` (drawn with :func:`draw_probe`), or a tensor
        of ``z0``'s shape to use as it is.
    generator : torch.Generator, optional
        Source of the probe's randomness.
    error_control : str
        ``"state"`` (default): an adaptive method controls the error of ``z`` only,
        so it takes exactly the steps of a plain solve of ``z``, and the penalties are
        quadratures on those steps; ``"all"``: torchdiffeq's default for tuple states
        (the largest RMS norm over ``z``, ``K`` and ``J``), which may add steps to
        resolve the penalty integrals.  Ignored for fixed-step methods and when
        ``options`` gives a ``norm``.
    stats : SolveStats, optional
        Filled with the solver's counters.

    Returns
    -------
    RNODESolution
        ``z`` = :math:`z(T)`, ``kinetic`` = :math:`K(T)` and ``jacobian`` =
        :math:`J(T)`, per sample, differentiable.

    Examples
    --------
    >>> A = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    >>> sol = rnode_solve(lambda t, z: z @ A.T, torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    >>> round(sol.kinetic.item(), 3), round(sol.jacobian.item(), 3)
    (1.0, 2.0)

    A rotation keeps :math:`\|f\| = \|z\| = 1`, and :math:`\|\varepsilon^\top A\|^2
    = \|\varepsilon\|^2 = 2 = \|A\|_F^2` for an orthogonal :math:`A` and any
    Rademacher probe.

    Taught in Chapter 7.

    References
    ----------
    finlay2020; kelly2020; hutchinson1989.
    """
    check_callable("func", func)
    z0 = _check_state(z0)
    T = check_positive("T", T)
    tableau = resolve_method(method)
    check_options(options, tableau)
    rtol, atol = check_tolerance("rtol", rtol), check_tolerance("atol", atol)
    check_choice("error_control", error_control, ERROR_CONTROLS)
    dynamics = RegularizedDynamics(func)
    dynamics.set_probe(_probe_for(z0, probe, generator))
    options = dict(options or {})
    if tableau.adaptive and error_control == "state" and "norm" not in options:
        options["norm"] = _state_norm
    zeros = z0.new_zeros(z0.shape[0])
    t = torch.tensor([0.0, T], dtype=z0.dtype, device=z0.device)
    z, kinetic, jacobian = odeint(
        dynamics, (z0, zeros, zeros), t, method=method, rtol=rtol, atol=atol,
        options=options, stats=stats,
    )  # fmt: skip
    return RNODESolution(z[-1], kinetic[-1], jacobian[-1])


# --------------------------------------------------------------------------- the classifier


class RegularizedODEClassifier(ODEClassifier):
    """An :class:`~odecourse.neural_ode.ODEClassifier` that can also return the RNODE penalties.

    Parameters
    ----------
    data_dim, n_outputs : int
        Input and output sizes.
    hidden, depth, activation
        Of the :class:`~odecourse.neural_ode.ODEFunc` on ``data_dim + augment_dim``
        dimensions.
    augment_dim : int
        Extra zero dimensions (dupont2019).
    T, method, rtol, atol, options
        The solver settings of the block (backprop through the solver).

    Notes
    -----
    ``forward(x)`` is the plain model (logits, no penalties);
    :meth:`forward_with_penalties` solves the same problem with the penalties.
    ``func`` is the field (it counts its evaluations in ``nfe``) and ``readout``
    the linear layer.  Taught in Chapter 7.
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
        T: float = 1.0,
        method: str | ButcherTableau = "dopri5",
        rtol: float = 1e-3,
        atol: float = 1e-4,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            data_dim, n_outputs, hidden=hidden, depth=depth, activation=activation,
            augment_dim=augment_dim, T=T, method=method, rtol=rtol, atol=atol, options=options,
        )  # fmt: skip

    @property
    def func(self) -> ODEFunc:
        """The learned field (an :class:`~odecourse.neural_ode.ODEFunc`)."""
        return self.block.func

    @property
    def nfe(self) -> int:
        """Evaluations of the field counted since its last ``reset()``."""
        return self.block.func.nfe

    def forward_with_penalties(
        self,
        x: Tensor,
        probe: str | Tensor = "rademacher",
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Logits, and the kinetic and Jacobian penalties averaged over the batch.

        Parameters
        ----------
        x : Tensor, shape (batch, data_dim)
            Inputs.
        probe, generator
            As in :func:`rnode_solve` (a tensor probe has the augmented state's shape).

        Returns
        -------
        tuple of Tensor
            Logits (batch, n_outputs), :math:`\\bar K` and :math:`\\bar J` (0-d).
        """
        z0 = self.block.augment(_check_state(x, "x"))
        solution = rnode_solve(
            self.block.func, z0, self.block.T, probe=probe, generator=generator,
            **self.block.solver,
        )  # fmt: skip
        logits = self.readout(solution.z)
        return logits, solution.kinetic.mean(), solution.jacobian.mean()


# --------------------------------------------------------------------------- training


@dataclass
class RNODEHistory:
    """Per-iteration record of :func:`train_rnode`.

    Attributes
    ----------
    loss : list of float
        :math:`\\mathcal{L}_{CE} + \\lambda (\\bar K + \\bar J)`.
    cross_entropy, kinetic, jacobian : list of float
        The three terms (penalties averaged over the batch).
    nfe : list of int
        Evaluations of the field in that iteration's penalised forward solve.
    """

    loss: list[float] = field(default_factory=list)
    cross_entropy: list[float] = field(default_factory=list)
    kinetic: list[float] = field(default_factory=list)
    jacobian: list[float] = field(default_factory=list)
    nfe: list[int] = field(default_factory=list)


def _check_training_data(model: RegularizedODEClassifier, X: Any, y: Any) -> None:
    X = _check_tensor("X", X)
    data_dim = model.readout.in_features - model.block.augment_dim
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] != data_dim:
        raise ValueError(
            f"`X` must have shape (n, {data_dim}) with n >= 1 (the model's data_dim); "
            f"got {tuple(X.shape)}."
        )
    if not isinstance(y, Tensor) or y.is_floating_point() or y.is_complex():
        got = f"{y.dtype} tensor" if isinstance(y, Tensor) else type(y).__name__
        raise TypeError(f"`y` must be an integer tensor of class indices; got {got}.")
    if y.shape != (X.shape[0],):
        raise ValueError(
            f"`y` must have shape ({X.shape[0]},), one label per row of `X`; got {tuple(y.shape)}."
        )
    n_classes = model.readout.out_features
    if bool(((y < 0) | (y >= n_classes)).any()):
        raise ValueError(
            f"`y` must hold class indices in [0, {n_classes - 1}]; "
            f"got values in [{int(y.min())}, {int(y.max())}]."
        )


def train_rnode(
    model: RegularizedODEClassifier,
    X: Tensor,
    y: Tensor,
    *,
    weight: float,
    n_iters: int = 100,
    lr: float = 0.01,
    seed: int = 0,
    probe: str = "rademacher",
) -> RNODEHistory:
    r"""Train a classifier with full-batch Adam on the RNODE loss.

    Each iteration runs :meth:`RegularizedODEClassifier.forward_with_penalties` on
    all of ``X`` (a fresh probe per iteration) and takes an Adam step on

    .. math:: \mathcal{L} = \mathrm{CE} + \lambda\, (\bar K + \bar J),

    the same weight :math:`\lambda` for both penalties, as in finlay2020.

    Parameters
    ----------
    model : RegularizedODEClassifier
        Trained in place.
    X : Tensor, shape (n, data_dim)
        Inputs, in the model's dtype.
    y : Tensor, shape (n,)
        Integer class labels in ``[0, n_outputs)``.
    weight : float
        :math:`\lambda \ge 0`.
    n_iters : int
        Iterations, at least 1.
    lr : float
        Adam's learning rate, positive.
    seed : int
        Passed to :func:`~odecourse.seeding.seed_everything` at the start; the
        probes come from a generator seeded with it too.  The model is already
        initialised: seed before constructing it.
    probe : str
        ``"rademacher"`` or ``"gaussian"``.

    Returns
    -------
    RNODEHistory
        Loss, cross-entropy, the two penalties and the NFE of every iteration.

    Notes
    -----
    With ``weight=0`` the penalties are computed and recorded but do not enter the
    loss that is differentiated, and the step-size control watches ``z`` only
    (``error_control="state"`` of :func:`rnode_solve`), so the solver takes the steps
    of the plain model: the run reproduces plain training of the same model with
    Adam at the same ``lr`` (``CE`` of ``model(X)``), loss for loss and NFE for NFE:
    the same element-wise arithmetic on the same numbers, so bit for bit in our runs.
    Penalised solves cost more per evaluation (a vector-Jacobian product, and a
    second-order backward pass).  Taught in Chapter 7.
    """
    if not isinstance(model, RegularizedODEClassifier):
        raise TypeError(f"`model` must be a RegularizedODEClassifier; got {type(model).__name__}.")
    _check_training_data(model, X, y)
    weight = check_real("weight", weight)
    if weight < 0:
        raise ValueError(f"`weight` must be finite and non-negative; got {weight}.")
    n_iters = check_int("n_iters", n_iters, minimum=1)
    lr = check_positive("lr", lr)
    check_choice("probe", probe, PROBES)
    seed_everything(seed)
    generator = torch.Generator(device=X.device).manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    history = RNODEHistory()
    for _ in range(n_iters):
        model.func.reset()
        optimiser.zero_grad()
        logits, kinetic, jacobian = model.forward_with_penalties(X, probe, generator)
        history.nfe.append(model.nfe)
        cross_entropy = F.cross_entropy(logits, y)
        loss = cross_entropy + weight * (kinetic + jacobian) if weight else cross_entropy
        loss.backward()
        optimiser.step()
        history.loss.append(loss.item())
        history.cross_entropy.append(cross_entropy.item())
        history.kinetic.append(kinetic.item())
        history.jacobian.append(jacobian.item())
    return history
