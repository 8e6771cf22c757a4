"""The event search of ``odeint(..., event_fn=...)``: the first sign change on the dense output.

Private: :mod:`odecourse.odeint_event` turns the located time into a differentiable one.
The search runs the shared core on torch states without a graph.  After every accepted
step the signs of the components of ``event_fn`` at its end are compared with their signs
so far (fixed at ``t0``, or, for a component exactly zero there, at its first nonzero
value); in the first step where one differs, the root is found by Brent's method on
the step's dense output, to :data:`odecourse.events.ROOT_TOL`, as
:class:`odecourse.events.EventTracker` does for :func:`odecourse.solve_ivp` (which works
on NumPy states only).  An adaptive method is watched by the core's ``observer``, which
stops the loop at that step (the step is then taken again to build its dense output); a
fixed-step method steps on the grid ``t0 + k * step_size`` here.

Taught in Chapter 3.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from scipy.optimize import brentq
from torch import Tensor

from odecourse._loop import Counted
from odecourse._torch_args import Settings, TupleLayout
from odecourse.adaptive import StepSizeController, integrate_adaptive
from odecourse.dense_output import HermiteInterpolant, make_interpolant
from odecourse.events import ROOT_TOL
from odecourse.fixed_step import rk_stepper
from odecourse.runge_kutta import ButcherTableau, rk_step

__all__ = ["FIXED_STEP_LIMIT", "EventFunction", "FoundEvent", "SearchProblem", "find_event"]

#: Steps a fixed-step method takes looking for an event before it gives up (torchdiffeq: 20000).
FIXED_STEP_LIMIT = 100_000
_LAST_TIME = sys.float_info.max  # the adaptive search has no end but the largest float
_ROOT_ITERATIONS = 200  # Brent's method: ~60 bisections suffice; interpolation may waste some


# --------------------------------------------------------------------------- event_fn


class EventFunction:
    """``event_fn`` on the core's state (tuples packed flat), as a checked 1-D tensor."""

    def __init__(self, event_fn: Callable, layout: TupleLayout | None, y0: Tensor) -> None:
        self.event_fn, self.layout = event_fn, layout
        self.dtype, self.device = y0.dtype, y0.device
        self.size: int | None = None

    def __call__(self, t: float | Tensor, y: Tensor) -> Tensor:
        if not isinstance(t, Tensor):
            t = torch.full((), t, dtype=self.dtype, device=self.device)
        value = self.event_fn(t, y if self.layout is None else self.layout.unflatten(y))
        if not isinstance(value, Tensor) or not value.is_floating_point():
            got = value.dtype if isinstance(value, Tensor) else type(value).__name__
            raise TypeError(
                "`event_fn` must return a real floating tensor (a scalar, or one value per "
                f"event component); got {got}."
            )
        if self.size is None:
            if value.numel() == 0:
                raise ValueError("`event_fn` must return at least one value; got an empty tensor.")
            self.size = value.numel()
        elif value.numel() != self.size:
            raise ValueError(
                f"`event_fn` must return the same number of values at every call; it returned "
                f"{self.size} at t0 and {value.numel()} at t = {float(t.detach()):.6g}."
            )
        return value.reshape(-1)

    def numbers(self, t: float, y: Tensor) -> list[float]:
        """The components at ``(t, y)`` as Python floats; NaN is an error."""
        values = self(t, y).detach().tolist()
        if any(math.isnan(v) for v in values):
            raise ValueError(f"`event_fn` returned NaN at t = {t:.6g}: {values!r:.80}.")
        return values


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


# --------------------------------------------------------------------------- the search


@dataclass(frozen=True)
class SearchProblem:
    """The validated search: the core's state, direction and settings."""

    y0: Tensor
    layout: TupleLayout | None
    t0: float
    direction: float
    tableau: ButcherTableau
    rtol: Any
    atol: Any
    settings: Settings


@dataclass(frozen=True)
class _Bracket:
    """The step in which a component of ``event_fn`` left its sign, with its dense output."""

    t_a: float
    t_b: float
    values_a: list[float]
    values_b: list[float]
    signs: list[int]
    interpolant: Callable[[float], Tensor]


class _Crossing(Exception):
    """Not an error: raised by :class:`_Watch` to stop the adaptive loop at the event's step."""

    def __init__(self, t: float, y: Tensor, h: float, values: list[float]) -> None:
        super().__init__(t)
        self.t, self.y, self.h, self.values = t, y, h, values


class _Watch:
    """The signs of the event components along the search, and the step counters.

    A component's sign is fixed by its value at ``t0``; one that is exactly zero there
    takes the sign of its first nonzero value at a step end.  An accepted step whose end
    has a component with another sign (or exactly zero) holds the event.  As the
    ``observer`` of :func:`~odecourse.adaptive.integrate_adaptive` it stops the loop
    there, by raising :class:`_Crossing`.
    """

    def __init__(self, events: EventFunction, t0: float, y0: Tensor) -> None:
        self.events = events
        self.values = events.numbers(t0, y0)
        self.signs = [_sign(v) for v in self.values]
        self.y = y0
        self.n_steps = self.n_rejected = 0

    def crossed(self, t_new: float, y_new: Tensor) -> list[float] | None:
        """The values at ``t_new`` if a component left its sign there, else None (and move on)."""
        values = self.events.numbers(t_new, y_new)
        if any(s and _sign(v) != s for s, v in zip(self.signs, values, strict=True)):
            return values
        self.signs = [s or _sign(v) for s, v in zip(self.signs, values, strict=True)]
        self.values, self.y = values, y_new
        return None

    def __call__(self, t: float, h: float, err: float, accepted: bool, y_new: Tensor) -> None:
        if not accepted:
            self.n_rejected += 1
            return
        self.n_steps += 1
        values = self.crossed(t + h, y_new)
        if values is not None:
            raise _Crossing(t, self.y, h, values)


def _search_adaptive(rhs: Counted, problem: SearchProblem, watch: _Watch) -> _Bracket:
    """Run the adaptive core until a step holds the event; rebuild that step's dense output.

    The observer stops the loop before the step's dense output exists, so the step is
    taken again from its start (the same arithmetic, one step's evaluations more).
    """
    s, tableau = problem.settings, problem.tableau
    controller = StepSizeController(tableau.error_order, s.safety, s.dfactor, s.ifactor)
    t_span = (problem.t0, problem.direction * _LAST_TIME)
    # t_eval=[]: each step gets its dense output (unevaluated), and no state is stored.
    try:
        result = integrate_adaptive(
            rhs, t_span, problem.y0, tableau, rtol=problem.rtol, atol=problem.atol,
            t_eval=[], first_step=s.first_step, max_step=s.max_step,
            max_steps=s.max_num_steps, controller=controller, norm=s.norm, observer=watch,
            step_t=s.step_t, min_step=s.min_step,
        )  # fmt: skip
    except _Crossing as crossing:
        t, y, h = crossing.t, crossing.y, crossing.h
        step = rk_step(rhs, t, y, h, tableau)
        f_new = step.k[-1] if tableau.fsal else rhs(t + h, step.y)
        dense = make_interpolant(tableau, t, t + h, y, step.y, step.k[0], f_new, step.k, rhs)
        return _Bracket(t, t + h, watch.values, crossing.values, watch.signs, dense)
    reason = result.message if result.status < 0 else "it reached the largest float time"
    raise RuntimeError(
        f"odeint: no event: `event_fn` did not change sign before the integration stopped "
        f"({reason}). Check `event_fn`, or allow more steps with options['max_num_steps']."
    )


def _search_fixed(rhs: Counted, problem: SearchProblem, watch: _Watch) -> _Bracket:
    """Step on the grid ``t0 + k * step_size`` until a step holds the event."""
    h, direction, t0 = problem.settings.step_size, problem.direction, problem.t0
    step, interp = rk_stepper(problem.tableau), problem.settings.interp
    t, y, f_t = t0, problem.y0, rhs(t0, problem.y0)
    for k in range(1, FIXED_STEP_LIMIT + 1):
        t_new = t0 + direction * k * h
        outcome = step(rhs, t, y, f_t, t_new - t)
        watch.n_steps += 1
        if not bool(torch.isfinite(outcome.y).all()):
            raise RuntimeError(
                f"odeint: the solution stopped being finite between t = {t:.6g} and "
                f"t = {t_new:.6g}, before any event; use a smaller step_size."
            )
        values = watch.crossed(t_new, outcome.y)
        if values is not None:
            if interp == "linear":
                dense = _linear(t, t_new, y, outcome.y)
            elif interp == "cubic":
                dense = HermiteInterpolant(t, t_new, y, outcome.y, f_t, outcome.f)
            else:
                dense = outcome.interpolant
            return _Bracket(t, t_new, watch.values, values, watch.signs, dense)
        t, y, f_t = t_new, outcome.y, outcome.f
    raise RuntimeError(
        f"odeint: no event: `event_fn` did not change sign in {FIXED_STEP_LIMIT} steps of "
        f"step_size {h:.6g} (up to t = {t:.6g}); a fixed-step method searches no further."
    )


def _linear(t_a: float, t_b: float, y_a: Tensor, y_b: Tensor) -> Callable[[float], Tensor]:
    """torchdiffeq's ``interp="linear"`` over one step."""
    return lambda t: y_a + ((t - t_a) / (t_b - t_a)) * (y_b - y_a)


def _locate(events: EventFunction, bracket: _Bracket, direction: float) -> tuple[float, int]:
    """The first root in the step (Brent's method on the dense output) and its component."""
    roots = []
    for i, (s, value) in enumerate(zip(bracket.signs, bracket.values_b, strict=True)):
        if not s or _sign(value) == s:
            continue
        if value == 0:
            root = bracket.t_b
        else:
            # Slow convergence (at a multiple root) still leaves a valid bracket: keep its best.
            root, _ = brentq(
                _component(events, bracket, i), bracket.t_a, bracket.t_b, xtol=ROOT_TOL,
                rtol=ROOT_TOL, maxiter=_ROOT_ITERATIONS, full_output=True, disp=False,
            )  # fmt: skip
        roots.append((direction * root, i, root))
    _, index, root = min(roots)  # the earliest; at a tie, the first component
    return root, index


def _component(events: EventFunction, bracket: _Bracket, i: int) -> Callable[[float], float]:
    """Component ``i`` along the step; the ends use the values the search computed."""

    def g(t: float) -> float:
        if t == bracket.t_a:
            return bracket.values_a[i]
        if t == bracket.t_b:
            return bracket.values_b[i]
        return events.numbers(t, bracket.interpolant(t))[i]

    return g


@dataclass(frozen=True)
class FoundEvent:
    """The located event: its time, the component that crossed, and the search's counts."""

    time: float
    index: int
    n_steps: int
    n_rejected: int


def find_event(rhs: Counted, problem: SearchProblem, events: EventFunction) -> FoundEvent:
    """Search from ``problem.t0`` for the first change of sign of ``events``; no graph.

    Raises ``RuntimeError`` if the search ends without one (step limit, step-size
    underflow, a non-finite fixed-step state).
    """
    with torch.no_grad():
        watch = _Watch(events, problem.t0, problem.y0)
        search = _search_adaptive if problem.tableau.adaptive else _search_fixed
        bracket = search(rhs, problem, watch)
        time, index = _locate(events, bracket, problem.direction)
    return FoundEvent(time, index, watch.n_steps, watch.n_rejected)
