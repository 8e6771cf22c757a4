r"""``odeint_adjoint``: gradients of an ODE solve by solving the adjoint ODE backwards.

Backpropagating through the solver (:func:`odecourse.odeint.odeint`) stores
every stage of every step.  The adjoint method stores nothing but the outputs:
with the adjoint :math:`a(t) = \partial L / \partial y(t)` it solves, backwards
from :math:`T` to :math:`t_0`, the augmented system

.. math::
    \dot y = f(t, y, \theta), \qquad
    \dot a = -a^{\mathsf T} \frac{\partial f}{\partial y}, \qquad
    \dot a_\theta = -a^{\mathsf T} \frac{\partial f}{\partial \theta},

from :math:`y(T)`, :math:`a(T) = \partial L/\partial y(T)`, :math:`a_\theta(T) = 0`;
then :math:`\partial L/\partial y_0 = a(t_0)` and
:math:`\partial L/\partial \theta = a_\theta(t_0)`.  The vector-Jacobian
products come from one ``torch.autograd.grad`` call per evaluation, and the
backward solve is :func:`~odecourse.odeint.odeint` itself, on the tuple state
``(y, a, *a_theta)``.  Between output times the incoming gradients
:math:`\partial L/\partial y(t_i)` are added to :math:`a` as it passes.

The adjoint solution is accurate to the solver tolerance, not exact for the
discrete forward solution: gradients agree with backprop through the solver
to about the tolerance.

Taught in Chapter 7.

References
----------
pontryagin1962: L. S. Pontryagin et al., The Mathematical Theory of Optimal Processes, 1962.
chen2018: R. T. Q. Chen et al., Neural ordinary differential equations, NeurIPS 2018.
kidger2021: P. Kidger, R. T. Q. Chen, T. Lyons, "Hey, that's not an ODE": faster ODE
adjoints via seminorms, ICML 2021.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from odecourse._torch_args import (
    TupleLayout,
    check_options,
    check_t,
    check_tolerance,
    check_y0,
    first_non_finite,
    resolve_method,
    rms,
)
from odecourse._validation import check_callable
from odecourse.odeint import CountedFunc, SolveStats, odeint
from odecourse.runge_kutta import ButcherTableau

__all__ = ["odeint_adjoint"]


@dataclass(frozen=True)
class _AdjointProblem:
    """Everything the autograd function needs, validated once at the boundary."""

    func: Callable[[Tensor, Tensor], Tensor]
    times: list[float]
    t_dtype: torch.dtype
    forward: dict[str, Any]
    backward: dict[str, Any]
    params: tuple[Tensor, ...]
    stats: SolveStats | None


class _AugmentedDynamics:
    """The right-hand side of the adjoint system on the tuple ``(y, a, *a_theta)``."""

    def __init__(self, func: Callable, params: tuple[Tensor, ...]) -> None:
        self.func, self.params = func, params

    def __call__(self, t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        y, a = state[0], state[1]
        like = (y, *self.params)
        with torch.enable_grad():
            y = y.detach().requires_grad_(True)
            dy = self.func(t, y)
            if not dy.requires_grad:  # f depends on neither y nor the parameters
                return (dy, *(torch.zeros_like(x) for x in like))
            vjps = torch.autograd.grad(dy, (y, *self.params), -a, allow_unused=True)
        vjps = tuple(
            torch.zeros_like(x) if g is None else g for g, x in zip(vjps, like, strict=True)
        )
        return (dy.detach(), *vjps)


def _seminorm(state: tuple[Tensor, ...]) -> Tensor:
    """Kidger, Chen and Lyons' seminorm: the error of the parameter adjoint is ignored."""
    return torch.maximum(rms(state[0]), rms(state[1]))


def _backward_solve(problem: _AdjointProblem, ys: Tensor, grad_ys: Tensor) -> tuple[Tensor, ...]:
    """Integrate the adjoint system from ``t[-1]`` back to ``t[0]``; return the gradients."""
    _check_incoming(grad_ys, problem.times)
    dynamics = _AugmentedDynamics(problem.func, problem.params)
    a = grad_ys[-1]
    a_theta = tuple(torch.zeros_like(p) for p in problem.params)
    times = problem.times
    for i in range(len(times) - 1, 0, -1):
        pair = torch.tensor([times[i], times[i - 1]], dtype=problem.t_dtype, device=ys.device)
        counts = SolveStats()
        states = odeint(dynamics, (ys[i], a, *a_theta), pair, stats=counts, **problem.backward)
        a = states[1][-1] + grad_ys[i - 1]
        a_theta = tuple(s[-1] for s in states[2:])
        if problem.stats is not None:
            problem.stats.add_backward(counts)
    return (a, *a_theta)


def _check_incoming(grad_ys: Tensor, times: list[float]) -> None:
    """Refuse a non-finite incoming gradient: no adjoint solve can start from it.

    Backprop through the solver would silently return NaN gradients; the adjoint method
    says where the NaN came from instead.
    """
    i = first_non_finite(grad_ys, len(times))
    if i is None:
        return
    raise ValueError(
        f"odeint_adjoint: the incoming gradient dL/dy(t) is not finite at t = {times[i]:.6g} "
        f"(output {i}); the loss or the computation after odeint_adjoint produced NaN or "
        "inf, before any adjoint solve. Check the loss (e.g. log(0), 0/0)."
    )


class _OdeintAdjoint(torch.autograd.Function):
    """Forward: a solve without a graph.  Backward: the adjoint solve."""

    @staticmethod
    def forward(ctx: Any, problem: _AdjointProblem, y0: Tensor, *params: Tensor) -> Tensor:
        t = torch.tensor(problem.times, dtype=problem.t_dtype, device=y0.device)
        with torch.no_grad():
            ys = odeint(problem.func, y0, t, stats=problem.stats, **problem.forward)
        ctx.problem = problem
        ctx.save_for_backward(ys)
        return ys

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_ys: Tensor) -> tuple[Tensor | None, ...]:
        (ys,) = ctx.saved_tensors
        return (None, *_backward_solve(ctx.problem, ys, grad_ys))


def _find_params(func: Callable, adjoint_params: Any) -> tuple[Tensor, ...]:
    if adjoint_params is None:
        plain = isinstance(func, CountedFunc) and not func.wraps_module
        if not isinstance(func, nn.Module) or plain:
            raise TypeError(
                "`func` must be an nn.Module (so that its parameters can be found) unless "
                f"`adjoint_params` is given; got {type(func).__name__}. Pass "
                "adjoint_params=(tensors func depends on,) or adjoint_params=() for y0 only."
            )
        adjoint_params = func.parameters()
    if isinstance(adjoint_params, Tensor) or not isinstance(adjoint_params, Iterable):
        raise TypeError(
            f"`adjoint_params` must be an iterable of tensors; got {type(adjoint_params).__name__}."
        )
    params = tuple(adjoint_params)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"`adjoint_params[{i}]` must be a tensor; got {type(p).__name__}.")
    # A tensor listed twice would receive its gradient twice.
    unique = {id(p): p for p in params if p.requires_grad}
    return tuple(unique.values())


def _backward_settings(
    method: Any, options: Any, rtol: float, atol: float, adjoint: dict[str, Any]
) -> dict[str, Any]:
    """torchdiffeq's defaults: the forward settings, without a forward ``norm``."""
    adjoint_method = method if adjoint["method"] is None else adjoint["method"]
    tableau = resolve_method(adjoint_method)
    adjoint_options = adjoint["options"]
    if adjoint_options is None:
        adjoint_options = {k: v for k, v in (options or {}).items() if k != "norm"}
    elif not isinstance(adjoint_options, Mapping):
        raise TypeError(
            f"`adjoint_options` must be a dict or None; got {type(adjoint_options).__name__}."
        )
    adjoint_options = dict(adjoint_options)
    if adjoint_options.get("norm") == "seminorm":
        adjoint_options["norm"] = _seminorm
    check_options(adjoint_options, tableau)
    return {
        "rtol": rtol
        if adjoint["rtol"] is None
        else check_tolerance("adjoint_rtol", adjoint["rtol"]),
        "atol": atol
        if adjoint["atol"] is None
        else check_tolerance("adjoint_atol", adjoint["atol"]),
        "method": adjoint_method,
        "options": adjoint_options,
    }


def odeint_adjoint(
    func: Callable[[Tensor, Any], Any],
    y0: Tensor | tuple[Tensor, ...],
    t: Tensor,
    *,
    rtol: float = 1e-7,
    atol: float = 1e-9,
    method: str | ButcherTableau | None = None,
    options: Mapping[str, Any] | None = None,
    adjoint_rtol: float | None = None,
    adjoint_atol: float | None = None,
    adjoint_method: str | ButcherTableau | None = None,
    adjoint_options: Mapping[str, Any] | None = None,
    adjoint_params: Iterable[Tensor] | None = None,
    stats: SolveStats | None = None,
) -> Tensor | tuple[Tensor, ...]:
    r"""Solve like :func:`~odecourse.odeint.odeint`; differentiate by the adjoint method.

    Parameters
    ----------
    func, y0, t, rtol, atol, method, options
        As for :func:`~odecourse.odeint.odeint`.  ``func`` must be an
        ``nn.Module`` unless ``adjoint_params`` is given.
    adjoint_rtol, adjoint_atol, adjoint_method : optional
        Settings of the backward solve; default: the forward ones.
    adjoint_options : dict, optional
        Options of the backward solve; default: the forward ``options`` without
        ``norm``.  ``{"norm": "seminorm"}`` measures the backward error on the
        ``y`` and ``a`` parts only, ignoring :math:`a_\theta` (kidger2021); a
        callable norm receives the tuple ``(y, a, *a_theta)`` of scaled errors.
    adjoint_params : iterable of Tensors, optional
        The tensors to differentiate with respect to besides ``y0``; default
        ``func.parameters()``.  Those that do not require grad are skipped,
        and a tensor listed twice counts once.
    stats : SolveStats, optional
        Gets the forward counters when the forward solve runs and the
        ``*_backward`` counters (summed over output intervals) when the
        backward pass runs.

    Returns
    -------
    Tensor, shape (T, *S), or tuple of Tensors
        As for :func:`~odecourse.odeint.odeint`; its gradients with respect to
        ``y0`` and ``adjoint_params`` come from the adjoint solve.

    Notes
    -----
    Between consecutive output times :math:`t_i > t_{i-1}` (in the direction of
    integration) the backward pass solves

    .. math::
        \frac{d}{dt}\begin{pmatrix} y \\ a \\ a_\theta \end{pmatrix} =
        \begin{pmatrix} f(t, y) \\ -a^{\mathsf T} \partial_y f \\
        -a^{\mathsf T} \partial_\theta f \end{pmatrix}

    from :math:`t_i` to :math:`t_{i-1}`, restarting :math:`y` from the stored
    forward value and adding :math:`\partial L/\partial y(t_{i-1})` to :math:`a`.
    Memory is independent of the number of steps.  Gradients with respect to
    ``t`` are not supported.  Taught in Chapter 7.

    References
    ----------
    pontryagin1962; chen2018; kidger2021.
    """
    check_callable("func", func)
    params = _find_params(func, adjoint_params)
    flat_y0, layout = check_y0(y0)
    times = check_t(t, flat_y0)
    check_options(options, resolve_method(method))
    forward = {"rtol": rtol, "atol": atol, "method": method, "options": options}
    adjoint = {
        "rtol": adjoint_rtol, "atol": adjoint_atol,
        "method": adjoint_method, "options": adjoint_options,
    }  # fmt: skip
    backward = _backward_settings(
        method, options, check_tolerance("rtol", rtol), check_tolerance("atol", atol), adjoint
    )
    if layout is not None:
        func = _FlatFunc(func, layout)
        forward["options"] = _flat_forward_options(options, layout, method)
    problem = _AdjointProblem(func, times, t.dtype, forward, backward, params, stats)
    ys = _OdeintAdjoint.apply(problem, flat_y0, *params)
    return ys if layout is None else layout.unstack(ys)


class _FlatFunc:
    """``func`` of a tuple state, seen as a function of the packed flat state."""

    def __init__(self, func: Callable, layout: TupleLayout) -> None:
        self.func, self.layout = func, layout

    def __call__(self, t: Tensor, y: Tensor) -> Tensor:
        return self.layout.flatten(self.func(t, self.layout.unflatten(y)), "func")


def _flat_forward_options(
    options: Any, layout: TupleLayout, method: Any
) -> Mapping[str, Any] | None:
    """Keep torchdiffeq's tuple norm (the largest RMS over components) for the packed state."""
    if not resolve_method(method).adaptive:
        return options
    options = dict(options or {})
    options["norm"] = layout.flat_norm(options.get("norm"))
    return options
