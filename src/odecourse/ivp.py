"""Initial value problems as validated data, and the registry of problems used in the course.

An initial value problem asks for a function :math:`y` with

.. math::

    y'(t) = f(t, y(t)), \\qquad y(t_0) = y_0, \\qquad t \\in [t_0, t_1].

:class:`IVP` holds the right-hand side, the interval and the initial value (always a 1-D float
array, so a scalar equation has ``n = 1``), plus the exact solution and the Jacobian
:math:`\\partial f / \\partial y` when they are known. :func:`get_problem` builds the standard
problems by name; :data:`PROBLEMS` lists the names.

Taught in Chapter 1.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import expm

from ._validation import (
    check_callable,
    check_choice,
    check_finite_array,
    check_positive,
    check_real,
    check_t_span,
)

__all__ = ["IVP", "PROBLEMS", "get_problem"]

#: Van der Pol problems with ``mu`` at least this large are flagged stiff.
STIFF_MU = 100.0
#: The Van der Pol limit cycle has period about ``VDP_PERIOD_FACTOR * mu`` for large ``mu``.
VDP_PERIOD_FACTOR = 3.0 - 2.0 * np.log(2.0)


@dataclass(frozen=True, eq=False)
class IVP:
    """An initial value problem :math:`y' = f(t, y)`, :math:`y(t_0) = y_0` on :math:`[t_0, t_1]`.

    Parameters
    ----------
    f : callable
        Right-hand side ``f(t, y)``: a float ``t`` and an array ``y`` of shape ``(n,)`` give an
        array of shape ``(n,)``.
    t_span : tuple of float
        The interval ``(t0, t1)``; a problem definition requires ``t0 < t1`` (a solver may still
        integrate backwards; the problem itself is stated forwards in time).
    y0 : array_like, shape (n,) or scalar
        Initial value, stored as a read-only 1-D float array (a scalar becomes shape ``(1,)``).
    exact : callable or None
        Exact solution ``exact(t)``: shape ``(n,)`` for a scalar ``t``, ``(n, len(t))`` for a 1-D
        array ``t``. ``None`` when no closed form is known (or the solution is not unique).
    jacobian : callable or None
        ``jacobian(t, y)`` of shape ``(n, n)``, the matrix :math:`\\partial f_i / \\partial y_j`.
    name : str
        A short identifier, e.g. ``"van_der_pol"``.
    stiff : bool
        Whether the problem is stiff on ``t_span`` (explicit methods need tiny steps).
    description : str
        One or two sentences for tables and plot titles.

    Raises
    ------
    TypeError
        If ``f``, ``exact`` or ``jacobian`` is not callable, or a field has the wrong type.
    ValueError
        If ``t_span`` is not an increasing finite pair, ``y0`` is empty or not finite, or
        ``f``, ``exact`` or ``jacobian`` return the wrong shape at ``(t0, y0)``, or
        ``exact(t0)`` differs from ``y0``.

    Notes
    -----
    Taught in Chapter 1.
    """

    f: Callable[[float, np.ndarray], np.ndarray]
    t_span: tuple[float, float]
    y0: np.ndarray
    exact: Callable[[float | np.ndarray], np.ndarray] | None = None
    jacobian: Callable[[float, np.ndarray], np.ndarray] | None = None
    name: str = "ivp"
    stiff: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        check_callable("f", self.f)
        t_span = check_t_span("t_span", self.t_span, allow_reversed=False)
        y0 = np.atleast_1d(check_finite_array("y0", self.y0, ndim=(0, 1))).copy()
        if y0.size == 0:
            raise ValueError("`y0` must have at least one component; got an empty array.")
        y0.setflags(write=False)
        object.__setattr__(self, "t_span", t_span)
        object.__setattr__(self, "y0", y0)
        for field_name in ("exact", "jacobian"):
            if getattr(self, field_name) is not None:
                check_callable(field_name, getattr(self, field_name))
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"`name` must be a non-empty string; got {self.name!r:.60}.")
        if not isinstance(self.stiff, bool | np.bool_):
            raise TypeError(f"`stiff` must be a bool; got {type(self.stiff).__name__}.")
        object.__setattr__(self, "stiff", bool(self.stiff))
        if not isinstance(self.description, str):
            raise TypeError(f"`description` must be a string; got {self.description!r:.60}.")
        self._check_callables_at_start()

    def _check_callables_at_start(self) -> None:
        """Evaluate ``f``, ``exact`` and ``jacobian`` once at ``(t0, y0)`` and check shapes."""
        t0, n = self.t_span[0], self.dim
        _check_shape("f(t0, y0)", self.f(t0, self.y0.copy()), (n,))
        if self.jacobian is not None:
            _check_shape("jacobian(t0, y0)", self.jacobian(t0, self.y0.copy()), (n, n))
        if self.exact is not None:
            start = _check_shape("exact(t0)", self.exact(t0), (n,))
            if not np.allclose(start, self.y0, rtol=1e-10, atol=1e-12):
                raise ValueError(f"`exact(t0)` must equal `y0` = {self.y0}; got {start}.")

    @property
    def dim(self) -> int:
        """The number of components ``n`` of the state."""
        return self.y0.shape[0]


def _check_shape(what: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    if array.shape != shape:
        raise ValueError(f"`{what}` must return an array of shape {shape}; got {array.shape}.")
    return array


def _stack(*components: np.ndarray) -> np.ndarray:
    """Stack component functions of ``t`` into shape ``(n,)`` or ``(n, len(t))``."""
    return np.stack(np.broadcast_arrays(*components))


def _time(t: float | np.ndarray) -> np.ndarray:
    return np.asarray(t, dtype=float)


def _exponential_decay(lam=1.0, y0=1.0, t_span=(0.0, 5.0)) -> IVP:
    """:math:`y' = -\\lambda y`, exact :math:`y_0 e^{-\\lambda (t - t_0)}`."""
    lam, y0 = check_positive("lam", lam), check_real("y0", y0)
    t0 = check_t_span("t_span", t_span, allow_reversed=False)[0]
    return IVP(
        f=lambda t, y: -lam * y,
        t_span=t_span,
        y0=y0,
        exact=lambda t: _stack(y0 * np.exp(-lam * (_time(t) - t0))),
        jacobian=lambda t, y: np.array([[-lam]]),
        name="exponential_decay",
        description=f"Exponential decay y' = -{lam:g} y.",
    )


def _logistic(r=1.0, K=1.0, y0=0.1, t_span=(0.0, 10.0)) -> IVP:
    """:math:`y' = r y (1 - y/K)`, exact :math:`K y_0 / (y_0 + (K - y_0) e^{-r(t - t_0)})`."""
    r, K, y0 = check_positive("r", r), check_positive("K", K), check_positive("y0", y0)
    t0 = check_t_span("t_span", t_span, allow_reversed=False)[0]

    def exact(t):
        return _stack(K * y0 / (y0 + (K - y0) * np.exp(-r * (_time(t) - t0))))

    return IVP(
        f=lambda t, y: r * y * (1.0 - y / K),
        t_span=t_span,
        y0=y0,
        exact=exact,
        jacobian=lambda t, y: np.array([[r * (1.0 - 2.0 * y[0] / K)]]),
        name="logistic",
        description=f"Logistic growth y' = {r:g} y (1 - y/{K:g}).",
    )


def _harmonic_oscillator(omega=1.0, y0=(1.0, 0.0), t_span=(0.0, 10.0)) -> IVP:
    """:math:`q'' = -\\omega^2 q` as the system :math:`q' = p`, :math:`p' = -\\omega^2 q`."""
    omega = check_positive("omega", omega)
    q0, p0 = _check_state("y0", y0, 2)
    t0 = check_t_span("t_span", t_span, allow_reversed=False)[0]

    def exact(t):
        s = omega * (_time(t) - t0)
        q = q0 * np.cos(s) + p0 / omega * np.sin(s)
        return _stack(q, -q0 * omega * np.sin(s) + p0 * np.cos(s))

    return IVP(
        f=lambda t, y: np.array([y[1], -(omega**2) * y[0]]),
        t_span=t_span,
        y0=(q0, p0),
        exact=exact,
        jacobian=lambda t, y: np.array([[0.0, 1.0], [-(omega**2), 0.0]]),
        name="harmonic_oscillator",
        description=f"Harmonic oscillator q'' = -{omega:g}^2 q, state (q, q').",
    )


def _linear_system(A=((-2.0, 1.0), (1.0, -2.0)), y0=(1.0, 0.0), t_span=(0.0, 5.0)) -> IVP:
    """:math:`y' = A y`, exact :math:`e^{A (t - t_0)} y_0` (default eigenvalues -1 and -3)."""
    A = check_finite_array("A", A, ndim=2)
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"`A` must be a square matrix; got shape {A.shape}.")
    y0 = _check_state("y0", y0, A.shape[0])
    t0 = check_t_span("t_span", t_span, allow_reversed=False)[0]

    def exact(t):
        t = _time(t)
        propagators = expm((t - t0)[..., None, None] * A)
        return np.moveaxis(propagators @ y0, -1, 0)

    return IVP(
        f=lambda t, y: A @ y,
        t_span=t_span,
        y0=y0,
        exact=exact,
        jacobian=lambda t, y: A.copy(),
        name="linear_system",
        description=f"Linear system y' = A y with A of shape {A.shape}.",
    )


def _lotka_volterra(
    alpha=1.0, beta=0.5, gamma=1.0, delta=0.25, y0=(2.0, 1.0), t_span=(0.0, 15.0)
) -> IVP:
    """Predator-prey: :math:`x' = \\alpha x - \\beta x y`, :math:`y' = \\delta x y - \\gamma y`."""
    a, b = check_positive("alpha", alpha), check_positive("beta", beta)
    c, d = check_positive("gamma", gamma), check_positive("delta", delta)
    y0 = _check_state("y0", y0, 2)
    if np.any(y0 <= 0):
        raise ValueError(f"`y0` must have positive populations; got {y0}.")

    def jacobian(t, y):
        return np.array([[a - b * y[1], -b * y[0]], [d * y[1], d * y[0] - c]])

    return IVP(
        f=lambda t, y: np.array([a * y[0] - b * y[0] * y[1], d * y[0] * y[1] - c * y[1]]),
        t_span=t_span,
        y0=y0,
        jacobian=jacobian,
        name="lotka_volterra",
        description="Lotka-Volterra predator-prey model; V = d x - c ln x + b y - a ln y is "
        "conserved.",
    )


def _van_der_pol(mu=1.0, y0=(2.0, 0.0), t_span=None) -> IVP:
    """:math:`x'' - \\mu (1 - x^2) x' + x = 0` as a first-order system; stiff for large mu."""
    mu = check_positive("mu", mu, allow_zero=True)
    if t_span is None:
        t_span = (0.0, max(20.0, 2.0 * VDP_PERIOD_FACTOR * mu))

    def jacobian(t, y):
        return np.array([[0.0, 1.0], [-2.0 * mu * y[0] * y[1] - 1.0, mu * (1.0 - y[0] ** 2)]])

    return IVP(
        f=lambda t, y: np.array([y[1], mu * (1.0 - y[0] ** 2) * y[1] - y[0]]),
        t_span=t_span,
        y0=_check_state("y0", y0, 2),
        jacobian=jacobian,
        name="van_der_pol",
        stiff=mu >= STIFF_MU,
        description=f"Van der Pol oscillator with mu = {mu:g}.",
    )


def _robertson(k1=0.04, k2=3.0e7, k3=1.0e4, y0=(1.0, 0.0, 0.0), t_span=(0.0, 40.0)) -> IVP:
    """Robertson's chemical kinetics: rate constants spread over eleven orders of magnitude."""
    k1, k2, k3 = (check_positive(n, v) for n, v in (("k1", k1), ("k2", k2), ("k3", k3)))

    def f(t, y):
        slow, fast = k1 * y[0], k2 * y[1] ** 2
        coupling = k3 * y[1] * y[2]
        return np.array([-slow + coupling, slow - coupling - fast, fast])

    def jacobian(t, y):
        return np.array(
            [
                [-k1, k3 * y[2], k3 * y[1]],
                [k1, -k3 * y[2] - 2.0 * k2 * y[1], -k3 * y[1]],
                [0.0, 2.0 * k2 * y[1], 0.0],
            ]
        )

    return IVP(
        f=f,
        t_span=t_span,
        y0=_check_state("y0", y0, 3),
        jacobian=jacobian,
        name="robertson",
        stiff=True,
        description="Robertson's stiff chemical kinetics (three species, sum conserved).",
    )


def _blow_up(y0=1.0, t_span=None) -> IVP:
    """:math:`y' = y^2`, exact :math:`y_0 / (1 - y_0 (t - t_0))`, blowing up at t0 + 1/y0."""
    y0 = check_real("y0", y0)
    if t_span is None:
        t_span = (0.0, 0.9 / y0 if y0 > 0 else 1.0)
    t0, t1 = check_t_span("t_span", t_span, allow_reversed=False)
    if y0 > 0 and t1 >= t0 + 1.0 / y0:
        raise ValueError(
            f"`t_span` must end before the blow-up time t0 + 1/y0 = {t0 + 1.0 / y0:g}; "
            f"got {(t0, t1)}."
        )
    return IVP(
        f=lambda t, y: y**2,
        t_span=(t0, t1),
        y0=y0,
        exact=lambda t: _stack(y0 / (1.0 - y0 * (_time(t) - t0))),
        jacobian=lambda t, y: np.array([[2.0 * y[0]]]),
        name="blow_up",
        description="y' = y^2: the solution reaches infinity in finite time.",
    )


def _non_unique(y0=0.0, t_span=(0.0, 2.0)) -> IVP:
    """:math:`y' = 2\\sqrt{|y|}`; from ``y0 = 0`` every :math:`(t - c)_+^2` is a solution."""
    return IVP(
        f=lambda t, y: 2.0 * np.sqrt(np.abs(y)),
        t_span=t_span,
        y0=check_real("y0", y0),
        name="non_unique",
        description="y' = 2 sqrt|y|: not Lipschitz at y = 0, so y(0) = 0 has many solutions.",
    )


def _check_state(name: str, value: Any, n: int) -> np.ndarray:
    state = check_finite_array(name, value, ndim=1)
    if state.shape != (n,):
        raise ValueError(f"`{name}` must have shape ({n},); got shape {state.shape}.")
    return state


_FACTORIES: dict[str, Callable[..., IVP]] = {
    "exponential_decay": _exponential_decay,
    "logistic": _logistic,
    "harmonic_oscillator": _harmonic_oscillator,
    "linear_system": _linear_system,
    "lotka_volterra": _lotka_volterra,
    "van_der_pol": _van_der_pol,
    "robertson": _robertson,
    "blow_up": _blow_up,
    "non_unique": _non_unique,
}

#: Names accepted by :func:`get_problem`.
PROBLEMS: tuple[str, ...] = tuple(_FACTORIES)


def get_problem(name: str, **params: Any) -> IVP:
    """Build a standard initial value problem by name.

    Parameters
    ----------
    name : str
        One of :data:`PROBLEMS`.
    **params
        Problem parameters; every problem accepts ``y0`` and ``t_span``, and its own:

        - ``exponential_decay``: :math:`y' = -\\lambda y`; ``lam=1``.
        - ``logistic``: :math:`y' = r y (1 - y/K)`; ``r=1, K=1``.
        - ``harmonic_oscillator``: :math:`q' = p,\\ p' = -\\omega^2 q`; ``omega=1``.
        - ``linear_system``: :math:`y' = A y`; ``A`` (default eigenvalues -1, -3).
        - ``lotka_volterra``: :math:`x' = \\alpha x - \\beta x y,\\ y' = \\delta x y - \\gamma y`;
          ``alpha=1, beta=0.5, gamma=1, delta=0.25``.
        - ``van_der_pol``: :math:`x'' - \\mu (1 - x^2) x' + x = 0`; ``mu=1`` (``mu >= 0``;
          flagged stiff for ``mu >= 100``).
        - ``robertson``: three-species chemical kinetics; ``k1, k2, k3``.
        - ``blow_up``: :math:`y' = y^2`; ``t_span`` must end before :math:`t_0 + 1/y_0`.
        - ``non_unique``: :math:`y' = 2\\sqrt{|y|}`; no exact solution (there are many).

    Returns
    -------
    IVP
        The problem, with ``exact`` for ``exponential_decay``, ``logistic``,
        ``harmonic_oscillator``, ``linear_system`` and ``blow_up``.

    Raises
    ------
    ValueError
        If ``name`` is unknown or a parameter is out of range (e.g. ``mu < 0``).
    TypeError
        If a parameter name is not accepted by the problem, or has the wrong type.

    Notes
    -----
    Taught in Chapter 1.
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string; got {type(name).__name__} {name!r:.60}.")
    factory = _FACTORIES[check_choice("name", name, PROBLEMS)]
    accepted = tuple(inspect.signature(factory).parameters)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TypeError(
            f"Problem {name!r} got unknown parameter(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted)}."
        )
    return factory(**params)
