"""Event handling of odeint/odeint_adjoint (``event_fn``) and ``odeint_event``.

The cases follow torchdiffeq's tests/event_tests.py (a polynomial and a trigonometric
problem with known solutions, forwards and backwards, float32 and float64, adaptive and
fixed-step methods, the same relative margins); the gradients of the event time and
state are checked by finite differences (gradcheck) and against closed forms.
"""

import math
import warnings

import numpy as np
import pytest
import scipy.integrate
import torch

import odecourse
import odecourse._event_search as event_search
from odecourse import CountedFunc, SolveStats, odeint, odeint_adjoint, odeint_event, solve_ivp
from odecourse.dop853 import DOP853

F64 = torch.float64


# --------------------------------------------------------------------------- problems


class Polynomial(torch.nn.Module):
    """y' = a + (y - (a t + b))^5, solved by y = a t + b (torchdiffeq's "constant" problem)."""

    def __init__(self, dtype):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(0.2, dtype=dtype))
        self.b = torch.nn.Parameter(torch.tensor(3.0, dtype=dtype))

    def forward(self, t, y):
        return self.a + (y - (self.a * t + self.b)) ** 5

    def exact(self, t):
        return self.a * t + self.b


class Trigonometric(torch.nn.Module):
    """y' = 2y/t + t^4 sin 2t - t^2 + 4t^3, with a closed-form solution (torchdiffeq's "sine")."""

    def forward(self, t, y):
        return 2 * y / t + t**4 * torch.sin(2 * t) - t**2 + 4 * t**3

    def exact(self, t):
        c, s = torch.cos(2 * t), torch.sin(2 * t)
        return (
            -0.5 * t**4 * c
            + 0.5 * t**3 * s
            + 0.25 * t**2 * c
            - t**3
            + 2 * t**4
            + (math.pi - 0.25) * t**2
        )


def _problem(ode, dtype, reverse):
    """A field, y0, ten times from 1 to 8 (from 8 to 1 if reversed) and the exact values."""
    func = {"polynomial": Polynomial, "trigonometric": Trigonometric}[ode]
    func = func(dtype) if ode == "polynomial" else func()
    times = torch.linspace(1.0, 8.0, 10, dtype=dtype)
    if reverse:
        times = times.flip(0)
    with torch.no_grad():
        values = func.exact(times)
    return func, values[0].reshape(1), times, values


def _rel_error(true, estimate):
    return float(((true - estimate) / true).detach().abs().max())


# --------------------------------------------------------------------------- torchdiffeq's cases

METHODS = ("dopri5", "bosh3", "euler", "midpoint", "rk4")


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("ode", ["polynomial", "trigonometric"])
def test_event_time_and_state_match_the_exact_solution(ode, method, dtype, reverse):
    func, y0, times, values = _problem(ode, dtype, reverse)
    target = values[2]

    def event_fn(t, y):
        return torch.sum(y - target)

    options = {} if method in ("dopri5", "bosh3") else {"step_size": 0.01, "interp": "cubic"}
    event_t, solution = odeint(
        func, y0, times[:2], event_fn=event_fn, method=method, options=options
    )
    tol = 5e-3 if method == "euler" else 1e-4
    assert event_t.shape == () and event_t.dtype == dtype
    assert solution.shape == (2, 1) and solution.dtype == dtype
    assert torch.equal(solution[0], y0)
    assert _rel_error(target, solution[-1]) < tol
    assert _rel_error(times[2], event_t) < tol


def test_adjoint_event_runs_backward_for_time_and_state():
    func, y0, times, values = _problem("polynomial", F64, reverse=False)
    y0.requires_grad_(True)

    def event_fn(t, y):
        return torch.sum(y - values[-1])

    event_t, solution = odeint_adjoint(func, y0, times[:2], event_fn=event_fn, method="dopri5")
    y = solution[-1]
    assert _rel_error(values[-1], y) < 1e-4
    assert _rel_error(times[-1], event_t) < 1e-4
    event_t.backward(retain_graph=True)
    y.sum().backward()
    assert y0.grad is not None and func.a.grad is not None and func.b.grad is not None


# --------------------------------------------------------------------------- closed forms


class Velocity(torch.nn.Module):
    """y' = v: the event y = h happens at T = t0 + (h - y0) / v."""

    def __init__(self, v):
        super().__init__()
        self.v = torch.nn.Parameter(torch.tensor(v, dtype=F64))

    def forward(self, t, y):
        return self.v * torch.ones_like(y)


class Level(torch.nn.Module):
    """event_fn(t, y) = y - h, with the level h a parameter."""

    def __init__(self, h):
        super().__init__()
        self.h = torch.nn.Parameter(torch.tensor(h, dtype=F64))

    def forward(self, t, y):
        return y.sum() - self.h


@pytest.mark.parametrize("interface", [odeint, odeint_adjoint])
def test_constant_velocity_time_and_gradients_have_the_closed_form(interface):
    func, level = Velocity(1.5), Level(2.0)
    y0 = torch.tensor([0.5], dtype=F64, requires_grad=True)
    t0 = torch.tensor(0.25, dtype=F64, requires_grad=True)
    event_t, solution = odeint_event(func, y0, t0, event_fn=level, odeint_interface=interface)
    v, h = 1.5, 2.0
    exact = 0.25 + (h - 0.5) / v
    assert abs(event_t.item() - exact) <= 8 * math.ulp(exact)  # the dense output is exact here
    assert solution[-1].item() == pytest.approx(h, abs=1e-14)
    params = (y0, t0, func.v, level.h)
    dT = torch.autograd.grad(event_t, params, retain_graph=True)
    expected = (-1 / v, 1.0, -(h - 0.5) / v**2, 1 / v)
    for got, want in zip(dT, expected, strict=True):
        assert got.item() == pytest.approx(want, rel=1e-10)
    # The state at the event is the level itself: only h moves it.
    dY = torch.autograd.grad(solution[-1].sum(), params)
    for got, want in zip(dY, (0.0, 0.0, 0.0, 1.0), strict=True):
        assert got.item() == pytest.approx(want, abs=1e-10)


class Gravity(torch.nn.Module):
    """A falling body: (height, velocity)' = (velocity, -g)."""

    def __init__(self, g):
        super().__init__()
        self.g = torch.nn.Parameter(torch.tensor(g, dtype=F64))

    def forward(self, t, y):
        return torch.stack([y[1], -self.g])


def _landing_time(h0, v0, g):
    return (v0 + math.sqrt(v0 * v0 + 2 * g * h0)) / g


@pytest.mark.parametrize("interface", [odeint, odeint_adjoint])
def test_falling_body_lands_at_the_closed_form_time_with_its_gradient(interface):
    h0, v0, g = 2.0, 1.0, 9.81
    func = Gravity(g)
    y0 = torch.tensor([h0, v0], dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 1.0], dtype=F64)
    event_t, solution = interface(func, y0, t, event_fn=lambda t, y: y[0], rtol=1e-10, atol=1e-12)
    T = _landing_time(h0, v0, g)
    assert event_t.item() == pytest.approx(T, rel=1e-12)
    assert solution[-1, 1].item() == pytest.approx(v0 - g * T, rel=1e-10)
    dT = torch.autograd.grad(event_t, (y0, func.g), retain_graph=True)
    root = math.sqrt(v0 * v0 + 2 * g * h0)
    assert dT[0][0].item() == pytest.approx(1 / root, rel=1e-8)  # dT/dh0
    assert dT[0][1].item() == pytest.approx((1 + v0 / root) / g, rel=1e-8)  # dT/dv0
    assert dT[1].item() == pytest.approx(h0 / (g * root) - T / g, rel=1e-8)  # dT/dg
    # The landing speed v0 - g T: its derivative with respect to h0 is -g dT/dh0.
    (dv,) = torch.autograd.grad(solution[-1, 1], y0)
    assert dv[0].item() == pytest.approx(-g / root, rel=1e-8)


@pytest.mark.parametrize("interface", [odeint, odeint_adjoint])
def test_gradcheck_event_time_and_state_nonlinear_with_time_dependent_event(interface):
    """Finite differences of the whole pipeline, with g depending on t, y and a parameter."""

    def solve(y0, k, c):
        def func(t, y):
            return -k * y * (1 + 0.5 * torch.sin(t))

        def event_fn(t, y):
            return y.sum() - c * (1 - 0.2 * t)

        t = torch.tensor([0.0, 1.0], dtype=F64)
        extra = {"adjoint_params": (k,)} if interface is odeint_adjoint else {}
        event_t, solution = interface(
            func, y0, t, event_fn=event_fn, rtol=1e-12, atol=1e-14, **extra
        )
        return event_t, solution[-1]

    y0 = torch.tensor([1.0], dtype=F64, requires_grad=True)
    k = torch.tensor(0.8, dtype=F64, requires_grad=True)
    c = torch.tensor(0.6, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(solve, (y0, k, c), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradcheck_event_with_tuple_state():
    def solve(x0, v0, w):
        def spring(t, state):
            x, v = state
            return v, -(w**2) * x

        event_t, (x, v) = odeint(
            spring,
            (x0, v0),
            torch.tensor([0.0, 1.0], dtype=F64),
            event_fn=lambda t, s: s[0].sum(),
            rtol=1e-9,
            atol=1e-11,
        )
        return event_t, x[-1], v[-1]

    x0 = torch.tensor([1.0], dtype=F64, requires_grad=True)
    v0 = torch.tensor([0.5], dtype=F64, requires_grad=True)
    w = torch.tensor(1.3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(solve, (x0, v0, w), atol=1e-6, rtol=1e-5)
    # The first zero of x = A cos(w t - phi): T = (pi/2 + atan(v0 / (w x0))) / w.
    event_t, _, _ = solve(x0, v0, w)
    assert event_t.item() == pytest.approx((math.pi / 2 + math.atan(0.5 / 1.3)) / 1.3, rel=1e-8)


def test_adjoint_and_backprop_gradients_agree():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    net = net.to(F64)

    def field(t, y):
        return net(y) - 0.5 * y

    func = CountedFunc(field)
    y0 = torch.tensor([1.0, -0.3], dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 1.0], dtype=F64)
    grads = []
    for interface, extra in ((odeint, {}), (odeint_adjoint, {"adjoint_params": net.parameters()})):
        event_t, solution = interface(
            func, y0, t, event_fn=lambda t, y: y[0] - 0.4, rtol=1e-10, atol=1e-12, **extra
        )
        loss = event_t + solution[-1].pow(2).sum()
        grads.append(torch.autograd.grad(loss, (y0, *net.parameters())))
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------- semantics


def _decay(t, y):
    return -y


def test_first_component_to_cross_wins_and_carries_the_gradient():
    y0 = torch.tensor([1.0], dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 1.0], dtype=F64)
    c = torch.tensor([0.2, 0.5, 0.7], dtype=F64, requires_grad=True)

    def event_fn(t, y):  # a (3,)-shaped event: y falls through 0.7 first
        return (y - c).reshape(3)

    event_t, _ = odeint(_decay, y0, t, event_fn=event_fn)
    assert event_t.item() == pytest.approx(math.log(1 / 0.7), rel=1e-7)
    (dc,) = torch.autograd.grad(event_t, c)
    assert dc.tolist() == pytest.approx([0.0, 0.0, -1 / 0.7], rel=1e-6)


def test_crossings_count_in_both_directions():
    y0 = torch.tensor([1.0], dtype=F64)
    t = torch.tensor([0.0, 1.0], dtype=F64)

    def event_fn(t, y):  # the second component rises through zero (at y = 0.6) first
        return torch.stack([y.sum() - 0.2, 0.6 - y.sum()])

    event_t, solution = odeint(_decay, y0, t, event_fn=event_fn)
    assert event_t.item() == pytest.approx(math.log(1 / 0.6), rel=1e-7)
    assert solution[-1].item() == pytest.approx(0.6, rel=1e-7)


def test_a_component_zero_at_t0_counts_from_its_first_nonzero_value():
    """x' = v, v' = -x from (1, 0): event_fn = v starts at zero, leaves it, returns at pi."""

    def oscillator(t, y):
        return torch.stack([y[1], -y[0]])

    y0 = torch.tensor([1.0, 0.0], dtype=F64)
    t = torch.tensor([0.0, 1.0], dtype=F64)
    event_t, solution = odeint(oscillator, y0, t, event_fn=lambda t, y: y[1], rtol=1e-10)
    assert event_t.item() == pytest.approx(math.pi, rel=1e-9)
    assert solution[-1, 0].item() == pytest.approx(-1.0, rel=1e-9)


def test_reverse_time_integrates_backwards():
    y0 = torch.tensor([1.0], dtype=F64)
    t0 = torch.tensor(0.5, dtype=F64)
    event_t, solution = odeint_event(
        _decay, y0, t0, event_fn=lambda t, y: y.sum() - 2.0, reverse_time=True
    )
    assert event_t.item() == pytest.approx(0.5 - math.log(2), abs=1e-6)
    assert solution[-1].item() == pytest.approx(2.0, rel=1e-6)
    # The same through odeint with a decreasing t.
    event_t2, _ = odeint(
        _decay, y0, torch.tensor([0.5, -3.0], dtype=F64), event_fn=lambda t, y: y.sum() - 2.0
    )
    assert event_t2.item() == event_t.item()


def test_odeint_event_accepts_the_module_the_function_and_the_adjoint():
    y0 = torch.tensor([1.0], dtype=F64)
    t0 = torch.tensor([0.0], dtype=F64)  # a one-element t0 works like a 0-d one
    results = [
        odeint_event(
            _decay, y0, t0, event_fn=lambda t, y: y.sum() - 0.5, odeint_interface=interface, **extra
        )
        for interface, extra in (
            (odecourse.odeint, {}),
            (odecourse.odeint.odeint, {}),
            (odeint_adjoint, {"adjoint_params": ()}),
        )
    ]
    for event_t, _ in results:
        assert event_t.item() == pytest.approx(math.log(2), rel=1e-7)


def test_values_are_those_of_the_search_and_of_a_solve_to_the_event_time():
    """The gradient terms change no value: the time is the located root, the state the solve's."""
    func = Gravity(9.81)
    y0 = torch.tensor([2.0, 1.0], dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 1.0], dtype=F64)
    event_t, solution = odeint(func, y0, t, event_fn=lambda t, y: y[0])
    with torch.no_grad():
        plain_t, plain = odeint(func, y0, t, event_fn=lambda t, y: y[0])
        direct = odeint(func, y0, torch.stack([t[0], event_t.detach()]))
    assert event_t.item() == plain_t.item()
    assert torch.equal(solution.detach(), plain)
    assert torch.equal(solution[-1].detach(), direct[-1])


def test_event_time_agrees_with_solve_ivp_events():
    """The same core, controller and root finder as odecourse.solve_ivp (and SciPy's RK45)."""

    def fun(t, y):
        return [y[1], -np.sin(y[0])]

    def hit(t, y):
        return y[0] - 0.3

    hit.terminal = True
    kwargs = {"method": "RK45", "rtol": 1e-7, "atol": 1e-9, "events": hit}
    ours = solve_ivp(fun, (0.0, 50.0), [1.0, 0.0], **kwargs).t_events[0][0]
    scipy_t = scipy.integrate.solve_ivp(fun, (0.0, 50.0), [1.0, 0.0], **kwargs).t_events[0][0]

    def pendulum(t, y):
        return torch.stack([y[1], -torch.sin(y[0])])

    event_t, _ = odeint(
        pendulum,
        torch.tensor([1.0, 0.0], dtype=F64),
        torch.tensor([0.0, 1.0], dtype=F64),
        event_fn=lambda t, y: y[0] - 0.3,
    )
    assert abs(event_t.item() - ours) <= 1e-12 * ours
    assert event_t.item() == pytest.approx(scipy_t, rel=1e-6)


def test_gradient_reaches_t0_and_not_the_direction_time():
    y0 = torch.tensor([1.0], dtype=F64)
    t = torch.tensor([0.3, 5.0], dtype=F64, requires_grad=True)
    event_t, _ = odeint(lambda t, y: -t * y, y0, t, event_fn=lambda t, y: y.sum() - 0.5)
    (dt,) = torch.autograd.grad(event_t, t)
    # y = exp(-(T^2 - t0^2) / 2) = 1/2: T = sqrt(t0^2 + 2 ln 2), dT/dt0 = t0 / T.
    T = math.sqrt(0.09 + 2 * math.log(2))
    assert event_t.item() == pytest.approx(T, rel=1e-7)
    assert dt.tolist() == pytest.approx([0.3 / T, 0.0], rel=1e-6)


def test_event_within_rounding_of_t0():
    """The root 1 + 1e-17 rounds to t0 = 1: no step to take, and still the right gradients."""
    y0 = torch.tensor([1e-17], dtype=F64, requires_grad=True)
    t = torch.tensor([1.0, 2.0], dtype=F64)
    event_t, solution = odeint(
        lambda t, y: -torch.ones_like(y), y0, t, event_fn=lambda t, y: y.sum()
    )
    assert event_t.item() == 1.0
    assert torch.equal(solution.detach(), torch.stack([y0, y0]).detach())
    assert torch.autograd.grad(event_t, y0, retain_graph=True)[0].item() == pytest.approx(1.0)
    assert torch.autograd.grad(solution[-1].sum(), y0)[0].item() == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("dopri5", {"step_t": [0.3, 0.31], "min_step": 1e-3, "dtype": torch.float64}),
        ("dopri5", {"norm": lambda x: x.abs().max(), "max_step": 0.05, "first_step": 0.01}),
        ("bosh3", {"safety": 0.8, "ifactor": 5.0, "dfactor": 0.3}),
        (DOP853, None),
        ("rk38", {"step_size": 0.05}),
    ],
)
def test_other_options_work_with_event_fn(method, options):
    y0 = torch.tensor([1.0, 2.0], dtype=F64)
    atol = torch.tensor([1e-9, 1e-10], dtype=F64)  # per-entry tolerances too
    event_t, solution = odeint(
        _decay,
        y0,
        torch.tensor([0.0, 1.0], dtype=F64),
        method=method,
        options=options,
        atol=atol,
        event_fn=lambda t, y: y[1] - 1.0,
    )
    tol = 1e-5 if method == "rk38" else 1e-6
    assert event_t.item() == pytest.approx(math.log(2), rel=tol)
    assert solution[-1].tolist() == pytest.approx([0.5, 1.0], rel=tol)


@pytest.mark.parametrize("interp", [None, "linear", "cubic"])
def test_fixed_step_grid_and_interpolants(interp):
    """Euler is exact for y' = v; each interpolant then finds the exact crossing."""
    options = {"step_size": 0.1} if interp is None else {"step_size": 0.1, "interp": interp}
    stats = SolveStats()
    event_t, solution = odeint(
        lambda t, y: 2.0 * torch.ones_like(y),
        torch.zeros(1, dtype=F64),
        torch.tensor([0.0, 1.0], dtype=F64),
        event_fn=lambda t, y: y.sum() - 0.55,
        method="euler",
        options=options,
        stats=stats,
    )
    assert event_t.item() == pytest.approx(0.275, abs=1e-14)
    assert solution[-1].item() == pytest.approx(0.55, abs=1e-14)
    # Search: 3 steps (the event lies in the third); the solve to 0.275: 3 steps.
    assert stats.n_steps == 6


def test_stats_count_both_solves_and_the_evaluation_at_the_event():
    func = CountedFunc(_decay)
    y0 = torch.tensor([1.0], dtype=F64, requires_grad=True)
    stats = SolveStats()
    event_t, _ = odeint(
        func,
        y0,
        torch.tensor([0.0, 1.0], dtype=F64),
        event_fn=lambda t, y: y.sum() - 0.5,
        stats=stats,
    )
    assert stats.nfe == func.nfe
    plain = SolveStats()
    odeint(_decay, y0, torch.stack([torch.tensor(0.0, dtype=F64), event_t.detach()]), stats=plain)
    assert stats.nfe > plain.nfe and stats.n_steps > plain.n_steps


def test_float32_state_with_float64_times():
    y0 = torch.tensor([1.0], dtype=torch.float32, requires_grad=True)
    event_t, solution = odeint(
        _decay, y0, torch.tensor([0.0, 1.0], dtype=F64), event_fn=lambda t, y: y.sum() - 0.5
    )
    assert event_t.dtype == F64 and solution.dtype == torch.float32
    assert event_t.item() == pytest.approx(math.log(2), rel=1e-5)
    (dy0,) = torch.autograd.grad(event_t, y0)
    assert dy0.item() == pytest.approx(1.0, rel=1e-4)


def _tangential_outcome(*args, **kwargs):
    """What odeint does at a tangential event: "raised", "warned" or None."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            odeint(*args, **kwargs)
        except RuntimeError as error:
            assert "tangential" in str(error)
            return "raised"
    if any("nearly tangential" in str(w.message) for w in caught):
        return "warned"
    return None


def test_tangential_event_is_refused_or_warned():
    """y = t^3 crosses zero with zero speed: the event time has no derivative there."""
    y0 = torch.tensor([-1.0], dtype=F64, requires_grad=True)
    t = torch.tensor([-1.0, 1.0], dtype=F64)

    def cube(t, y):
        return 3 * t**2 * torch.ones_like(y)

    outcome = _tangential_outcome(cube, y0, t, event_fn=lambda t, y: y.sum())
    assert outcome in ("raised", "warned")
    with torch.no_grad():  # values alone need no derivative
        event_t, _ = odeint(cube, y0, t, event_fn=lambda t, y: y.sum())
    assert abs(event_t.item()) < 1e-4


def test_flat_event_functions_crossed_transversally_are_no_tangency():
    """g = (y - 1/2)^3 or c (t - 1/2)^3 has zero slope at its root, yet the crossing is clean."""
    y0 = torch.zeros(1, dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 1.0], dtype=F64)

    def ramp(t, y):
        return torch.ones_like(y)

    assert _tangential_outcome(ramp, y0, t, event_fn=lambda t, y: (y.sum() - 0.5) ** 3) is None
    event_t, _ = odeint(ramp, y0, t, event_fn=lambda t, y: (y.sum() - 0.5) ** 3)
    assert torch.autograd.grad(event_t, y0)[0].item() == pytest.approx(-1.0, rel=1e-6)
    c = torch.tensor(2.0, dtype=F64, requires_grad=True)
    assert _tangential_outcome(_decay, y0, t, event_fn=lambda t, y: c * (t - 0.5) ** 3) is None
    event_t, _ = odeint(_decay, y0, t, event_fn=lambda t, y: c * (t - 0.5) ** 3)
    assert event_t.item() == pytest.approx(0.5, abs=1e-12)
    assert abs(torch.autograd.grad(event_t, c)[0].item()) < 1e-12  # T = 1/2 for every c


# --------------------------------------------------------------------------- errors


def _call(**kwargs):
    args = {
        "func": _decay,
        "y0": torch.tensor([1.0], dtype=F64),
        "t": torch.tensor([0.0, 1.0], dtype=F64),
        "event_fn": lambda t, y: y.sum() - 0.5,
    }
    args.update(kwargs)
    return odeint(args.pop("func"), args.pop("y0"), args.pop("t"), **args)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"event_fn": 3.0}, TypeError, "`event_fn` must be callable"),
        ({"event_fn": lambda t, y: 0.5}, TypeError, "`event_fn` must return a real floating"),
        ({"event_fn": lambda t, y: torch.tensor(1)}, TypeError, "got torch.int64"),
        ({"event_fn": lambda t, y: y.to(torch.complex128)}, TypeError, "`event_fn` must return"),
        ({"event_fn": lambda t, y: y[:0]}, ValueError, "at least one value"),
        ({"event_fn": lambda t, y: y * math.nan}, ValueError, "`event_fn` returned NaN"),
        ({"t": torch.tensor([0.0, 1.0, 2.0], dtype=F64)}, ValueError, "exactly two times"),
        ({"t": torch.tensor([0.0], dtype=F64)}, ValueError, "exactly two times"),
        ({"method": "rk4"}, ValueError, r"needs options\['step_size'\]"),
        (
            {"method": "rk4", "options": {"step_size": 0.1, "perturb": True}},
            ValueError,
            "'perturb' is not supported together with `event_fn`",
        ),
        ({"options": {"jump_t": [0.5]}}, ValueError, "'jump_t' is not supported"),
        ({"options": {"bogus": 1}}, ValueError, "unknown option 'bogus'"),
        ({"rtol": -1.0}, ValueError, "rtol"),
    ],
)
def test_validation_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        _call(**kwargs)


def test_event_fn_that_changes_its_size_is_refused():
    sizes = iter([1, 2])

    def event_fn(t, y):
        return y.sum() - 0.5 + torch.zeros(next(sizes, 2), dtype=F64)

    with pytest.raises(ValueError, match="same number of values"):
        _call(event_fn=event_fn)


def test_no_event_before_max_num_steps_raises():
    with pytest.raises(RuntimeError, match=r"no event.*maximum number of steps"):
        _call(event_fn=lambda t, y: y.sum() + 1.0, options={"max_num_steps": 20})


def test_no_event_on_a_fixed_grid_raises_at_the_limit(monkeypatch):
    monkeypatch.setattr(event_search, "FIXED_STEP_LIMIT", 30)
    with pytest.raises(RuntimeError, match=r"no event.*30 steps"):
        _call(event_fn=lambda t, y: y.sum() + 1.0, method="euler", options={"step_size": 0.1})


def test_adjoint_arguments_are_checked_before_the_search():
    func = CountedFunc(_decay)
    with pytest.raises(TypeError, match=r"`func` must be an nn\.Module"):
        odeint_adjoint(
            func,
            torch.tensor([1.0], dtype=F64),
            torch.tensor([0.0, 1.0], dtype=F64),
            event_fn=lambda t, y: y.sum() - 0.5,
        )
    assert func.nfe == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"odeint_interface": scipy.integrate.odeint},
            TypeError,
            "`odeint_interface` must be odecourse's odeint or odeint_adjoint",
        ),
        ({"t0": 0.0}, TypeError, "`t0` must be a floating tensor"),
        ({"t0": torch.tensor([0.0, 1.0])}, ValueError, "`t0` must be a 0-d or one-element"),
        ({"reverse_time": "yes"}, TypeError, "`reverse_time` must be True or False"),
        ({"event_fn": None}, TypeError, "`event_fn` must be callable"),
    ],
)
def test_odeint_event_validation(kwargs, error, match):
    args = {"t0": torch.tensor(0.0, dtype=F64), "event_fn": lambda t, y: y.sum() - 0.5}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        odeint_event(_decay, torch.tensor([1.0], dtype=F64), args.pop("t0"), **args)


def test_torchdiffeq_interface_is_refused_by_name():
    torchdiffeq = pytest.importorskip("torchdiffeq")
    with pytest.raises(TypeError, match="torchdiffeq"):
        odeint_event(
            _decay,
            torch.tensor([1.0]),
            torch.tensor(0.0),
            event_fn=lambda t, y: y.sum() - 0.5,
            odeint_interface=torchdiffeq.odeint,
        )
