"""Tests for odecourse.odeint: agreement with solve_ivp, orders, gradients, shapes, validation."""

import math

import numpy as np
import pytest
import torch

from odecourse.convergence import observed_order
from odecourse.ivp import get_problem
from odecourse.odeint import (
    ADAPTIVE_METHODS,
    FIXED_METHODS,
    UNSUPPORTED_METHODS,
    CountedFunc,
    SolveStats,
    odeint,
)
from odecourse.runge_kutta import get_tableau
from odecourse.solve import solve_ivp

ALL_METHODS = ADAPTIVE_METHODS + FIXED_METHODS
F64 = torch.float64


def _torch_rhs(problem):
    """The NumPy right-hand side of an IVP as a torch vector field (values only)."""
    return lambda t, y: torch.as_tensor(problem.f(float(t), y.numpy()), dtype=y.dtype)


def _rotation(t, y):
    """y' = J y with J the rotation generator; y(t) = R(t) y0."""
    return torch.stack([y[..., 1], -y[..., 0]], dim=-1)


def _rotation_exact(t, y0):
    c, s = torch.cos(t)[:, None], torch.sin(t)[:, None]
    return torch.stack([c * y0[0] + s * y0[1], -s * y0[0] + c * y0[1]], dim=-1).squeeze(1)


class _TanhField(torch.nn.Module):
    """y' = tanh(W y) + b: a small nonlinear field with parameters."""

    def __init__(self, W, b):
        super().__init__()
        self.W, self.b = W, b

    def forward(self, t, y):
        return torch.tanh(y @ self.W.T) + self.b * torch.cos(t)


@pytest.mark.parametrize("method", ADAPTIVE_METHODS)
@pytest.mark.parametrize("name", ["harmonic_oscillator", "lotka_volterra", "van_der_pol"])
def test_adaptive_matches_solve_ivp(method, name):
    problem = get_problem(name)
    t = torch.linspace(*problem.t_span, 11, dtype=F64)
    stats = SolveStats()
    ours = odeint(
        _torch_rhs(problem), torch.tensor(problem.y0), t, method=method, stats=stats,
        rtol=1e-7, atol=1e-9,
    )  # fmt: skip
    ref = solve_ivp(
        problem.f, problem.t_span, problem.y0, method=method, t_eval=t.numpy(),
        rtol=1e-7, atol=1e-9,
    )  # fmt: skip
    assert ours.shape == (11, problem.y0.size)
    assert stats.nfe == ref.nfev and stats.n_steps == ref.n_steps
    assert stats.n_rejected == ref.n_rejected
    np.testing.assert_allclose(ours.numpy(), ref.y.T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", FIXED_METHODS)
def test_fixed_step_size_matches_solve_ivp(method):
    problem = get_problem("lotka_volterra")
    t = torch.linspace(0.0, 2.0, 5, dtype=F64)
    stats = SolveStats()
    options = {"step_size": 0.05}
    ours = odeint(_torch_rhs(problem), torch.tensor(problem.y0), t, method=method, options=options)
    odeint(_torch_rhs(problem), torch.tensor(problem.y0), t, method=method, options=options,
           stats=stats)  # fmt: skip
    ref = solve_ivp(problem.f, (0.0, 2.0), problem.y0, method=method, h=0.05, t_eval=t.numpy())
    assert stats.nfe == ref.nfev and stats.n_steps == 40
    np.testing.assert_allclose(ours.numpy(), ref.y.T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", FIXED_METHODS)
def test_fixed_step_methods_show_their_order_stepping_between_output_times(method):
    y0 = torch.tensor([1.0, 0.5], dtype=F64)
    ns = [8, 16, 32, 64]
    errors = []
    for n in ns:
        t = torch.linspace(0.0, 2.0, n + 1, dtype=F64)
        stats = SolveStats()
        y = odeint(_rotation, y0, t, method=method, stats=stats)
        assert stats.n_steps == n  # one step per output interval, as in torchdiffeq
        errors.append(float((y - _rotation_exact(t, y0)).abs().max()))
    slope = observed_order(2.0 / np.array(ns), errors)
    assert slope == pytest.approx(get_tableau(method).order, abs=0.2)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_gradcheck_through_the_solver(method):
    gen = torch.Generator().manual_seed(0)
    y0 = torch.randn(3, 2, generator=gen, dtype=F64, requires_grad=True)  # a batch of 3
    W = torch.randn(2, 2, generator=gen, dtype=F64, requires_grad=True)
    b = torch.tensor([0.3, -0.2], dtype=F64)
    t = torch.tensor([0.0, 0.4, 1.0], dtype=F64)
    # Tight tolerances: step sizes depend on y0 (as floats, outside the graph), which moves the
    # finite-difference reference by about the tolerance over gradcheck's eps.
    tight = {"dopri5": {"rtol": 1e-11, "atol": 1e-12}, "bosh3": {"rtol": 1e-8, "atol": 1e-10}}
    tight = tight.get(method, {})
    options = None if method in ADAPTIVE_METHODS else {"step_size": 0.1}

    def solve(y0, W):
        return odeint(_TanhField(W, b), y0, t, method=method, options=options, **tight)

    assert torch.autograd.gradcheck(solve, (y0, W), atol=1e-6, rtol=1e-4)


def test_gradients_reach_module_parameters():
    func = _TanhField(
        torch.nn.Parameter(torch.eye(2, dtype=F64)), torch.nn.Parameter(torch.ones(2, dtype=F64))
    )
    y0 = torch.tensor([[0.5, -1.0]], dtype=F64, requires_grad=True)
    odeint(func, y0, torch.tensor([0.0, 1.0], dtype=F64))[-1].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in func.parameters())
    assert y0.grad is not None


@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_reversed_time(method):
    y0 = torch.tensor([1.0, 0.5], dtype=F64)
    t = torch.linspace(3.0, 0.0, 7, dtype=F64)
    options = {"step_size": 0.01} if method == "rk4" else None
    y = odeint(_rotation, y0, t, method=method, options=options)
    exact = _rotation_exact(t - 3.0, y0)
    torch.testing.assert_close(y, exact, rtol=0, atol=1e-7)
    back = odeint(_rotation, y[-1], t.flip(0), method=method, options=options)
    torch.testing.assert_close(back[-1], y0, rtol=0, atol=1e-7)


def test_func_receives_time_as_0d_tensor_of_y_dtype():
    seen = []

    def func(t, y):
        seen.append((t.shape, t.dtype, t.device))
        return -y

    odeint(func, torch.ones(2, dtype=torch.float32), torch.tensor([0.0, 1.0], dtype=F64))
    assert set(seen) == {(torch.Size([]), torch.float32, torch.device("cpu"))}


@pytest.mark.parametrize("method", ["dopri5", "bosh3", "rk4"])
def test_float32(method):
    y0 = torch.tensor([1.0, 0.5])
    t = torch.linspace(0.0, 2.0, 5)
    y = odeint(_rotation, y0, t, method=method, rtol=1e-5, atol=1e-7)
    assert y.dtype == torch.float32 and y.shape == (5, 2)
    tol = 1e-4 if method != "rk4" else 2e-2  # rk4 steps once per output interval here
    torch.testing.assert_close(y, _rotation_exact(t, y0), rtol=0, atol=tol)


@pytest.mark.parametrize("method", ["dopri5", "midpoint"])
def test_tuple_state_matches_the_packed_state(method):
    q0 = torch.tensor([[1.0, 0.2]], dtype=F64, requires_grad=True)
    p0 = torch.tensor([0.0, 0.3], dtype=F64)
    t = torch.linspace(0.0, 1.0, 4, dtype=F64)

    def pair(t, state):
        q, p = state
        return p.expand_as(q), -q.sum(0)

    qs, ps = odeint(pair, (q0, p0), t, method=method)
    assert qs.shape == (4, 1, 2) and ps.shape == (4, 2)
    assert torch.equal(qs[0], q0) and torch.equal(ps[0], p0)

    def packed(t, y):
        return torch.cat([y[2:], -y[:2]])

    y = odeint(packed, torch.cat([q0[0], p0]), t, method=method, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(torch.cat([qs[:, 0], ps], dim=1), y, rtol=0, atol=1e-6)
    qs[-1].sum().backward()
    assert q0.grad is not None and q0.grad.shape == q0.shape


def test_single_output_time_returns_y0_stacked():
    y0 = torch.tensor([1.0, 2.0])
    y = odeint(lambda t, y: -y, y0, torch.tensor([0.5]))
    assert y.shape == (1, 2) and torch.equal(y[0], y0)


def test_first_output_is_y0_exactly():
    y0 = torch.randn(4, 2, dtype=F64)
    y = odeint(_rotation, y0, torch.tensor([0.0, 0.5, 1.0], dtype=F64))
    assert torch.equal(y[0], y0)


def test_norm_option_replaces_the_rms_norm():
    y0 = torch.tensor([1.0, 0.5], dtype=F64)
    t = torch.tensor([0.0, 5.0], dtype=F64)
    default, rms, maxnorm = SolveStats(), SolveStats(), SolveStats()
    odeint(_rotation, y0, t, stats=default)
    odeint(_rotation, y0, t, options={"norm": lambda x: x.pow(2).mean().sqrt()}, stats=rms)
    odeint(_rotation, y0, t, options={"norm": lambda x: x.abs().max()}, stats=maxnorm)
    assert rms == default
    assert maxnorm.nfe >= default.nfe


def test_adaptive_options_first_step_max_step_and_controller_factors():
    y0 = torch.tensor([1.0, 0.5], dtype=F64)
    t = torch.tensor([0.0, 2.0], dtype=F64)
    capped = SolveStats()
    odeint(_rotation, y0, t, options={"max_step": 0.1, "first_step": 0.05}, stats=capped)
    assert capped.n_steps >= 20
    cautious = SolveStats()
    odeint(
        _rotation, y0, t, options={"safety": 0.5, "ifactor": 1.5, "dfactor": 0.5}, stats=cautious
    )
    assert cautious.n_steps > 0


def test_counted_func_counts_and_keeps_module_parameters():
    field = _TanhField(torch.nn.Parameter(torch.eye(2)), torch.nn.Parameter(torch.zeros(2)))
    counted = CountedFunc(field)
    stats = SolveStats()
    odeint(counted, torch.ones(2), torch.tensor([0.0, 1.0]), stats=stats)
    assert counted.nfe == stats.nfe > 0 and counted.wraps_module
    assert len(list(counted.parameters())) == 2
    counted.reset()
    assert counted.nfe == 0
    assert not CountedFunc(lambda t, y: y).wraps_module


# --------------------------------------------------------------------------- validation

T = torch.tensor([0.0, 1.0])
Y = torch.ones(2)


def _decay(t, y):
    return -y


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"y0": [1.0, 2.0]}, TypeError, "`y0` must be a torch.Tensor"),
        ({"y0": (Y, 1.0)}, TypeError, r"`y0\[1\]` must be a torch.Tensor"),
        ({"y0": ()}, ValueError, "non-empty tuple"),
        ({"y0": torch.ones(2, dtype=torch.int64)}, TypeError, "`y0` must have a floating dtype"),
        ({"y0": (Y, Y.double())}, ValueError, "share one dtype"),
        ({"y0": torch.tensor([1.0, math.nan])}, ValueError, "`y0` must contain only finite"),
        ({"t": [0.0, 1.0]}, TypeError, "`t` must be a torch.Tensor"),
        ({"t": torch.tensor([0, 1])}, TypeError, "`t` must have a floating dtype"),
        ({"t": torch.zeros(2, 2)}, ValueError, "`t` must be a 1-D tensor"),
        ({"t": torch.zeros(0)}, ValueError, "at least one time"),
        ({"t": torch.tensor([0.0, 1.0, 0.5])}, ValueError, "strictly increasing or strictly"),
        ({"t": torch.tensor([0.0, 0.0])}, ValueError, "strictly increasing"),
        ({"t": torch.tensor([0.0, math.inf])}, ValueError, "finite times"),
        ({"t": torch.tensor([0.0, 1.0], device="meta")}, ValueError, "device of `y0`"),
        ({"method": "dopri8"}, ValueError, "does not implement; supported methods: .*'dopri5'"),
        ({"method": "RK45"}, ValueError, "`method` must be one of"),
        ({"method": 5}, TypeError, "`method` must be a ButcherTableau or the name of one"),
        ({"method": get_tableau("trapezoid")}, ValueError, "explicit tableau"),
        ({"options": {"step_size": 0.1}}, ValueError, "unknown option 'step_size'.*'first_step'"),
        ({"options": {"perturb": True}}, ValueError, r"'perturb' .*\(an option of the fixed-step"),
        (
            {"method": "rk4", "options": {"first_step": 0.1}},
            ValueError,
            "accepted options: 'step_s",
        ),
        ({"method": "rk4", "options": {"step_size": -0.1}}, ValueError, "`step_size` must be pos"),
        ({"method": "rk4", "options": {"step_size": 0.0}}, ValueError, "`step_size` must be pos"),
        ({"options": {"max_num_steps": 0}}, ValueError, "`max_num_steps` must be an integer >= 1"),
        ({"options": {"norm": 3}}, TypeError, "`norm` must be callable"),
        ({"options": [("first_step", 1)]}, TypeError, "`options` must be a dict"),
        ({"rtol": -1e-3}, ValueError, "`rtol` must be non-negative"),
        ({"atol": -1e-3}, ValueError, "`atol` must be non-negative"),
        ({"rtol": 0.0, "atol": 0.0}, ValueError, "cannot both be zero"),
        ({"func": 3}, TypeError, "`func` must be callable"),
        ({"func": lambda t, y: y[:1]}, ValueError, r"`func` must return a tensor of shape \(2,\)"),
        ({"func": lambda t, y: (y,), "y0": (Y, Y)}, TypeError, "tuple of 2 tensors"),
    ],
)
def test_validation_errors(kwargs, error, match):
    arguments = {"func": _decay, "y0": Y, "t": T, **kwargs}
    func, y0, t = arguments.pop("func"), arguments.pop("y0"), arguments.pop("t")
    with pytest.raises(error, match=match):
        odeint(func, y0, t, **arguments)


def test_step_size_underflow_raises_with_the_time():
    t = torch.tensor([0.0, 2.0], dtype=F64)
    with pytest.raises(RuntimeError, match=r"odeint: The step size became too small .* at t = 1\b"):
        odeint(lambda t, y: y * y, torch.ones(1, dtype=F64), t)


def test_too_many_steps_raises_with_the_time():
    t = torch.tensor([0.0, 10.0], dtype=F64)
    with pytest.raises(
        RuntimeError, match=r"maximum number of steps \(3\) was reached at t = .*max_num_steps"
    ):
        odeint(_rotation, torch.ones(2, dtype=F64), t, options={"max_num_steps": 3})


def test_non_finite_state_raises_with_the_time():
    def explode(t, y):
        return y * (1e308 if float(t) >= 0.5 else 1.0)

    t = torch.linspace(0.0, 1.0, 5, dtype=F64)
    with pytest.raises(
        RuntimeError, match=r"stopped being finite in the step from t = 0\.5 to t = 0\.75"
    ):
        odeint(explode, torch.ones(1, dtype=F64) * 10, t, method="euler")


def test_unsupported_methods_are_all_named_in_the_error():
    for method in UNSUPPORTED_METHODS:
        with pytest.raises(ValueError, match="'rk38'"):
            odeint(_decay, Y, T, method=method)


@pytest.mark.parametrize("tuple_state", [False, True])
def test_func_of_another_dtype_is_refused(tuple_state):
    y0 = (Y, Y) if tuple_state else Y

    def func(t, y):
        return tuple(-s.double() for s in y) if tuple_state else -y.double()

    with pytest.raises(TypeError, match=r"`func` must return tensors of the dtype of `y0` \(torch"):
        odeint(func, y0, T)


def test_t_error_does_not_mention_tuples():
    with pytest.raises(TypeError, match=r"`t` must be a torch.Tensor; got list \[0\.0, 1\.0\]\.$"):
        odeint(_decay, Y, [0.0, 1.0])


def test_the_module_is_not_hidden_by_the_function():
    import types

    import odecourse
    import odecourse.odeint as module

    assert isinstance(module, types.ModuleType) and module is odecourse.odeint
    assert module.CountedFunc is odecourse.CountedFunc
    # Calling the module calls the solver: torchdiffeq's spelling odecourse.odeint(...) works.
    y = odecourse.odeint(_decay, Y, T)
    assert torch.equal(y, module.odeint(_decay, Y, T))
