"""torchdiffeq's solver options in ``odeint`` and ``odeint_adjoint``.

``jump_t``, ``step_t``, ``min_step`` and ``dtype`` (adaptive methods), ``perturb``,
``grid_constructor`` and ``interp`` (fixed-step methods), modelled on the cases of
torchdiffeq's own suite (TestDiscontinuities, TestGridConstructor, TestMinMaxStep),
plus closed forms, the backward pass of the adjoint and the argument checks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from odecourse import odeint_adjoint
from odecourse.adaptive import integrate_adaptive
from odecourse.fixed_step import integrate_fixed
from odecourse.odeint import CountedFunc, SolveStats, odeint
from odecourse.runge_kutta import TABLEAUS

F64 = torch.float64
F32 = torch.float32
T01 = torch.tensor([0.0, 1.0], dtype=F64)


def _next(t: float, toward: float, dtype: torch.dtype) -> float:
    """The neighbour of ``t`` towards ``toward`` in ``dtype`` (exactly representable in it)."""
    if dtype == F64:
        return math.nextafter(t, toward)
    return float(np.nextafter(np.float32(t), np.float32(toward)))


class JumpF:
    """torchdiffeq's ``_JumpF``: ``x' = -x/2`` before ``t = 1/2``, ``x' = x^2`` from there on.

    Records every time it is evaluated at (as a Python float).
    """

    def __init__(self) -> None:
        self.times: list[float] = []

    @property
    def nfe(self) -> int:
        return len(self.times)

    def __call__(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.times.append(t.item())
        return -0.5 * x if t < 0.5 else x**2


def jump_solution(x0: torch.Tensor, t: float) -> torch.Tensor:
    """The closed form of :class:`JumpF` from ``x(0) = x0``, for ``t`` in [1/2, 1]."""
    x_half = x0.double() * math.exp(-0.25)
    return 1 / (1 / x_half - (t - 0.5))


def jump_gradient(x0: torch.Tensor, t: float) -> torch.Tensor:
    """``d x(t) / d x0`` of :func:`jump_solution` (entrywise: the problem is diagonal)."""
    x0 = x0.double()
    return math.exp(0.25) / (x0**2 * (1 / (x0 * math.exp(-0.25)) - (t - 0.5)) ** 2)


# --------------------------------------------------------------------------- jump_t


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("method", ["dopri5", "bosh3"])
def test_jump_t_needs_fewer_evaluations_for_the_same_or_better_accuracy(method, dtype):
    x0 = torch.tensor([1.0, 2.0], dtype=dtype)
    t = torch.tensor([0.0, 1.0])
    plain, jumped = JumpF(), JumpF()
    kwargs = {"rtol": 1e-6, "atol": 1e-6, "method": method}
    y_plain = odeint(plain, x0, t, **kwargs)
    y_jump = odeint(jumped, x0, t, options={"jump_t": torch.tensor([0.5])}, **kwargs)
    assert jumped.nfe < plain.nfe
    exact = jump_solution(x0, 1.0)
    error_plain = (y_plain[-1].double() - exact).abs().max().item()
    error_jump = (y_jump[-1].double() - exact).abs().max().item()
    assert error_jump < 5e-4
    # dopri5 across the jump loses accuracy (7e-4 to 1.3e-3 against 1.0e-5 to 1.3e-5 with
    # jump_t). bosh3's error is its global error on the smooth pieces either way (1.2e-4
    # with jump_t); without it the error lands anywhere from 1.0e-4 to 2.9e-4 depending on
    # how the rejected steps at the jump round, which differs between CPU kernels in
    # float32. So bosh3 only has to be about as accurate.
    assert error_jump < (0.1 if method == "dopri5" else 2.0) * error_plain


@pytest.mark.parametrize("dtype", [F64, F32])
def test_jump_t_evaluates_each_side_of_the_jump_and_never_the_jump(dtype):
    f = JumpF()
    odeint(f, torch.tensor([1.0, 2.0], dtype=dtype), T01, options={"jump_t": [0.5]})
    assert 0.5 not in f.times
    before, after = _next(0.5, 0.0, dtype), _next(0.5, 1.0, dtype)
    assert before in f.times  # the last stages of the step that ends at the jump
    assert after in f.times  # the first stage after it, evaluated afresh
    assert f.times.index(before) < f.times.index(after)
    # Without jump_t the FSAL stage at the step end 0.5 would be reused: f sees 0.5 itself.
    g = JumpF()
    odeint(g, torch.tensor([1.0, 2.0], dtype=dtype), T01, options={"step_t": [0.5]})
    assert 0.5 in g.times


@pytest.mark.parametrize("method", ["dopri5", "bosh3"])
def test_jump_t_in_the_adjoint_forward_and_backward(method):
    x0 = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 1.0], dtype=F64)
    kwargs = {"rtol": 1e-6, "atol": 1e-6, "method": method, "adjoint_params": ()}
    results = {}
    for name, options in (("plain", None), ("jump", {"jump_t": torch.tensor([0.5])})):
        f, stats = JumpF(), SolveStats()
        ys = odeint_adjoint(f, x0, t, options=options, stats=stats, **kwargs)
        forward_nfe = f.nfe
        f.times.clear()
        (grad,) = torch.autograd.grad(ys.sum(), x0)
        results[name] = (forward_nfe, f.nfe, grad, f.times)
        assert stats.nfe == forward_nfe and stats.nfe_backward == f.nfe
    (fwd_plain, bwd_plain, grad_plain, _), (fwd_jump, bwd_jump, grad_jump, times) = (
        results["plain"],
        results["jump"],
    )
    assert fwd_jump < fwd_plain
    assert bwd_jump < bwd_plain
    exact = 1 + jump_gradient(x0.detach(), 1.0)  # ys.sum() holds x(0) too
    assert (grad_jump - exact).abs().max() < (grad_plain - exact).abs().max()
    assert (grad_jump - exact).abs().max() < 1e-3
    # Backwards from 1 to 0: the jump is approached from above and left below.
    assert 0.5 not in times
    assert math.nextafter(0.5, 1.0) in times and math.nextafter(0.5, 0.0) in times
    assert times.index(math.nextafter(0.5, 1.0)) < times.index(math.nextafter(0.5, 0.0))


def test_jump_at_an_output_time_splits_the_adjoint_intervals_correctly():
    # t = [0, 0.5, 1]: the backward solves end at the jump, then start there.
    x0 = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    options = {"jump_t": [0.5]}
    f = JumpF()
    ys = odeint_adjoint(f, x0, t, rtol=1e-9, atol=1e-9, options=options, adjoint_params=())
    assert torch.allclose(ys[-1], jump_solution(x0.detach(), 1.0), rtol=1e-6)
    f.times.clear()
    (grad,) = torch.autograd.grad(ys[-1].sum(), x0)
    assert 0.5 not in f.times
    torch.testing.assert_close(grad, jump_gradient(x0.detach(), 1.0), rtol=1e-6, atol=0)


def test_a_jump_at_the_initial_time_is_evaluated_just_past_it():
    f = JumpF()
    x0 = torch.tensor([1.0], dtype=F64)
    odeint(f, x0, torch.tensor([0.5, 1.0], dtype=F64), options={"jump_t": [0.5]})
    assert f.times[0] == math.nextafter(0.5, 1.0)
    assert 0.5 not in f.times
    g = JumpF()  # backwards from 0.5: the left branch from the start
    odeint(g, x0, torch.tensor([0.5, 0.0], dtype=F64), options={"jump_t": [0.5]})
    assert g.times[0] == math.nextafter(0.5, 0.0)


def test_times_outside_the_interval_are_ignored():
    x0 = torch.tensor([1.0, 2.0], dtype=F64)
    plain = odeint(JumpF(), x0, T01)
    # A step time at t[0] or t[-1] is ignored too (a jump there is not: see the tests above).
    outside = {"jump_t": [-1.0, 2.0], "step_t": torch.tensor([1.5, -0.5, 0.0, 1.0])}
    torch.testing.assert_close(odeint(JumpF(), x0, T01, options=outside), plain, rtol=0, atol=0)


# --------------------------------------------------------------------------- step_t


@pytest.mark.parametrize("t", [T01, T01.flip(0)])
def test_step_t_steps_land_on_the_given_times(t):
    stops = [0.3, 0.7]
    f = CountedFunc(lambda t, y: torch.cos(3 * t) * y)
    times = []
    f.register_forward_pre_hook(lambda module, args: times.append(args[0].item()))
    y0 = torch.ones(1, dtype=F64)
    stats = SolveStats()
    y = odeint(f, y0, t, options={"step_t": [0.7, 0.3, 5.0]}, stats=stats)
    for s in stops:  # dopri5's last stage is the step end itself
        assert s in times
    plain = SolveStats()
    times.clear()
    y_plain = odeint(f, y0, t, stats=plain)
    assert not any(s in times for s in stops)
    exact = torch.exp(torch.sin(3 * t[-1]) / 3 - torch.sin(3 * t[0]) / 3)
    assert abs(y[-1].item() - exact.item()) < 1e-6
    assert abs(y_plain[-1].item() - exact.item()) < 1e-6
    assert stats.n_steps >= plain.n_steps


@pytest.mark.parametrize("t_span", [(0.0, 2.0), (2.0, 0.0)])
def test_core_breakpoints_include_step_t_and_jump_t(t_span):
    result = integrate_adaptive(
        lambda t, y: -y + np.sin(5 * t), t_span, np.array([1.0]), TABLEAUS["dopri5"],
        step_t=(0.5, 1.25), jump_t=(1.0, 7.0), dense_output=True,
    )  # fmt: skip
    assert result.success
    for s in (0.5, 1.0, 1.25):
        assert s in result.breakpoints


# --------------------------------------------------------------------------- min_step


@pytest.fixture(scope="module")
def linear_problem():
    """torchdiffeq's ``LinearODE``: y' = A y with A antisymmetric (10-d), on [1, 8]."""
    generator = torch.Generator().manual_seed(0)
    u = torch.randn(10, 10, generator=generator, dtype=F64) * 0.1
    a = 2 * u - (u + u.T)
    return a, torch.linspace(1, 8, 10, dtype=F64)


@pytest.mark.parametrize("max_step", [math.inf, 5.0])
def test_min_step_cuts_the_evaluations(linear_problem, max_step):
    a, t = linear_problem
    y0 = torch.ones(10, dtype=F64)
    nfe = {}
    for min_step in (0.0, 2.0):
        f = CountedFunc(lambda t, y: a @ y)
        stats = SolveStats()
        odeint(f, y0, t, options={"min_step": min_step, "max_step": max_step}, stats=stats)
        nfe[min_step] = f.nfe
        if min_step:  # every step is at least 2 long, and none is rejected
            assert stats.n_steps <= 4 and stats.n_rejected == 0
    assert nfe[2.0] < 50
    assert nfe[0.0] > 100


def test_a_min_step_step_is_accepted_even_when_its_error_is_too_large():
    attempts = []
    result = integrate_adaptive(
        lambda t, y: -50 * y, (0.0, 1.0), np.array([1.0]), TABLEAUS["dopri5"], first_step=0.5,
        min_step=0.25, observer=lambda t, h, err, accepted, y: attempts.append((h, err, accepted)),
    )  # fmt: skip
    assert result.success
    assert all(h >= 0.25 - 1e-15 for h, _, _ in attempts)
    forced = [(h, err) for h, err, accepted in attempts if accepted and err >= 1]
    assert forced  # accepted although the error norm is above one
    assert all(h <= 0.25 for h, _ in forced)


# --------------------------------------------------------------------------- dtype


def test_dtype_float64_changes_nothing_and_others_are_refused():
    x0 = torch.tensor([1.0, 2.0], dtype=F32)
    f = JumpF()
    y = odeint(f, x0, T01, options={"dtype": torch.float64})
    torch.testing.assert_close(y, odeint(JumpF(), x0, T01), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"`dtype` must be torch.float64; got torch.float32"):
        odeint(f, x0, T01, options={"dtype": torch.float32})


# --------------------------------------------------------------------------- perturb

FIXED = ["euler", "midpoint", "heun", "rk4", "rk38"]


@pytest.mark.parametrize("adjoint", [False, True])
@pytest.mark.parametrize("method", FIXED)
@pytest.mark.parametrize("perturb", [True, False])
def test_perturb_keeps_grid_times_from_func(method, perturb, adjoint):
    # torchdiffeq's test_odeint_perturb: step_size 0.5 on [0, 1].
    times = []

    def f(t, x):
        times.append(t.item())
        return -x

    x0 = torch.tensor([1.0, 2.0], requires_grad=True)
    options = {"step_size": 0.5, "perturb": perturb}
    if adjoint:
        xs = odeint_adjoint(f, x0, torch.tensor([0.0, 1.0]), method=method, options=options,
                            adjoint_params=())  # fmt: skip
    else:
        xs = odeint(f, x0, torch.tensor([0.0, 1.0]), method=method, options=options)
    for grid_time in (0.0, 0.5, 1.0):
        assert (grid_time in times) != perturb
    if adjoint:
        times.clear()
        xs.sum().backward()
        for grid_time in (1.0, 0.5, 0.0):
            assert (grid_time in times) != perturb
    # f ignores t, so nudging its time changes no result.
    plain = odeint(f, x0.detach(), torch.tensor([0.0, 1.0]), method=method,
                   options={"step_size": 0.5})  # fmt: skip
    torch.testing.assert_close(xs.detach(), plain, rtol=0, atol=0)


@pytest.mark.parametrize("method", ["rk4", "rk38", "heun"])
def test_perturb_integrates_a_step_function_exactly(method):
    # y' = 1 before t = 1/2 and -1 from there on; y(1) = 0. Each stage must see its own side.
    def f(t, y):
        return torch.ones_like(y) if t < 0.5 else -torch.ones_like(y)

    y0 = torch.zeros(1, dtype=F64)
    perturbed = odeint(f, y0, T01, method=method, options={"step_size": 0.5, "perturb": True})
    plain = odeint(f, y0, T01, method=method, options={"step_size": 0.5})
    assert perturbed[-1].abs().item() < 1e-15
    assert plain[-1].abs().item() > 0.1


def test_perturb_costs_one_evaluation_per_stage():
    f = CountedFunc(lambda t, y: -y)
    y0 = torch.ones(1, dtype=F64)
    odeint(f, y0, T01, method="rk4", options={"step_size": 0.25, "perturb": True})
    assert f.nfe == 4 * 4  # four steps of four stages; nothing is reused across grid times


# --------------------------------------------------------------------------- grid_constructor


@pytest.mark.parametrize("adjoint", [False, True])
def test_grid_constructor_euler_on_exponential_growth(adjoint):
    # torchdiffeq's TestGridConstructor.
    calls = []

    def grid_constructor(func, y0, t):
        calls.append(t.tolist())
        return torch.linspace(float(t[0]), float(t[-1]), 11)

    x0 = torch.tensor(1.0, requires_grad=True)
    t = torch.tensor([0.0, 1.0])
    options = {"grid_constructor": grid_constructor}
    if adjoint:
        xs = odeint_adjoint(lambda t, x: x, x0, t, method="euler", options=options,
                            adjoint_params=())  # fmt: skip
    else:
        xs = odeint(lambda t, x: x, x0, t, method="euler", options=options)
    assert abs(xs[1].item() - 1.1**10) < 1e-6
    xs[1].backward()
    assert abs(x0.grad.item() - 1.1**10) < 1e-6
    assert calls == ([[0.0, 1.0], [1.0, 0.0]] if adjoint else [[0.0, 1.0]])


def test_grid_constructor_receives_the_call_arguments_and_outputs_are_interpolated():
    seen = {}

    def func(t, y):
        return -y

    def grid_constructor(f, y0, t):
        seen.update(f=f, y0=y0, t=t)
        return torch.linspace(0, 1, 5, dtype=F64)  # steps of 0.25

    y0 = torch.ones(2, dtype=F64)
    t = torch.tensor([0.0, 0.3, 1.0], dtype=F64)
    options = {"grid_constructor": grid_constructor}
    stats = SolveStats()
    ys = odeint(func, y0, t, method="euler", options=options, stats=stats)
    assert seen["f"] is func and seen["y0"] is y0 and seen["t"] is t
    assert stats.n_steps == 4
    assert ys[-1][0].item() == pytest.approx(0.75**4, rel=1e-14)
    linear = odeint(func, y0, t, method="euler", options={**options, "interp": "linear"})
    # Without options the grid is t itself: here the grid points around 0.3.
    on_grid = odeint(func, y0, torch.tensor([0.0, 0.25, 0.5], dtype=F64), method="euler")
    expected = on_grid[1] + (0.05 / 0.25) * (on_grid[2] - on_grid[1])
    torch.testing.assert_close(linear[1], expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize(
    ("grid", "error", "match"),
    [
        (torch.linspace(0, 0.9, 10), ValueError, r"must start at t\[0\] = 0.0 and end at t\[-1\]"),
        (torch.linspace(0.1, 1, 10), ValueError, r"must start at t\[0\]"),
        (torch.tensor([0.0, 0.6, 0.4, 1.0]), ValueError, "must be strictly increasing, like `t`"),
        (torch.tensor([0.0, 0.5, 0.5, 1.0]), ValueError, "strictly increasing"),
        (torch.tensor([0.0, math.nan, 1.0]), ValueError, "only finite times"),
        (torch.zeros(2, 2), ValueError, r"1-D tensor of at least two times; got shape \(2, 2\)"),
        ([0.0, 1.0], TypeError, "must be a 1-D tensor of real times; got list"),
        (torch.tensor([0, 1], dtype=torch.bool), TypeError, "real times; got torch.bool"),
    ],
)
def test_bad_grids_are_refused(grid, error, match):
    with pytest.raises(error, match=match):
        odeint(lambda t, y: -y, torch.ones(1), torch.tensor([0.0, 1.0]), method="euler",
               options={"grid_constructor": lambda f, y0, t: grid})  # fmt: skip


def test_a_backward_grid_must_decrease():
    grid = torch.tensor([1.0, 0.2, 0.5, 0.0])
    with pytest.raises(ValueError, match="strictly decreasing"):
        odeint(lambda t, y: -y, torch.ones(1), torch.tensor([1.0, 0.0]), method="euler",
               options={"grid_constructor": lambda f, y0, t: grid})  # fmt: skip


# --------------------------------------------------------------------------- interp


def test_interp_cubic_is_the_default_dense_output_of_the_fixed_methods():
    t = torch.tensor([0.0, 0.3, 0.55, 1.0], dtype=F64)
    y0 = torch.tensor([1.0, -0.5], dtype=F64)

    def f(t, y):
        return torch.sin(t) - y

    for method in FIXED:
        default = odeint(f, y0, t, method=method, options={"step_size": 0.25})
        cubic = odeint(f, y0, t, method=method, options={"step_size": 0.25, "interp": "cubic"})
        torch.testing.assert_close(cubic, default, rtol=0, atol=0)


def test_interp_linear_matches_torchdiffeq():
    torchdiffeq = pytest.importorskip("torchdiffeq")
    t = torch.tensor([0.0, 0.3, 0.55, 1.0], dtype=F64)
    y0 = torch.tensor([1.0, -0.5], dtype=F64)

    def f(t, y):
        return torch.sin(t) - y

    # torchdiffeq's "rk4" is the 3/8 rule, our "rk38".
    for ours, theirs in (("euler", "euler"), ("midpoint", "midpoint"), ("rk38", "rk4")):
        options = {"step_size": 0.125, "interp": "linear"}
        expected = torchdiffeq.odeint(f, y0, t, method=theirs, options=options)
        torch.testing.assert_close(odeint(f, y0, t, method=ours, options=options), expected,
                                   rtol=1e-14, atol=1e-14)  # fmt: skip
        default = odeint(f, y0, t, method=ours, options={"step_size": 0.125})
        assert (default - expected).abs().max() > 1e-6  # our default is cubic, not linear


def test_perturb_matches_torchdiffeq_on_a_step_function():
    torchdiffeq = pytest.importorskip("torchdiffeq")

    def f(t, y):
        return torch.where(t < 0.5, 1.0, -2.0) * y

    y0 = torch.tensor([1.0], dtype=F64)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    for ours, theirs in (("euler", "euler"), ("midpoint", "midpoint"), ("rk38", "rk4")):
        options = {"step_size": 0.25, "perturb": True}
        expected = torchdiffeq.odeint(f, y0, t, method=theirs, options=options)
        torch.testing.assert_close(odeint(f, y0, t, method=ours, options=options), expected,
                                   rtol=1e-14, atol=1e-14)  # fmt: skip


def test_perturb_in_the_core_needs_a_tableau():
    with pytest.raises(TypeError, match="`perturb` needs an explicit ButcherTableau"):
        integrate_fixed(lambda t, y: -y, (0.0, 1.0), np.ones(1), 0.1,
                        lambda f, t, y, f_t, h: None, perturb=True)  # fmt: skip


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("method", "options", "error", "match"),
    [
        ("dopri5", {"jump_t": {0.5}}, TypeError, "`jump_t` must be a 1-D tensor or a list"),
        ("dopri5", {"step_t": "0.5"}, TypeError, "`step_t` must be a 1-D tensor or a list"),
        ("dopri5", {"step_t": torch.zeros(2, 2)}, ValueError, r"`step_t` .*shape \(2, 2\)"),
        ("dopri5", {"jump_t": [0.5, math.nan]}, ValueError, "`jump_t` must contain only finite"),
        ("dopri5", {"jump_t": torch.tensor([math.inf])}, ValueError, "only finite times; got inf"),
        ("dopri5", {"step_t": [0.5, "a"]}, TypeError, r"`step_t\[1\]` must be a real number"),
        ("dopri5", {"step_t": [True]}, TypeError, r"`step_t\[0\]` must be a real number"),
        ("dopri5", {"jump_t": torch.tensor([1j])}, TypeError, "`jump_t` must have a real dtype"),
        ("dopri5", {"min_step": -1.0}, ValueError, "`min_step` must be non-negative; got -1.0"),
        ("dopri5", {"min_step": math.inf}, ValueError, "`min_step` must be finite"),
        ("dopri5", {"min_step": math.nan}, ValueError, "`min_step` must be finite"),
        ("dopri5", {"min_step": 2, "max_step": 1}, ValueError, r"`min_step` \(2.0\) must not"),
        ("dopri5", {"dtype": "float64"}, TypeError, "`dtype` must be a torch.dtype; got str"),
        ("dopri5", {"dtype": torch.float16}, ValueError, "`dtype` must be torch.float64"),
        ("dopri5", {"perturb": True}, ValueError, "an option of the fixed-step methods"),
        ("dopri5", {"grid_constructor": len}, ValueError, "an option of the fixed-step"),
        ("euler", {"jump_t": [0.5]}, ValueError, "'jump_t' .*an option of the adaptive methods"),
        ("euler", {"min_step": 0.1}, ValueError, "an option of the adaptive methods"),
        ("euler", {"perturb": 1}, TypeError, "`perturb` must be True or False; got int 1"),
        ("euler", {"interp": "quadratic"}, ValueError, "`interp` must be one of 'cubic', 'lin"),
        ("euler", {"grid_constructor": 3}, TypeError, "`grid_constructor` must be callable"),
        (
            "euler",
            {"grid_constructor": lambda f, y0, t: t, "step_size": 0.1},
            ValueError,
            "`step_size` and `grid_constructor` are mutually exclusive",
        ),
    ],
)
def test_bad_options_are_refused(method, options, error, match):
    with pytest.raises(error, match=match):
        odeint(lambda t, y: -y, torch.ones(1), T01, method=method, options=options)


def test_options_accept_tensors_and_one_element_tensors():
    f = JumpF()
    x0 = torch.tensor([1.0, 2.0], dtype=F64)
    as_list = odeint(f, x0, T01, options={"jump_t": [0.5], "min_step": 0.0})
    as_tensor = odeint(
        f, x0, T01, options={"jump_t": torch.tensor(0.5), "min_step": torch.tensor(0.0)}
    )
    torch.testing.assert_close(as_tensor, as_list, rtol=0, atol=0)
    as_array = odeint(f, x0, T01, options={"jump_t": np.array([0.5])})
    torch.testing.assert_close(as_array, as_list, rtol=0, atol=0)
    perturb = odeint(lambda t, y: -y, x0, T01, method="euler",
                     options={"perturb": torch.tensor(True)})  # fmt: skip
    assert torch.isfinite(perturb).all()


def test_adjoint_options_cannot_default_to_options_of_another_kind():
    x0 = torch.ones(1, requires_grad=True)
    with pytest.raises(ValueError, match=r"`adjoint_options` defaults to the forward `options`"):
        odeint_adjoint(lambda t, y: -y, x0, T01.float(), method="euler", options={"perturb": True},
                       adjoint_method="dopri5", adjoint_params=())  # fmt: skip
    # With its own adjoint_options it works.
    ys = odeint_adjoint(lambda t, y: -y, x0, T01.float(), method="euler",
                        options={"perturb": True, "step_size": 0.01}, adjoint_method="dopri5",
                        adjoint_options={}, adjoint_params=())  # fmt: skip
    ys[-1].sum().backward()
    assert abs(x0.grad.item() - math.exp(-1)) < 1e-2


# --------------------------------------------------------------------------- gradients


def _switching_field(theta: torch.Tensor):
    """``y' = -theta * y`` before ``t = 1/2`` and ``theta * y^2 / 2`` from there on."""

    def f(t, y):
        return -theta * y if t < 0.5 else 0.5 * theta * y**2

    return f


def test_gradcheck_through_a_perturbed_constructed_grid():
    options = {
        "grid_constructor": lambda f, y0, t: torch.linspace(float(t[0]), float(t[-1]), 9),
        "perturb": True,
    }
    t = torch.tensor([0.0, 0.3, 1.0], dtype=F64)

    def solve(y0, theta):
        return odeint(_switching_field(theta), y0, t, method="rk4", options=options)

    y0 = torch.tensor([0.7, 1.1], dtype=F64, requires_grad=True)
    theta = torch.tensor(0.8, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(solve, (y0, theta))


@pytest.mark.parametrize("options", [{"jump_t": [0.5]}, {"jump_t": [0.5], "step_t": [0.25]}])
def test_gradcheck_of_the_adjoint_with_jump_t(options):
    t = torch.tensor([0.0, 0.4, 1.0], dtype=F64)

    def solve(y0, theta):
        return odeint_adjoint(_switching_field(theta), y0, t, rtol=1e-11, atol=1e-12,
                              options=options, adjoint_params=(theta,))  # fmt: skip

    y0 = torch.tensor([0.7, 1.1], dtype=F64, requires_grad=True)
    theta = torch.tensor(0.8, dtype=F64, requires_grad=True)
    # The adjoint gradient is accurate to the tolerance, not to the last bit.
    assert torch.autograd.gradcheck(solve, (y0, theta), atol=1e-6, rtol=1e-5)
