"""torchdiffeq's step callbacks for :func:`~odecourse.odeint.odeint` and ``odeint_adjoint``.

A vector field ``func`` may carry methods that the solver calls at every step:

- ``callback_step(t0, y0, dt)`` before each attempted step, accepted or rejected
  (adaptive and fixed-step methods);
- ``callback_accept_step(t0, y0, dt)`` and ``callback_reject_step(t0, y0, dt)``
  after each attempt of an adaptive method, whichever applies.  A fixed-step
  method accepts every step without an error estimate, so it never calls them,
  and warns when ``func`` has them (as torchdiffeq does);
- the same three names with the suffix ``_adjoint``, called by
  ``odeint_adjoint`` during the backward solves.

``t0`` and ``dt`` are 0-d float64 tensors (the core's own times, exactly) on the
device of ``y0``: the start of the attempt and its signed length, so that
``t0 + dt`` is the end of the attempt also when the integration runs backwards
in time.  ``y0`` is the state at ``t0``, shaped like the state of the solve (a
tuple for a tuple state).  The front end looks the callbacks up once per call
(:func:`find_callbacks`); without any, the core gets None and runs its plain loop.

Private helper of :mod:`odecourse.odeint` and :mod:`odecourse.adjoint`, the torch
front end of Chapter 7.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from odecourse._validation import check_callable
from odecourse.adaptive import Observer

__all__ = [
    "ADJOINT_CALLBACK_NAMES",
    "CALLBACK_NAMES",
    "StepCallbacks",
    "find_callbacks",
    "lookup",
    "step_callbacks",
]

#: The callbacks of the forward solve, in the order (step, accept, reject).
CALLBACK_NAMES = ("callback_step", "callback_accept_step", "callback_reject_step")
#: The callbacks of ``odeint_adjoint``'s backward solves.
ADJOINT_CALLBACK_NAMES = tuple(f"{name}_adjoint" for name in CALLBACK_NAMES)

Callback = Callable[[Any, Any, Any], Any]


class StepCallbacks:
    """The user's callbacks, as the two hooks of the integrator core.

    :meth:`before` is the core's ``before_step(t, y, h)`` (called before every
    attempted step); :meth:`after` is an ``observer(t, h, err, accepted, y_new)``
    of :func:`~odecourse.adaptive.integrate_adaptive` and reuses the ``y`` that
    :meth:`before` kept for the same attempt.
    """

    def __init__(
        self,
        step: Callback | None,
        accept: Callback | None,
        reject: Callback | None,
        unflatten: Callable[[Any], Any] | None,
        device: torch.device,
    ) -> None:
        self.step, self.accept, self.reject = step, accept, reject
        self.unflatten, self.device = unflatten, device
        self.y: Any = None

    def _arguments(self, t: float, y: Any, h: float) -> tuple[Any, Any, Any]:
        time = torch.full((), t, dtype=torch.float64, device=self.device)
        dt = torch.full((), h, dtype=torch.float64, device=self.device)
        return time, y if self.unflatten is None else self.unflatten(y), dt

    def before(self, t: float, y: Any, h: float) -> None:
        """Before the attempt from ``t`` with state ``y`` and signed step ``h``."""
        self.y = y
        if self.step is not None:
            self.step(*self._arguments(t, y, h))

    def after(self, t: float, h: float, err: float, accepted: bool, y_new: Any) -> None:
        """After an adaptive attempt: ``callback_accept_step`` or ``callback_reject_step``."""
        callback = self.accept if accepted else self.reject
        if callback is not None:
            callback(*self._arguments(t, self.y, h))

    def observer(self, other: Observer | None = None) -> Observer | None:
        """The adaptive core's observer: :meth:`after`, then ``other`` (another watcher)."""
        if self.accept is None and self.reject is None:
            return other
        if other is None:
            return self.after

        def both(t: float, h: float, err: float, accepted: bool, y_new: Any) -> None:
            self.after(t, h, err, accepted, y_new)
            other(t, h, err, accepted, y_new)

        return both


def lookup(func: Any, name: str) -> Any:
    """``getattr(func, name, None)``, fast for an ``nn.Module`` without the attribute.

    ``nn.Module.__getattr__`` builds an error message for every missing attribute
    (microseconds, three times per solve); a module that does not override it can only
    hold ``name`` in its ``__dict__``, its class or its submodules (a callable
    ``nn.Module`` as callback), which are checked first.
    """
    if (
        isinstance(func, nn.Module)
        and type(func).__getattr__ is nn.Module.__getattr__
        and name not in func.__dict__
        and name not in func._modules
        and not hasattr(type(func), name)
    ):
        return None
    return getattr(func, name, None)


def find_callbacks(func: Any, method: str, adaptive: bool, *, adjoint: bool = False) -> dict | None:
    """The callbacks ``func`` carries, keyed by their forward names; None if it has none.

    With ``adjoint`` the ``_adjoint`` names are looked up (and returned under the
    forward names).  For a fixed-step ``method`` the accept and reject callbacks are
    dropped with a warning.  A callback attribute that is not callable is a
    ``TypeError`` naming it.
    """
    attributes = ADJOINT_CALLBACK_NAMES if adjoint else CALLBACK_NAMES
    callbacks = [lookup(func, name) for name in attributes]
    if callbacks == [None, None, None]:  # the default: nothing more to do
        return None
    names = dict(zip(CALLBACK_NAMES, attributes, strict=True))
    found = {
        key: check_callable(f"func.{name}", callback)
        for (key, name), callback in zip(names.items(), callbacks, strict=True)
        if callback is not None
    }
    if not adaptive:
        unused = [names[key] for key in CALLBACK_NAMES[1:] if key in found]
        if unused:
            pronoun = "them" if len(unused) > 1 else "it"
            warnings.warn(
                f"`func` has {' and '.join(unused)}, but the fixed-step method {method!r} "
                f"accepts every step without an error estimate, so it never calls {pronoun} "
                f"(it calls {names[CALLBACK_NAMES[0]]} only).",
                UserWarning,
                stacklevel=_user_stacklevel(),
            )
            found = {k: v for k, v in found.items() if k == CALLBACK_NAMES[0]}
    return found or None


#: Frames in these folders are ours or torch's (``odeint_adjoint`` solves inside autograd).
_INTERNAL = tuple(
    os.path.dirname(os.path.abspath(path)) + os.sep for path in (__file__, torch.__file__)
)


def _user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning of the caller point at the user's code.

    The warning may come from ``odeint`` called directly, through the callable module,
    from ``odeint_adjoint``'s autograd function or from the event mode, so the depth
    varies: count the frames up to the first one outside odecourse and torch.
    """
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_INTERNAL):
        frame, level = frame.f_back, level + 1
    return level


def step_callbacks(found: dict | None, layout: Any, device: torch.device) -> StepCallbacks | None:
    """The core's hooks for the callbacks :func:`find_callbacks` returned (None for none).

    ``layout`` (a :class:`~odecourse._torch_args.TupleLayout`, or None) unpacks the
    core's flat state into the user's tuple.
    """
    if found is None:
        return None
    return StepCallbacks(
        found.get(CALLBACK_NAMES[0]),
        found.get(CALLBACK_NAMES[1]),
        found.get(CALLBACK_NAMES[2]),
        None if layout is None else layout.unflatten,
        device,
    )
