r"""Events: times where a function of the solution crosses zero, located on the dense output.

An *event* is a function :math:`g(t, y)` of the time and the state.  After every
accepted step :math:`[t_n, t_{n+1}]` the integrator compares the signs of
:math:`g` at both ends; where the sign changes (in the requested direction), the
root of :math:`g(t, u(t))` is found by Brent's method on the step's dense output
:math:`u`, which is accurate to the solver's tolerance, so locating an event costs
evaluations of :math:`g` and of the interpolant, never of :math:`f`.  This is
SciPy's interface: an event function may carry the attributes

``terminal``
    ``False`` (default) or ``True`` (stop at the first occurrence), or a positive
    integer :math:`k` (stop at the :math:`k`-th occurrence);
``direction``
    ``0`` (default, any crossing), positive (only from negative to positive) or
    negative (only from positive to negative).

Taught in Chapter 3.

References
----------
shampine1997: L. F. Shampine, M. W. Reichelt, The MATLAB ODE suite, SIAM J. Sci.
Comput. 18 (1997) 1-22 (event location on the interpolant).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy.optimize import brentq

__all__ = ["Event", "EventTracker", "prepare_events"]

#: Absolute and relative tolerance of the root finder, in units of the machine epsilon.
ROOT_TOL = 4 * np.finfo(float).eps


@dataclass(frozen=True)
class Event:
    """One validated event function.

    Attributes
    ----------
    fun : callable
        ``fun(t, y)`` returning a real number.
    terminal : int
        0 if the event never stops the integration, else the occurrence that stops it.
    direction : float
        0, +1 or -1: which sign changes count.
    index : int
        Position in the list the user passed (for messages).
    """

    fun: Callable[[float, np.ndarray], Any]
    terminal: int
    direction: float
    index: int

    def __call__(self, t: float, y: np.ndarray) -> float:
        value = self.fun(t, y)
        try:
            number = float(np.asarray(value, dtype=float).item())
        except (TypeError, ValueError):
            raise TypeError(
                f"event {self.index} must return a real number; got {value!r:.60}."
            ) from None
        if math.isnan(number):
            raise ValueError(f"event {self.index} returned NaN at t = {t:.6g}.")
        return number


def _terminal(index: int, value: Any) -> int:
    if value is None or isinstance(value, bool):  # SciPy reads None as "not terminal"
        return int(bool(value))
    if isinstance(value, Integral) and value >= 0:
        return int(value)
    raise ValueError(
        f"The `terminal` attribute of event {index} must be a bool or a non-negative integer "
        f"(stop at that occurrence); got {value!r:.60}."
    )


def _direction(index: int, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or math.isnan(value):
        raise ValueError(
            f"`direction` of event {index} must be a real number (0, positive or negative); "
            f"got {value!r:.60}."
        )
    return float(np.sign(value))


def prepare_events(events: Any, args: tuple | None = None) -> tuple[Event, ...] | None:
    """Validate ``events`` (a callable or a sequence of callables) and wrap each one.

    Parameters
    ----------
    events : callable, sequence of callables, or None
        Event functions ``g(t, y)`` with optional attributes ``terminal`` and ``direction``.
    args : tuple, optional
        Extra arguments: each event is called as ``g(t, y, *args)``.

    Returns
    -------
    tuple of Event, or None
        None when ``events`` is None or empty.

    Raises
    ------
    TypeError
        If an event is not callable.
    ValueError
        If ``terminal`` or ``direction`` has a value SciPy would not accept.

    Taught in Chapter 3.
    """
    if events is None:
        return None
    items = [events] if callable(events) else events
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise TypeError(
            f"`events` must be a callable or a sequence of callables; got {events!r:.60}."
        )
    prepared = []
    for index, fun in enumerate(items):
        if not callable(fun):
            raise TypeError(
                f"`events[{index}]` must be callable; got {type(fun).__name__} {fun!r:.60}."
            )
        call = fun if not args else (lambda t, y, fun=fun: fun(t, y, *args))
        terminal = _terminal(index, getattr(fun, "terminal", False))
        direction = _direction(index, getattr(fun, "direction", 0.0))
        prepared.append(Event(call, terminal, direction, index))
    return tuple(prepared) or None


@dataclass
class EventTracker:
    """Watch the events along an integration and locate their zeros step by step.

    Parameters
    ----------
    events : tuple of Event
        From :func:`prepare_events`.
    t0 : float
        Initial time.
    y0 : ndarray
        Initial state.
    direction : float
        +1 for forward integration, -1 for backward.

    Attributes
    ----------
    t_events, y_events : list of list
        For each event, the times and states of its occurrences so far.
    """

    events: tuple[Event, ...]
    t0: float
    y0: np.ndarray
    direction: float
    t_events: list[list[float]] = field(init=False)
    y_events: list[list[np.ndarray]] = field(init=False)

    def __post_init__(self) -> None:
        self.values = [event(self.t0, self.y0) for event in self.events]
        self.t_events = [[] for _ in self.events]
        self.y_events = [[] for _ in self.events]
        self.t_old = self.t0

    def _active(self, new_values: list[float]) -> list[int]:
        """Indices of events whose sign changed over the step in the requested direction."""
        active = []
        for i, (event, g, g_new) in enumerate(
            zip(self.events, self.values, new_values, strict=True)
        ):
            up, down = g <= 0 <= g_new, g >= 0 >= g_new
            if (up and event.direction > 0) or (down and event.direction < 0):
                active.append(i)
            elif (up or down) and event.direction == 0:
                active.append(i)
        return active

    def _root(self, event: Event, t_old: float, t_new: float, interpolant: Callable) -> float:
        def g(t: float) -> float:
            return event(t, np.asarray(interpolant(t)))

        g_old, g_new = g(t_old), g(t_new)
        if g_old == 0:
            return t_old
        if g_new == 0 or np.sign(g_old) == np.sign(g_new):
            return t_new
        return brentq(g, t_old, t_new, xtol=ROOT_TOL, rtol=ROOT_TOL)

    def step(
        self, t_new: float, y_new: np.ndarray, interpolant: Callable[[float], Any]
    ) -> tuple[float, np.ndarray] | None:
        """Record the events of the step that ended at ``(t_new, y_new)``.

        Returns ``(t, y)`` of the terminal occurrence that ends the integration, or
        None.  Occurrences after a terminal one are not recorded.
        """
        new_values = [event(t_new, y_new) for event in self.events]
        hits = [
            (self._root(self.events[i], self.t_old, t_new, interpolant), i)
            for i in self._active(new_values)
        ]
        hits.sort(key=lambda hit: self.direction * hit[0])
        stop = None
        for t_root, i in hits:
            y_root = np.asarray(interpolant(t_root)) if t_root != t_new else y_new
            self.t_events[i].append(t_root)
            self.y_events[i].append(y_root)
            terminal = self.events[i].terminal
            if terminal and len(self.t_events[i]) >= terminal:
                stop = (t_root, y_root)
                break
        self.values, self.t_old = new_values, t_new
        return stop

    def arrays(self, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """``t_events`` as 1-D arrays and ``y_events`` as arrays of shape (k, n), as SciPy.

        An event that never occurred has ``y_events`` of shape (0,), SciPy's
        ``np.asarray([])``, so code written against SciPy sees the same shapes.
        """
        t_events = [np.array(ts, dtype=float) for ts in self.t_events]
        y_events = [
            np.array(ys, dtype=float).reshape(len(ys), n) if ys else np.empty(0)
            for ys in self.y_events
        ]
        return t_events, y_events
