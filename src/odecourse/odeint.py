"""``odeint``: torchdiffeq's interface over the course's integrator core.

``odecourse.odeint.odeint(func, y0, t)`` takes torchdiffeq's arguments,
defaults, shapes and semantics, so a reader can switch between
``from torchdiffeq import odeint`` and ours by changing one import.  It runs
the same Runge-Kutta core as :func:`odecourse.solve.solve_ivp`
(:func:`~odecourse.adaptive.integrate_adaptive` and
:func:`~odecourse.fixed_step.integrate_fixed`): the tableau, the step, the
controller and the loop are shared, only the conventions differ.  Because the
core touches the state with ``+`` and ``*`` only, autograd records every stage
and gradients flow back through the solver ("backprop through the solver").

Taught in Chapter 7.

References
----------
chen2018: R. T. Q. Chen, Y. Rubanova, J. Bettencourt, D. Duvenaud, Neural ordinary
differential equations, NeurIPS 2018 (and the torchdiffeq library).
hairer1993: E. Hairer, S. P. Norsett, G. Wanner, Solving Ordinary Differential
Equations I, 2nd ed., Springer, 1993, Sec. II.4.
"""

from __future__ import annotations

import dataclasses
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from odecourse._loop import IntegrationResult
from odecourse._step_callbacks import (
    ADJOINT_CALLBACK_NAMES,
    CALLBACK_NAMES,
    StepCallbacks,
    find_callbacks,
    lookup,
    step_callbacks,
)
from odecourse._time_grad import solve_tracking_time, tracks_time
from odecourse._torch_args import (
    ADAPTIVE_METHODS,
    ADAPTIVE_OPTIONS,
    FIXED_METHODS,
    FIXED_OPTIONS,
    NO_LIMIT,
    UNSUPPORTED_METHODS,
    Settings,
    TupleLayout,
    check_options,
    check_t,
    check_tolerance,
    check_y0,
    constructed_grid,
    first_non_finite,
    nextafter_in,
    resolve_method,
)
from odecourse._validation import check_callable, floor_rtol
from odecourse.adaptive import Observer, StepSizeController, integrate_adaptive
from odecourse.fixed_step import integrate_fixed
from odecourse.runge_kutta import ButcherTableau

__all__ = [
    "ADAPTIVE_METHODS",
    "ADAPTIVE_OPTIONS",
    "FIXED_METHODS",
    "FIXED_OPTIONS",
    "UNSUPPORTED_METHODS",
    "CountedFunc",
    "SolveStats",
    "odeint",
]


@dataclass
class SolveStats:
    """Counters of one ``odeint`` or ``odeint_adjoint`` call, filled in by the solver.

    Pass an instance as ``stats=`` and read it afterwards; ``odeint_adjoint``
    fills the ``*_backward`` fields when the backward pass runs.

    Attributes
    ----------
    nfe, n_steps, n_rejected : int
        Evaluations of ``func``, accepted and rejected steps of the forward solve.
    nfe_backward, n_steps_backward, n_rejected_backward : int
        The same for the adjoint solve (summed over the output intervals).
    """

    nfe: int = 0
    n_steps: int = 0
    n_rejected: int = 0
    nfe_backward: int = 0
    n_steps_backward: int = 0
    n_rejected_backward: int = 0

    def add(self, result: IntegrationResult) -> None:
        """Add the counters of one core integration to the forward totals."""
        self.nfe += result.nfev
        self.n_steps += result.n_steps
        self.n_rejected += result.n_rejected

    def add_backward(self, forward: SolveStats) -> None:
        """Add the forward counters of ``forward`` (one adjoint solve) to the backward totals."""
        self.nfe_backward += forward.nfe
        self.n_steps_backward += forward.n_steps
        self.n_rejected_backward += forward.n_rejected


class CountedFunc(nn.Module):
    """Wrap a vector field ``func(t, y)`` and count its evaluations in ``nfe``.

    A module ``func`` is registered as a submodule, so ``parameters()``,
    ``.to(device)`` and ``odeint_adjoint`` see its parameters.  A plain
    function has none: ``odeint_adjoint`` then needs ``adjoint_params``.
    Works with torchdiffeq too (it is just a module with a ``forward(t, y)``).
    The step callbacks that ``func`` has when it is wrapped (``callback_step`` and
    the others, see :func:`odeint`) become the wrapper's, so the solvers call them.

    Examples
    --------
    >>> f = CountedFunc(lambda t, y: -y)
    >>> _ = odeint(f, torch.ones(2), torch.tensor([0.0, 1.0]))
    >>> f.nfe > 0
    True

    Taught in Chapter 7.
    """

    def __init__(self, func: Callable[[Tensor, Any], Any]) -> None:
        super().__init__()
        self.func = check_callable("func", func)
        self.nfe = 0
        for name in (*CALLBACK_NAMES, *ADJOINT_CALLBACK_NAMES):  # torchdiffeq's step callbacks
            callback = lookup(func, name)
            if callback is not None:
                setattr(self, name, callback)

    @property
    def wraps_module(self) -> bool:
        """True if the wrapped ``func`` is an ``nn.Module`` (so it carries parameters)."""
        return isinstance(self.func, nn.Module)

    def forward(self, t: Tensor, y: Any) -> Any:
        self.nfe += 1
        return self.func(t, y)

    def reset(self) -> None:
        """Set ``nfe`` back to zero."""
        self.nfe = 0


# --------------------------------------------------------------------------- the solve


class _TensorRHS:
    """The core's ``f(t: float, y)``: calls ``func(t as a 0-d tensor, y)`` and checks it.

    :meth:`at` takes the time as a tensor instead, so that autograd sees it (the
    replay of :mod:`odecourse._time_grad`, for gradients with respect to ``t``).
    """

    def __init__(self, func: Callable, y0: Tensor, layout: TupleLayout | None) -> None:
        self.func, self.layout = func, layout
        self.dtype, self.device, self.shape = y0.dtype, y0.device, y0.shape
        self.started = False

    def __call__(self, t: float, y: Tensor) -> Tensor:
        # torch.full: torch.tensor is slower
        dy = self._evaluate(torch.full((), t, dtype=self.dtype, device=self.device), y)
        if not self.started:  # f(t0, y0): later non-finite values are rejected steps
            self._check_start(dy, t)
        return dy

    def at(self, time: Tensor, y: Tensor) -> Tensor:
        """``func`` at a 0-d tensor ``time`` (any floating dtype: cast to ``y0``'s), checked."""
        dy = self._evaluate(time.to(self.dtype), y)
        if not self.started:
            self._check_start(dy, float(time.detach()))
        return dy

    def _check_start(self, dy: Tensor, t: float) -> None:
        self.started = True
        if not bool(torch.isfinite(dy.detach()).all()):
            raise ValueError(
                f"`func` returned non-finite values at the initial time t = {t:.6g} "
                "(for the finite `y0`), so no step can start; check `func` there."
            )

    def _evaluate(self, time: Tensor, y: Tensor) -> Tensor:
        if self.layout is not None:
            dy = self.layout.flatten(self.func(time, self.layout.unflatten(y)), "func")
        else:
            dy = self.func(time, y)
            if not isinstance(dy, Tensor) or dy.shape != self.shape:
                got = tuple(dy.shape) if isinstance(dy, Tensor) else type(dy).__name__
                raise ValueError(
                    f"`func` must return a tensor of shape {tuple(self.shape)}; got {got}."
                )
        if dy.dtype != self.dtype:
            raise TypeError(
                f"`func` must return tensors of the dtype of `y0` ({self.dtype}); got {dy.dtype} "
                "(convert the module with .to(y0.dtype), or y0 to the module's dtype)."
            )
        return dy


def _integrate(
    rhs: _TensorRHS,
    y0: Tensor,
    times: list[float],
    tableau: ButcherTableau,
    tolerances: tuple[float, float],
    settings: Settings,
    observer: Observer | None = None,
    callbacks: StepCallbacks | None = None,
) -> IntegrationResult:
    """Run the shared core: adaptive between ``t[0]`` and ``t[-1]``, or on a fixed grid.

    ``observer`` watches the attempted steps of an adaptive method (see
    :func:`~odecourse.adaptive.integrate_adaptive`); ``callbacks`` are the user's
    step callbacks (:mod:`odecourse._step_callbacks`), None when ``func`` has none.
    """
    t_span = (times[0], times[-1])
    before_step = None
    if callbacks is not None:
        before_step, observer = callbacks.before, callbacks.observer(observer)
    if tableau.adaptive:
        controller = StepSizeController(
            tableau.error_order, settings.safety, settings.dfactor, settings.ifactor
        )
        return integrate_adaptive(
            rhs, t_span, y0, tableau, rtol=tolerances[0], atol=tolerances[1], t_eval=times,
            first_step=settings.first_step, max_step=settings.max_step,
            max_steps=settings.max_num_steps, controller=controller, norm=settings.norm,
            observer=observer, before_step=before_step, **_adaptive_extras(settings, rhs.dtype),
        )  # fmt: skip
    if settings.grid is not None:  # from options["grid_constructor"]
        grid = settings.grid
    else:
        grid = None if settings.step_size is not None else times
    return integrate_fixed(
        rhs, t_span, y0, settings.step_size, tableau, t_eval=times, grid=grid, max_steps=NO_LIMIT,
        before_step=before_step, **_fixed_extras(settings, rhs.dtype),
    )  # fmt: skip


def _adaptive_extras(settings: Settings, dtype: torch.dtype) -> dict[str, Any]:
    """The core's arguments for ``step_t``, ``jump_t`` and ``min_step``; none by default."""
    if not (settings.step_t or settings.jump_t or settings.min_step):
        return {}
    return {
        "step_t": settings.step_t, "jump_t": settings.jump_t, "min_step": settings.min_step,
        "nextafter": nextafter_in(dtype),
    }  # fmt: skip


def _fixed_extras(settings: Settings, dtype: torch.dtype) -> dict[str, Any]:
    """The core's arguments for ``perturb`` and ``interp``; none by default."""
    if not (settings.perturb or settings.interp):
        return {}
    return {
        "perturb": settings.perturb, "interp": settings.interp, "nextafter": nextafter_in(dtype)
    }  # fmt: skip


def _raise_failure(result: IntegrationResult) -> None:
    """Raise the core's own failure, which names the time and the reason."""
    raise RuntimeError(f"odeint: {result.message}")


def _check_finite_solution(solution: Tensor, times: list[float]) -> None:
    i = first_non_finite(solution, len(times))
    if i is None:
        return
    raise RuntimeError(
        f"odeint: the solution is not finite at t = {times[i]:.6g} (output {i}); it was finite "
        f"at t = {times[i - 1]:.6g}. It may blow up in between, or the step is too large "
        "(use a smaller step_size or an adaptive method)."
    )


def odeint(
    func: Callable[[Tensor, Any], Any],
    y0: Tensor | tuple[Tensor, ...],
    t: Tensor,
    *,
    rtol: float = 1e-7,
    atol: float = 1e-9,
    method: str | ButcherTableau | None = None,
    options: Mapping[str, Any] | None = None,
    event_fn: Callable[[Tensor, Any], Tensor] | None = None,
    stats: SolveStats | None = None,
) -> Tensor | tuple[Tensor, ...] | tuple[Tensor, Tensor | tuple[Tensor, ...]]:
    r"""Solve :math:`y' = f(t, y)`, :math:`y(t_0) = y_0`, and return ``y`` at every time of ``t``.

    Parameters
    ----------
    func : callable
        ``func(t, y)``; ``t`` is a 0-d tensor of ``y0``'s dtype and device, ``y``
        and the return value are shaped like ``y0`` (a tuple like ``y0`` for a tuple).
    y0 : Tensor, shape (*S), or tuple of Tensors
        Initial state at ``t[0]``, float32 or float64, on any device.  Tuple
        components must share dtype and device.  Unlike torchdiffeq, float16 and
        bfloat16 are refused with a ``TypeError``: with three significant digits the
        error control cannot meet any useful tolerance, and it used to fail with a
        misleading "step size too small".
    t : Tensor, shape (T,)
        Output times, strictly increasing or strictly decreasing, floating, on
        ``y0``'s device (cast to ``y0``'s dtype when passed to ``func``).  When
        ``t`` requires grad (and grad mode is on) the result is differentiable with
        respect to every ``t[i]``, as torchdiffeq's is: autograd differentiates the
        numerical solution itself, with times held as float64 tensors.  A
        fixed-step method steps on its grid (``t``; ``t[0] + k * step_size``, which
        moves with ``t[0]``; or the tensor ``grid_constructor`` returns when called
        again with ``t``, its ends tied to ``t[0]`` and ``t[-1]``) with tensor step
        sizes, so the gradient is exact for the discrete solution.  An adaptive
        method first solves without a graph (``torch.no_grad()``) to choose its
        steps, then replays exactly those steps with tensor times: interior step
        ends are ``t[0]`` plus constant offsets (after a ``step_t`` or ``jump_t``
        time, offsets from that fixed time), the last one is ``t[-1]``, and outputs
        in between come from the dense output at a tensor fraction.  The step sizes
        the controller chose are constants, so the gradient differs from finite
        differences of ``odeint`` by at most about the tolerance.  ``result[0]`` is ``y0``
        and does not depend on ``t[0]``.  The values agree with those for
        ``t.detach()`` to rounding; the adaptive replay costs about as many
        evaluations as the solve, and ``stats.nfe`` counts both (``n_steps`` counts
        the steps once).  Every option is honoured (``perturb`` and ``jump_t`` move
        the tensor stage times by the same constants as the float ones).
    rtol, atol : float or Tensor
        Non-negative tolerances of the adaptive methods (torchdiffeq's defaults); a
        one-element tensor counts as its number, and a tensor that broadcasts to the
        shape of ``y0`` gives per-entry tolerances (for a tensor ``y0`` only).
    method : str, optional
        ``"dopri5"`` (default), ``"bosh3"`` (adaptive), ``"euler"``, ``"midpoint"``,
        ``"heun"``, ``"ralston"``, ``"rk4"``, ``"rk38"`` (fixed step), or an
        explicit :class:`~odecourse.runge_kutta.ButcherTableau` (DOP853 included).  The
        implicit and stiff methods (``"Radau"``, ``"BDF"``, the implicit tableaus and
        multistep methods solved by Newton) work on NumPy arrays only, through
        :func:`odecourse.solve_ivp`; the torch path is explicit, like torchdiffeq's.
    options : dict, optional
        Adaptive: ``first_step``, ``max_num_steps`` (accepted steps over the
        whole call), ``max_step``, ``norm`` (callable ``tensor -> scalar`` that
        replaces the RMS norm of the scaled error; for a tuple state it receives
        the tuple), ``safety`` in (0, 1], ``ifactor`` >= 1, ``dfactor`` in (0, 1)
        (torchdiffeq does not check these three; outside these ranges the controller
        loops forever or shrinks the step every time), and:

        - ``min_step`` (>= 0, at most ``max_step``; default 0): no step is shorter,
          and a step of this size is accepted even when its error is too large,
          as in torchdiffeq (accuracy is then no longer controlled);
        - ``step_t``: times (a 1-D tensor or a list of numbers) that the steps
          must land on exactly; a step that would pass one ends there;
        - ``jump_t``: times where ``func`` is discontinuous.  The steps land on
          them; the step that ends at a jump evaluates ``func`` at the float just
          before it (on the side it comes from), and the step after it starts
          with ``func`` evaluated afresh just past it, instead of reusing the last
          stage (FSAL).  A jump at ``t[0]`` makes the first evaluation just past
          ``t[0]``.  Steps then never straddle a discontinuity, which the error
          control would otherwise resolve with many small rejected steps.
          "Just before/past" is the neighbouring float of ``y0``'s dtype
          (``nextafter``) in the direction of integration;
        - ``dtype``: torchdiffeq's dtype of times and step sizes.  Ours are always
          float64 (Python floats), so ``torch.float64`` (torchdiffeq's default) is
          accepted and changes nothing; other dtypes are refused.

        ``step_t`` and ``jump_t`` may be in any order; a time outside the interval
        of ``t`` is ignored, a time in both lists is a jump, and only their values
        are used (no gradient reaches them).

        Fixed step: ``step_size``, or ``grid_constructor``, ``perturb``, ``interp``.
        Without ``step_size`` a fixed-step method takes exactly one step from each
        output time to the next, as torchdiffeq does; with it, it steps on the grid
        ``t[0] + k * step_size`` (last step shortened to end at ``t[-1]``) and fills
        the output times by dense output.

        - ``grid_constructor``: a callable ``(func, y0, t) -> grid`` (excludes
          ``step_size``), called once per solve with the arguments of this call.
          The grid must be a 1-D real tensor, strictly monotone like ``t``, whose
          first and last entries equal ``t[0]`` and ``t[-1]`` exactly; the steps go
          from each grid point to the next;
        - ``perturb`` (bool, default False): ``func`` never sees a grid time.  In
          the step from :math:`t_n` to :math:`t_{n+1}` a stage at :math:`t_n` is
          evaluated at the float just after it and a stage at :math:`t_{n+1}` at
          the float just before it (in the direction of integration), so a
          discontinuity at a grid time is seen from inside each step;
        - ``interp``: ``"linear"`` or ``"cubic"``, how output times between grid
          points are filled: linear interpolation between the ends of the step
          (torchdiffeq's default) or cubic Hermite interpolation with the slopes
          at both ends.  Without it, the method's dense output is used, which for
          the built-in fixed-step methods is that same cubic Hermite.

        Numbers may be given as one-element tensors.
    event_fn : callable, optional
        torchdiffeq's event mode.  ``event_fn(t, y)`` (``t`` a 0-d tensor of ``y0``'s
        dtype, ``y`` like ``y0``) returns a real floating tensor: a scalar, or several
        components of any shape.  ``t`` must then hold exactly two times: the
        integration starts at ``t[0]`` and goes, without an end, in the direction of
        ``t[1]``, until a component changes sign (or becomes exactly zero): the first
        component to do so ends it, whatever the direction of its crossing.  A
        component that is exactly zero at ``t[0]`` counts from its first nonzero value
        at a step end (torchdiffeq's adaptive methods stop at once at ``t[0]`` instead).
        After each accepted step the signs at its end are compared with those so far,
        and the root is found by Brent's method on the step's dense output to about
        4 units in the last place, as :func:`odecourse.solve_ivp` finds events
        (fixed-step methods need ``options['step_size']``: they step on the grid
        ``t[0] + k * step_size``, and locate the root on the dense output, or on the
        ``interp`` interpolant when given).  Then the problem is solved again from
        ``t[0]`` to the event time with gradients, and the implicit function theorem
        makes the event time and state differentiable with respect to ``y0``, ``t[0]``,
        the parameters of ``func`` and those of ``event_fn`` (in torchdiffeq only
        ``odeint_event`` does this; see :mod:`odecourse.odeint_event`).  ``stats``
        counts the search (the step that holds the event is taken twice, the second
        time for its dense output), the second solve and one evaluation of ``func`` at
        the event.  Raises
        ``RuntimeError`` if no event occurs before ``max_num_steps`` steps (100000 grid
        steps for a fixed-step method) or if the event is tangential and gradients are
        needed; the options ``jump_t``, ``perturb`` and ``grid_constructor`` are not
        supported with it.  With the default ``max_num_steps`` (2**31 - 1,
        torchdiffeq's) a problem without an event can run for a very long time: set
        ``options['max_num_steps']`` when the event may not occur.
    stats : SolveStats, optional
        Filled with the number of evaluations and steps (not a torchdiffeq argument).

    Returns
    -------
    Tensor, shape (T, *S), or tuple of Tensors
        ``y`` at each time of ``t`` stacked along a new first dimension;
        ``result[0]`` equals ``y0``.  Differentiable with respect to ``y0`` and
        whatever ``func`` depends on.  With ``event_fn``: the pair
        ``(event_t, solution)``, ``event_t`` a 0-d tensor of ``t``'s dtype and
        ``solution`` of shape (2, *S), ``[y0, y(event_t)]``.

    Raises
    ------
    TypeError, ValueError
        For invalid arguments; the message names the argument.
    RuntimeError
        If the step size underflows, ``max_num_steps`` is exceeded, or the
        solution becomes non-finite (the message gives the time).

    Notes
    -----
    Each step is the generic explicit Runge-Kutta step of the method's tableau,

    .. math::
        k_i = f\Big(t_n + c_i h,\; y_n + h \sum_{j<i} a_{ij} k_j\Big), \qquad
        y_{n+1} = y_n + h \sum_i b_i k_i,

    and adaptive methods accept a step when the scaled RMS norm of the embedded
    error estimate is below one.  Differences from torchdiffeq: ``"rk4"`` is the
    classical tableau (torchdiffeq's ``"rk4"`` uses the 3/8 rule: our ``"rk38"``);
    output times between steps come from the tableau's dense output (torchdiffeq
    fits its own quartic for dopri5, and interpolates linearly for fixed-grid
    methods unless ``interp="cubic"``; pass ``interp="linear"`` to get its
    fixed-grid outputs); the step-size controller is SciPy's (an accepted
    step may shrink the next one; torchdiffeq never shrinks after an acceptance);
    and torchdiffeq's dopri5 estimates the error with Shampine's alternative
    embedded weights, so its step sizes and NFE differ slightly (pass a
    ``ButcherTableau`` with those ``b_hat`` to reproduce them).  Taught in
    Chapter 7.

    Step callbacks, as in torchdiffeq: if ``func`` has a method (or attribute)
    ``callback_step(t0, y0, dt)``, it is called before every attempted step, and
    ``callback_accept_step`` or ``callback_reject_step`` after each attempt of an
    adaptive method, whichever applies.  A fixed-step method accepts every step
    without an error estimate: it never calls those two and warns (``UserWarning``)
    when ``func`` has them.  ``t0`` and ``dt`` are 0-d float64 tensors on ``y0``'s
    device, the start of the attempt and its signed length, so ``t0 + dt`` is its
    end also backwards in time (torchdiffeq passes ``|dt|`` there); ``y0`` is the
    state at ``t0``, shaped like ``y0`` (a tuple for a tuple).  The callbacks are
    looked up once per call (one that is not callable is a ``TypeError``); they only
    watch and change no result, and without them the solver runs its plain loop.
    When ``t`` requires grad each step is reported once: by the graph-free pass
    of an adaptive method (which chooses the steps; its states carry no graph), by
    the differentiable replay of a fixed-step one.  With ``event_fn`` they are
    called by the solve from ``t[0]`` to the event time, not by the search that
    locates the event (torchdiffeq calls them in its search, its only solve).

    References
    ----------
    chen2018; hairer1993, Sec. II.4; dormand1980.
    """
    if event_fn is not None:  # torchdiffeq's event mode: odecourse.odeint_event
        from odecourse.odeint_event import solve_until_event

        return solve_until_event(
            odeint, func, y0, t, event_fn, rtol=rtol, atol=atol, method=method,
            options=options, stats=stats,
        )  # fmt: skip
    check_callable("func", func)
    flat_y0, layout = check_y0(y0)
    times = check_t(t, flat_y0)
    tableau = resolve_method(method)
    per_entry = flat_y0 if layout is None else None
    tolerances = (
        check_tolerance("rtol", rtol, per_entry),
        check_tolerance("atol", atol, per_entry),
    )
    if tableau.adaptive and all(_is_zero(tol) for tol in tolerances):
        raise ValueError("`rtol` and `atol` cannot both be zero.")
    if tableau.adaptive:  # the float64 floor, as SciPy: torchdiffeq's rtol=1e-7 stays valid
        tolerances = (_floor_rtol(tolerances[0]), tolerances[1])
    settings = check_options(options, tableau)
    if settings.grid_constructor is not None and len(times) > 1:
        settings = constructed_grid(settings, func, y0, t, times)
    if layout is not None and tableau.adaptive:
        settings = dataclasses.replace(settings, norm=layout.flat_norm(settings.norm))
    # torchdiffeq's step callbacks, looked up once: None (the plain core) when func has none
    found = find_callbacks(func, tableau.name, tableau.adaptive) if len(times) > 1 else None
    callbacks = step_callbacks(found, layout, flat_y0.device)
    if tracks_time(t):  # differentiable in t: tensor times (odecourse._time_grad)
        solution = solve_tracking_time(
            func, flat_y0, t, times, tableau, tolerances, settings, layout, stats, callbacks
        )
    else:
        solution = _solve(
            func, flat_y0, times, tableau, tolerances, settings, layout, stats, callbacks
        )
    return solution if layout is None else layout.unstack(solution)


def _is_zero(tol: float | Tensor) -> bool:
    return bool((tol == 0).all()) if isinstance(tol, Tensor) else tol == 0


def _floor_rtol(rtol: float | Tensor) -> float | Tensor:
    """:func:`~odecourse._validation.floor_rtol`, for a float or a tensor of tolerances."""
    if not isinstance(rtol, Tensor):
        return floor_rtol(rtol)
    floored = floor_rtol(rtol.cpu().numpy())
    return torch.as_tensor(floored, dtype=rtol.dtype, device=rtol.device)


def _solve(
    func: Callable,
    y0: Tensor,
    times: list[float],
    tableau: ButcherTableau,
    tolerances: tuple[float, float],
    settings: Settings,
    layout: TupleLayout | None,
    stats: SolveStats | None,
    callbacks: StepCallbacks | None = None,
) -> Tensor:
    """Integrate the validated problem and stack the outputs along a new first dimension."""
    if len(times) == 1:
        return torch.stack([y0])
    rhs = _TensorRHS(func, y0, layout)
    result = _integrate(rhs, y0, times, tableau, tolerances, settings, callbacks=callbacks)
    if stats is not None:
        stats.add(result)
    if result.status < 0:
        _raise_failure(result)
    solution = torch.stack(result.y)
    _check_finite_solution(solution, times)
    return solution


class _OdeintModule(types.ModuleType):
    """This module, callable as :func:`odeint` itself.

    ``import odecourse.odeint`` gives the module (its helpers stay reachable as
    attributes), and ``odecourse.odeint(func, y0, t)`` still calls the solver, which is
    torchdiffeq's spelling.  Without this, the package's re-export of the function
    would hide the module behind it.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return odeint(*args, **kwargs)


sys.modules[__name__].__class__ = _OdeintModule
