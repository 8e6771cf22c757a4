"""torchdiffeq's step callbacks in ``odeint``, ``odeint_adjoint`` and the event mode.

Modelled on torchdiffeq's ``TestCallbacks`` (``test_steps``: how often each callback
is called; ``test_wrong_callback``: the warning of a fixed-step method), plus the
arguments the callbacks receive (``t0 + dt`` is the end of the attempt, ``y0`` the
state at ``t0``), tuple states, the backward pass, gradients with respect to ``t``,
the event mode, and that a ``func`` without callbacks leaves the core untouched.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from odecourse import odeint_adjoint, odeint_event
from odecourse._step_callbacks import StepCallbacks
from odecourse.odeint import CountedFunc, SolveStats, odeint

F64 = torch.float64
FIXED = ("euler", "midpoint", "rk4")
ADAPTIVE = ("dopri5", "bosh3")
NAMES = ("callback_step", "callback_accept_step", "callback_reject_step")


class NeuralF(torch.nn.Module):
    """A small tanh network ``R^2 -> R^2`` (torchdiffeq's ``_NeuralF``), seeded."""

    def __init__(self, width: int = 10, dtype: torch.dtype = F64) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(2, width), torch.nn.Tanh(), torch.nn.Linear(width, 2), torch.nn.Tanh()
        ).to(dtype)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Log:
    """Records every call of each callback as ``(name, t0, y0, dt)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, torch.Tensor, object, torch.Tensor]] = []

    def callback(self, name: str):
        def record(t0, y0, dt):
            self.calls.append((name, t0, y0, dt))

        return record

    def attach(self, func, names=NAMES, suffix: str = "") -> None:
        for name in names:
            setattr(func, name + suffix, self.callback(name + suffix))

    def count(self, name: str) -> int:
        return sum(call[0] == name for call in self.calls)

    def of(self, *names: str) -> list[tuple[str, torch.Tensor, object, torch.Tensor]]:
        return [call for call in self.calls if call[0] in names]


def _kwargs(method: str) -> dict:
    return {"method": method, "options": {"step_size": 0.1}} if method in FIXED else {}


# --------------------------------------------------------------------------- TestCallbacks


@pytest.mark.parametrize("method", FIXED + ADAPTIVE)
@pytest.mark.parametrize("forward, adjoint", [(False, True), (True, False), (True, True)])
def test_steps_are_counted_as_in_torchdiffeq(method, forward, adjoint):
    """torchdiffeq's test_steps: 10 steps of 0.1 on [0, 1]; adaptive: accept + reject = step."""
    f = NeuralF()
    log = Log()
    adaptive = method in ADAPTIVE
    names = NAMES if adaptive else NAMES[:1]
    if forward:
        log.attach(f, names)
    if adjoint:
        log.attach(f, names, "_adjoint")
    x0 = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    stats = SolveStats()
    xs = odeint_adjoint(f, x0, torch.tensor([0.0, 1.0], dtype=F64), stats=stats, **_kwargs(method))
    steps = log.count("callback_step")
    if forward:
        if adaptive:
            assert steps == stats.n_steps + stats.n_rejected > 0
            assert log.count("callback_accept_step") == stats.n_steps
            assert log.count("callback_reject_step") == stats.n_rejected
        else:
            assert steps == 10
    else:
        assert steps == 0
    xs.sum().backward()
    assert log.count("callback_step") == steps  # the backward pass calls no forward callback
    backward = log.count("callback_step_adjoint")
    if adjoint:
        if adaptive:
            accepted = log.count("callback_accept_step_adjoint")
            rejected = log.count("callback_reject_step_adjoint")
            assert accepted == stats.n_steps_backward > 0
            assert rejected == stats.n_rejected_backward
            assert backward == accepted + rejected
        else:
            assert backward == 10
    else:
        assert backward == 0


@pytest.mark.parametrize("method", ADAPTIVE)
def test_rejected_steps_are_reported(method):
    """A problem that makes the controller reject steps calls callback_reject_step."""
    log = Log()
    f = CountedFunc(lambda t, y: -50.0 * (y - torch.cos(t)))
    log.attach(f)
    stats = SolveStats()
    odeint(f, torch.tensor([0.0], dtype=F64), torch.tensor([0.0, 3.0], dtype=F64),
           method=method, rtol=1e-4, atol=1e-6, stats=stats)  # fmt: skip
    assert stats.n_rejected > 0
    assert log.count("callback_reject_step") == stats.n_rejected
    assert log.count("callback_accept_step") == stats.n_steps
    assert log.count("callback_step") == stats.n_steps + stats.n_rejected


@pytest.mark.parametrize("method", FIXED)
@pytest.mark.parametrize("names", [NAMES[1:2], NAMES[2:], NAMES[1:]])
def test_fixed_step_methods_warn_about_accept_and_reject_callbacks(method, names):
    """torchdiffeq's test_wrong_callback: the warning names the attribute and the method."""
    f = NeuralF()
    log = Log()
    log.attach(f, (NAMES[0], *names))
    x0 = torch.tensor([1.0, 2.0], dtype=F64)
    with pytest.warns(UserWarning, match=f"{' and '.join(names)}.*fixed-step method '{method}'"):
        odeint(f, x0, torch.tensor([0.0, 1.0], dtype=F64), method=method)
    assert [call[0] for call in log.calls] == ["callback_step"]  # one step: t has two times


def test_the_warning_points_at_the_call_and_names_the_adjoint_callbacks():
    f = NeuralF()
    f.callback_accept_step = lambda t0, y0, dt: None
    f.callback_reject_step_adjoint = lambda t0, y0, dt: None
    x0 = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        xs = odeint_adjoint(f, x0, torch.tensor([0.0, 1.0], dtype=F64), method="rk4")
        odeint(f, x0, torch.tensor([0.0, 1.0], dtype=F64), method="euler")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 3, messages
    assert "callback_reject_step_adjoint" in messages[0] and "'rk4'" in messages[0]
    assert "callback_accept_step," in messages[1] and "'rk4'" in messages[1]
    assert "'euler'" in messages[2]
    assert all(w.filename == __file__ for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xs.sum().backward()  # warned once, at the call
        # an adaptive method uses them, and one output time takes no step: no warning
        odeint(f, x0, torch.tensor([0.0, 1.0], dtype=F64), method="dopri5")
        odeint(f, x0, torch.tensor([0.0], dtype=F64), method="euler")


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("method", ADAPTIVE)
def test_adaptive_arguments_chain_from_start_to_end(method, reverse):
    """``t0 + dt`` ends each attempt: a rejection restarts at ``t0``, an acceptance moves on.

    ``y0`` is the state at ``t0``: for ``y' = -y`` it is ``exp(-(t0 - t[0])) y(t[0])``.
    """
    log = Log()
    f = CountedFunc(lambda t, y: -y)
    log.attach(f)
    y_start = torch.tensor([1.0, -2.0], dtype=F64)
    t = torch.tensor([0.0, 1.5, 3.0], dtype=F64)
    if reverse:
        t = t.flip(0)
    odeint(f, y_start, t, method=method, rtol=1e-9, atol=1e-11)
    attempts = log.of("callback_step")
    outcomes = log.of("callback_accept_step", "callback_reject_step")
    assert len(attempts) == len(outcomes) > 10
    expected_t0 = float(t[0])
    for (_, t0, y0, dt), (outcome, t0_b, y0_b, dt_b) in zip(attempts, outcomes, strict=True):
        for time in (t0, dt):
            assert time.shape == () and time.dtype == F64
        assert float(t0) == expected_t0 and (float(dt) < 0) == reverse
        assert float(t0_b) == float(t0) and float(dt_b) == float(dt) and y0_b is y0
        exact = y_start * math.exp(-(float(t0) - float(t[0])))
        torch.testing.assert_close(y0, exact, rtol=1e-7, atol=0.0)
        if outcome == "callback_accept_step":
            expected_t0 = float(t0 + dt)
    assert expected_t0 == float(t[-1])


@pytest.mark.parametrize("option", ["step_t", "jump_t"])
def test_steps_shortened_to_land_on_a_time_report_their_own_length(option):
    """With ``step_t`` or ``jump_t`` an attempt ends on the time: ``t0 + dt`` is that time."""
    log = Log()
    f = CountedFunc(lambda t, y: -y if t < 0.5 else 2 * y)
    log.attach(f)
    stats = SolveStats()
    odeint(f, torch.tensor([1.0], dtype=F64), torch.tensor([0.0, 1.0], dtype=F64),
           options={option: [0.5]}, stats=stats)  # fmt: skip
    ends = [float(t0 + dt) for _, t0, _, dt in log.of("callback_accept_step")]
    assert 0.5 in ends and ends[-1] == 1.0 and len(ends) == stats.n_steps
    assert log.count("callback_step") == stats.n_steps + stats.n_rejected


@pytest.mark.parametrize("method", FIXED)
def test_fixed_step_arguments_are_the_grid_and_the_states_on_it(method):
    """The steps of ``step_size`` 0.1 on [0, 1]; ``y0`` are the method's outputs on the grid."""
    log = Log()
    f = NeuralF()
    log.attach(f, NAMES[:1])
    x0 = torch.tensor([1.0, 2.0], dtype=F64)
    odeint(f, x0, torch.tensor([0.0, 0.35, 1.0], dtype=F64), method=method,
           options={"step_size": 0.1})  # fmt: skip
    calls = list(log.calls)
    grid = torch.linspace(0, 1, 11, dtype=F64)
    on_grid = odeint(f, x0, grid, method=method)  # one step from each grid time to the next
    assert len(calls) == 10 and len(log.calls) == 20
    for k, (_, t0, y0, dt) in enumerate(calls):
        assert float(t0) == pytest.approx(float(grid[k]), abs=1e-15)
        assert float(t0 + dt) == pytest.approx(float(grid[k + 1]), abs=1e-15)
        torch.testing.assert_close(y0, on_grid[k], rtol=1e-14, atol=1e-14)


def test_euler_states_follow_the_euler_map_backwards_in_time():
    """Integrating backwards, ``dt < 0`` and ``y0_next = y0 + dt f(t0, y0)`` (Euler)."""
    log = Log()
    f = NeuralF()
    log.attach(f, NAMES[:1])
    x0 = torch.tensor([0.5, -1.0], dtype=F64)
    out = odeint(f, x0, torch.tensor([1.0, 0.0], dtype=F64), method="euler",
                 options={"step_size": 0.25})  # fmt: skip
    steps = [(t0, y0, dt) for _, t0, y0, dt in log.calls]
    assert [float(t0) for t0, _, _ in steps] == [1.0, 0.75, 0.5, 0.25]
    assert all(float(dt) == -0.25 for _, _, dt in steps)
    states = [y0 for _, y0, _ in steps] + [out[-1]]
    with torch.no_grad():
        for (t0, y0, dt), y_next in zip(steps, states[1:], strict=True):
            torch.testing.assert_close(y_next, y0 + dt * f(t0, y0), rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_tuple_state_reaches_the_callbacks_as_a_tuple(method):
    """A tuple ``y0``: forward callbacks get the user's tuple, also through odeint_adjoint."""
    weight = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=F64, requires_grad=True)

    class Oscillator(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(weight.detach().clone())

        def forward(self, t, state):
            x, v = state
            return v.reshape(2), -(x @ self.weight.T).reshape(1, 2)

    y0 = (torch.tensor([1.0, 0.0], dtype=F64), torch.tensor([[0.0, 1.0]], dtype=F64))
    t = torch.tensor([0.0, 1.0], dtype=F64)
    kwargs = {"method": method, "options": {"step_size": 0.25}} if method == "rk4" else {}
    for interface in (odeint, odeint_adjoint):
        f, log = Oscillator(), Log()
        log.attach(f, NAMES[:1])
        log.attach(f, NAMES[:1], "_adjoint")
        ys = interface(f, y0, t, **kwargs)
        assert log.count("callback_step") > 0
        first = log.calls[0][2]
        assert isinstance(first, tuple) and len(first) == 2
        assert torch.equal(first[0], y0[0]) and torch.equal(first[1], y0[1])
        for _, _, state, _ in log.calls:
            assert [s.shape for s in state] == [(2,), (1, 2)]
        if interface is odeint_adjoint:
            (ys[0].sum() + ys[1].sum()).backward()
            adjoint = log.of("callback_step_adjoint")
            # (y, a, *a_theta): the packed state and its adjoint, then the weight's adjoint
            _, t0, state, dt = adjoint[0]
            assert float(t0) == 1.0 and float(dt) < 0
            assert [s.shape for s in state] == [(4,), (4,), (2, 2)]
            torch.testing.assert_close(state[0], torch.cat([ys[0][-1], ys[1][-1].reshape(-1)]))
            assert torch.equal(state[1], torch.ones(4, dtype=F64))  # dL/dy(T) of the sum
            assert not state[2].any()  # a_theta starts at zero


def test_adjoint_callbacks_walk_back_over_every_output_interval():
    """The backward solves run from ``t[-1]`` to ``t[0]``, restarting ``y`` at each output."""
    f, log = NeuralF(), Log()
    log.attach(f, NAMES, "_adjoint")
    x0 = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 0.4, 1.0], dtype=F64)
    ys = odeint_adjoint(f, x0, t)
    ys.sum().backward()
    expected_t0, restarts = 1.0, []
    for name, t0, state, dt in log.of("callback_step_adjoint", "callback_accept_step_adjoint"):
        assert float(t0) == expected_t0 and float(dt) < 0
        if name == "callback_accept_step_adjoint":
            expected_t0 = float(t0 + dt)
        elif float(t0) in (0.4, 1.0) and not restarts.count(float(t0)):
            restarts.append(float(t0))
            assert torch.equal(state[0], ys[1 if float(t0) == 0.4 else 2])
    assert expected_t0 == 0.0 and restarts == [1.0, 0.4]
    assert log.count("callback_reject_step_adjoint") == 0  # an easy problem


def test_callbacks_see_each_step_once_when_t_requires_grad():
    """Adaptive: in the float pass that chooses the steps; fixed: in the replay."""
    for method in ("dopri5", "midpoint"):
        f, log = NeuralF(), Log()
        log.attach(f, NAMES if method == "dopri5" else NAMES[:1])
        t = torch.tensor([0.0, 1.0], dtype=F64, requires_grad=True)
        stats = SolveStats()
        ys = odeint(f, torch.tensor([1.0, 2.0], dtype=F64), t, stats=stats, **_kwargs(method))
        ys.sum().backward()
        assert t.grad is not None
        assert log.count("callback_step") == stats.n_steps + stats.n_rejected
        if method == "dopri5":
            assert log.count("callback_accept_step") == stats.n_steps
            assert not any(y0.requires_grad for _, _, y0, _ in log.calls)  # no-grad pass
        else:
            assert stats.n_steps == 10
            assert float(log.calls[-1][1] + log.calls[-1][3]) == 1.0


@pytest.mark.parametrize("interface", [odeint, odeint_adjoint])
@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_event_mode_calls_them_in_the_solve_to_the_event_time(interface, method):
    """The search runs without callbacks; the solve from ``t0`` to the event calls them."""
    f, log = NeuralF(), Log()
    names = NAMES if method == "dopri5" else NAMES[:1]
    log.attach(f, names)
    log.attach(f, names, "_adjoint")
    x0 = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    options = {"step_size": 0.05} if method == "rk4" else None
    event_t, ys = odeint_event(
        f, x0, torch.tensor(0.0, dtype=F64), event_fn=lambda t, y: y[0] - 0.9 * x0[0].detach(),
        odeint_interface=interface, method=method, options=options,
    )  # fmt: skip
    event_t_value = float(event_t.detach())
    accepted = "callback_accept_step" if method == "dopri5" else "callback_step"
    last = log.of(accepted)[-1]
    assert float(last[1] + last[3]) == pytest.approx(event_t_value, abs=1e-15)
    if method == "dopri5":
        assert log.count("callback_step") == log.count(accepted) + log.count("callback_reject_step")
    else:
        assert log.count("callback_step") == math.ceil(event_t_value / 0.05)
    (event_t + ys[-1].sum()).backward()
    assert (log.count("callback_step_adjoint") > 0) == (interface is odeint_adjoint)


# --------------------------------------------------------------------------- no callbacks


def test_without_callbacks_the_core_gets_no_hook(monkeypatch):
    """A ``func`` without callbacks: no StepCallbacks, and the core runs with None."""
    import odecourse.odeint as odeint_module

    def refuse(*args, **kwargs):
        raise AssertionError("StepCallbacks built for a func without callbacks")

    monkeypatch.setattr(StepCallbacks, "__init__", refuse)
    seen = []
    for name in ("integrate_adaptive", "integrate_fixed"):
        core = getattr(odeint_module, name)

        def spy(*args, _core=core, **kwargs):
            seen.append((kwargs.get("before_step"), kwargs.get("observer")))
            return _core(*args, **kwargs)

        monkeypatch.setattr(odeint_module, name, spy)
    f = NeuralF()
    x0 = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    for method in ("dopri5", "euler"):
        odeint(f, x0, t, method=method)
        odeint_adjoint(f, x0, t, method=method).sum().backward()
        odeint(CountedFunc(f), x0, t, method=method)
    assert len(seen) == 2 * (1 + 1 + 2 + 1)
    assert all(hook is None and observer is None for hook, observer in seen)


def test_methods_of_the_class_count_and_counted_func_carries_them():
    class WithMethods(NeuralF):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def callback_step(self, t0, y0, dt):
            self.times.append(float(t0))

    f = WithMethods()
    counted = CountedFunc(f)
    odeint(counted, torch.tensor([1.0, 2.0], dtype=F64), torch.tensor([0.0, 1.0], dtype=F64),
           method="euler", options={"step_size": 0.5})  # fmt: skip
    assert f.times == [0.0, 0.5] and counted.nfe == 3
    assert not hasattr(CountedFunc(NeuralF()), "callback_step")


@pytest.mark.parametrize("name", ["callback_step", "callback_reject_step_adjoint"])
def test_a_callback_that_is_not_callable_is_a_type_error(name):
    f = NeuralF()
    setattr(f, name, 3)
    x0 = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 1.0], dtype=F64)
    with pytest.raises(TypeError, match=f"`func.{name}` must be callable; got int 3"):
        odeint_adjoint(f, x0, t).sum().backward()


def test_callbacks_change_no_value():
    """The same numbers with and without callbacks (they only watch)."""
    x0 = torch.tensor([1.0, 2.0], dtype=F64)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    for method in ("dopri5", "rk4"):
        plain = odeint(NeuralF(), x0, t, method=method)
        f = NeuralF()
        Log().attach(f)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            watched = odeint(f, x0, t, method=method)
        assert torch.equal(plain, watched)
