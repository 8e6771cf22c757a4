"""Generic answer checks: numbers and arrays, gradients against finite differences.

See :mod:`odecourse.checks` for how the checks report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from odecourse._validation import (
    check_callable,
    check_finite_array,
    check_positive,
    check_real,
)

from ._verdict import (
    _answer,
    _as_array,
    _failure,
    _passed,
    _relative_error,
    _student_code,
    _to_numpy,
)

__all__ = ["check_close", "check_gradient"]


def _finite_difference_gradient(fn: Callable, x: np.ndarray, eps: float, hint: str) -> np.ndarray:
    gradient = np.empty_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = eps
        with _student_code("your function", hint):
            plus, minus = float(_to_numpy(fn(x + step))), float(_to_numpy(fn(x - step)))
        if not (np.isfinite(plus) and np.isfinite(minus)):
            raise _failure(
                f"your function returned {plus} and {minus} at x +/- eps in component "
                f"{index}; a gradient can only be checked where the function is finite.",
                "make the function return a finite number near x (look for log(0), 0/0 or "
                "an overflow), or check the gradient at another point.",
            )
        gradient[index] = (plus - minus) / (2 * eps)
    return gradient


def _relation(value: np.ndarray, expected: np.ndarray, close: Callable) -> str:
    """A known way in which ``value`` is related to ``expected``, as a sentence, or ''."""
    if value.shape == expected.shape and close(value, -expected) and np.any(expected != 0):
        return " It is the negative of the right answer: a sign error."
    if value.ndim == 2 and value.shape == expected.T.shape and close(value, expected.T):
        return " It is the transpose of the right answer."
    nonzero = np.abs(expected) > 1e-12 * max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    if value.shape == expected.shape and np.any(nonzero):
        ratio = value[nonzero] / expected[nonzero]
        factor = float(np.median(ratio))
        if factor not in (0.0, 1.0) and close(value, factor * expected):
            return f" It is {factor:.4g} times the right answer: a factor is wrong or missing."
    if value.shape == expected.shape and value.size > 1:
        wrong = ~np.isclose(value, expected, rtol=1e-7, atol=1e-12)
        if 0 < wrong.sum() < value.size:
            first = tuple(int(i) for i in np.argwhere(wrong)[0])
            index = first[0] if len(first) == 1 else first
            return (
                f" {int(wrong.sum())} of {value.size} entries are wrong, the first at index "
                f"{index}: {value[first]:.6g} instead of {expected[first]:.6g}."
            )
    return ""


def _worst_index(value: np.ndarray, expected: np.ndarray) -> tuple[int, ...]:
    flat = int(np.argmax(np.abs(value - expected)))
    return tuple(int(i) for i in np.unravel_index(flat, value.shape))


def check_gradient(
    fn: Callable[[np.ndarray], Any],
    x: Any,
    grad: Any,
    *,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    hint: str | None = None,
) -> None:
    r"""Check a gradient against central finite differences.

    .. math:: \frac{\partial f}{\partial x_i} \approx \frac{f(x + \varepsilon e_i)
              - f(x - \varepsilon e_i)}{2 \varepsilon}

    Parameters
    ----------
    fn : callable
        A scalar function of a float64 array of the shape of ``x``.
    x : array_like
        Where to compare.
    grad : array_like or callable
        The claimed gradient at ``x``, or a function ``grad(x)`` returning it.
    eps : float
        Finite-difference step.
    rtol : float
        Accepted error, relative to ``max(1, max |finite-difference gradient|)``.
    hint : str, optional
        Replaces the default hint.

    Examples
    --------
    >>> check_gradient(lambda x: np.sum(x**2), np.array([1.0, 2.0]), lambda x: 2 * x)
    ✓ the gradient agrees with central finite differences (tolerance 1e-05).

    Taught in Chapter 5 and Chapter 7.
    """
    check_callable("fn", fn)
    x = check_finite_array("x", _to_numpy(x))
    eps, rtol = check_positive("eps", eps), check_positive("rtol", rtol)
    hint = hint or (
        "apply the chain rule one factor at a time, and transpose each Jacobian when you "
        "multiply it onto the incoming gradient."
    )
    if callable(grad):
        with _student_code("your gradient function", hint):
            grad = grad(x.copy())
    grad = _as_array(grad, "the gradient", hint)
    if grad.shape != x.shape:
        raise _failure(f"the gradient has shape {grad.shape}; x has {x.shape}.", hint)
    reference = _finite_difference_gradient(fn, x, eps, hint)
    error = _relative_error(grad, reference)
    if not error <= rtol:  # also fails on NaN
        relation = _relation(grad, reference, lambda a, b: _relative_error(a, b) <= max(rtol, 1e-4))
        raise _failure(
            f"the gradient differs from finite differences by {error:.1e} (relative); "
            f"largest mismatch in component {_worst_index(grad, reference)}.{relation}",
            hint,
        )
    _passed(f"the gradient agrees with central finite differences (tolerance {rtol:.0e}).")


def check_close(
    value: Any,
    expected: Any,
    *,
    rtol: float = 1e-7,
    atol: float = 0.0,
    name: str = "the value",
    hint: str | None = None,
) -> None:
    """Check that a number or array is close to the expected one.

    Parameters
    ----------
    value : array_like or callable
        The reader's answer, or a function of no arguments returning it.
    expected : array_like
        The correct answer.
    rtol, atol : float
        Passed to :func:`numpy.allclose`.
    name : str
        What the value is, for the verdict.
    hint : str, optional
        What to print when it is wrong.

    Examples
    --------
    >>> check_close(lambda: 0.1 + 0.2, 0.3, name="the sum")
    ✓ the sum checks out.

    Taught in every chapter.
    """
    expected = check_finite_array("expected", _to_numpy(expected))
    rtol = check_real("rtol", rtol)
    atol = check_real("atol", atol)
    if rtol < 0 or atol < 0 or rtol == atol == 0:
        raise ValueError(f"`rtol` and `atol` must be >= 0, not both 0; got {rtol}, {atol}.")
    hint = hint or (
        f"recompute {name} step by step and compare each step with the formula in the "
        "exercise: signs, constant factors, transposes, and special cases such as zero."
    )
    value = _as_array(_answer(value, f"computing {name}", hint), name, hint)
    if value.shape != expected.shape:
        raise _failure(f"{name} has shape {value.shape}; expected {expected.shape}.", hint)
    if not np.allclose(value, expected, rtol=rtol, atol=atol):
        relation = _relation(
            value, expected, lambda a, b: np.allclose(a, b, rtol=max(rtol, 1e-9), atol=atol)
        )
        raise _failure(
            f"{name} came out as {np.round(value, 6)}, which is not right.{relation}", hint
        )
    _passed(f"{name} checks out.")
