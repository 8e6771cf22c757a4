r"""One fixed-step integrator for every linear multistep method.

Given the coefficients of :class:`~odecourse.multistep.LinearMultistepMethod`, a single
routine advances the solution on a uniform grid.  Solving for :math:`y_{n+k}` in

.. math::

    y_{n+k} = \underbrace{-\sum_{j<k} \alpha_j y_{n+j} + h \sum_{j<k} \beta_j f_{n+j}}_{r_n}
              + h \beta_k f(t_{n+k}, y_{n+k})

is direct for an explicit method (:math:`\beta_k = 0`).  An implicit method is solved in
one of two ways, chosen by ``corrector``:

``"newton"``
    Newton's method on :math:`G(y) = y - h\beta_k f(t_{n+k}, y) - r_n = 0` with the
    Jacobian :math:`I - h\beta_k \partial f/\partial y` (given, or by finite differences),
    started from an Adams-Bashforth prediction.  NumPy states only.
``"pece"``
    Predict with the Adams-Bashforth method of the same order, Evaluate, Correct once with
    the implicit formula, Evaluate: two function evaluations a step, no linear algebra,
    and the order of the corrector.  Like explicit methods, this path only adds and scales
    states, so it also runs on torch tensors.

The first values :math:`y_1, \dots, y_{m-1}` come from a starter (a parameter) on the same
grid.  An implicit method is meant for stiff problems, where an explicit starter taking the
full step :math:`h` is unstable and returns garbage that the method then carries along, so by
default it starts with :data:`STIFF_STARTER`: the adaptive BDF solver of
:mod:`odecourse.bdf` at a tight tolerance across each starting step, which is stable and
accurate whatever :math:`h\lambda` is.  Explicit and PECE methods start with Dormand-Prince.

The step is a :data:`~odecourse.fixed_step.FixedStep` with its own history, so the fixed-step
driver :func:`~odecourse.fixed_step.integrate_fixed` does the bookkeeping (output times, cubic
Hermite dense output, counters), and :mod:`odecourse.solve` registers every method with
:func:`odecourse.solve_ivp` through :func:`multistep_solver`: ``"AB1"``-``"AB8"``,
``"AM1"``-``"AM8"`` and ``"BDF1"``-``"BDF6"`` (implicit ones by Newton) and ``"ABM1"``-``"ABM8"``
(Adams-Moulton in PECE mode).

Taught in Chapter 4.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg

from ._arrays import is_torch
from ._loop import IntegrationResult
from ._validation import (
    check_callable,
    check_choice,
    check_finite_array,
    check_int,
    check_jacobian,
    check_positive,
    check_t_eval,
    check_t_span,
    checked_rhs,
)
from .bdf import integrate_bdf
from .dense_output import HermiteInterpolant
from .fixed_step import StepOutcome, integrate_fixed
from .implicit import implicit_rk_step
from .multistep import LinearMultistepMethod, adams_bashforth
from .newton import (
    NewtonConvergenceError,
    NewtonStats,
    finite_difference_jacobian,
    simplified_newton,
)
from .runge_kutta import ALIASES, TABLEAUS, ButcherTableau, resolve_tableau, rk_step

__all__ = [
    "CORRECTORS",
    "STIFF_STARTER",
    "MultistepStepper",
    "multistep_solve",
    "multistep_solver",
]

CORRECTORS = ("newton", "pece")
#: The starter name for a stable adaptive start (integrate_bdf at START_RTOL, START_ATOL).
STIFF_STARTER = "BDF"
START_RTOL = 1e-13  #: relative tolerance of the stiff starter
START_ATOL = 1e-15  #: absolute tolerance of the stiff starter
NEWTON_TOL = 1e-10  #: on the estimated Newton error, RMS relative to 1 + |y|
NEWTON_MAX_ITER = 20


def _weighted_sum(weights, values) -> Any:
    total = None
    for w, v in zip(weights, values, strict=True):
        if w != 0:
            total = float(w) * v if total is None else total + float(w) * v
    return total


class MultistepStepper:
    r"""A linear multistep method as a fixed-step method with a history.

    Each call ``stepper(f, t, y, f_t, h)`` advances one step of size ``h`` (the same ``h``
    on every call: a uniform grid).  The first ``history - 1`` calls take steps of the
    one-step ``starter``; after that the multistep formula applies.  ``stats`` counts
    Jacobians and LU factorisations.  A stepper keeps the history of the integration it
    serves: use a fresh one for each integration.

    Parameters
    ----------
    method : LinearMultistepMethod
        The coefficients.
    corrector : {"newton", "pece"}
        How an implicit method is solved (ignored for explicit ones).
    starter : str or ButcherTableau, optional
        How the starting values are made: a Runge-Kutta tableau or its name (one step of
        size ``h``; an implicit tableau is solved by Newton), or :data:`STIFF_STARTER`
        (``"BDF"``, the adaptive BDF solver at a tight tolerance).  Default ``"BDF"`` for an
        implicit method solved by Newton, ``"dopri5"`` otherwise.
    jac : callable, optional
        ``jac(t, y)``, the (n, n) Jacobian of ``f``; finite differences otherwise.
    """

    def __init__(self, method, corrector="newton", starter=None, jac=None) -> None:
        if not isinstance(method, LinearMultistepMethod):
            raise TypeError(
                f"`method` must be a LinearMultistepMethod; got {type(method).__name__}."
            )
        self.method = method
        self.corrector = check_choice("corrector", corrector, CORRECTORS)
        implicit = not method.explicit
        if starter is None:
            starter = STIFF_STARTER if implicit and self.corrector == "newton" else "dopri5"
        self.starter = _check_starter(starter)
        self.jac = None if jac is None else check_callable("jac", jac)
        self.predictor = adams_bashforth(max(method.computed_order(), 1)) if implicit else None
        self.history = max(method.steps, self.predictor.steps if implicit else 0)
        self.ys: list = []
        self.fs: list = []
        self.stats = NewtonStats()

    def __call__(self, f, t: float, y: Any, f_t: Any, h: float) -> StepOutcome:
        self.ys = [*self.ys[-(self.history - 1) :], y] if self.history > 1 else [y]
        self.fs = [*self.fs[-(self.history - 1) :], f_t] if self.history > 1 else [f_t]
        if len(self.ys) < self.history:
            y_new, f_new = self._start(f, t, y, f_t, h)
        else:
            y_new, f_new = self._multistep(f, t + h, h)
        return StepOutcome(y_new, f_new, HermiteInterpolant(t, t + h, y, y_new, f_t, f_new))

    def _start(self, f, t: float, y: Any, f_t: Any, h: float) -> tuple[Any, Any]:
        """One starting step of size ``h`` with the starter."""
        if self.starter == STIFF_STARTER:
            start = integrate_bdf(f, (t, t + h), y, rtol=START_RTOL, atol=START_ATOL, jac=self.jac)
            self.stats.njev += start.njev
            self.stats.nlu += start.nlu
            if not start.success:
                raise NewtonConvergenceError(f"The starting values failed: {start.message}")
            return start.y[-1], f(t + h, start.y[-1])
        if not self.starter.explicit:
            y_new = implicit_rk_step(f, t, y, h, self.starter, self.jac, f_t=f_t, stats=self.stats)
            return y_new, f(t + h, y_new)
        step = rk_step(f, t, y, h, self.starter, k0=f_t)
        return step.y, step.k[-1] if self.starter.fsal else f(t + h, step.y)

    def _multistep(self, f, t_new: float, h: float) -> tuple[Any, Any]:
        k = self.method.steps
        alpha, beta = self.method.alpha, self.method.beta
        past = _weighted_sum(alpha[:-1], self.ys[-k:])
        rhs = -past if past is not None else 0.0 * self.ys[-1]
        explicit_part = _weighted_sum(beta[:-1], self.fs[-k:])
        if explicit_part is not None:
            rhs = rhs + h * explicit_part
        if self.method.explicit:
            return rhs, f(t_new, rhs)
        m = self.predictor.steps
        guess = self.ys[-1] + h * _weighted_sum(self.predictor.beta[:-1], self.fs[-m:])
        h_beta = h * float(beta[-1])
        if self.corrector == "pece":
            y_new = rhs + h_beta * f(t_new, guess)
        else:
            y_new = self._newton(f, t_new, guess, h_beta, rhs)
        return y_new, f(t_new, y_new)

    def _newton(self, f, t: float, guess: Any, h_beta: float, rhs: Any) -> np.ndarray:
        r"""Solve :math:`y - h\beta_k f(t, y) = r` by simplified Newton (one LU per step)."""
        y = np.array(guess, dtype=float)
        if self.jac is None:
            jacobian = finite_difference_jacobian(f, t, y)
        else:
            jacobian = check_jacobian("`jac(t, y)`", self.jac(t, y), y.size)
        self.stats.njev += 1
        matrix = np.eye(y.size) - h_beta * jacobian
        if not np.all(np.isfinite(matrix)):
            raise NewtonConvergenceError(f"the Jacobian is not finite at t = {t:.6g}.")
        lu = scipy.linalg.lu_factor(matrix)
        self.stats.nlu += 1
        result = simplified_newton(
            lambda x: x - h_beta * f(t, x) - rhs,
            lambda g: -scipy.linalg.lu_solve(lu, g),
            y,
            1.0 + np.abs(y),
            tol=NEWTON_TOL,
            max_iter=NEWTON_MAX_ITER,
            stats=self.stats,
        )
        if result.converged:
            return result.x
        raise NewtonConvergenceError(
            f"Newton's method {result.reason} at t = {t:.6g}; try a smaller step `h` or pass "
            "the exact Jacobian `jac`."
        )


def _check_starter(starter: Any) -> ButcherTableau | str:
    """Return the starter: :data:`STIFF_STARTER`, or a tableau (a name is looked up)."""
    if starter == STIFF_STARTER:
        return STIFF_STARTER
    if isinstance(starter, str) and starter not in TABLEAUS and starter not in ALIASES:
        names = ", ".join(map(repr, (*TABLEAUS, *ALIASES)))
        raise ValueError(
            f"`starter` must be {STIFF_STARTER!r} (an adaptive BDF start) or the name of a "
            f"Runge-Kutta tableau ({names}); got {starter!r}."
        )
    return resolve_tableau(starter, "starter")


def _uniform_step(t_span: tuple[float, float], h: float) -> float:
    """The largest step no larger than ``h`` that divides ``t_span`` into equal steps."""
    length = abs(t_span[1] - t_span[0])
    return length / max(1, math.ceil(length / h - 1e-12))


def multistep_solve(
    f: Callable[[float, Any], Any],
    t_span: tuple[float, float],
    y0: Any,
    h: float,
    method: LinearMultistepMethod,
    *,
    corrector: str = "newton",
    starter: str | ButcherTableau | None = None,
    jac: Callable[[float, Any], Any] | None = None,
    t_eval: Any = None,
    dense_output: bool = False,
    max_steps: int = 1_000_000,
    events: Any = None,
) -> IntegrationResult:
    r"""Integrate :math:`y' = f(t, y)` on a uniform grid with a linear multistep method.

    Parameters
    ----------
    f : callable
        ``f(t, y)``, returning an array shaped like ``y``.
    t_span : (float, float)
        Start and end times; ``t1 < t0`` integrates backwards.
    y0 : array, shape (n,)
        Initial state (NumPy array, or torch tensor for explicit and ``"pece"`` methods).
    h : float
        Largest step size; the interval is split into the fewest equal steps no larger
        than ``h`` (a multistep method needs a uniform grid).
    method : LinearMultistepMethod
        The coefficients, e.g. ``odecourse.multistep.get_multistep_method("AB4")``.
    corrector : {"newton", "pece"}
        How an implicit method is solved (ignored for explicit methods).
    starter : str or ButcherTableau, optional
        How the starting values are computed (see :class:`MultistepStepper`): by default
        the adaptive BDF solver at a tight tolerance for implicit methods solved by Newton
        (stable on stiff problems), Dormand-Prince with step ``h`` otherwise.
    jac : callable, optional
        ``jac(t, y)``, the Jacobian :math:`\partial f/\partial y`, for ``"newton"``.
    t_eval, dense_output, max_steps
        As for :func:`~odecourse.fixed_step.integrate_fixed` (Hermite dense output).

    Returns
    -------
    IntegrationResult
        With ``njev`` and ``nlu`` filled in for Newton.

    Raises
    ------
    TypeError, ValueError
        For invalid arguments (each message names the argument), or too few steps in
        ``t_span`` for the starting values.
    NewtonConvergenceError
        If Newton's method fails in an implicit step.

    Notes
    -----
    ``f`` is checked on every call: it must return real numbers in the shape of ``y0``
    (a ``ValueError`` or ``TypeError`` naming ``f`` otherwise); a non-finite value ends
    the integration with ``status = -1``.  Taught in Chapter 4.
    """
    check_callable("f", f)
    t_span = check_t_span("t_span", t_span)
    h = check_positive("h", h)
    if is_torch(y0):
        f = _checked_tensor_rhs(f, y0)
    else:
        y0 = check_finite_array("y0", y0, ndim=1)
        f = checked_rhs("f", f, y0.size)
    t_eval = check_t_eval("t_eval", t_eval, t_span)
    max_steps = check_int("max_steps", max_steps, minimum=1)
    stepper = MultistepStepper(method, corrector, starter, jac)
    if is_torch(y0):
        _check_torch_stepper(stepper)
    h = _uniform_step(t_span, h)
    n_steps = round(abs(t_span[1] - t_span[0]) / h)
    if n_steps < stepper.history:
        raise ValueError(
            f"`h` = {h:.3g} leaves {n_steps} steps in `t_span`, too few for {method.name}, "
            f"which takes {stepper.history - 1} starting steps; use a smaller `h`."
        )
    result = integrate_fixed(
        f, t_span, y0, h, stepper, t_eval=t_eval, dense_output=bool(dense_output),
        max_steps=max_steps, events=events,
    )  # fmt: skip
    result.njev, result.nlu = stepper.stats.njev, stepper.stats.nlu
    return result


def _checked_tensor_rhs(f: Callable, y0: Any) -> Callable:
    """Wrap ``f`` for a torch state: it must return a tensor shaped like ``y0``."""

    def rhs(t: float, y: Any) -> Any:
        dy = f(t, y)
        if not is_torch(dy) or dy.shape != y0.shape:
            got = f"shape {tuple(dy.shape)}" if is_torch(dy) else type(dy).__name__
            raise ValueError(
                f"`f` must return a tensor of shape {tuple(y0.shape)} like `y0`; got {got} "
                f"at t = {t:.6g}."
            )
        return dy

    return rhs


def _check_torch_stepper(stepper: MultistepStepper) -> None:
    """A torch state needs a path that only adds and scales states (no NumPy Newton)."""
    method = stepper.method
    if not method.explicit and stepper.corrector == "newton":
        raise TypeError(
            f"`y0` is a torch tensor, but the implicit method {method.name} with "
            "corrector='newton' solves its equations with NumPy; use corrector='pece', an "
            "explicit method, or a NumPy `y0` (y0.detach().numpy())."
        )
    if stepper.starter == STIFF_STARTER or not stepper.starter.explicit:
        raise TypeError(
            f"`starter` must be an explicit Runge-Kutta method for a torch `y0`; got "
            f"{getattr(stepper.starter, 'name', stepper.starter)!r}."
        )


def multistep_solver(
    method: LinearMultistepMethod, corrector: str
) -> tuple[Callable[..., IntegrationResult], tuple[str, ...]]:
    """Return a ``solve_ivp`` solver for ``method`` and the options it accepts.

    :mod:`odecourse.solve` registers ``"AB1"``-``"AB8"``, ``"AM1"``-``"AM8"``,
    ``"ABM1"``-``"ABM8"`` and ``"BDF1"``-``"BDF6"`` with it.  Taught in Chapter 4.
    """

    def solver(fun, t_span, y0, *, h, jac=None, starter=None, **settings):
        return multistep_solve(
            fun, t_span, y0, h, method, corrector=corrector, starter=starter, jac=jac, **settings
        )

    options = ("starter",) if method.explicit or corrector == "pece" else ("starter", "jac")
    return solver, options
