"""Answer checks for Chapter 1: first-order systems and Picard iteration.

See :mod:`odecourse.checks` for how the checks report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from odecourse._validation import (
    check_callable,
    check_int,
    check_positive,
    check_t_span,
)

from ._verdict import (
    _as_array,
    _failure,
    _passed,
    _relative_error,
    _student_code,
)

__all__ = ["check_first_order_system", "check_picard_step"]


def check_first_order_system(
    f: Callable[[float, np.ndarray], Any],
    solution: Callable[[float], Any],
    *,
    t_span: tuple[float, float] = (0.0, 5.0),
    n_points: int = 25,
    rtol: float = 1e-6,
    hint: str | None = None,
) -> None:
    r"""Check that a known solution satisfies :math:`y' = f(t, y)`.

    The derivative of ``solution`` is taken by central differences at
    ``n_points`` times in ``t_span`` and compared with ``f(t, solution(t))``.

    Parameters
    ----------
    f : callable
        The reader's right-hand side ``f(t, y)``, returning shape ``(n,)``.
    solution : callable
        A known solution ``solution(t) -> (n,)`` of the equation ``f`` should encode.
    t_span : (float, float)
        Where to sample.
    n_points : int
        Number of sample times, at least 2.
    rtol : float
        Accepted relative error.
    hint : str, optional
        Replaces the default hint.

    Raises
    ------
    CheckFailed
        If ``f`` disagrees with the derivative of the solution, or does not run.

    Examples
    --------
    The forced oscillator :math:`u'' + u = \cos 2t` has the solution
    :math:`u = \cos t - \tfrac13 \cos 2t`; with :math:`y = (u, u')`:

    >>> def solution(t):
    ...     return np.array([np.cos(t) - np.cos(2 * t) / 3, -np.sin(t) + 2 * np.sin(2 * t) / 3])
    >>> check_first_order_system(lambda t, y: np.array([y[1], np.cos(2 * t) - y[0]]), solution)
    ✓ y' = f(t, y) holds along the known solution at 25 times.

    Taught in Chapter 1.
    """
    check_callable("f", f)
    check_callable("solution", solution)
    t0, t1 = check_t_span("t_span", t_span)
    n_points = check_int("n_points", n_points, minimum=2)
    rtol = check_positive("rtol", rtol)
    hint = hint or (
        "introduce one unknown per derivative below the highest, y = (u, u', ...); "
        "f returns their derivatives, the last one solved from the equation."
    )
    bad_solution = "the known solution must be finite on `t_span`; check it, or the interval."
    for t in np.linspace(t0, t1, n_points):
        y = _as_array(solution(t), f"solution({t:.3g})", bad_solution)
        dt = 1e-5 * max(1.0, abs(t))
        after = _as_array(solution(t + dt), f"solution({t + dt:.3g})", bad_solution)
        before = _as_array(solution(t - dt), f"solution({t - dt:.3g})", bad_solution)
        dydt = (after - before) / (2 * dt)
        with _student_code("your f", hint):
            value = f(float(t), y.copy())
        value = _as_array(value, f"f({t:.3g}, y)", hint)
        if value.shape != y.shape:
            raise _failure(f"f(t, y) has shape {value.shape}; the state has {y.shape}.", hint)
        error = _relative_error(value, dydt)
        if not error <= rtol:  # also fails on NaN
            raise _failure(
                f"at t = {t:.3g}, f(t, y) = {np.round(value, 4)} but y'(t) = {np.round(dydt, 4)}.",
                hint,
            )
    _passed(f"y' = f(t, y) holds along the known solution at {n_points} times.")


def check_picard_step(picard_step: Callable[..., Any], *, hint: str | None = None) -> None:
    r"""Check one Picard iteration ``picard_step(f, t, phi, y0) -> phi_next`` on a grid.

    Three iterations for :math:`y' = 2ty`, :math:`y(0) = 1` on :math:`[0, 1]`
    (1001 points) must give :math:`1 + t^2 + t^4/2 + t^6/6` to within the
    trapezoid rule's accuracy (``1e-5``); and three iterations for
    :math:`y(1/2) = 2` on :math:`[1/2, 3/2]` must give
    :math:`2\,(1 + s + s^2/2 + s^3/6)` with :math:`s = t^2 - 1/4` (to ``5e-5``), so
    that an answer which takes :math:`y_0 = 1` or :math:`t_0 = 0` for granted fails.

    .. math:: \phi_{k+1}(t) = y_0 + \int_{t_0}^{t} f(s, \phi_k(s))\, \dd s

    Parameters
    ----------
    picard_step : callable
        ``picard_step(f, t, phi, y0)`` with ``t`` and ``phi`` of shape ``(m,)``.
    hint : str, optional
        Replaces the default hint.

    Examples
    --------
    >>> from scipy.integrate import cumulative_trapezoid
    >>> check_picard_step(
    ...     lambda f, t, phi, y0: y0 + cumulative_trapezoid(f(t, phi), t, initial=0.0)
    ... )
    ✓ three Picard iterations for y' = 2ty give 1 + t^2 + t^4/2 + t^6/6.

    Taught in Chapter 1.
    """
    check_callable("picard_step", picard_step)
    hint = hint or (
        "integrate s -> f(s, phi(s)) from t0 to every grid point with the cumulative "
        "trapezoid rule (scipy.integrate.cumulative_trapezoid, initial=0) and add y0."
    )
    for t0, y0, tolerance in ((0.0, 1.0, 1e-5), (0.5, 2.0, 5e-5)):
        t = np.linspace(t0, t0 + 1.0, 1001)
        phi = np.full_like(t, y0)
        for _ in range(3):
            with _student_code("your picard_step", hint):
                phi = picard_step(lambda s, y: 2 * s * y, t.copy(), phi.copy(), y0)
            phi = _as_array(phi, "picard_step(...)", hint)
            if phi.shape != t.shape:
                raise _failure(f"picard_step returned shape {phi.shape}; expected {t.shape}.", hint)
        s = t**2 - t0**2
        expected = y0 * (1 + s + s**2 / 2 + s**3 / 6)
        error = float(np.max(np.abs(phi - expected)))
        if not error <= tolerance:
            where = float(t[np.argmax(np.abs(phi - expected))])
            raise _failure(
                f"for y(t0) = {y0:g} at t0 = {t0:g}, after three iterations the error is "
                f"{error:.2e} (expected < {tolerance:.0e}), largest at t = {where:.3g}.",
                hint,
            )
    _passed("three Picard iterations for y' = 2ty give 1 + t^2 + t^4/2 + t^6/6.")
