"""Answer checks for the coding exercises: test a student's code and print a friendly verdict.

Every check runs the reader's code on a small problem whose answer is known,
prints one line, and either returns quietly or raises :class:`CheckFailed`:

- ``✓ ...`` when the code passes;
- ``✗ Not yet: <what went wrong>. Hint: <where to look>`` when it does not.

:class:`CheckFailed` is an :class:`AssertionError`, so nbgrader's autograder
awards zero points for a failing test cell.  A function that still raises the
``NotImplementedError`` of the student edition's stub is reported as "not
implemented yet", with the hint, rather than as a traceback from deep inside
the check.  Any other exception from the reader's code is reported the same
way and chained, so its traceback is still there to read.

Checks that take an answer which is data (a tableau, multistep coefficients,
a number) also accept a function of no arguments that returns it, so that the
call runs inside the check and its stub is caught there.

Taught in every chapter's coding exercises; see the appendix "Using this book
in a course".
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from numbers import Rational
from typing import Any

import numpy as np

from odecourse._validation import (
    check_callable,
    check_finite_array,
    check_int,
    check_positive,
    check_real,
    check_t_span,
)
from odecourse.convergence import observed_order
from odecourse.multistep import LinearMultistepMethod
from odecourse.runge_kutta import ButcherTableau, algebraic_order

__all__ = [
    "ORDER_TOLERANCE",
    "CheckFailed",
    "check_close",
    "check_first_order_system",
    "check_gradient",
    "check_multistep_coefficients",
    "check_picard_step",
    "check_residual_block",
    "check_stability_function",
    "check_step_order",
    "check_tableau",
]

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


# --------------------------------------------------------------------------- verdicts


def _passed(message: str) -> None:
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


# --------------------------------------------------------------------------- Chapter 1


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
    for t in np.linspace(t0, t1, n_points):
        y = np.asarray(solution(t), dtype=float)
        dt = 1e-5 * max(1.0, abs(t))
        dydt = (np.asarray(solution(t + dt)) - np.asarray(solution(t - dt))) / (2 * dt)
        with _student_code("your f", hint):
            value = f(float(t), y.copy())
        value = _as_array(value, f"f({t:.3g}, y)", hint)
        if value.shape != y.shape:
            raise _failure(f"f(t, y) has shape {value.shape}; the state has {y.shape}.", hint)
        error = _relative_error(value, dydt)
        if error > rtol:
            raise _failure(
                f"at t = {t:.3g}, f(t, y) = {np.round(value, 4)} but y'(t) = {np.round(dydt, 4)}.",
                hint,
            )
    _passed(f"y' = f(t, y) holds along the known solution at {n_points} times.")


def check_picard_step(picard_step: Callable[..., Any], *, hint: str | None = None) -> None:
    r"""Check one Picard iteration ``picard_step(f, t, phi, y0) -> phi_next`` on a grid.

    Three iterations for :math:`y' = 2ty`, :math:`y(0) = 1` on :math:`[0, 1]`
    (1001 points) must give :math:`1 + t^2 + t^4/2 + t^6/6` to within the
    trapezoid rule's accuracy (``1e-5``).

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
    t = np.linspace(0.0, 1.0, 1001)
    phi = np.ones_like(t)
    for _ in range(3):
        with _student_code("your picard_step", hint):
            phi = picard_step(lambda s, y: 2 * s * y, t.copy(), phi, 1.0)
        phi = _as_array(phi, "picard_step(...)", hint)
        if phi.shape != t.shape:
            raise _failure(f"picard_step returned shape {phi.shape}; expected {t.shape}.", hint)
    expected = 1 + t**2 + t**4 / 2 + t**6 / 6
    error = float(np.max(np.abs(phi - expected)))
    if error > 1e-5:
        raise _failure(f"after three iterations the error is {error:.2e} (expected < 1e-5).", hint)
    _passed("three Picard iterations for y' = 2ty give 1 + t^2 + t^4/2 + t^6/6.")


# --------------------------------------------------------------------------- one-step methods


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
    n_steps: Sequence[int] = (16, 32, 64, 128),
    hint: str | None = None,
) -> float:
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
    n_steps : sequence of int
        Step counts ``N``; at least two, each at least 1.
    hint : str, optional
        Replaces the default hint.

    Returns
    -------
    float
        The observed order.

    Examples
    --------
    >>> def euler_step(f, t, y, h):
    ...     return y + h * f(t, y)
    >>> check_step_order(euler_step, 1)
    ✓ observed order 1.0..., as expected (1).
    1.0...

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
    errors = np.array([_global_error(step, n, hint) for n in counts])
    if np.any(errors <= 1e-14):
        raise _failure("the errors reached rounding level; the order cannot be measured.", hint)
    order = observed_order(2.0 / np.array(counts), errors)
    if abs(order - expected_order) > ORDER_TOLERANCE:
        raise _failure(
            f"the observed order is {order:.2f}, but the method should have order "
            f"{expected_order}.",
            hint,
        )
    _passed(f"observed order {order:.2f}, as expected ({expected_order}).")
    return order


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


def check_tableau(tableau: Any, expected_order: int | None = None, *, hint: str | None = None):
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

    Returns
    -------
    ButcherTableau
        The checked tableau.

    Examples
    --------
    >>> check_tableau(([[0, 0], [1, 0]], [0.5, 0.5], [0, 1]), expected_order=2)
    ✓ consistent tableau with 2 stages and order 2, as expected.
    ButcherTableau('your tableau', explicit, stages=2, order=2)

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
    result = ButcherTableau("your tableau", A, b, c, order=max(order, 1))
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
    return result


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
            value = complex(_to_numpy(R(complex(z))))
        expected = complex(np.asarray(reference(z)))
        if abs(value - expected) > 1e-8 * max(1.0, abs(expected)):
            raise _failure(
                f"at z = {z:.3f}, R(z) = {value:.6f} but it should be {expected:.6f}.", hint
            )
    _passed(f"R(z) agrees with the reference at {len(points)} points of the left half-plane.")


# --------------------------------------------------------------------------- multistep methods


def _multistep_method(alpha: Any, beta: Any, hint: str) -> LinearMultistepMethod:
    if beta is None:
        answer = _answer(alpha, "your coefficients function", hint)
        if isinstance(answer, LinearMultistepMethod):
            return answer
        try:
            alpha, beta = answer
        except (TypeError, ValueError) as exc:
            raise TypeError(
                "pass `alpha` and `beta`, a LinearMultistepMethod, or a function of no "
                f"arguments returning (alpha, beta); got {type(answer).__name__}."
            ) from exc
    alpha, beta = list(alpha), list(beta)
    if len(alpha) != len(beta) or len(alpha) < 2:
        raise _failure(
            f"alpha and beta have lengths {len(alpha)} and {len(beta)}; a k-step method "
            "needs k + 1 of each, k >= 1.",
            hint,
        )
    if alpha[-1] == 0:
        raise _failure("alpha_k = 0: the newest value y_{n+k} does not appear.", hint)
    if alpha[-1] != 1:
        scale = Fraction(alpha[-1]) if isinstance(alpha[-1], Rational) else alpha[-1]
        alpha, beta = ([x / scale for x in coefficients] for coefficients in (alpha, beta))
    with _student_code("building the method", hint):
        return LinearMultistepMethod("your method", alpha, beta)


def check_multistep_coefficients(
    alpha: Any,
    beta: Any = None,
    *,
    expected_order: int | None = None,
    zero_stable: bool | None = True,
    hint: str | None = None,
) -> LinearMultistepMethod:
    r"""Check linear multistep coefficients: consistency, order, and the root condition.

    The method :math:`\sum_j \alpha_j y_{n+j} = h \sum_j \beta_j f_{n+j}` (oldest
    coefficient first, normalised here so that :math:`\alpha_k = 1`) must be
    consistent, have order ``expected_order`` exactly if given (the order conditions
    :math:`C_0 = \dots = C_p = 0` of
    :meth:`odecourse.multistep.LinearMultistepMethod.order_constants`), and satisfy
    the root condition (``zero_stable=True``), violate it (``False``), or either (``None``).

    Parameters
    ----------
    alpha, beta : sequences of k + 1 numbers
        The coefficients.  Instead, pass a single function of no arguments that
        returns ``(alpha, beta)`` (and leave ``beta`` out).
    expected_order : int, optional
    zero_stable : bool or None
    hint : str, optional
        Replaces the default hint.

    Returns
    -------
    LinearMultistepMethod

    Examples
    --------
    >>> from fractions import Fraction as F
    >>> check_multistep_coefficients([0, -1, 1], [F(-1, 2), F(3, 2), 0], expected_order=2)
    ✓ consistent 2-step method of order 2; the roots of rho satisfy the root condition.
    LinearMultistepMethod('your method', alpha=(0, -1, 1), beta=(-1/2, 3/2, 0))

    Taught in Chapter 4.
    """
    if expected_order is not None:
        expected_order = check_int("expected_order", expected_order, minimum=1)
    if zero_stable not in (True, False, None):
        raise TypeError(f"`zero_stable` must be True, False or None; got {zero_stable!r}.")
    hint = hint or (
        "write the order conditions C_0 = sum_j alpha_j = 0 and C_q = sum_j (j^q alpha_j / q! "
        "- j^(q-1) beta_j / (q-1)!) = 0, and solve them for the unknown coefficients."
    )
    method = _multistep_method(alpha, beta, hint)
    order = method.computed_order()
    if order == 0:
        raise _failure("the method is not consistent (C_0 or C_1 is not zero).", hint)
    if expected_order is not None and order != expected_order:
        raise _failure(f"the method has order {order}, not {expected_order}.", hint)
    stable = method.is_zero_stable()
    roots = ", ".join(f"{abs(r):.3f}" for r in method.rho_roots())
    if zero_stable is not None and stable != zero_stable:
        verdict = "violate" if zero_stable else "satisfy"
        raise _failure(
            f"the roots of rho (moduli {roots}) {verdict} the root condition.",
            "every root of rho(zeta) must have modulus <= 1, and those on the unit circle "
            "must be simple.",
        )
    condition = "satisfy" if stable else "violate"
    _passed(
        f"consistent {method.steps}-step method of order {order}; the roots of rho "
        f"{condition} the root condition."
    )
    return method


# --------------------------------------------------------------------------- networks


def _build_block(block: Any, width: int, hint: str) -> Any:
    import torch

    if isinstance(block, type):
        with _student_code(f"{block.__name__}({width})", hint):
            block = block(width)
    if not callable(block):
        raise TypeError(f"`block` must be a torch.nn.Module, a class or a callable; got {block!r}.")
    return block if isinstance(block, torch.nn.Module) else _FunctionBlock(block)


class _FunctionBlock:
    """A plain function ``x -> y`` seen as a block without parameters."""

    def __init__(self, function: Callable) -> None:
        self.function = function

    def __call__(self, x: Any) -> Any:
        return self.function(x)

    def parameters(self) -> Iterator[Any]:
        return iter(())


def _run_block(block: Any, x: Any, hint: str) -> Any:
    import torch

    with _student_code("your block", hint):
        y = block(x)
    if not isinstance(y, torch.Tensor):
        raise _failure(f"the block returned {type(y).__name__}, not a torch.Tensor.", hint)
    if tuple(y.shape) != tuple(x.shape):
        raise _failure(
            f"the block maps shape {tuple(x.shape)} to {tuple(y.shape)}; a residual block "
            "keeps the shape (batch, width).",
            hint,
        )
    return y


def check_residual_block(
    block: Any, width: int, *, batch: int = 5, zero_is_identity: bool = True, hint=None
) -> None:
    r"""Check a residual block :math:`x \mapsto x + h F(x)` on a batch of shape ``(batch, width)``.

    The block must return a tensor of the input's shape, treat the rows of a
    batch independently, and actually change its input.  With
    ``zero_is_identity`` (for blocks with parameters), a copy whose parameters
    are all set to zero must be the identity, which is what the shortcut means:
    with :math:`F = 0` the block passes :math:`x` through unchanged.

    Parameters
    ----------
    block : torch.nn.Module, class, or callable
        A block, a class whose constructor takes ``width``, or a function ``x -> y``.
    width : int
        The width ``w`` of the hidden state.
    batch : int
        Number of random inputs.
    zero_is_identity : bool
        Also test the zero-parameter identity.
    hint : str, optional
        Replaces the default hint.

    Examples
    --------
    >>> from odecourse.networks import ResidualBlock
    >>> check_residual_block(ResidualBlock, width=4)
    ✓ the block maps (5, 4) to (5, 4), acts row by row, and is the identity when F = 0.

    Taught in Chapter 5.
    """
    import torch

    width = check_int("width", width, minimum=1)
    batch = check_int("batch", batch, minimum=2)
    hint = hint or "return x + h * F(x), where F is the residual branch (here W sigma(x) + b)."
    module = _build_block(block, width, hint)
    x = torch.randn(batch, width, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = _run_block(module, x, hint)
        if torch.allclose(y, x):
            raise _failure("the block returns its input unchanged: the branch is missing.", hint)
        if not torch.allclose(_run_block(module, x[:1], hint), y[:1], atol=1e-6):
            raise _failure("row 0 of the output depends on the other rows of the batch.", hint)
        identity = ""
        if zero_is_identity and any(True for _ in module.parameters()):
            zeroed = copy.deepcopy(module)
            for parameter in zeroed.parameters():
                parameter.zero_()
            if not torch.allclose(_run_block(zeroed, x, hint), x, atol=1e-6):
                raise _failure(
                    "with all weights set to zero the block is not the identity: the "
                    "shortcut x + ... is missing.",
                    hint,
                )
            identity = ", and is the identity when F = 0"
    _passed(f"the block maps {tuple(x.shape)} to {tuple(y.shape)}, acts row by row{identity}.")


# --------------------------------------------------------------------------- generic checks


def _finite_difference_gradient(fn: Callable, x: np.ndarray, eps: float, hint: str) -> np.ndarray:
    gradient = np.empty_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = eps
        with _student_code("your function", hint):
            plus, minus = float(_to_numpy(fn(x + step))), float(_to_numpy(fn(x - step)))
        gradient[index] = (plus - minus) / (2 * eps)
    return gradient


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
    if error > rtol:
        raise _failure(
            f"the gradient differs from finite differences by {error:.1e} (relative); "
            f"largest mismatch in component {_worst_index(grad, reference)}.",
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
    hint = hint or f"recompute {name} step by step."
    value = _as_array(_answer(value, f"computing {name}", hint), name, hint)
    if value.shape != expected.shape:
        raise _failure(f"{name} has shape {value.shape}; expected {expected.shape}.", hint)
    if not np.allclose(value, expected, rtol=rtol, atol=atol):
        raise _failure(f"{name} came out as {np.round(value, 6)}, which is not right.", hint)
    _passed(f"{name} checks out.")
