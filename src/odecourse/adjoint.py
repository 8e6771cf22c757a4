r"""``odeint_adjoint``: gradients of an ODE solve by solving the adjoint ODE backwards.

Backpropagating through the solver (:func:`odecourse.odeint.odeint`) stores
every stage of every step.  The adjoint method stores nothing but the outputs:
with the adjoint :math:`a(t) = \partial L / \partial y(t)` it solves, backwards
from :math:`T` to :math:`t_0`, the augmented system

.. math::
    \dot y = f(t, y, \theta), \qquad
    \dot a = -\Big(\frac{\partial f}{\partial y}\Big)^{\mathsf T} a, \qquad
    \dot a_\theta = -\Big(\frac{\partial f}{\partial \theta}\Big)^{\mathsf T} a,

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

from odecourse._step_callbacks import CALLBACK_NAMES, find_callbacks, lookup
from odecourse._torch_args import (
    ADAPTIVE_OPTIONS,
    FIXED_OPTIONS,
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
    callbacks: dict[str, Callable] | None = None  # the user's *_adjoint step callbacks


class _AugmentedDynamics:
    """The right-hand side of the adjoint system on the tuple ``(y, a, *a_theta)``.

    ``callbacks`` (the user's ``*_adjoint`` step callbacks, keyed by the forward
    names) become its own ``callback_step`` etc., which the backward ``odeint`` calls.
    """

    def __init__(
        self, func: Callable, params: tuple[Tensor, ...], callbacks: dict | None = None
    ) -> None:
        self.func, self.params = func, params
        for name, callback in (callbacks or {}).items():
            setattr(self, name, callback)

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


def _backward_solve(
    problem: _AdjointProblem, ys: Tensor, grad_ys: Tensor, time_gradient: bool = False
) -> tuple[Tensor | None, ...]:
    """Integrate the adjoint system from ``t[-1]`` back to ``t[0]``; return the gradients.

    Returns ``(dL/dy0, dL/dt, *dL/dtheta)``; ``dL/dt`` is None unless ``time_gradient``.
    """
    _check_incoming(grad_ys, problem.times)
    dynamics = _AugmentedDynamics(problem.func, problem.params, problem.callbacks)
    a = grad_ys[-1]
    arrived = None  # a(t_0) from the later outputs, before dL/dy(t_0) is added
    a_theta = tuple(torch.zeros_like(p) for p in problem.params)
    times = problem.times
    for i in range(len(times) - 1, 0, -1):
        pair = torch.tensor([times[i], times[i - 1]], dtype=problem.t_dtype, device=ys.device)
        counts = SolveStats()
        states = odeint(dynamics, (ys[i], a, *a_theta), pair, stats=counts, **problem.backward)
        arrived = states[1][-1]
        a = arrived + grad_ys[i - 1]
        a_theta = tuple(s[-1] for s in states[2:])
        if problem.stats is not None:
            problem.stats.add_backward(counts)
    grad_t = _time_gradient(problem, ys, grad_ys, arrived) if time_gradient else None
    return (a, grad_t, *a_theta)


def _time_gradient(
    problem: _AdjointProblem, ys: Tensor, grad_ys: Tensor, arrived: Tensor | None
) -> Tensor:
    r"""The gradient with respect to the output times, from ``f`` at the stored outputs.

    Moving :math:`t_i` (:math:`i \ge 1`) moves the output along the solution, so
    :math:`\partial L/\partial t_i = g_i \cdot f(t_i, y_i)` with :math:`g_i` the incoming
    gradient of output ``i``.  Moving :math:`t_0` shifts the initial condition in time,
    so :math:`\partial L/\partial t_0 = -a(t_0^+) \cdot f(t_0, y_0)` with :math:`a(t_0^+)`
    the adjoint that the solve brings back to :math:`t_0` (without :math:`g_0`: output 0
    is ``y0`` itself, which does not move with :math:`t_0`).  One evaluation of ``f`` per
    output time, counted in ``stats.nfe_backward``.  ``arrived`` is None for a single time.
    """
    weights = (-arrived if arrived is not None else torch.zeros_like(ys[0]), *grad_ys[1:])
    grads = []
    with torch.no_grad():
        for time, y, weight in zip(problem.times, ys, weights, strict=True):
            dy = problem.func(torch.full((), time, dtype=ys.dtype, device=ys.device), y)
            grads.append((weight * dy).sum())
    if problem.stats is not None:
        problem.stats.nfe_backward += len(problem.times)
    return torch.stack(grads).to(problem.t_dtype)


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
    def forward(
        ctx: Any, problem: _AdjointProblem, y0: Tensor, t: Tensor, *params: Tensor
    ) -> Tensor:
        with torch.no_grad():
            ys = odeint(problem.func, y0, t.detach(), stats=problem.stats, **problem.forward)
        ctx.problem = problem
        ctx.save_for_backward(ys)
        return ys

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_ys: Tensor) -> tuple[Tensor | None, ...]:
        (ys,) = ctx.saved_tensors
        time_gradient = ctx.needs_input_grad[2]
        return (None, *_backward_solve(ctx.problem, ys, grad_ys, time_gradient))


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
    """torchdiffeq's defaults: the forward settings, without a forward ``norm``.

    The backward solve runs from each output time to the previous one, and the
    options follow it there: the core steps onto ``step_t`` and ``jump_t`` in the
    backward direction too, ``perturb`` keeps its stages inside each step, and
    ``grid_constructor`` is called again with the reversed pair ``[t_i, t_{i-1}]``.
    """
    adjoint_method = method if adjoint["method"] is None else adjoint["method"]
    tableau = resolve_method(adjoint_method)
    adjoint_options = adjoint["options"]
    if adjoint_options is None:
        adjoint_options = {k: v for k, v in (options or {}).items() if k != "norm"}
        accepted = ADAPTIVE_OPTIONS if tableau.adaptive else FIXED_OPTIONS
        foreign = [key for key in adjoint_options if key not in accepted]
        if foreign:
            raise ValueError(
                "`adjoint_options` defaults to the forward `options`, but the adjoint method "
                f"{tableau.name!r} does not accept {', '.join(map(repr, foreign))}; pass "
                "`adjoint_options` for it (torchdiffeq asks for them too)."
            )
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
    event_fn: Callable[[Tensor, Any], Tensor] | None = None,
    adjoint_rtol: float | None = None,
    adjoint_atol: float | None = None,
    adjoint_method: str | ButcherTableau | None = None,
    adjoint_options: Mapping[str, Any] | None = None,
    adjoint_params: Iterable[Tensor] | None = None,
    stats: SolveStats | None = None,
) -> Tensor | tuple[Tensor, ...] | tuple[Tensor, Tensor | tuple[Tensor, ...]]:
    r"""Solve like :func:`~odecourse.odeint.odeint`; differentiate by the adjoint method.

    Parameters
    ----------
    func, y0, t, rtol, atol, method, options
        As for :func:`~odecourse.odeint.odeint`.  ``func`` must be an
        ``nn.Module`` unless ``adjoint_params`` is given.
    event_fn : callable, optional
        Integrate until ``event_fn`` changes sign and return ``(event_t, solution)``,
        as for :func:`~odecourse.odeint.odeint`.  The state at the event comes from an
        adjoint solve from ``t[0]`` to the event time, so its gradients with respect to
        ``y0`` and ``adjoint_params`` are adjoint gradients; the event time is
        differentiable too (unlike torchdiffeq's ``odeint_adjoint``, whose event time
        carries no gradient), by the implicit function theorem at the event
        (:mod:`odecourse.odeint_event`); the parameters of ``event_fn`` get their
        gradients by ordinary autograd.
    adjoint_rtol, adjoint_atol, adjoint_method : optional
        Settings of the backward solve; default: the forward ones.
    adjoint_options : dict, optional
        Options of the backward solve; default: the forward ``options`` without
        ``norm``.  ``{"norm": "seminorm"}`` measures the backward error on the
        ``y`` and ``a`` parts only, ignoring :math:`a_\theta` (kidger2021); a
        callable norm receives the tuple ``(y, a, *a_theta)`` of scaled errors.
        The options act on each backward solve, from :math:`t_i` back to
        :math:`t_{i-1}`, in that direction: steps land on the ``step_t`` and
        ``jump_t`` between them, a jump is approached from the side of
        :math:`t_i` and left on the side of :math:`t_{i-1}`, ``perturb`` keeps
        the stages inside each step, and ``grid_constructor`` is called again as
        ``grid_constructor(augmented_func, (y, a, *a_theta), t)`` with the
        reversed pair ``t = [t_i, t_{i-1}]``, so its grid must run backwards.
        When the default (the forward options) holds an option that
        ``adjoint_method`` does not accept, a ``ValueError`` asks for
        ``adjoint_options``.
    adjoint_params : iterable of Tensors, optional
        The tensors to differentiate with respect to besides ``y0``; default
        ``func.parameters()``.  Those that do not require grad are skipped,
        and a tensor listed twice counts once.
    stats : SolveStats, optional
        Gets the forward counters when the forward solve runs and the
        ``*_backward`` counters (summed over output intervals) when the
        backward pass runs; when ``t`` requires grad, ``nfe_backward`` also
        counts one evaluation of ``func`` per output time.

    Returns
    -------
    Tensor, shape (T, *S), or tuple of Tensors
        As for :func:`~odecourse.odeint.odeint`; its gradients with respect to
        ``y0``, ``adjoint_params`` and ``t`` come from the adjoint solve.

    Notes
    -----
    Between consecutive output times :math:`t_i > t_{i-1}` (in the direction of
    integration) the backward pass solves

    .. math::
        \frac{d}{dt}\begin{pmatrix} y \\ a \\ a_\theta \end{pmatrix} =
        \begin{pmatrix} f(t, y) \\ -(\partial_y f)^{\mathsf T} a \\
        -(\partial_\theta f)^{\mathsf T} a \end{pmatrix}

    from :math:`t_i` to :math:`t_{i-1}`, restarting :math:`y` from the stored
    forward value and adding :math:`\partial L/\partial y(t_{i-1})` to :math:`a`.
    Memory is independent of the number of steps.

    When ``t`` requires grad, its gradient comes from the adjoint formula, not
    from differentiating the solver: with :math:`g_i = \partial L/\partial y(t_i)`
    the incoming gradients,

    .. math::
        \frac{\partial L}{\partial t_i} = g_i \cdot f(t_i, y_i) \quad (i \ge 1),
        \qquad
        \frac{\partial L}{\partial t_0} = -a(t_0^+) \cdot f(t_0, y_0),

    summed over all components (of every tensor of a tuple state), where
    :math:`a(t_0^+)` is the adjoint the backward solve brings back to :math:`t_0`,
    before :math:`g_0` is added (output 0 is ``y0`` itself, which does not move
    with :math:`t_0`).  ``f`` is evaluated at the stored forward outputs in the
    backward pass.  torchdiffeq integrates an extra adjoint of time for
    :math:`t_0` instead; the two agree to the tolerance.  Taught in Chapter 7.

    Step callbacks: the forward solve calls ``func.callback_step``,
    ``callback_accept_step`` and ``callback_reject_step`` as
    :func:`~odecourse.odeint.odeint` does.  The backward solves call
    ``callback_step_adjoint``, ``callback_accept_step_adjoint`` and
    ``callback_reject_step_adjoint`` in the same way: ``t0`` and ``dt`` in the real
    time of the solve from :math:`t_i` back to :math:`t_{i-1}` (so ``dt < 0`` when
    ``t`` increases), and as ``y0`` the state of the adjoint system, the tuple
    ``(y, a, *a_theta)`` (``y`` and ``a`` packed flat for a tuple state;
    torchdiffeq passes ``(vjp_t, y, a, *vjp_params)`` and ``|dt|``).  With a
    fixed-step adjoint method the two ``_adjoint`` accept and reject callbacks
    are never called, with a warning at the call of ``odeint_adjoint``.

    References
    ----------
    pontryagin1962; chen2018; kidger2021.
    """
    if event_fn is not None:  # torchdiffeq's event mode: odecourse.odeint_event
        from odecourse.odeint_event import solve_until_event

        return solve_until_event(
            odeint_adjoint, func, y0, t, event_fn, rtol=rtol, atol=atol, method=method,
            options=options, stats=stats, adjoint_rtol=adjoint_rtol, adjoint_atol=adjoint_atol,
            adjoint_method=adjoint_method, adjoint_options=adjoint_options,
            adjoint_params=adjoint_params,
        )  # fmt: skip
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
    callbacks = None  # the backward solves' step callbacks, looked up once
    if len(times) > 1:
        tableau = resolve_method(backward["method"])
        callbacks = find_callbacks(func, tableau.name, tableau.adaptive, adjoint=True)
    if layout is not None:
        func = _FlatFunc(func, layout)
        forward["options"] = _flat_forward_options(options, layout, method)
    problem = _AdjointProblem(func, times, t.dtype, forward, backward, params, stats, callbacks)
    ys = _OdeintAdjoint.apply(problem, flat_y0, t, *params)
    return ys if layout is None else layout.unstack(ys)


class _FlatFunc:
    """``func`` of a tuple state, seen as a function of the packed flat state.

    The step callbacks of ``func`` are passed on, with the state unpacked into a tuple.
    """

    def __init__(self, func: Callable, layout: TupleLayout) -> None:
        self.func, self.layout = func, layout
        for name in CALLBACK_NAMES:
            callback = lookup(func, name)
            if callable(callback):
                callback = _unpacking(callback, layout)
            if callback is not None:  # a non-callable one: odeint names it in a TypeError
                setattr(self, name, callback)

    def __call__(self, t: Tensor, y: Tensor) -> Tensor:
        return self.layout.flatten(self.func(t, self.layout.unflatten(y)), "func")


def _unpacking(callback: Callable, layout: TupleLayout) -> Callable:
    """``callback(t0, y0, dt)`` for the packed state: it receives ``y0`` as the user's tuple."""

    def unpacked(t0: Tensor, y0: Tensor, dt: Tensor) -> Any:
        return callback(t0, layout.unflatten(y0), dt)

    return unpacked


def _flat_forward_options(
    options: Any, layout: TupleLayout, method: Any
) -> Mapping[str, Any] | None:
    """Keep torchdiffeq's tuple norm (the largest RMS over components) for the packed state."""
    if not resolve_method(method).adaptive:
        return options
    options = dict(options or {})
    options["norm"] = layout.flat_norm(options.get("norm"))
    return options
