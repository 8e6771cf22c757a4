r"""Continuous normalising flows: a density carried by the flow of a learned vector field.

A continuous normalising flow (CNF) moves samples of a simple base density
:math:`p_0 = \mathcal N(0, I_d)` along :math:`\dot z = f(t, z)` from
:math:`t = 0` to :math:`t = t_1`.  The instantaneous change of variables
(chen2018, Theorem 1) says how the log-density changes along a trajectory,

.. math::
    \frac{d}{dt} \log p_t(z(t)) = -\operatorname{tr}\frac{\partial f}{\partial z}(t, z(t)),

so the density of a data point :math:`x` is found by solving the augmented
system :math:`(z, \ell)` backwards from :math:`z(t_1) = x`, :math:`\ell(t_1) = 0`:

.. math:: \log p_{t_1}(x) = \log p_0(z(0)) - \ell(0), \qquad
   \dot \ell = -\operatorname{tr}\frac{\partial f}{\partial z}.

:class:`CNF` does this with :func:`odecourse.odeint.odeint` (or, with
``adjoint=True``, :func:`odecourse.adjoint.odeint_adjoint`), computing the trace
exactly with :math:`d` autograd passes or estimating it with Hutchinson's
estimator (grathwohl2019).  Optional RNODE penalties (finlay2020) integrate
:math:`\|f\|^2` and :math:`\|\partial f/\partial z\|_F^2` alongside.
:func:`hutchinson_variance` gives the estimator's variance in closed form and
:func:`fit_flow` trains a flow by maximum likelihood.

Taught in Chapter 8.

References
----------
chen2018: R. T. Q. Chen et al., Neural ordinary differential equations, NeurIPS 2018.
grathwohl2019: W. Grathwohl et al., FFJORD: free-form continuous dynamics for scalable
reversible generative models, ICLR 2019.
hutchinson1989: M. F. Hutchinson, A stochastic estimator of the trace of the influence
matrix for Laplacian smoothing splines, 1989.
finlay2020: C. Finlay et al., How to train your neural ODE: the world of Jacobian and
kinetic regularization, ICML 2020.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from odecourse._torch_args import check_options, check_tolerance, resolve_method, rms
from odecourse._validation import check_choice, check_int, check_positive
from odecourse.adjoint import odeint_adjoint
from odecourse.odeint import SolveStats, odeint
from odecourse.regularization import PROBES, draw_probe
from odecourse.runge_kutta import ButcherTableau

__all__ = [
    "CNF",
    "PENALTIES",
    "TRACES",
    "FlowHistory",
    "fit_flow",
    "hutchinson_variance",
    "standard_normal_log_prob",
    "trace_exact",
    "trace_hutchinson",
]

#: How :class:`CNF` computes :math:`\operatorname{tr}(\partial f/\partial z)`.
TRACES = ("exact", "hutchinson")
#: RNODE penalties that :class:`CNF` can integrate alongside the density (finlay2020).
PENALTIES = ("kinetic", "jacobian")

_LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------- traces


def standard_normal_log_prob(z: Tensor) -> Tensor:
    r"""Log-density of :math:`\mathcal N(0, I_d)` at each row of ``z`` (shape (batch, d)).

    .. math:: \log p_0(z) = -\tfrac12 \|z\|^2 - \tfrac d2 \log(2\pi).
    """
    return -0.5 * z.pow(2).sum(-1) - 0.5 * z.shape[-1] * _LOG_2PI


def trace_exact(f_value: Tensor, z: Tensor, *, create_graph: bool = False) -> tuple[Tensor, Tensor]:
    r"""Trace and squared Frobenius norm of :math:`J = \partial f/\partial z`, row by row.

    One autograd pass per dimension: pass :math:`i` gives the row :math:`J_{i\cdot}`
    of every sample at once, because the rows of the batch are independent.

    Parameters
    ----------
    f_value : Tensor, shape (batch, d)
        :math:`f(z)`, computed from ``z`` with autograd recording.
    z : Tensor, shape (batch, d)
        The input, requiring grad.
    create_graph : bool
        Keep the graph of the result (to differentiate the trace itself).

    Returns
    -------
    trace, frobenius : Tensor, shape (batch,)
        :math:`\sum_i J_{ii}` and :math:`\sum_{ij} J_{ij}^2` for each sample.
    """
    trace = z.new_zeros(z.shape[0])
    frobenius = z.new_zeros(z.shape[0])
    for i in range(z.shape[1]):
        row = _vjp(f_value[:, i].sum(), z, None, create_graph)
        trace = trace + row[:, i]
        frobenius = frobenius + row.pow(2).sum(-1)
    return trace, frobenius


def trace_hutchinson(
    f_value: Tensor, z: Tensor, probe: Tensor, *, create_graph: bool = False
) -> tuple[Tensor, Tensor]:
    r"""Hutchinson's estimates of :math:`\operatorname{tr} J` and :math:`\|J\|_F^2`, one pass.

    With :math:`v^\T = \varepsilon^\T J` (one vector-Jacobian product),
    :math:`v^\T \varepsilon` is an unbiased estimate of the trace and
    :math:`\|v\|^2` one of the squared Frobenius norm, when
    :math:`E[\varepsilon\varepsilon^\T] = I` (hutchinson1989).

    Parameters
    ----------
    f_value, z : Tensor, shape (batch, d)
        As for :func:`trace_exact`.
    probe : Tensor, shape (batch, d)
        :math:`\varepsilon`, e.g. from :func:`odecourse.regularization.draw_probe`.
    create_graph : bool
        Keep the graph of the result.

    Returns
    -------
    trace, frobenius : Tensor, shape (batch,)
        The two estimates for each sample.
    """
    v = _vjp(f_value, z, probe, create_graph)
    return (v * probe).sum(-1), v.pow(2).sum(-1)


def _vjp(output: Tensor, z: Tensor, weights: Tensor | None, create_graph: bool) -> Tensor:
    """:math:`w^T \\partial output/\\partial z`; zero when ``output`` does not depend on ``z``."""
    if not output.requires_grad:
        return torch.zeros_like(z)
    (grad,) = torch.autograd.grad(
        output, z, weights, create_graph=create_graph, retain_graph=True, allow_unused=True
    )
    return torch.zeros_like(z) if grad is None else grad


def hutchinson_variance(A: Tensor, kind: str = "rademacher") -> Tensor:
    r"""The variance of :math:`\varepsilon^\T A \varepsilon` for one probe, in closed form.

    With :math:`S = (A + A^\T)/2` (only the symmetric part enters the quadratic form),

    .. math::
        \operatorname{Var}_{\text{Rademacher}} = 2 \sum_{i \ne j} S_{ij}^2, \qquad
        \operatorname{Var}_{\text{Gaussian}} = 2 \|S\|_F^2 .

    Parameters
    ----------
    A : Tensor, shape (d, d)
        A square matrix.
    kind : str
        ``"rademacher"`` or ``"gaussian"``.

    Returns
    -------
    Tensor, 0-d
        The variance.  The Rademacher variance lacks the diagonal term
        :math:`2\sum_i S_{ii}^2` of the Gaussian one: a Rademacher probe reads the
        diagonal exactly.
    """
    check_choice("kind", kind, PROBES)
    if not isinstance(A, Tensor) or A.ndim != 2 or A.shape[0] != A.shape[1]:
        got = tuple(A.shape) if isinstance(A, Tensor) else type(A).__name__
        raise ValueError(f"`A` must be a square matrix (a 2-D tensor of shape (d, d)); got {got}.")
    S = (A + A.T) / 2
    total = 2 * S.pow(2).sum()
    return total if kind == "gaussian" else total - 2 * torch.diagonal(S).pow(2).sum()


# --------------------------------------------------------------------------- the flow


class _Dynamics(nn.Module):
    """The augmented right-hand side: f, -tr(df/dz) and, if penalised, |f|^2, |df/dz|_F^2."""

    def __init__(self, field: nn.Module, trace: str, penalised: bool) -> None:
        super().__init__()
        self.field = field
        self.trace, self.penalised = trace, penalised
        self.probe: Tensor | None = None
        self.nfe = 0

    def forward(self, t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        self.nfe += 1
        graph = torch.is_grad_enabled()  # False in the no-grad forward solve of the adjoint
        with torch.enable_grad():
            z = state[0]
            if not z.requires_grad:
                z = z.detach().requires_grad_(True)
            dz = self.field(t, z)
            if not isinstance(dz, Tensor) or dz.shape != z.shape:
                got = tuple(dz.shape) if isinstance(dz, Tensor) else type(dz).__name__
                raise ValueError(
                    f"`field(t, z)` must return a tensor shaped like z {tuple(z.shape)}; got {got}."
                )
            if self.trace == "exact":
                trace, frobenius = trace_exact(dz, z, create_graph=graph)
            else:
                trace, frobenius = trace_hutchinson(dz, z, self.probe, create_graph=graph)
        out = (dz, -trace)
        if self.penalised:
            out += (dz.pow(2).sum(-1), frobenius)
        return out if graph else tuple(x.detach() for x in out)


class CNF(nn.Module):
    r"""A continuous normalising flow with a standard normal base density.

    Samples are :math:`x = z(t_1)` where :math:`\dot z = f(t, z)` and
    :math:`z(0) \sim \mathcal N(0, I_d)`; the density of :math:`x` follows from
    the instantaneous change of variables (chen2018, Theorem 1).

    Parameters
    ----------
    field : nn.Module
        The vector field ``field(t, z)``: ``t`` a 0-d tensor, ``z`` of shape
        (batch, d), returning (batch, d).  It must treat the rows of a batch
        independently (no batch normalisation): the exact trace reads the
        Jacobian of every sample from one pass per dimension.
    t1 : float
        The end time :math:`t_1 > 0` of the flow.
    trace : str
        ``"exact"`` (:math:`d` autograd passes per evaluation) or ``"hutchinson"``
        (one pass, an unbiased estimate with one probe per sample, drawn once per
        solve and kept fixed during it, as in grathwohl2019).
    method, rtol, atol, options
        Solver settings, passed to :func:`~odecourse.odeint.odeint` (validated here).
    adjoint : bool
        Differentiate with :func:`~odecourse.adjoint.odeint_adjoint` instead of
        backpropagating through the solver.
    dim : int, optional
        The dimension :math:`d`.  If None it is taken from the data at the first
        call of :meth:`log_prob` and fixed from then on; :meth:`sample` needs it.
    probe : str
        ``"rademacher"`` or ``"gaussian"``, the probes of Hutchinson's estimator.
    regularization : dict, optional
        Weights of RNODE penalties (finlay2020), keys ``"kinetic"`` and/or
        ``"jacobian"`` with non-negative values: the integrals
        :math:`\int_0^{t_1} \|f\|^2 dt` and :math:`\int_0^{t_1}
        \|\partial f/\partial z\|_F^2 dt` along each trajectory are integrated
        with the density (the latter exactly with ``trace="exact"``, with the same
        probe otherwise) and returned, weighted, by :meth:`log_prob_and_penalty`.
        The probes come from :func:`odecourse.regularization.draw_probe`.  An
        adaptive solver controls the error of :math:`(z, \ell)` only (unless
        ``options`` gives a ``norm``): the penalties are quadratures on its steps,
        as with ``error_control="state"`` of :func:`odecourse.regularization.rnode_solve`.

    Attributes
    ----------
    nfe : int
        Evaluations of the augmented dynamics (forward and, with the adjoint,
        backward) since the last :meth:`reset_nfe`; :meth:`sample` is not counted.

    Notes
    -----
    :meth:`log_prob` solves, backwards from :math:`t_1` to :math:`0`,

    .. math::
        \dot z = f(t, z), \quad \dot\ell = -\operatorname{tr}\frac{\partial f}{\partial z},
        \qquad z(t_1) = x, \ \ell(t_1) = 0,

    and returns :math:`\log p_0(z(0)) - \ell(0)`.  Taught in Chapter 8.

    References
    ----------
    chen2018; grathwohl2019; finlay2020.
    """

    def __init__(
        self,
        field: nn.Module,
        t1: float = 1.0,
        trace: str = "exact",
        method: str | ButcherTableau = "dopri5",
        rtol: float = 1e-5,
        atol: float = 1e-5,
        adjoint: bool = False,
        *,
        options: Mapping[str, Any] | None = None,
        dim: int | None = None,
        probe: str = "rademacher",
        regularization: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(field, nn.Module):
            raise TypeError(
                f"`field` must be an nn.Module with forward(t, z); got {type(field).__name__}."
            )
        self.t1 = check_positive("t1", t1)
        self.trace = check_choice("trace", trace, TRACES)
        self.probe = check_choice("probe", probe, PROBES)
        if not isinstance(adjoint, bool):
            raise TypeError(f"`adjoint` must be True or False; got {adjoint!r:.60}.")
        self.adjoint = adjoint
        self.dim = None if dim is None else check_int("dim", dim, minimum=1)
        tableau = resolve_method(method)
        check_options(options, tableau)
        self.weights = _check_regularization(regularization)
        if self.weights and tableau.adaptive and "norm" not in (options or {}):
            options = {**(options or {}), "norm": _density_norm}
        self.solver = {
            "method": method,
            "rtol": check_tolerance("rtol", rtol),
            "atol": check_tolerance("atol", atol),
            "options": options,
        }
        self.dynamics = _Dynamics(field, self.trace, penalised=bool(self.weights))

    @property
    def field(self) -> nn.Module:
        """The vector field :math:`f(t, z)`."""
        return self.dynamics.field

    @property
    def nfe(self) -> int:
        """Evaluations of the augmented dynamics since the last :meth:`reset_nfe`."""
        return self.dynamics.nfe

    def reset_nfe(self) -> None:
        """Set :attr:`nfe` back to zero."""
        self.dynamics.nfe = 0

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Same as :meth:`log_prob` (so that ``torch.func.functional_call`` works)."""
        return self.log_prob(x, generator)

    def log_prob(
        self,
        x: Tensor,
        generator: torch.Generator | None = None,
        *,
        stats: SolveStats | None = None,
    ) -> Tensor:
        r"""The model's log-density :math:`\log p_{t_1}(x)` at each row of ``x``.

        Parameters
        ----------
        x : Tensor, shape (batch, d)
            Points, floating, finite; the dtype of the field.
        generator : torch.Generator, optional
            Draws Hutchinson's probes (ignored with ``trace="exact"``).
        stats : SolveStats, optional
            Filled with the solver's counters.

        Returns
        -------
        Tensor, shape (batch,)
            Differentiable with respect to the field's parameters and ``x``.
        """
        return self._solve(x, generator, stats)[0]

    def log_prob_and_penalty(
        self,
        x: Tensor,
        generator: torch.Generator | None = None,
        *,
        stats: SolveStats | None = None,
    ) -> tuple[Tensor, Tensor]:
        r""":meth:`log_prob` and the weighted RNODE penalty of each trajectory.

        Returns
        -------
        log_prob, penalty : Tensor, shape (batch,)
            The penalty is :math:`\lambda_K \int_0^{t_1} \|f\|^2 dt +
            \lambda_J \int_0^{t_1} \|\partial f/\partial z\|_F^2 dt` with the
            weights of ``regularization``; zero without it.
        """
        return self._solve(x, generator, stats)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` samples: integrate ``field`` forward from base samples ``z(0) ~ N(0, I)``.

        Parameters
        ----------
        n : int
            Number of samples, at least 1.
        generator : torch.Generator, optional
            Draws the base samples.

        Returns
        -------
        Tensor, shape (n, d)
            In the dtype and on the device of the field's parameters.
        """
        n = check_int("n", n, minimum=1)
        _check_generator(generator)
        if self.dim is None:
            raise ValueError(
                "the dimension d is not known yet: pass `dim` to CNF, or call log_prob first."
            )
        dtype, device = self._dtype_device()
        z0 = torch.randn(n, self.dim, generator=generator, dtype=dtype, device=device)
        t = torch.tensor([0.0, self.t1], dtype=dtype, device=device)
        return odeint(self.field, z0, t, **self.solver)[-1]

    # ------------------------------------------------------------------ internals

    def _dtype_device(self) -> tuple[torch.dtype, torch.device]:
        for p in self.field.parameters():
            if p.is_floating_point():
                return p.dtype, p.device
        return torch.get_default_dtype(), torch.device("cpu")

    def _check_x(self, x: Any) -> Tensor:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            got = x.dtype if isinstance(x, Tensor) else type(x).__name__
            raise TypeError(f"`x` must be a floating torch.Tensor of shape (batch, d); got {got}.")
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(
                f"`x` must have shape (batch, d) with batch, d >= 1; got {tuple(x.shape)}."
            )
        if self.dim is not None and x.shape[1] != self.dim:
            raise ValueError(f"`x` must have d = {self.dim} columns; got shape {tuple(x.shape)}.")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("`x` must contain only finite values.")
        self.dim = int(x.shape[1])
        return x

    def _solve(
        self, x: Tensor, generator: torch.Generator | None, stats: SolveStats | None
    ) -> tuple[Tensor, Tensor]:
        x = self._check_x(x)
        _check_generator(generator)
        zeros = x.new_zeros(x.shape[0])
        state = (x, zeros) + ((zeros, zeros) if self.weights else ())
        self.dynamics.probe = (
            draw_probe(x, self.probe, generator) if self.trace == "hutchinson" else None
        )
        t = torch.tensor([self.t1, 0.0], dtype=x.dtype, device=x.device)
        solve: Callable = odeint_adjoint if self.adjoint else odeint
        final = tuple(s[-1] for s in solve(self.dynamics, state, t, stats=stats, **self.solver))
        log_prob = standard_normal_log_prob(final[0]) - final[1]
        penalty = zeros
        if (
            self.weights
        ):  # the penalty states ran from t1 down to 0: their value is minus the integral
            penalty = -(
                self.weights.get("kinetic", 0.0) * final[2]
                + self.weights.get("jacobian", 0.0) * final[3]
            )
        return log_prob, penalty


def _density_norm(scaled: tuple[Tensor, ...]) -> Tensor:
    """The error norm of a penalised solve: the state and the log-density, not the penalties."""
    return torch.maximum(rms(scaled[0]), rms(scaled[1]))


def _check_regularization(regularization: Any) -> dict[str, float]:
    if regularization is None:
        return {}
    if not isinstance(regularization, Mapping):
        raise TypeError(
            "`regularization` must be None or a dict such as {'kinetic': 0.01, 'jacobian': 0.01}; "
            f"got {type(regularization).__name__}."
        )
    for key in regularization:
        check_choice("regularization key", key, PENALTIES)
    if not regularization:
        raise ValueError("`regularization` must name at least one penalty, or be None; got {}.")
    return {
        key: check_positive(f"regularization[{key!r}]", value, allow_zero=True)
        for key, value in regularization.items()
    }


def _check_generator(generator: Any) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"`generator` must be a torch.Generator or None; got {type(generator).__name__}."
        )


# --------------------------------------------------------------------------- training


@dataclass
class FlowHistory:
    """Result of :func:`fit_flow`.

    Attributes
    ----------
    losses : list of float
        The mean negative log-likelihood of each iteration's minibatch.
    penalties : list of float
        The mean weighted RNODE penalty of each minibatch (zero without regularization).
    checkpoints : list of int
        Iterations (0 = before training) at which the monitor measured the NFE.
    nfe : list of int
        Evaluations of the monitor's augmented dynamics for one ``log_prob`` solve
        of the monitor batch, at each checkpoint.
    """

    losses: list[float] = field(default_factory=list)
    penalties: list[float] = field(default_factory=list)
    checkpoints: list[int] = field(default_factory=list)
    nfe: list[int] = field(default_factory=list)


def fit_flow(
    cnf: CNF,
    x: Tensor,
    *,
    n_iters: int = 300,
    batch_size: int = 128,
    lr: float = 1e-2,
    seed: int = 0,
    monitor: CNF | None = None,
    monitor_every: int = 50,
) -> FlowHistory:
    r"""Train ``cnf`` by maximum likelihood on minibatches of ``x`` with Adam.

    Each iteration minimises :math:`\mathcal L = -\frac1B \sum_b \log p(x_b)
    + \frac1B \sum_b \text{penalty}_b` on a random minibatch (the penalty is that
    of ``cnf``'s ``regularization``, zero without it).

    Parameters
    ----------
    cnf : CNF
        The flow to train (its field's parameters are updated in place).
    x : Tensor, shape (n, d)
        Training data.
    n_iters, batch_size, lr, seed
        Adam settings; ``seed`` seeds the draw of the minibatches and the probes.
    monitor : CNF, optional
        A flow sharing ``cnf``'s field, typically with an adaptive solver: every
        ``monitor_every`` iterations (and before the first and after the last) it
        computes ``log_prob`` of the first ``batch_size`` rows of ``x`` without
        gradients, and its NFE is recorded.
    monitor_every : int
        Iterations between two NFE measurements.

    Returns
    -------
    FlowHistory
        Losses, penalties and the monitored NFE.

    Taught in Chapter 8.
    """
    if not isinstance(cnf, CNF):
        raise TypeError(f"`cnf` must be a CNF; got {type(cnf).__name__}.")
    if monitor is not None and (not isinstance(monitor, CNF) or monitor.field is not cnf.field):
        raise ValueError("`monitor` must be None or a CNF that shares `cnf`'s field.")
    x = cnf._check_x(x)
    n_iters = check_int("n_iters", n_iters, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    monitor_every = check_int("monitor_every", monitor_every, minimum=1)
    generator = torch.Generator(device=x.device).manual_seed(check_int("seed", seed, minimum=0))
    optimiser = torch.optim.Adam(cnf.field.parameters(), lr=check_positive("lr", lr))
    history = FlowHistory()
    for iteration in range(n_iters + 1):
        if monitor is not None and (iteration % monitor_every == 0 or iteration == n_iters):
            history.checkpoints.append(iteration)
            history.nfe.append(_monitored_nfe(monitor, x[:batch_size], generator))
        if iteration == n_iters:
            break
        batch = x[torch.randint(0, x.shape[0], (batch_size,), generator=generator)]
        optimiser.zero_grad()
        log_prob, penalty = cnf.log_prob_and_penalty(batch, generator)
        loss = -log_prob.mean() + penalty.mean()
        loss.backward()
        optimiser.step()
        history.losses.append(-log_prob.mean().item())
        history.penalties.append(penalty.mean().item())
    return history


def _monitored_nfe(monitor: CNF, x: Tensor, generator: torch.Generator) -> int:
    monitor.reset_nfe()
    with torch.no_grad():
        monitor.log_prob(x, generator)
    return monitor.nfe
