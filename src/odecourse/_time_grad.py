r"""Gradients of :func:`odecourse.odeint.odeint` with respect to the output times ``t``.

The integrator core keeps time as Python floats, which is fast but invisible to
autograd.  When ``t`` requires grad (and grad mode is on), ``odeint`` calls
:func:`solve_tracking_time` instead, which takes the same steps as the core with
every time held as a float64 tensor: step ends, step sizes
:math:`h_n = t_{n+1} - t_n`, stage times :math:`t_n + c_i h_n` and the
dense-output fraction :math:`\theta = (t_i - t_n)/h_n`.  Autograd then
differentiates the solver's arithmetic with respect to every :math:`t_i`.  For a
fixed-step method this is the derivative of the numerical solution itself, which
is what finite differences of ``odeint`` measure; for an adaptive method the
controller's step sizes are held constant (below), and the two differ by at most
about the tolerance.

- A fixed-step method needs no float pass: its grid is known from ``t`` (one
  step per output interval), from ``t[0] + k * step_size`` (moving with
  ``t[0]``, the last step ending at ``t[-1]``), or from ``grid_constructor``
  (its interior points as the tensor it returns, called again with ``t``).
- An adaptive method first runs the ordinary float solve under
  ``torch.no_grad()`` to choose the accepted steps, then replays exactly those
  steps with tensor times.  Interior step ends are ``t[0]`` plus constant
  offsets, so they move with ``t[0]`` (after a time of ``step_t`` or ``jump_t``
  they are offsets from that fixed time instead), the last step ends at
  ``t[-1]``, and outputs between step ends come from the same dense output
  as in the core, at a tensor :math:`\theta`.  The step sizes the controller
  chose are constants: their own (tolerance-sized) dependence on ``t`` is not
  differentiated.

The options that move stage times (``perturb``, ``jump_t``) move the tensor
times by the same constant amounts.  Output 0 is ``y0`` itself.  The values
equal those of a detached ``t`` up to rounding; the replay costs about one more
solve (its evaluations are counted in ``stats.nfe`` with those of the float pass).

Taught in Chapter 7.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from odecourse._torch_args import nextafter_in
from odecourse.fixed_step import _unresolved, _warn_if_unresolved, fixed_grid
from odecourse.runge_kutta import ButcherTableau

__all__ = ["HONOURED_OPTIONS", "TIME_DTYPE", "solve_tracking_time", "tracks_time"]

#: Time arithmetic is done in this dtype, whatever the dtypes of ``t`` and ``y0``.
TIME_DTYPE = torch.float64
#: The settings the replay reproduces; any other option must keep its default.
HONOURED_OPTIONS = (
    "step_size",
    "first_step",
    "max_num_steps",
    "max_step",
    "min_step",
    "norm",
    "safety",
    "ifactor",
    "dfactor",
    "step_t",
    "jump_t",
    "dtype",
    "grid_constructor",
    "grid",
    "perturb",
    "interp",
)

Terms = Sequence[tuple[int, float]]


def tracks_time(t: Tensor) -> bool:
    """True when ``odeint`` must differentiate with respect to ``t``."""
    return t.requires_grad and torch.is_grad_enabled()


def _weighted(terms: Terms, k: Sequence[Tensor]) -> Tensor:
    r""":math:`\sum_j w_j k_j` with constant weights, summed left to right as the core does."""
    (first, weight), *rest = terms
    total = weight * k[first]
    for j, w in rest:
        total = total.add(k[j], alpha=w)
    return total


@dataclass
class _Time:
    """A time as a float64 tensor (what autograd sees) and its float value (what decides)."""

    tensor: Tensor
    value: float

    def plus(self, node: float, h: _Time) -> _Time:
        """``self + node * h``, rounded as the core rounds it."""
        return _Time(self.tensor + node * h.tensor, self.value + node * h.value)

    def moved_to(self, value: float) -> _Time:
        """The same tensor moved by the constant ``value - self.value`` (derivative kept)."""
        if value == self.value:
            return self
        return _Time(self.tensor + (value - self.value), value)


@dataclass
class _Window:
    """Where ``f`` may be evaluated in one step: stage times outside are moved to the bounds.

    ``low`` is the core's ``perturb`` bound after the start; ``high`` its bound
    before the end, or the side of a jump that ends the step (``jump_t``).
    """

    direction: float
    low: float | None = None
    high: float | None = None

    def clamp(self, time: _Time) -> _Time:
        if self.low is not None and self.direction * (time.value - self.low) < 0:
            return time.moved_to(self.low)
        if self.high is not None and self.direction * (time.value - self.high) > 0:
            return time.moved_to(self.high)
        return time


@dataclass
class _Step:
    """One replayed step, with what its dense output needs."""

    t_old: _Time
    t_new: _Time
    h: _Time
    y_old: Tensor
    y_new: Tensor
    k: list[Tensor]
    f_new: Tensor | None  # the slope at the end (None: evaluated when needed, perturb)
    window: _Window

    @property
    def h_state(self) -> Tensor:
        return self.h.tensor.to(self.y_new.dtype)


class _Replay:
    """The core's explicit Runge-Kutta steps and their dense output, with tensor times.

    Mirrors :func:`~odecourse.adaptive.integrate_adaptive` (``fixed`` False) and
    :func:`~odecourse.fixed_step.integrate_fixed` (``fixed`` True), with the options
    of ``settings``: the same evaluations of ``f``, at the same time values.
    """

    def __init__(
        self,
        at: Callable[[Tensor, Tensor], Tensor],
        tableau: ButcherTableau,
        settings: Any,
        values: Sequence[float],
        dtype: torch.dtype,
        device: Any,
    ) -> None:
        self.at, self.tableau, self.n = at, tableau, 0
        self.fixed = not tableau.adaptive
        self.t0, self.t1 = values[0], values[-1]
        self.direction = 1.0 if self.t1 > self.t0 else -1.0
        self.nextafter = nextafter_in(dtype)
        self.perturb = self.fixed and settings.perturb
        self.interp = settings.interp if self.fixed else None
        self.jumps = frozenset(() if self.fixed else settings.jump_t)
        self.nodes = torch.tensor(tableau._nodes, dtype=TIME_DTYPE, device=device)
        if tableau.P is not None:
            self.rows = [j for j in range(tableau.P.shape[0]) if bool(tableau.P[j].any())]
            self.P = torch.tensor(tableau.P[self.rows].tolist(), dtype=TIME_DTYPE, device=device)

    def f(self, time: _Time, y: Tensor, window: _Window | None = None) -> Tensor:
        """``func`` at ``time`` (moved into ``window``), counted."""
        self.n += 1
        if window is not None:
            time = window.clamp(time)
        return self.at(time.tensor, y)

    def first_slope(self, t0: _Time, y0: Tensor) -> Tensor:
        """``f`` at the start: just after ``t0`` with ``perturb`` or a jump at ``t0``."""
        if self.perturb or t0.value in self.jumps:
            return self.f(t0.moved_to(self.nextafter(t0.value, self.t1)), y0)
        return self.f(t0, y0)

    def step(self, t_old: _Time, t_new: _Time, y: Tensor, k0: Tensor) -> _Step:
        """One step from ``t_old`` to ``t_new``, whose first stage ``k0`` is known."""
        tableau = self.tableau
        h = _Time(t_new.tensor - t_old.tensor, t_new.value - t_old.value)
        window = self._window(t_old.value, t_new.value)
        h_state = h.tensor.to(y.dtype)
        stage_times = (t_old.tensor + self.nodes * h.tensor).unbind(0)
        k, stage_y = [k0], y
        for i, row in enumerate(tableau._rows[1:], start=1):
            stage_y = y + h_state * _weighted(row, k) if row else y
            value = t_old.value + tableau._nodes[i] * h.value
            k.append(self.f(_Time(stage_times[i], value), stage_y, window))
        y_new = stage_y if tableau.fsal else y + h_state * _weighted(tableau._weights[0], k)
        if tableau.fsal:
            f_new = k[-1]
        elif self.perturb:
            f_new = None  # the next step evaluates its own first stage
        else:  # the core's fixed-step loop evaluates f at t + h, the adaptive one at t_new
            f_new = self.f(t_old.plus(1.0, h) if self.fixed else t_new, y_new, window)
        return _Step(t_old, t_new, h, y, y_new, k, f_new, window)

    def next_slope(self, step: _Step, t_new: _Time) -> Tensor:
        """The first stage of the step from ``t_new``: the slope at the end of ``step``, or,
        with ``perturb`` or after a jump, ``f`` afresh just past ``t_new``."""
        if self.perturb or t_new.value in self.jumps:
            return self.f(t_new.moved_to(self.nextafter(t_new.value, self.t1)), step.y_new)
        return step.f_new

    def _window(self, start: float, end: float) -> _Window:
        if self.perturb:
            return _Window(self.direction, self.nextafter(start, end), self.nextafter(end, start))
        if end in self.jumps:
            return _Window(self.direction, high=self.nextafter(end, self.t0))
        return _Window(self.direction)

    def dense(self, step: _Step, time: Tensor) -> Tensor:
        """The step's output at ``time``: the interpolant the core builds for it."""
        theta = (time - step.t_old.tensor) / step.h.tensor
        tableau, interp = self.tableau, self.interp
        if interp == "linear":
            return step.y_old + theta.to(step.y_new.dtype) * (step.y_new - step.y_old)
        if interp is None and tableau.P is not None:
            return self._tableau_dense(step, theta)
        self.end_slope(step)
        return _hermite(step, theta)

    def end_slope(self, step: _Step) -> Tensor:
        """``f`` at the end of the step; with ``perturb`` evaluated on first use, from inside."""
        if step.f_new is None:
            step.f_new = self.f(step.t_new, step.y_new, step.window)
        return step.f_new

    def _tableau_dense(self, step: _Step, theta: Tensor) -> Tensor:
        k = step.k if self.tableau.A_extra is None else self._extra_stages(step)
        powers = torch.cumprod(theta.expand(self.P.shape[1]), 0)  # theta, theta^2, ...
        weights = (self.P @ powers).to(step.y_new.dtype)
        stages = torch.stack([k[j] for j in self.rows])
        return step.y_old + step.h_state * torch.tensordot(weights, stages, dims=1)

    def _extra_stages(self, step: _Step) -> list[Tensor]:
        """The step's stages and the extra ones its dense output needs (DOP853)."""
        k = list(step.k)
        h_state = step.h_state
        for node, row in zip(self.tableau.c_extra, self.tableau._extra_rows, strict=True):
            stage_y = step.y_old + h_state * _weighted(row, k) if row else step.y_old
            k.append(self.f(step.t_old.plus(float(node), step.h), stage_y, step.window))
        return k


def _hermite(step: _Step, s: Tensor) -> Tensor:
    """:class:`~odecourse.dense_output.HermiteInterpolant` at the tensor fraction ``s``."""
    dtype, h = step.y_new.dtype, step.h.tensor
    dy = step.y_new - step.y_old
    bracket = (
        (1 - 2 * s).to(dtype) * dy
        + ((s - 1) * h).to(dtype) * step.k[0]
        + (s * h).to(dtype) * step.f_new
    )
    return step.y_old + s.to(dtype) * dy + (s * (s - 1)).to(dtype) * bracket


def _replay(
    replay: _Replay, y0: Tensor, grid: list[_Time], times: list[_Time], callbacks: Any = None
) -> Tensor:
    """Step from each point of ``grid`` to the next; fill the output ``times`` on the way.

    ``callbacks`` (a fixed-step method's :class:`~odecourse._step_callbacks.StepCallbacks`)
    sees each step before it is taken, with the float times of the core.

    As in the core, an output time inside a step comes from its dense output and
    one at a step end is the step's result.  When the output time and the step end
    are different tensors, the next step's first stage times their difference (zero)
    is added, so that the output moves along the solution with its time.
    """
    direction = replay.direction
    outputs, i = [y0], 1
    slope, last = replay.first_slope(grid[0], y0), len(grid) - 2
    y = y0
    for n, (t_old, t_new) in enumerate(itertools.pairwise(grid)):
        if callbacks is not None:
            callbacks.before(t_old.value, y, t_new.value - t_old.value)
        step = replay.step(t_old, t_new, y, slope)
        slope = replay.next_slope(step, t_new) if n < last else None
        while i < len(times) and direction * (times[i].value - t_new.value) <= 0:
            time = times[i]
            if time.tensor is t_new.tensor:
                outputs.append(step.y_new)
            elif time.value == t_new.value:  # zero, with the derivative of the output
                gap = (time.tensor - t_new.tensor).to(y0.dtype)
                outputs.append(
                    step.y_new + gap * (replay.end_slope(step) if slope is None else slope)
                )
            else:
                outputs.append(replay.dense(step, time.tensor))
            i += 1
        y = step.y_new
    return torch.stack(outputs)


def _anchored_grid(times: list[_Time], points: Sequence[float], fixed_times: Any) -> list[_Time]:
    """``points`` as times: first ``t[0]``, last ``t[-1]``; the others move with their anchor.

    An interior point moves with ``t[0]``, unless a point of ``fixed_times`` (``step_t``
    and ``jump_t``, which do not move) lies before it or is it: then it is a constant.
    ``t[0] - t[0].detach()`` is zero with derivative one, so a moving point keeps its
    float value exactly.
    """
    shift = times[0].tensor - times[0].tensor.detach()
    grid = [times[0]]
    for value in points[1:-1]:
        if value in fixed_times:
            shift = torch.zeros_like(shift)
        grid.append(_Time(shift + value, value))
    grid.append(times[-1])
    return grid


def _fixed_grid(
    times: list[_Time], settings: Any, func: Callable, y0: Any, t: Tensor
) -> list[_Time]:
    """The grid of a fixed-step method as times (see the module docstring)."""
    values = [time.value for time in times]
    if settings.grid is not None:  # grid_constructor: its tensor, ends tied to t
        grid = settings.grid_constructor(func, y0, t).to(TIME_DTYPE)
        if [float(s) for s in grid.detach().tolist()] != list(settings.grid):
            raise RuntimeError(
                "odeint: `grid_constructor` returned a different grid when called again with "
                "the same arguments; gradients with respect to `t` need it to be deterministic."
            )
        inner = zip(grid.unbind(0)[1:-1], settings.grid[1:-1], strict=True)
        return [times[0], *(_Time(s, v) for s, v in inner), times[-1]]
    if settings.step_size is None:
        return times
    t0, t1 = values[0], values[-1]
    _warn_if_unresolved(t0, t1, settings.step_size)
    points = fixed_grid((t0, t1), settings.step_size)
    for a, b in itertools.pairwise(points):
        if (b - a) * (t1 - t0) <= 0:
            raise RuntimeError(f"odeint: {_unresolved(a, settings.step_size)}")
    return _anchored_grid(times, points, ())


def _check_honoured(settings: Any) -> None:
    """Refuse an option that the replay does not know (none today: a guard for new ones)."""
    for field in dataclasses.fields(settings):
        if field.name in HONOURED_OPTIONS:
            continue
        value, default = getattr(settings, field.name), field.default
        if value is default or (not isinstance(value, Tensor) and value == default):
            continue
        raise ValueError(
            f"option {field.name!r} cannot be combined with a `t` that requires grad "
            "(gradients with respect to `t` honour only "
            f"{', '.join(map(repr, HONOURED_OPTIONS))}); pass t.detach(), or drop the option."
        )


def solve_tracking_time(
    func: Callable,
    y0: Tensor,
    t: Tensor,
    values: list[float],
    tableau: ButcherTableau,
    tolerances: tuple[Any, Any],
    settings: Any,
    layout: Any,
    stats: Any,
    callbacks: Any = None,
) -> Tensor:
    """``odeint``'s ``_solve`` for a ``t`` that requires grad: differentiable in every ``t_i``.

    Parameters are those of ``odecourse.odeint._solve`` plus ``t`` itself (``values``
    are its validated float values).  Returns the outputs stacked along a new first
    dimension.  ``stats.nfe`` counts the float pass (adaptive methods) and the replay;
    ``n_steps`` and ``n_rejected`` count the steps once.  The step ``callbacks`` are
    called once per attempted step: in the float pass of an adaptive method (which
    chooses the steps; its states carry no graph), in the replay of a fixed-step one.
    """
    from odecourse.odeint import (  # here: odeint imports this module
        _check_finite_solution,
        _integrate,
        _raise_failure,
        _TensorRHS,
    )

    _check_honoured(settings)
    if len(values) == 1:
        return torch.stack([y0])
    rhs = _TensorRHS(func, y0, layout)
    times = [_Time(s, v) for s, v in zip(t.to(TIME_DTYPE).unbind(0), values, strict=True)]
    if tableau.adaptive:
        starts: list[float] = []

        def observer(t: float, h: float, err: float, accepted: bool, y_new: Any) -> None:
            if accepted:
                starts.append(t)

        with torch.no_grad():
            result = _integrate(rhs, y0, values, tableau, tolerances, settings, observer, callbacks)
        if stats is not None:
            stats.add(result)
        if result.status < 0:
            _raise_failure(result)
        inside = {s for s in (*settings.step_t, *settings.jump_t) if s != values[0]}
        grid = _anchored_grid(times, [*starts, values[-1]], inside)
        n_steps = 0
    else:
        user_y0 = y0 if layout is None else layout.unflatten(y0)
        grid = _fixed_grid(times, settings, func, user_y0, t)
        n_steps = len(grid) - 1
    replay = _Replay(rhs.at, tableau, settings, values, y0.dtype, y0.device)
    solution = _replay(replay, y0, grid, times, None if tableau.adaptive else callbacks)
    if stats is not None:
        stats.nfe += replay.n
        stats.n_steps += n_steps
    _check_finite_solution(solution, values)
    return solution
