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

__all__ = ["SUCCESS_MESSAGE", "Counted", "IntegrationResult", "Recorder", "too_many_steps"]

SUCCESS_MESSAGE = "The solver successfully reached the end of the integration interval."


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
        0 if the end of the interval was reached, -1 if the integration failed.
    message : str
        Human-readable reason for the status.
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
    """Collect outputs at step ends, or at requested times by dense output."""

    t0: float
    y0: Any
    t_eval: Sequence[float] | None
    direction: float
    dense: bool
    t: list[float] = field(default_factory=list)
    y: list[Any] = field(default_factory=list)
    interpolants: list[Any] = field(default_factory=list)
    _next: int = 0

    def __post_init__(self) -> None:
        if self.t_eval is None:
            self.t.append(self.t0)
            self.y.append(self.y0)

    def record(self, t_new: float, y_new: Any, interpolant: Callable[[float], Any]) -> None:
        if self.dense:
            self.interpolants.append(interpolant)
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
        return IntegrationResult(self.t, self.y, dense, **counters)


def too_many_steps(max_steps: int, t: float) -> str:
    return (
        f"The maximum number of steps ({max_steps}) was reached at t = {t:.6g}; "
        "raise `max_steps`, loosen the tolerances, or use a larger `h`."
    )
