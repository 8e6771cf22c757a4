"""What the integration loops share: counting evaluations and recording outputs.

:func:`odecourse.adaptive.integrate_adaptive` and
:func:`odecourse.fixed_step.integrate_fixed` both count the evaluations of
``f``, collect the solution at every step end or at requested output times
(by dense output), and return an :class:`IntegrationResult`.  Taught in Chapter 3.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from odecourse.events import Event, EventTracker

__all__ = [
    "SUCCESS_MESSAGE",
    "TERMINATION_MESSAGE",
    "Counted",
    "IntegrationResult",
    "Recorder",
    "stiff_step_too_small",
    "too_many_steps",
]

SUCCESS_MESSAGE = "The solver successfully reached the end of the integration interval."
TERMINATION_MESSAGE = "A termination event occurred."


@dataclass
class IntegrationResult:
    """What a loop returns: outputs, optional dense output, counters and status.

    Attributes
    ----------
    t : list of float
        Output times: every step end, or the requested ``t_eval``.
    y : list of arrays
        States at ``t`` (same array type as ``y0``).
    interpolants : list of callables or None
        One dense-output callable per accepted step, in order, when requested.
    nfev, n_steps, n_rejected, njev, nlu : int
        Counters (``njev``/``nlu`` are filled in by implicit methods).
    status : int
        0 if the end of the interval was reached, 1 if a terminal event stopped the
        integration, -1 if the integration failed.
    message : str
        Human-readable reason for the status.
    breakpoints : list of float or None
        With dense output: the ends of the steps, ``len(interpolants) + 1`` of them (the
        last one is the event time after a terminal event).
    t_events, y_events : list of ndarray or None
        With events: for each event, the times (shape (k,)) and states (shape (k, n)) of
        its occurrences.
    """

    t: list[float]
    y: list[Any]
    interpolants: list[Callable[[float], Any]] | None
    nfev: int = 0
    n_steps: int = 0
    n_rejected: int = 0
    njev: int = 0
    nlu: int = 0
    status: int = 0
    message: str = SUCCESS_MESSAGE
    breakpoints: list[float] | None = None
    t_events: list[Any] | None = None
    y_events: list[Any] | None = None

    @property
    def success(self) -> bool:
        """True if the integration reached the end of the interval."""
        return self.status >= 0


class Counted:
    """Wrap ``f`` and count its evaluations."""

    def __init__(self, f: Callable[[float, Any], Any]) -> None:
        self.f, self.n = f, 0

    def __call__(self, t: float, y: Any) -> Any:
        self.n += 1
        return self.f(t, y)


@dataclass
class Recorder:
    """Collect outputs at step ends, or at requested times by dense output, and watch events.

    After a terminal event (see :mod:`odecourse.events`) ``terminated`` is True, the last
    output is the event's time and state, and the loop must stop with status 1.
    """

    t0: float
    y0: Any
    t_eval: Sequence[float] | None
    direction: float
    dense: bool
    events: tuple[Event, ...] | None = None
    terminated: bool = False
    t: list[float] = field(default_factory=list)
    y: list[Any] = field(default_factory=list)
    interpolants: list[Any] = field(default_factory=list)
    breakpoints: list[float] = field(default_factory=list)
    _next: int = 0

    def __post_init__(self) -> None:
        if self.t_eval is None:
            self.t.append(self.t0)
            self.y.append(self.y0)
        self.breakpoints.append(self.t0)
        self._tracker = (
            EventTracker(self.events, self.t0, self.y0, self.direction) if self.events else None
        )

    def record(self, t_new: float, y_new: Any, interpolant: Callable[[float], Any]) -> None:
        if self._tracker is not None:
            stop = self._tracker.step(t_new, y_new, interpolant)
            if stop is not None:
                (t_new, y_new), self.terminated = stop, True
        if self.dense:
            self.interpolants.append(interpolant)
            self.breakpoints.append(t_new)
        if self.t_eval is None:
            self.t.append(t_new)
            self.y.append(y_new)
            return
        while self._next < len(self.t_eval):
            t_out = float(self.t_eval[self._next])
            if self.direction * (t_out - t_new) > 0:
                break
            self.t.append(t_out)
            self.y.append(y_new if t_out == t_new else interpolant(t_out))
            self._next += 1

    def result(self, **counters: Any) -> IntegrationResult:
        dense = self.interpolants if self.dense else None
        breakpoints = self.breakpoints if self.dense else None
        t_events = y_events = None
        if self._tracker is not None:
            t_events, y_events = self._tracker.arrays(np.size(self.y0))
        return IntegrationResult(
            self.t, self.y, dense, breakpoints=breakpoints,
            t_events=t_events, y_events=y_events, **counters,
        )  # fmt: skip


def too_many_steps(max_steps: int, t: float) -> str:
    return (
        f"The maximum number of steps ({max_steps}) was reached at t = {t:.6g}; allow more "
        "steps (`max_steps` in solve_ivp, options['max_num_steps'] in odeint), loosen the "
        "tolerances, or use a larger step."
    )


def stiff_step_too_small(t: float, h_abs: float) -> str:
    """The failure message of the implicit adaptive solvers (BDF, Radau)."""
    return (
        f"The step size became too small (|h| = {h_abs:.3g}) at t = {t:.6g}: Newton's method "
        "or the error test kept failing; the solution may blow up near this time, or `jac` "
        "may be wrong (check it, or loosen the tolerances)."
    )
