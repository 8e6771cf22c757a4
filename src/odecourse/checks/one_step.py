"""Answer checks for one-step methods (Chapters 2 and 3): order, tableaus, stability.

See :mod:`odecourse.checks` for how the checks report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from odecourse._validation import (
    check_callable,
    check_int,
)
from odecourse.convergence import observed_order
from odecourse.order_conditions import algebraic_order
from odecourse.runge_kutta import ButcherTableau, resolve_tableau, rk_step

from ._verdict import (
    ORDER_TOLERANCE,
    _answer,
    _as_array,
    _failure,
    _passed,
    _student_code,
    _to_numpy,
)

__all__ = ["check_stability_function", "check_step_order", "check_tableau"]


def _order_test_problem() -> tuple[Callable, tuple[float, float], np.ndarray, Callable]:
    """A non-autonomous, nonlinear problem with a closed-form solution.

    :math:`y_1' = \\cos(t)\\, y_1^2`, :math:`y_2' = -t y_2`, :math:`y(0) = (1/2, 1)`, with
    solution :math:`y_1 = 1/(2 - \\sin t)`, :math:`y_2 = e^{-t^2/2}`.
    """

    def f(t: float, y: np.ndarray) -> np.ndarray:
        return np.array([np.cos(t) * y[0] ** 2, -t * y[1]])

    def exact(t: float) -> np.ndarray:
        return np.array([1 / (2 - np.sin(t)), np.exp(-(t**2) / 2)])

    return f, (0.0, 2.0), np.array([0.5, 1.0]), exact


def _global_error(step: Callable, n: int, hint: str) -> float:
    f, (t0, t1), y0, exact = _order_test_problem()
    h = (t1 - t0) / n
    y = y0.copy()
    for i in range(n):
        with _student_code("your step function", hint):
            y = step(f, t0 + i * h, y, h)
        y = _as_array(y, "step(f, t, y, h)", hint)
        if y.shape != y0.shape:
            raise _failure(f"step returned shape {y.shape}; the state has {y0.shape}.", hint)
    return float(np.max(np.abs(y - exact(t1))))


def check_step_order(
    step: Callable[[Callable, float, np.ndarray, float], Any],
    expected_order: int,
    *,
    method: str | ButcherTableau | None = None,
    n_steps: Sequence[int] = (16, 32, 64, 128),
    hint: str | None = None,
) -> None:
    r"""Check that a one-step method converges with the expected order.

    ``step`` is run with :math:`h = 2/N` on :math:`y_1' = \cos(t)\,y_1^2`,
    :math:`y_2' = -t y_2`, :math:`y(0) = (1/2, 1)` on :math:`[0, 2]`, whose solution is
    :math:`(1/(2 - \sin t), e^{-t^2/2})`; the slope of the log-log plot of the
    final error against :math:`h` must be within :data:`ORDER_TOLERANCE` of
    ``expected_order``.

    Parameters
    ----------
    step : callable
        ``step(f, t, y, h) -> y_next`` for a state ``y`` of shape ``(2,)``.
    expected_order : int
        The order the method should have, at least 1.
    method : str or ButcherTableau, optional
        The Runge-Kutta method ``step`` should implement (a tableau, or a name
        of :data:`odecourse.runge_kutta.TABLEAUS`).  Then one step from each
        of three states must also agree with that method's step to ``1e-8``
        (relative), so that another method of the same order does not pass.
    n_steps : sequence of int
        Step counts ``N``; at least two, each at least 1.
    hint : str, optional
        Replaces the default hint.

    Examples
    --------
    >>> def euler_step(f, t, y, h):
    ...     return y + h * f(t, y)
    >>> check_step_order(euler_step, 1)
    ✓ observed order 1.0..., as expected (1).

    Taught in Chapter 2.
    """
    check_callable("step", step)
    expected_order = check_int("expected_order", expected_order, minimum=1)
    counts = [check_int("n_steps", n, minimum=1) for n in n_steps]
    if len(set(counts)) < 2:
        raise ValueError(f"`n_steps` must hold at least two distinct counts; got {n_steps!r}.")
    hint = hint or (
        "compare your stages with the method's formula term by term: the time of each "
        "stage (t + c_i h), the state it is evaluated at, and the weights of the update."
    )
    if method is not None:
        method = resolve_tableau(method, "method")
    errors = np.array([_global_error(step, n, hint) for n in counts])
    if not np.all(np.isfinite(errors)):
        raise _failure("the final error is not finite: the method blew up.", hint)
    if np.any(errors <= 1e-14):
        raise _failure("the errors reached rounding level; the order cannot be measured.", hint)
    order = observed_order(2.0 / np.array(counts), errors)
    if not abs(order - expected_order) <= ORDER_TOLERANCE:
        raise _failure(
            f"the observed order is {order:.2f}, but the method should have order "
            f"{expected_order}.",
            hint,
        )
    if method is not None:
        _compare_with_method(step, method, hint)
    _passed(f"observed order {order:.2f}, as expected ({expected_order}).")


def _compare_with_method(step: Callable, method: ButcherTableau, hint: str) -> None:
    """One step of ``step`` must equal one step of ``method`` from a few states."""
    from odecourse.implicit import implicit_rk_step

    f, _, _, _ = _order_test_problem()
    for t, y, h in ((0.3, (0.7, 1.2), 0.25), (1.1, (-0.4, 0.5), 0.1), (0.0, (0.5, 1.0), 0.5)):
        y = np.array(y)
        with _student_code("your step function", hint):
            value = _as_array(step(f, t, y.copy(), h), "step(f, t, y, h)", hint)
        if method.explicit:
            expected = rk_step(f, t, y.copy(), h, method).y
        else:
            expected = implicit_rk_step(f, t, y.copy(), h, method, tol=1e-13, max_iter=50)
        if value.shape != expected.shape or not np.allclose(value, expected, rtol=1e-8, atol=0):
            raise _failure(
                f"the order is right, but one step from t = {t}, y = {y.tolist()} with h = {h} "
                f"gives {np.round(value, 8)}, and {method.name} gives {np.round(expected, 8)}: "
                f"this is another method of the same order.",
                hint,
            )


def _as_complex(value: Any, what: str, hint: str) -> complex:
    """``value`` as a finite complex number, or :class:`CheckFailed` saying why not."""
    try:
        number = complex(np.asarray(_to_numpy(value)).item())
    except (TypeError, ValueError) as exc:
        raise _failure(f"{what} is not a number (got {value!r:.60}).", hint) from exc
    if not np.isfinite(number):
        raise _failure(f"{what} = {number} is not finite.", hint)
    return number


def _tableau_arrays(tableau: Any, hint: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if isinstance(tableau, ButcherTableau):
        return tableau.A, tableau.b, tableau.c
    try:
        A, b, c = tableau
    except (TypeError, ValueError) as exc:
        raise TypeError(
            "`tableau` must be a ButcherTableau, a triple (A, b, c), or a function of no "
            f"arguments returning one; got {type(tableau).__name__}."
        ) from exc
    A, b, c = (_as_array(x, name, hint) for x, name in ((A, "A"), (b, "b"), (c, "c")))
    s = b.size
    if A.shape != (s, s) or b.shape != (s,) or c.shape != (s,):
        raise _failure(
            f"A, b, c have shapes {A.shape}, {b.shape}, {c.shape}; an s-stage tableau "
            "needs (s, s), (s,), (s,).",
            hint,
        )
    return A, b, c


def check_tableau(
    tableau: Any, expected_order: int | None = None, *, hint: str | None = None
) -> None:
    r"""Check a Butcher tableau: consistency, then the order conditions.

    The rows of :math:`A` must sum to :math:`c`, the weights :math:`b` to one,
    and (if ``expected_order`` is given) every order condition
    :math:`\sum_i b_i \Phi_i(\tau) = 1/\gamma(\tau)` for trees with at most
    ``expected_order`` nodes must hold, as counted by
    :func:`odecourse.runge_kutta.algebraic_order`.

    Parameters
    ----------
    tableau : ButcherTableau, (A, b, c), or callable
        The tableau, or a function of no arguments returning it.
    expected_order : int, optional
        The order the method should have.
    hint : str, optional
        Replaces the default hint.

    Examples
    --------
    >>> check_tableau(([[0, 0], [1, 0]], [0.5, 0.5], [0, 1]), expected_order=2)
    ✓ consistent tableau with 2 stages and order 2, as expected.

    Taught in Chapter 2.
    """
    if expected_order is not None:
        expected_order = check_int("expected_order", expected_order, minimum=1)
    hint = hint or "write down the conditions of the order you want and solve them one by one."
    A, b, c = _tableau_arrays(_answer(tableau, "your tableau function", hint), hint)
    if not np.allclose(A.sum(axis=1), c, rtol=0, atol=1e-12):
        raise _failure(
            f"the rows of A sum to {np.round(A.sum(axis=1), 6)}, but c = {np.round(c, 6)}.",
            "each node c_i is the sum of row i of A, so that every stage is consistent.",
        )
    if abs(b.sum() - 1) > 1e-12:
        raise _failure(
            f"the weights b sum to {b.sum():.6g}.",
            "the weights must sum to one, or the method is not even consistent (order 1).",
        )
    order = algebraic_order(ButcherTableau("your tableau", A, b, c, order=1), max_order=6)
    if expected_order is not None and order < expected_order:
        bushy = float(b @ c**order)
        raise _failure(
            f"the tableau satisfies the order conditions only up to order {order}, not "
            f"{expected_order} (for example sum_i b_i c_i^{order} = {bushy:.6g}, and order "
            f"{order + 1} needs {1 / (order + 1):.6g}).",
            hint,
        )
    qualifier = "as expected" if expected_order is not None else "no order was asked for"
    _passed(f"consistent tableau with {A.shape[0]} stages and order {order}, {qualifier}.")


def check_stability_function(
    R: Callable[[complex], Any], reference: Any, *, hint: str | None = None
) -> None:
    r"""Check a stability function :math:`R(z)` against a tableau's (or a reference function).

    ``R`` is called with complex scalars :math:`z = r e^{i\theta}` in the left
    half-plane (:math:`r \in \{0.1, 0.5, 1, 2, 3\}`, 13 angles) and compared
    with :math:`R(z) = 1 + z b^T (I - zA)^{-1}\mathbf{1}` of ``reference``.

    Parameters
    ----------
    R : callable
        The reader's ``R(z)``; needs to accept a complex scalar.
    reference : ButcherTableau or callable
        The method, or the correct stability function.
    hint : str, optional
        Replaces the default hint.

    Examples
    --------
    >>> from odecourse.runge_kutta import get_tableau
    >>> check_stability_function(lambda z: 1 + z + z**2 / 2, get_tableau("heun"))
    ✓ R(z) agrees with the reference at 65 points of the left half-plane.

    Taught in Chapter 3.
    """
    from odecourse.stability import stability_function

    check_callable("R", R)
    if isinstance(reference, ButcherTableau):
        reference = stability_function(reference)
    elif not callable(reference):
        raise TypeError(
            "`reference` must be a ButcherTableau or a callable R(z); "
            f"got {type(reference).__name__}."
        )
    hint = hint or (
        "apply one step to y' = lambda y and write y_1 = R(z) y_0 with z = h lambda; an "
        "explicit s-stage method gives a polynomial of degree s."
    )
    points = [
        r * np.exp(1j * a) for r in (0.1, 0.5, 1, 2, 3) for a in np.linspace(0.5, 1.5, 13) * np.pi
    ]
    for z in points:
        with _student_code("your R", hint):
            value = _as_complex(R(complex(z)), f"R({z:.3f})", hint)
        expected = _as_complex(
            reference(z), f"the reference R({z:.3f})", "pass a correct reference."
        )
        if not abs(value - expected) <= 1e-8 * max(1.0, abs(expected)):
            raise _failure(
                f"at z = {z:.3f}, R(z) = {value:.6f} but it should be {expected:.6f}.", hint
            )
    _passed(f"R(z) agrees with the reference at {len(points)} points of the left half-plane.")
