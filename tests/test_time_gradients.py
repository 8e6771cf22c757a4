"""Gradients with respect to the output times ``t``: odeint (autograd) and odeint_adjoint.

Modelled on torchdiffeq's tests/gradient_tests.py: gradcheck of ``(y0, t)`` on a problem
the methods solve exactly and on ones they do not, reversed times, tuple states, the
adjoint's ``dL/dt`` against backprop through the solver and against a closed form, and
the float path left alone (values, ``t.grad``, ``torch.no_grad``).
"""

import dataclasses
import math

import pytest
import torch

from odecourse._time_grad import _check_honoured
from odecourse.adjoint import odeint_adjoint
from odecourse.dop853 import DOP853
from odecourse.odeint import SolveStats, odeint

F64 = torch.float64
METHODS = ("euler", "midpoint", "rk4", "bosh3", "dopri5")
FIXED = ("euler", "midpoint", "rk4")
# Fixed-step methods: autograd differentiates the discrete solution exactly, so only the
# finite differences' own error (about 1e-10 at gradcheck's eps = 1e-6) separates them.
STRICT = {"atol": 1e-8, "rtol": 1e-6}
TIGHT = {"rtol": 1e-10, "atol": 1e-12}


class Constant(torch.nn.Module):
    """y' = a + (y - (a t + b))^5, solved by y = a t + b exactly by every Runge-Kutta method."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(0.2, dtype=F64))
        self.b = torch.nn.Parameter(torch.tensor(3.0, dtype=F64))

    def forward(self, t, y):
        return self.a + (y - (self.a * t + self.b)) ** 5

    def exact(self, t):
        return self.a * t + self.b


class Forced(torch.nn.Module):
    """y' = -k y + sin(3 t) (two components): no method here is exact on it."""

    def __init__(self):
        super().__init__()
        self.k = torch.nn.Parameter(torch.tensor([1.0, 0.5], dtype=F64))

    def forward(self, t, y):
        return -self.k * y + torch.sin(3 * t)


class Cubic(torch.nn.Module):
    """torchdiffeq's TestCompareAdjointGradient field: y' = y^3 A, plus an unused module."""

    def __init__(self):
        super().__init__()
        self.A = torch.nn.Parameter(torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=F64))
        self.unused = torch.nn.Linear(2, 5).to(F64)

    def forward(self, t, y):
        return torch.mm(y**3, self.A)


def _unit_grid(n):
    return torch.linspace(0.0, 1.0, n, dtype=F64)


def _times(values, grad=True):
    return torch.tensor(values, dtype=F64, requires_grad=grad)


def _constant_problem():
    f = Constant()
    t = torch.linspace(1.0, 8.0, 10, dtype=F64, requires_grad=True)
    y0 = f.exact(t[0]).detach().requires_grad_(True)
    return f, y0, t


def _incoming(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


# --------------------------------------------------------------------------- odeint: gradcheck


@pytest.mark.parametrize("method", METHODS)
def test_gradcheck_on_the_exact_problem(method):
    f, y0, t = _constant_problem()
    assert torch.autograd.gradcheck(lambda y0, t: odeint(f, y0, t, method=method), (y0, t))


FORCED_CASES = [
    ("euler", None, STRICT),
    ("midpoint", None, STRICT),
    ("rk4", None, STRICT),
    ("midpoint", {"step_size": 0.3}, STRICT),
    ("rk4", {"step_size": 0.25}, STRICT),
    ("bosh3", None, {}),
    ("dopri5", None, {}),
]
# Adaptive methods: the step sizes are constants of the gradient, so finite differences
# differ from it by about the tolerance (torchdiffeq's gradient tests, and gradcheck's own
# atol = 1e-5, allow that).
TOLERANCES = {"bosh3": {"rtol": 1e-6, "atol": 1e-8}, "dopri5": {"rtol": 1e-8, "atol": 1e-10}}


@pytest.mark.parametrize("decreasing", [False, True], ids=["increasing", "decreasing"])
@pytest.mark.parametrize(("method", "options", "check"), FORCED_CASES)
def test_gradcheck_where_the_method_is_not_exact(method, options, check, decreasing):
    values = [0.3, 0.95, 1.65, 2.0]  # on no grid point of t[0] + k * step_size
    t = _times(values[::-1] if decreasing else values)
    y0 = torch.tensor([1.0, -0.5], dtype=F64, requires_grad=True)
    f = Forced()

    def solve(y0, t):
        return odeint(f, y0, t, method=method, options=options, **TOLERANCES.get(method, {}))

    assert torch.autograd.gradcheck(solve, (y0, t), **check)


def test_gradcheck_with_dense_output_from_extra_stages():
    # DOP853's dense output needs three more stages per step; the replay evaluates them too.
    f = Forced()
    y0 = torch.tensor([1.0, -0.5], dtype=F64, requires_grad=True)
    t = _times([0.3, 0.95, 1.65, 2.0])

    def solve(y0, t):
        return odeint(f, y0, t, method=DOP853, rtol=1e-9, atol=1e-11)

    assert torch.autograd.gradcheck(solve, (y0, t))
    # With t requiring grad the stage times are formed as tensors, without as floats: they
    # can differ in the last bit, which the integration carries to about 1e-13 relative
    # (1.9e-13 with the scalar kernels of PyTorch, MKL and OpenBLAS, as in test-portable).
    torch.testing.assert_close(solve(y0, t), solve(y0, t.detach()), rtol=1e-12, atol=0)


def test_fixed_step_gradient_is_the_derivative_of_the_discrete_solution():
    # One Euler step: y1 = y0 + (t1 - t0) f(t0, y0), so dy1/dt1 = f(t0, y0) and
    # dy1/dt0 = -f(t0, y0) + (t1 - t0) df/dt(t0, y0), exactly (the ODE's dy/dt1 differs).
    f = Forced()
    t = _times([0.2, 0.7])
    y0 = torch.tensor([1.0, -0.5], dtype=F64)
    jac = torch.autograd.functional.jacobian(lambda t: odeint(f, y0, t, method="euler")[1], t)
    with torch.no_grad():
        slope = f(t[0], y0)
        expected = torch.stack([-slope + 0.5 * 3 * torch.cos(3 * t[0]), slope], dim=1)
    torch.testing.assert_close(jac, expected, rtol=0, atol=1e-15)


def test_gradcheck_with_a_tuple_state():
    def func(t, state):
        x, v = state
        return (v[:2] - x * torch.cos(t), 0.1 * x.sum() - v)

    x0 = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    v0 = torch.zeros(3, dtype=F64, requires_grad=True)
    t = _times([0.0, 0.5, 1.2])
    for method, tol in (("midpoint", {}), ("dopri5", TIGHT)):

        def solve(x0, v0, t, method=method, tol=tol):
            return odeint(func, (x0, v0), t, method=method, **tol)

        assert torch.autograd.gradcheck(solve, (x0, v0, t))


def test_output_times_on_the_step_size_grid():
    # t[1] = 0.5 is a grid point of t[0] + k * 0.25: the output is the step's result, and
    # its derivative the slope f there, which the Hermite dense output has on both sides
    # (it is C^1 but not C^2 across the point, so finite differences are off by O(eps)).
    f = Forced()
    y0 = torch.tensor([1.0, -0.5], dtype=F64, requires_grad=True)
    t = _times([0.0, 0.5, 1.1])

    def solve(y0, t):
        return odeint(f, y0, t, method="rk4", options={"step_size": 0.25})

    assert torch.autograd.gradcheck(solve, (y0, t))
    ys = solve(y0, t)
    (slope,) = torch.autograd.grad(ys[1], t, torch.eye(2, dtype=F64)[0], retain_graph=True)
    with torch.no_grad():
        f_there = f(t[1], ys[1])
    assert float(slope[1]) == pytest.approx(float(f_there[0]), rel=1e-14)


OPTION_CASES = [
    ("dopri5", {"step_t": [0.55, 1.3]}),
    ("dopri5", {"jump_t": [1.05]}),
    ("bosh3", {"min_step": 0.05}),
    ("rk4", {"perturb": True}),
    ("midpoint", {"perturb": True, "step_size": 0.3}),
    ("rk4", {"interp": "linear", "step_size": 0.3}),
    ("euler", {"interp": "cubic", "step_size": 0.2}),
    ("rk4", {"grid_constructor": lambda f, y0, t: t[0] + (t[-1] - t[0]) * _unit_grid(9)}),
]


@pytest.mark.parametrize(("method", "options"), OPTION_CASES, ids=lambda v: str(v)[:40])
def test_gradcheck_with_options(method, options):
    def func(t, y):  # a jump at t = 1.05, declared only where `jump_t` is given
        jump = 1.0 if "jump_t" in options else 0.0
        return -y + torch.sin(3 * t) + jump * (t > 1.05).to(y.dtype)

    y0 = torch.tensor([1.0, -0.5], dtype=F64, requires_grad=True)

    def solve(y0, t):
        return odeint(func, y0, t, method=method, options=options, rtol=1e-8, atol=1e-10)

    check = STRICT if method in FIXED else {}
    assert torch.autograd.gradcheck(solve, (y0, _times([0.3, 0.95, 1.65, 2.0])), **check)


# --------------------------------------------------------------------------- the float path


VALUE_CASES = [
    ("euler", None),
    ("rk4", None),
    ("midpoint", {"step_size": 0.07}),
    ("bosh3", None),
    ("dopri5", None),
    ("dopri5", {"step_t": [0.5], "jump_t": [1.0]}),
    ("rk4", {"perturb": True, "step_size": 0.1}),
]


@pytest.mark.parametrize(("method", "options"), VALUE_CASES, ids=lambda v: str(v)[:40])
def test_values_equal_those_of_a_detached_t(method, options):
    f = Forced()
    y0 = torch.tensor([1.0, -0.5], dtype=F64)
    t = _times([0.0, 0.45, 1.3, 2.0])
    tracked, detached = SolveStats(), SolveStats()
    ys = odeint(f, y0, t, method=method, options=options, stats=tracked)
    reference = odeint(f, y0, t.detach(), method=method, options=options, stats=detached)
    assert ys.requires_grad
    torch.testing.assert_close(ys, reference, rtol=0, atol=4 * torch.finfo(F64).eps)
    assert tracked.n_steps == detached.n_steps and tracked.n_rejected == detached.n_rejected
    if method in FIXED:  # the same evaluations, no float pass
        assert tracked.nfe == detached.nfe
    else:  # the float pass, then f(t0, y0), six (dopri5) or three (bosh3) stages a step
        stages = {"dopri5": 6, "bosh3": 3}[method]  # and f afresh past each jump
        jumps = len((options or {}).get("jump_t", ()))
        assert tracked.nfe == detached.nfe + 1 + stages * detached.n_steps + jumps


def test_float32_state_with_float64_times():
    f = Forced().float()
    y0 = torch.tensor([1.0, -0.5])
    t = _times([0.0, 0.45, 1.3])
    ys = odeint(f, y0, t)
    torch.testing.assert_close(ys, odeint(f, y0, t.detach()), rtol=0, atol=1e-6)
    ys.sum().backward()
    assert ys.dtype == torch.float32 and t.grad.dtype == F64 and bool(torch.isfinite(t.grad).all())


def test_t_grad_stays_none_when_t_does_not_require_grad():
    f, y0, t = _constant_problem()
    t = t.detach()
    for solver in (odeint, odeint_adjoint):
        y0.grad = None
        solver(f, y0, t).sum().backward()
        assert t.grad is None and y0.grad is not None


@pytest.mark.parametrize("method", ["rk4", "dopri5"])
def test_nothing_changes_under_no_grad(method):
    f = Forced()
    y0 = torch.tensor([1.0, -0.5], dtype=F64)
    t = _times([0.0, 0.45, 1.3])
    with_grad, without = SolveStats(), SolveStats()
    with torch.no_grad():
        ys = odeint(f, y0, t, method=method, stats=with_grad)
    reference = odeint(f, y0, t.detach(), method=method, stats=without)
    assert ys.grad_fn is None and torch.equal(ys, reference)
    assert dataclasses.astuple(with_grad) == dataclasses.astuple(without)


def test_a_single_time_returns_y0():
    y0 = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    t = _times([0.5])
    ys = odeint(Forced(), y0, t)
    assert torch.equal(ys, y0.detach()[None])
    ys.sum().backward()
    assert t.grad is None and torch.equal(y0.grad, torch.ones(2, dtype=F64))


def test_failures_are_those_of_the_float_path():
    f = Forced()
    y0 = torch.tensor([1.0, -0.5], dtype=F64)
    options = {"max_num_steps": 3}
    with pytest.raises(RuntimeError, match="maximum number of steps") as tracked:
        odeint(f, y0, _times([0.0, 5.0]), options=options)
    with pytest.raises(RuntimeError) as detached:
        odeint(f, y0, _times([0.0, 5.0], grad=False), options=options)
    assert str(tracked.value) == str(detached.value)

    def blow_up(t, y):
        return torch.exp(50 * y)  # Euler: y(3) is about 1e22, y(6) overflows

    for t in (_times([0.0, 3.0, 6.0]), _times([0.0, 3.0, 6.0], grad=False)):
        with pytest.raises(RuntimeError, match="finite"):
            odeint(blow_up, torch.ones(1, dtype=F64), t, method="euler")


def test_a_grid_constructor_that_changes_its_grid_is_refused():
    calls = []

    def grid(func, y0, t):
        calls.append(1)
        return torch.linspace(float(t[0].detach()), float(t[-1].detach()), 3 + len(calls))

    with pytest.raises(RuntimeError, match="grid_constructor"):
        odeint(Forced(), torch.ones(2, dtype=F64), _times([0.0, 1.0]), method="rk4",
               options={"grid_constructor": grid})  # fmt: skip


def test_an_option_the_replay_does_not_know_is_refused():
    settings_type = dataclasses.make_dataclass(
        "S", [("new_option", int, dataclasses.field(default=0))]
    )
    _check_honoured(settings_type())
    with pytest.raises(ValueError, match=r"'new_option'.*`t` that requires grad"):
        _check_honoured(settings_type(new_option=1))


# --------------------------------------------------------------------------- odeint_adjoint


def _gradients(solver, f, y0, t, params, incoming=None, **kwargs):
    ys = solver(f, y0, t, **kwargs)
    incoming = _incoming(ys.shape) if incoming is None else incoming
    return torch.autograd.grad(ys, (y0, t, *params), incoming)


@pytest.mark.parametrize("method", ["rk4", "dopri5"])
def test_adjoint_agrees_with_backprop_on_the_exact_problem(method):
    f, y0, t = _constant_problem()
    params = (f.a, f.b)
    backprop = _gradients(odeint, f, y0, t, params, method=method)
    adjoint = _gradients(odeint_adjoint, f, y0, t, params, method=method)
    for ours, theirs in zip(adjoint, backprop, strict=True):
        assert float((ours - theirs).abs().max()) < 1e-12


def test_adjoint_agrees_with_backprop_where_the_method_is_not_exact():
    # torchdiffeq's TestCompareAdjointGradient, with its margins.
    results = []
    for solver in (odeint_adjoint, odeint):
        func = Cubic()
        y0 = torch.tensor([[2.0, 0.0]], dtype=F64, requires_grad=True)
        t = torch.linspace(0.0, 25.0, 10, dtype=F64, requires_grad=True)
        ys = solver(func, y0, t, method="dopri5")
        ys.backward(_incoming(ys.shape) * 0.1)
        if solver is odeint_adjoint:  # zero gradients for unused parameters, as torchdiffeq
            assert float(func.unused.weight.grad.abs().max()) == 0.0
        results.append((y0.grad, t.grad, func.A.grad))
    (y0_adj, t_adj, A_adj), (y0_bp, t_bp, A_bp) = results
    assert float((y0_adj - y0_bp).abs().max()) < 3e-4
    assert float((t_adj - t_bp).abs().max()) < 1e-4
    assert float((A_adj - A_bp).abs().max()) < 2e-3


@pytest.mark.parametrize("solver", [odeint, odeint_adjoint])
def test_time_gradient_of_exponential_growth_has_its_closed_form(solver):
    # y' = a y: y(t_i) = y0 exp(a (t_i - t_0)).  For L = sum_i g_i y(t_i), with g_0 != 0:
    # dL/dt_i = g_i a y(t_i) (i >= 1) and dL/dt_0 = -sum_{i>=1} g_i a y(t_i) (output 0 is y0).
    a, y0 = -0.7, torch.tensor([1.5], dtype=F64)
    t = _times([0.2, 0.9, 1.4, 2.5])
    g = torch.tensor([[2.0], [1.0], [-0.5], [0.3]], dtype=F64)
    kwargs = {"adjoint_params": ()} if solver is odeint_adjoint else {}
    ys = solver(lambda t, y: a * y, y0, t, **TIGHT, **kwargs)
    (grad_t,) = torch.autograd.grad(ys, t, g)
    exact = y0 * torch.exp(a * (t.detach() - t.detach()[0]))[:, None]
    per_output = (g * a * exact).reshape(-1)
    expected = torch.cat([-per_output[1:].sum(0, keepdim=True), per_output[1:]])
    torch.testing.assert_close(grad_t, expected, rtol=1e-8, atol=1e-10)


def test_adjoint_time_gradient_with_a_tuple_state_and_its_cost():
    def func(t, state):
        x, v = state
        return (v, -x * (1.0 + 0.5 * torch.sin(t)))

    x0 = torch.tensor([1.0, 0.0], dtype=F64)
    v0 = torch.tensor([0.0, 1.0], dtype=F64)
    grads, counts = [], []
    for solver, grad in ((odeint, True), (odeint_adjoint, True), (odeint_adjoint, False)):
        t = _times([0.0, 0.8, 1.5], grad=grad)
        stats = SolveStats()
        kwargs = {"adjoint_params": (), "stats": stats} if solver is odeint_adjoint else {}
        x, v = solver(func, (x0.requires_grad_(True), v0), t, **TIGHT, **kwargs)
        loss = (x * x).sum() + v[-1].sum()
        grads.append(torch.autograd.grad(loss, t if grad else x0)[0])
        counts.append(stats.nfe_backward)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-6, atol=1e-8)
    assert counts[1] == counts[2] + 3  # one evaluation of f per output time


def test_adjoint_time_gradient_with_a_single_time():
    f = Forced()
    y0 = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    t = _times([0.5])
    ys = odeint_adjoint(f, y0, t)
    (grad_t,) = torch.autograd.grad(ys.sum(), t)
    assert torch.equal(grad_t, torch.zeros(1, dtype=F64)) and math.isfinite(float(grad_t))
