r"""``odeint_event``: integrate until an event function changes sign, and differentiate the time.

torchdiffeq's event mode.  ``odeint(func, y0, t, event_fn=g)`` integrates from
``t[0]`` (``t[1]`` only gives the direction) until a component of
:math:`g(t, y)` changes sign, and returns the event time :math:`T` with
``[y0, y(T)]``.  The search works as :func:`odecourse.solve_ivp` finds its
events (Chapter 3): after every accepted step the signs of :math:`g` at both
ends are compared, and the root of :math:`g(t, u(t))` is located by Brent's
method on the step's dense output :math:`u`.

The event time depends on everything the solution depends on (Chapter 7).
Differentiating :math:`g(T, y(T; \theta), \theta) = 0`, the implicit function
theorem gives

.. math::
    \frac{dT}{d\theta} = -\frac{g_y\, \partial_\theta y(T) + \partial_\theta g}
        {g_t + g_y\, f(T, y(T))}, \qquad
    \frac{d\, y(T)}{d\theta} = \partial_\theta y(T) + f(T, y(T))\, \frac{dT}{d\theta},

where :math:`\partial_\theta y(T)` is the derivative at the fixed time :math:`T`:
it comes from a second, differentiable solve from :math:`t_0` to :math:`T`
(backprop through the solver with ``odeint``, the adjoint method with
``odeint_adjoint``).  The denominator is the rate at which :math:`g` crosses zero
along the solution; at a tangential event it vanishes and :math:`T` has no
derivative.  No custom autograd function is needed: with :math:`c = g(T, y(T))`
evaluated on the graph and the rate :math:`D` detached,

.. math::
    T \leftarrow T - \frac{c - \operatorname{sg}(c)}{D}, \qquad
    y(T) \leftarrow y(T) + \operatorname{sg}(f)\,\big(T - \operatorname{sg}(T)\big)

(:math:`\operatorname{sg}` stops the gradient) change no value and carry exactly
these derivatives.

Taught in Chapters 3 and 7.

References
----------
chen2021: R. T. Q. Chen, B. Amos, M. Nickel, Learning neural event functions for
ordinary differential equations, ICLR 2021 (torchdiffeq's ``odeint_event``).
shampine1997: L. F. Shampine, M. W. Reichelt, The MATLAB ODE suite, SIAM J. Sci.
Comput. 18 (1997) 1-22 (event location on the interpolant).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from odecourse._event_search import EventFunction, FoundEvent, SearchProblem, find_event
from odecourse._loop import Counted
from odecourse._torch_args import (
    TupleLayout,
    check_options,
    check_t,
    check_tolerance,
    check_y0,
    resolve_method,
)
from odecourse._validation import check_callable
from odecourse.adjoint import odeint_adjoint
from odecourse.odeint import SolveStats, _floor_rtol, _TensorRHS, odeint

__all__ = ["odeint_event", "solve_until_event"]

#: Options that the event search does not implement (refused with ``event_fn``).
_NOT_WITH_EVENTS = ("jump_t", "perturb", "grid_constructor")


# --------------------------------------------------------------------------- the gradient


def _rate(
    rhs: Callable, events: EventFunction, index: int, time: float, y: Tensor
) -> tuple[Tensor, Tensor]:
    r"""``f(T, y)`` and :math:`D = g_t + g_y \cdot f`, detached; refuse a tangential event.

    Warns when the solution curve :math:`(1, f)` meets the level set of :math:`g` in
    :math:`(t, y)` space at an angle whose cosine, :math:`|D| / (\|(g_t, g_y)\|\,
    \|(1, f)\|)`, is below the square root of the machine epsilon.
    """
    y = y.detach()
    with torch.no_grad():
        f = rhs(time, y)
    with torch.enable_grad():
        t_var = torch.full((), time, dtype=y.dtype, device=y.device, requires_grad=True)
        y_var = y.clone().requires_grad_(True)
        c = events(t_var, y_var)[index]
        g_t, g_y = (
            torch.autograd.grad(c, (t_var, y_var), allow_unused=True)
            if c.requires_grad
            else (None, None)
        )
    g_t = torch.zeros_like(t_var) if g_t is None else g_t
    g_y = torch.zeros_like(y) if g_y is None else g_y
    rate = g_t + (g_y * f).sum()
    value = float(rate)
    if value == 0 or not math.isfinite(value):
        raise RuntimeError(
            f"odeint: the event at t = {time:.6g} is tangential: component {index} of "
            f"`event_fn` crosses zero at the rate d/dt g(t, y(t)) = {value} there, so the event "
            "time has no derivative. For the values alone, call under torch.no_grad()."
        )
    normal = math.hypot(float(g_t), float(g_y.norm()))
    cosine = abs(value) / (normal * math.hypot(1.0, float(f.norm())))
    if cosine < math.sqrt(torch.finfo(y.dtype).eps):
        warnings.warn(
            f"odeint: the event at t = {time:.6g} is nearly tangential: the solution meets "
            f"the zero set of `event_fn` component {index} at an angle of cosine {cosine:.1e}, "
            f"so the gradient of the event time is ill-conditioned (d/dt g = {value:.3g}).",
            RuntimeWarning,
            stacklevel=5,
        )
    return f, rate


def _end_state(solution: Tensor | tuple[Tensor, ...], layout: TupleLayout | None) -> Tensor:
    if layout is None:
        return solution[-1]
    return torch.cat([part[-1].reshape(-1) for part in solution])


def _with_end(
    solution: Tensor | tuple[Tensor, ...], end: Tensor, layout: TupleLayout | None
) -> Tensor | tuple[Tensor, ...]:
    """``[y0, end]`` stacked as ``solution`` is (a tuple of stacks for a tuple state)."""
    if layout is None:
        return torch.stack([solution[0], end])
    ends = layout.unflatten(end)
    return tuple(torch.stack([part[0], e]) for part, e in zip(solution, ends, strict=True))


def _differentiable(
    solve: Callable[[Tensor], Any],
    y0: Any,
    t: Tensor,
    found: FoundEvent,
    rhs: Callable,
    events: EventFunction,
    layout: TupleLayout | None,
    stats: SolveStats | None,
) -> tuple[Tensor, Any]:
    """Solve to the event time again with gradients and attach the implicit-function terms."""
    index = found.index
    t_end = torch.full((), found.time, dtype=t.dtype, device=t.device)
    time = float(t_end)  # the event time, rounded to the dtype of `t`
    if time == float(t[0].detach()):  # an event within rounding of t0: no step to take
        parts = (y0,) if layout is None else y0
        solution = tuple(torch.stack([p, p]) for p in parts)
        solution = solution[0] if layout is None else solution
    else:
        solution = solve(torch.stack([t[0], t_end]))
    y_end = _end_state(solution, layout)
    c = events(time, y_end)[index]
    if not c.requires_grad:
        return t_end, solution
    f, rate = _rate(rhs, events, index, time, y_end)
    if stats is not None:
        stats.nfe += 1
    event_t = t_end - ((c - c.detach()) / rate).to(t_end.dtype)
    y_event = y_end + f * (event_t - event_t.detach()).to(f.dtype)
    return event_t, _with_end(solution, y_event, layout)


# --------------------------------------------------------------------------- front ends


def _prepare(y0: Any, t: Tensor, rtol: Any, atol: Any, method: Any, options: Any) -> SearchProblem:
    """The search's settings from arguments that the front end has already validated."""
    flat_y0, layout = check_y0(y0)
    times = check_t(t, flat_y0)
    tableau = resolve_method(method)
    settings = check_options(options, tableau)
    for name in _NOT_WITH_EVENTS:
        if isinstance(options, Mapping) and name in options:
            raise ValueError(
                f"option {name!r} is not supported together with `event_fn`; the event "
                f"search implements every other option (refused: {', '.join(_NOT_WITH_EVENTS)})."
            )
    if not tableau.adaptive and settings.step_size is None:
        raise ValueError(
            f"with `event_fn`, the fixed-step method {tableau.name!r} needs "
            "options['step_size']: it steps on the grid t0 + k * step_size until the event."
        )
    per_entry = flat_y0 if layout is None else None
    rtol = check_tolerance("rtol", rtol, per_entry)
    atol = check_tolerance("atol", atol, per_entry)
    if tableau.adaptive:
        rtol = _floor_rtol(rtol)
        if layout is not None:
            settings = dataclasses.replace(settings, norm=layout.flat_norm(settings.norm))
    direction = 1.0 if times[1] > times[0] else -1.0
    return SearchProblem(
        flat_y0.detach(), layout, times[0], direction, tableau, rtol, atol, settings
    )


def solve_until_event(
    interface: Callable,
    func: Callable[[Tensor, Any], Any],
    y0: Tensor | tuple[Tensor, ...],
    t: Tensor,
    event_fn: Callable[[Tensor, Any], Tensor],
    *,
    rtol: Any,
    atol: Any,
    method: Any,
    options: Mapping[str, Any] | None,
    stats: SolveStats | None,
    **adjoint: Any,
) -> tuple[Tensor, Tensor | tuple[Tensor, ...]]:
    """The event mode of :func:`~odecourse.odeint.odeint` and ``odeint_adjoint``.

    ``interface`` is the front end that called (it makes the differentiable solve);
    ``adjoint`` holds ``odeint_adjoint``'s own keyword arguments.  See ``event_fn`` in
    :func:`~odecourse.odeint.odeint` for the semantics.  Taught in Chapters 3 and 7.
    """
    check_callable("func", func)
    check_callable("event_fn", event_fn)
    flat_y0, _ = check_y0(y0)
    if len(check_t(t, flat_y0)) != 2:
        raise ValueError(
            "with `event_fn`, `t` must hold exactly two times: t0 and a second time that only "
            f"gives the direction of integration; got {t.numel()}."
        )
    params = adjoint.get("adjoint_params")
    if isinstance(params, Iterable) and not isinstance(params, Tensor):
        adjoint["adjoint_params"] = tuple(params)  # a generator serves both calls below
    kwargs = {"rtol": rtol, "atol": atol, "method": method, "options": options, **adjoint}
    with torch.no_grad():  # every argument checked by the front end itself: one output time
        interface(func, y0, t[:1], **kwargs)
    problem = _prepare(y0, t, rtol, atol, method, options)
    events = EventFunction(event_fn, problem.layout, problem.y0)
    rhs = Counted(_TensorRHS(func, problem.y0, problem.layout))
    found = find_event(rhs, problem, events)
    if stats is not None:
        stats.nfe += rhs.n
        stats.n_steps += found.n_steps
        stats.n_rejected += found.n_rejected

    def solve(pair: Tensor) -> Any:
        return interface(func, y0, pair, stats=stats, **kwargs)

    return _differentiable(solve, y0, t, found, rhs, events, problem.layout, stats)


def _check_interface(odeint_interface: Any) -> Callable:
    module = sys.modules["odecourse.odeint"]  # `from odecourse import odeint` gives it
    if odeint_interface is odeint or odeint_interface is module:
        return odeint
    if odeint_interface is odeint_adjoint:
        return odeint_adjoint
    raise TypeError(
        "`odeint_interface` must be odecourse's odeint or odeint_adjoint; got "
        f"{getattr(odeint_interface, '__module__', '?')}."
        f"{getattr(odeint_interface, '__qualname__', type(odeint_interface).__name__)}."
    )


def odeint_event(
    func: Callable[[Tensor, Any], Any],
    y0: Tensor | tuple[Tensor, ...],
    t0: Tensor,
    *,
    event_fn: Callable[[Tensor, Any], Tensor],
    reverse_time: bool = False,
    odeint_interface: Callable = odeint,
    **kwargs: Any,
) -> tuple[Tensor, Tensor | tuple[Tensor, ...]]:
    r"""Integrate from ``t0`` until ``event_fn`` changes sign; torchdiffeq's ``odeint_event``.

    Parameters
    ----------
    func, y0
        As for :func:`~odecourse.odeint.odeint`.
    t0 : Tensor, 0-d or one element
        The initial time; it may require grad (then the event time and state are
        differentiable with respect to it).
    event_fn : callable
        ``event_fn(t, y)`` returning a real tensor, a scalar or several components;
        the integration stops where the first component changes sign (see ``event_fn``
        in :func:`~odecourse.odeint.odeint`).
    reverse_time : bool
        Integrate backwards in time (towards smaller ``t``).
    odeint_interface : callable
        :func:`odecourse.odeint` (default) or :func:`odecourse.odeint_adjoint`; it also
        decides how the state at the event is differentiated.
    **kwargs
        Passed on to ``odeint_interface`` (``rtol``, ``atol``, ``method``, ``options``,
        ``stats``, the ``adjoint_*`` arguments).

    Returns
    -------
    event_t : Tensor, 0-d
        The event time, in the dtype of ``t0``.
    solution : Tensor, shape (2, *S), or tuple of Tensors
        ``[y0, y(event_t)]``.  Both outputs are differentiable (implicit function
        theorem at the event; see :mod:`odecourse.odeint_event`).

    Notes
    -----
    It calls ``odeint_interface(func, y0, t, event_fn=event_fn, **kwargs)`` with
    ``t = [t0, t0 + 1]`` (``t0 - 1`` with ``reverse_time``): the second time only
    gives the direction.  In torchdiffeq only this function makes the event time
    differentiable; in odecourse ``odeint(..., event_fn=...)`` already does, and
    ``odeint_event`` adds the choice of direction.  Taught in Chapters 3 and 7.

    References
    ----------
    chen2021.
    """
    interface = _check_interface(odeint_interface)
    check_callable("event_fn", event_fn)
    if not isinstance(reverse_time, bool):
        raise TypeError(
            f"`reverse_time` must be True or False; got {type(reverse_time).__name__} "
            f"{reverse_time!r:.60}."
        )
    if not isinstance(t0, Tensor) or not t0.is_floating_point():
        got = t0.dtype if isinstance(t0, Tensor) else f"{type(t0).__name__} {t0!r:.60}"
        raise TypeError(f"`t0` must be a floating tensor (0-d or one element); got {got}.")
    if t0.numel() != 1:
        raise ValueError(f"`t0` must be a 0-d or one-element tensor; got shape {tuple(t0.shape)}.")
    start = t0.reshape(1)
    t = torch.cat([start, start.detach() + (-1.0 if reverse_time else 1.0)])
    return interface(func, y0, t, event_fn=event_fn, **kwargs)


class _OdeintEventModule(types.ModuleType):
    """This module, callable as :func:`odeint_event` itself (as :mod:`odecourse.odeint` is).

    The package exports the module, so ``odecourse.odeint_event(...)`` calls the function
    and ``import odecourse.odeint_event`` still reaches the module and its helpers.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return odeint_event(*args, **kwargs)


sys.modules[__name__].__class__ = _OdeintEventModule
