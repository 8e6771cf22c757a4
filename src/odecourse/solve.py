"""``solve_ivp``: SciPy's interface over the course's integrator core.

``odecourse.solve_ivp`` takes SciPy's arguments, defaults and shapes and
returns an :class:`OdeResult` with SciPy's fields (``t``, ``y`` of shape
``(n, n_points)``, ``sol``, ``nfev``, ``njev``, ``nlu``, ``status``, ``message``,
``success``) plus ``n_steps`` and ``n_rejected``, so a reader can swap
``scipy.integrate.solve_ivp`` for ours and compare line by line.

Methods are looked up in a registry, :data:`METHODS`, that maps a name to a
:class:`MethodSpec`.  Every Runge-Kutta tableau of
:data:`odecourse.runge_kutta.TABLEAUS` is registered under its name, SciPy's
``"RK45"`` and ``"RK23"`` as aliases, and a :class:`ButcherTableau` may be
passed directly.  Another module adds methods with :func:`register_method`, as this module does for
the multistep methods of Chapter 4::

    from odecourse.multistep import get_multistep_method
    from odecourse.multistep_solver import multistep_solver
    from odecourse.solve import register_method

    solver, options = multistep_solver(get_multistep_method("AB4"), "newton")
    register_method("my_AB4", solver, fixed_step=True, options=options)

A solver receives the validated, checked right-hand side ``fun(t, y)``, the
floats ``t_span``, the float64 ``y0`` of shape (n,), ``t_eval`` (ndarray or
None), ``dense_output``, and as keywords: ``rtol, atol, first_step, max_step,
max_steps`` for adaptive methods, or ``h, max_steps`` for fixed-step ones,
plus the extra options it declared (such as ``jac``).  It returns an
:class:`odecourse.adaptive.IntegrationResult`.

Taught in Chapter 2 (fixed steps) and Chapter 3 (adaptive steps, comparison with SciPy).
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from odecourse._loop import IntegrationResult
from odecourse._validation import (
    check_callable,
    check_finite_array,
    check_int,
    check_positive,
    check_t_eval,
    check_t_span,
    checked_rhs,
    floor_rtol,
    real_array,
)
from odecourse.adaptive import integrate_adaptive
from odecourse.bdf import integrate_bdf
from odecourse.dop853 import DOP853
from odecourse.events import prepare_events
from odecourse.fixed_step import integrate_fixed
from odecourse.implicit import implicit_stepper
from odecourse.multistep import get_multistep_method
from odecourse.multistep_solver import multistep_solver
from odecourse.radau import integrate_radau
from odecourse.runge_kutta import ALIASES, TABLEAUS, ButcherTableau

__all__ = ["METHODS", "MethodSpec", "OdeResult", "OdeSolution", "register_method", "solve_ivp"]

Solver = Callable[..., IntegrationResult]


@dataclass(frozen=True)
class MethodSpec:
    """A method in the registry.

    Attributes
    ----------
    name : str
        Name accepted by ``solve_ivp(method=...)``.
    solver : callable
        ``solver(fun, t_span, y0, *, t_eval, dense_output, **settings) -> IntegrationResult``
        (see the module docstring for the settings).
    fixed_step : bool
        True if the method takes the step size ``h`` instead of tolerances.
    options : tuple of str
        Extra keyword options the solver accepts (``"jac"``, ...).
    """

    name: str
    solver: Solver
    fixed_step: bool
    options: tuple[str, ...] = ()


#: The method registry: name -> MethodSpec.
METHODS: dict[str, MethodSpec] = {}


def register_method(
    name: str,
    solver: Solver,
    *,
    fixed_step: bool,
    options: tuple[str, ...] = (),
    replace: bool = False,
) -> MethodSpec:
    """Add a method to :data:`METHODS` so that ``solve_ivp(method=name)`` finds it.

    Parameters
    ----------
    name : str
        The name ``solve_ivp(method=...)`` will accept.
    solver : callable
        ``solver(fun, t_span, y0, *, t_eval, dense_output, **settings) -> IntegrationResult``
        (see the module docstring for the settings).
    fixed_step : bool
        True if the method takes the step size ``h`` instead of tolerances.
    options : tuple of str
        Extra keyword options the solver accepts (``"jac"``, ...).
    replace : bool
        Allow replacing a registered method of the same name.

    Returns
    -------
    MethodSpec
        The new registry entry.

    Raises
    ------
    TypeError
        If ``name`` is not a non-empty string, ``solver`` is not callable, or
        ``options`` is not a tuple of strings.
    ValueError
        If ``name`` is taken and ``replace`` is False.

    Taught in Chapter 4 (where multistep methods join the registry).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"`name` must be a non-empty string; got {name!r:.60}.")
    if isinstance(options, str) or not all(isinstance(o, str) for o in options):
        raise TypeError(f"`options` must be a tuple of option names; got {options!r:.60}.")
    if name in METHODS and not replace:
        raise ValueError(f"method {name!r} is already registered; pass replace=True.")
    spec = MethodSpec(name, check_callable("solver", solver), bool(fixed_step), tuple(options))
    METHODS[name] = spec
    return spec


def _tableau_spec(tableau: ButcherTableau, name: str | None = None) -> MethodSpec:
    """Registry entry for a Runge-Kutta tableau: adaptive, fixed explicit or implicit."""
    name = name or tableau.name
    if not tableau.explicit:

        def implicit(fun, t_span, y0, *, h, jac=None, newton_tol=1e-10, newton_max_iter=10, **kw):
            newton_tol = check_positive("newton_tol", newton_tol)
            newton_max_iter = check_int("newton_max_iter", newton_max_iter, minimum=0)
            stepper = implicit_stepper(tableau, jac, tol=newton_tol, max_iter=newton_max_iter)
            result = integrate_fixed(fun, t_span, y0, h, stepper, **kw)
            result.njev, result.nlu = stepper.stats.njev, stepper.stats.nlu
            return result

        return MethodSpec(name, implicit, True, ("jac", "newton_tol", "newton_max_iter"))
    if tableau.adaptive:

        def adaptive(fun, t_span, y0, **kw):
            return integrate_adaptive(fun, t_span, y0, tableau, **kw)

        return MethodSpec(name, adaptive, False)

    def fixed(fun, t_span, y0, *, h, **kw):
        return integrate_fixed(fun, t_span, y0, h, tableau, **kw)

    return MethodSpec(name, fixed, True)


for _name, _tableau in TABLEAUS.items():
    METHODS[_name] = _tableau_spec(_tableau)
for _alias, _name in ALIASES.items():
    METHODS[_alias] = _tableau_spec(TABLEAUS[_name], _alias)
METHODS["dop853"] = _tableau_spec(DOP853)
METHODS["DOP853"] = _tableau_spec(DOP853, "DOP853")
METHODS["BDF"] = MethodSpec("BDF", integrate_bdf, False, ("jac",))
METHODS["Radau"] = MethodSpec("Radau", integrate_radau, False, ("jac",))


def _register_multistep() -> None:
    """The linear multistep methods of Chapter 4, by name (``"AB4"``, ``"BDF2"``, ...)."""
    for family, orders, corrector, base in (
        ("AB", range(1, 9), "newton", "AB"),
        ("AM", range(1, 9), "newton", "AM"),
        ("ABM", range(1, 9), "pece", "AM"),
        ("BDF", range(1, 7), "newton", "BDF"),
    ):
        for order in orders:
            solver, options = multistep_solver(get_multistep_method(f"{base}{order}"), corrector)
            register_method(f"{family}{order}", solver, fixed_step=True, options=options)


_register_multistep()


def _resolve_method(method: Any) -> MethodSpec:
    if isinstance(method, ButcherTableau):
        return _tableau_spec(method)
    if not isinstance(method, str):
        raise TypeError(
            "`method` must be a method name or a ButcherTableau; "
            f"got {type(method).__name__} {method!r:.60}."
        )
    if method not in METHODS:
        names = ", ".join(repr(m) for m in METHODS)
        raise ValueError(f"`method` must be one of {names}; got {method!r}.")
    return METHODS[method]


class OdeSolution:
    """Continuous solution: the piecewise dense output of every step, callable like SciPy's.

    Parameters
    ----------
    interpolants : list of callables
        One per step, in order of integration, each with ``t_old`` and ``t_new``.
    breakpoints : sequence of float, optional
        The step ends, one more than ``interpolants``; default each step's ``t_old`` and
        ``t_new``.  After a terminal event the last one is the event time.

    Calling with a scalar ``t`` returns shape (n,); with an array of shape (m,)
    returns shape (n, m).  Outside the interval the nearest step's polynomial
    is extrapolated.  Taught in Chapter 3.
    """

    def __init__(self, interpolants: list[Any], breakpoints: Any = None) -> None:
        if not interpolants:
            raise ValueError("OdeSolution needs at least one step.")
        self.interpolants = list(interpolants)
        if breakpoints is None:
            breakpoints = [interpolants[0].t_old] + [p.t_new for p in interpolants]
        self.ts = np.array(breakpoints, dtype=float)
        order = slice(None) if self.ts[-1] > self.ts[0] else slice(None, None, -1)
        # Breakpoints and segments sorted by increasing time, for either direction.
        self._breaks = self.ts[order]
        self._ascending = self.interpolants[order]
        self.t_min, self.t_max = float(self._breaks[0]), float(self._breaks[-1])

    def _segment(self, t: float) -> Any:
        index = int(np.searchsorted(self._breaks, t, side="left")) - 1
        return self._ascending[min(max(index, 0), len(self._ascending) - 1)]

    def __call__(self, t: Any) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        if t.ndim == 0:  # a copy: at a step end the interpolant may hand back a stored state
            return np.array(self._segment(float(t))(float(t)), dtype=float)
        return np.stack([self._segment(float(s))(float(s)) for s in t], axis=1)


class OdeResult(dict):
    """Result of :func:`solve_ivp`: a dict with attribute access, like SciPy's ``OdeResult``.

    ``res.t`` and ``res["t"]`` are the same; ``"y" in res``, ``res.keys()``, ``dict(res)``
    and ``res.get("sol")`` work as for any dict.

    Attributes
    ----------
    t : ndarray, shape (n_points,)
        Output times.
    y : ndarray, shape (n, n_points)
        Solution values at ``t``.
    sol : OdeSolution or None
        Continuous solution if ``dense_output=True``.
    t_events : list of ndarray or None
        For each event, the times at which it occurred; None without events.
    y_events : list of ndarray or None
        For each event, the states (shape (k, n)) at those times; None without events.
    nfev, njev, nlu : int
        Evaluations of ``fun``, of the Jacobian, and LU factorisations.  As in SciPy,
        ``nfev`` leaves out the ``n`` evaluations behind each finite-difference Jacobian
        of BDF and Radau (each is one ``njev``).
    status : int
        0: reached the end of ``t_span``; 1: a terminal event occurred; -1: the
        integration failed.
    message : str
        Reason for the status.
    success : bool
        ``status >= 0``.
    n_steps, n_rejected : int
        Accepted and rejected steps.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"OdeResult has no field {name!r}.") from None

    __setattr__ = dict.__setitem__
    __delattr__ = dict.__delitem__

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self.keys()]


def _check_tolerance(name: str, value: Any, n: int) -> float | np.ndarray:
    """A non-negative scalar, or an array of shape (n,), as SciPy accepts."""
    if np.ndim(value) == 0:
        return check_positive(name, value, allow_zero=True)
    array = check_finite_array(name, value, ndim=1)
    if array.shape != (n,) or np.any(array < 0):
        raise ValueError(
            f"`{name}` must be non-negative, a scalar or of shape ({n},); got {array}."
        )
    return array


#: Options SciPy's solve_ivp knows that a method may not use; they are ignored with a warning.
SCIPY_OPTIONS = ("jac", "jac_sparsity", "lband", "uband", "min_step")


def _inert_options(spec: MethodSpec, options: dict[str, Any]) -> dict[str, Any]:
    """Drop SciPy's options that ``spec`` does not use, warning as SciPy does."""
    inert = [name for name in SCIPY_OPTIONS if name in options and name not in spec.options]
    if inert:
        listed = ", ".join(f"`{name}`" for name in inert)
        warnings.warn(
            f"The following arguments have no effect for method {spec.name!r}: {listed}.",
            UserWarning,
            stacklevel=3,
        )
    return {k: v for k, v in options.items() if k not in inert}


def _with_args(args: Any, fun: Callable, options: dict[str, Any], events: Any) -> tuple:
    """Bind ``args`` to ``fun``, a callable ``jac`` and the events, as SciPy does."""
    if args is None:
        return fun, options, events
    if not isinstance(args, tuple):
        raise TypeError(
            "Supplied 'args' cannot be unpacked. "
            f"`args` must be a tuple of extra arguments for `fun`; got {type(args).__name__} "
            f"{args!r:.60} (for a single argument write `args=(value,)`)."
        )
    bound = dict(options)
    if callable(options.get("jac")):
        jac = options["jac"]
        bound["jac"] = lambda t, y: jac(t, y, *args)
    return (lambda t, y: fun(t, y, *args)), bound, events


def _settings(
    spec: MethodSpec, tolerances: dict[str, Any], options: dict[str, Any]
) -> dict[str, Any]:
    """Validate the step-size settings and extra options for ``spec``."""
    allowed = {"max_steps", *spec.options} | ({"h"} if spec.fixed_step else set())
    unknown = sorted(set(options) - allowed)
    if "h" in unknown:
        raise ValueError(
            f"`h` is only for fixed-step methods; {spec.name!r} chooses its own steps "
            "(use `first_step`, `max_step`, `rtol` and `atol`)."
        )
    if unknown:
        accepted = ", ".join(sorted(allowed))
        raise TypeError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for method {spec.name!r}; "
            f"accepted options: {accepted}."
        )
    settings = dict(options)
    if "max_steps" in settings:
        settings["max_steps"] = check_int("max_steps", settings["max_steps"], minimum=1)
    jac = settings.get("jac")
    if jac is not None and not callable(jac):
        dense = jac.toarray() if hasattr(jac, "toarray") else jac  # SciPy sparse: made dense
        matrix = check_finite_array("jac", dense, ndim=2)
        settings["jac"] = (lambda t, y: matrix) if spec.fixed_step else matrix
    if not spec.fixed_step:
        return {**tolerances, **settings}
    if "h" not in settings:
        raise ValueError(
            f"method {spec.name!r} takes a fixed step: pass the step size, e.g. `h=0.01`."
        )
    settings["h"] = check_positive("h", settings["h"])
    return settings


def solve_ivp(
    fun: Callable[..., Any],
    t_span: tuple[float, float],
    y0: Any,
    method: str | ButcherTableau = "RK45",
    t_eval: Any = None,
    dense_output: bool = False,
    events: Any = None,
    vectorized: bool = False,
    args: tuple | None = None,
    *,
    rtol: Any = 1e-3,
    atol: Any = 1e-6,
    first_step: float | None = None,
    max_step: float = math.inf,
    **options: Any,
) -> OdeResult:
    r"""Solve the initial value problem :math:`y' = f(t, y)`, :math:`y(t_0) = y_0`.

    Parameters
    ----------
    fun : callable
        ``fun(t, y)`` (or ``fun(t, y, *args)``) with ``t`` a float and ``y`` of shape
        (n,); returns shape (n,).
    t_span : (float, float)
        Interval ``(t0, t1)``; ``t1 < t0`` integrates backwards.
    y0 : array_like, shape (n,)
        Initial state, real.  Unlike SciPy, complex values raise ``TypeError``: the
        implicit methods, the Newton solver and the torch front end of this package are
        written for real states, and a silent cast would drop the imaginary part.  Write
        a complex system as the real system of its real and imaginary parts.
    method : str or ButcherTableau
        SciPy's ``"RK45"``, ``"RK23"``, ``"DOP853"``, ``"Radau"`` and ``"BDF"`` (when
        registered), any name of :data:`METHODS` (``"dopri5"``, ``"bosh3"``, ``"rk4"``,
        ``"euler"``, ``"backward_euler"``, ``"AB4"``, ...), or a tableau.  Tableaus with
        an embedded pair are adaptive; the others take ``h``.
    t_eval : array_like, optional
        Output times inside ``t_span``, sorted in the direction of integration;
        filled by dense output.  Default: every step.
    dense_output : bool
        Also return ``sol``, a callable continuous solution.
    events : callable or sequence of callables, optional
        Functions ``g(t, y)`` whose zeros are located on the dense output, with SciPy's
        optional attributes ``terminal`` (bool, or the occurrence that stops the
        integration) and ``direction`` (see :mod:`odecourse.events`).
    vectorized : bool
        As in SciPy: ``fun`` takes states as columns, shape (n, k), and returns (n, k).
        It is then called with one column, ``y[:, None]``, and its result flattened (the
        course's solvers never evaluate several states at once).
    args : tuple, optional
        Extra arguments passed to ``fun``, to a callable ``jac`` and to the events.
    rtol, atol : float or array of shape (n,)
        Non-negative tolerances of adaptive methods (ignored by fixed-step ones).  An
        ``rtol`` below ``100 * eps`` is raised to that floor with a warning, as in SciPy.
    first_step, max_step : float
        Initial and largest step size of adaptive methods.
    **options
        ``h`` (required for fixed-step methods, rejected by adaptive ones),
        ``max_steps`` (default 100000 adaptive, 1000000 fixed), and for implicit methods
        ``jac`` (a callable ``jac(t, y)`` or a constant matrix), plus the options a method
        declares (``newton_tol``, ``starter``, ...).  SciPy's ``jac``, ``jac_sparsity``,
        ``lband``, ``uband`` and ``min_step`` are ignored with a warning by methods that
        do not use them.

    Returns
    -------
    OdeResult
        ``t`` (n_points,), ``y`` (n, n_points), ``sol``, ``t_events``, ``y_events``,
        ``nfev``, ``njev``, ``nlu``, ``status``, ``message``, ``success``, ``n_steps``,
        ``n_rejected``.

    Raises
    ------
    TypeError, ValueError
        For invalid arguments (each message names the argument).

    Notes
    -----
    Explicit adaptive methods accept a step when the scaled RMS norm of the embedded
    error estimate is below one and then set
    :math:`h_{\mathrm{new}} = h \min(10, \max(0.2, 0.9\,\|e\|^{-1/(\hat p+1)}))`,
    as SciPy does, so ``nfev`` is comparable.  A failure (step size underflow, too many
    steps, a non-finite state, Newton failing at the smallest step) is reported as
    ``status = -1`` with a message naming the time, never as success.  Taught in
    Chapters 2 and 3.

    References
    ----------
    hairer1993, Sec. II.4; dormand1980; bogacki1989; shampine1997.
    """
    fun = check_callable("fun", fun)
    t_span = check_t_span("t_span", t_span, allow_empty=True, allow_infinite_end=True)
    y0 = _initial_state(y0)
    spec = _resolve_method(method)
    fun, options, events = _with_args(args, fun, _inert_options(spec, options), events)
    if vectorized:
        fun = _one_column(fun)
    tolerances = {
        "rtol": floor_rtol(_check_tolerance("rtol", rtol, y0.size)),
        "atol": _check_tolerance("atol", atol, y0.size),
        "first_step": None if first_step is None else check_positive("first_step", first_step),
        "max_step": check_positive("max_step", max_step, allow_inf=True),
    }
    settings = _settings(spec, tolerances, options)
    t_eval = check_t_eval("t_eval", t_eval, t_span)
    prepared = prepare_events(events, args)
    if t_span[0] == t_span[1]:
        return _zero_interval(t_span[0], y0, t_eval, dense_output, prepared)
    if prepared is not None:
        settings["events"] = prepared
    if math.isinf(t_span[1]):  # SciPy's open interval: run until an event or a failure
        t_span = (t_span[0], math.copysign(sys.float_info.max, t_span[1]))
    result = spec.solver(
        checked_rhs("fun", fun, y0.size), t_span, y0,
        t_eval=t_eval, dense_output=bool(dense_output), **settings,
    )  # fmt: skip
    return _to_ode_result(result, y0.size)


def _one_column(fun: Callable) -> Callable:
    """Call a SciPy-vectorised ``fun(t, y)`` (columns are states) on one state."""

    def single(t: float, y: np.ndarray) -> Any:
        return np.asarray(fun(t, y[:, None])).reshape(-1)

    return single


def _initial_state(y0: Any) -> np.ndarray:
    """``y0`` as a new float64 vector (never the caller's array), finite like SciPy asks."""
    y0 = real_array("y0", y0)
    if y0.ndim != 1:
        raise ValueError(f"`y0` must have 1 dimension(s); got shape {y0.shape}.")
    if not np.all(np.isfinite(y0)):
        raise ValueError(
            f"All components of the initial state `y0` must be finite; got {y0!r:.80}."
        )
    return y0.copy()


class _ConstantInterpolant:
    """The dense output of an interval of zero length: the initial state everywhere."""

    def __init__(self, t0: float, y0: np.ndarray) -> None:
        self.t_old = self.t_new = t0
        self.y0 = y0

    def __call__(self, t: float) -> np.ndarray:
        return self.y0.copy()


def _zero_interval(
    t0: float, y0: np.ndarray, t_eval: np.ndarray | None, dense_output: bool, events: Any
) -> OdeResult:
    """SciPy's answer for ``t_span = (t0, t0)``: the initial state, with no step taken."""
    t = np.array([t0]) if t_eval is None else t_eval
    return OdeResult(
        t=t,
        y=np.repeat(y0[:, None], t.size, axis=1),
        sol=OdeSolution([_ConstantInterpolant(t0, y0)], [t0, t0]) if dense_output else None,
        t_events=None if events is None else [np.empty(0) for _ in events],
        y_events=None if events is None else [np.empty(0) for _ in events],
        nfev=0,
        njev=0,
        nlu=0,
        status=0,
        message="The interval t_span has zero length: the solution is the initial state.",
        success=True,
        n_steps=0,
        n_rejected=0,
    )


def _to_ode_result(result: IntegrationResult, n: int) -> OdeResult:
    y = np.stack(result.y, axis=1) if result.y else np.empty((n, 0))
    sol = OdeSolution(result.interpolants, result.breakpoints) if result.interpolants else None
    return OdeResult(
        t=np.array(result.t, dtype=float),
        y=y,
        sol=sol,
        t_events=result.t_events,
        y_events=result.y_events,
        nfev=result.nfev,
        njev=result.njev,
        nlu=result.nlu,
        status=result.status,
        message=result.message,
        success=result.success,
        n_steps=result.n_steps,
        n_rejected=result.n_rejected,
    )
