"""The verdict machinery shared by every answer check: passing, failing, catching stubs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from odecourse.multistep import LinearMultistepMethod
from odecourse.runge_kutta import ButcherTableau

__all__ = ["ORDER_TOLERANCE", "CheckFailed"]

#: Largest accepted distance between an observed and the expected order of convergence.
ORDER_TOLERANCE = 0.3


class CheckFailed(AssertionError):
    """A check found the reader's answer wrong (or not written yet).

    Attributes
    ----------
    reason : str
        What the check observed.
    hint : str
        Where to look next.
    """

    def __init__(self, reason: str, hint: str) -> None:
        self.reason = reason
        self.hint = hint
        super().__init__(f"Not yet: {reason} Hint: {hint}")


def _passed(message: str) -> None:
    """Print the passing verdict, once :func:`~odecourse.checks.verify` finds the checks intact."""
    from ._integrity import verify

    verify()
    print(f"✓ {message}")


def _failure(reason: str, hint: str) -> CheckFailed:
    """Print the failing verdict and return the exception for the caller to raise."""
    print(f"✗ Not yet: {reason} Hint: {hint}")
    return CheckFailed(reason, hint)


@contextmanager
def _student_code(what: str, hint: str) -> Iterator[None]:
    """Run the reader's code; turn a stub or a crash into :class:`CheckFailed`."""
    try:
        yield
    except CheckFailed:
        raise
    except NotImplementedError as exc:
        detail = f" ({exc})" if str(exc) else ""
        raise _failure(f"{what} is not implemented yet{detail}.", hint) from exc
    except Exception as exc:
        raise _failure(f"{what} raised {type(exc).__name__}: {exc}.", hint) from exc


def _answer(value: Any, what: str, hint: str) -> Any:
    """``value()`` for a function of no arguments (run under the guard), else ``value``."""
    if callable(value) and not isinstance(value, ButcherTableau | LinearMultistepMethod):
        with _student_code(what, hint):
            return value()
    return value


def _as_array(value: Any, what: str, hint: str) -> np.ndarray:
    """``value`` as a float64 array, or :class:`CheckFailed` if it is not numeric or finite."""
    try:
        array = np.asarray(_to_numpy(value), dtype=float)
    except (TypeError, ValueError) as exc:
        raise _failure(f"{what} is not an array of numbers (got {value!r:.60}).", hint) from exc
    if not np.all(np.isfinite(array)):
        raise _failure(f"{what} contains inf or nan.", hint)
    return array


def _to_numpy(value: Any) -> Any:
    """Detach a torch tensor to NumPy; leave anything else alone (torch is not required)."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().double().numpy()
    return value


def _relative_error(value: np.ndarray, expected: np.ndarray) -> float:
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    return float(np.max(np.abs(value - expected), initial=0.0)) / scale
