"""Property-based tests of the public API (Hypothesis).

Random valid problems must give finite results that agree with SciPy, or an honest
``success=False``; random invalid arguments must raise ``ValueError``/``TypeError`` naming
the argument; nothing may mutate its inputs.  Every solve has a bounded ``max_steps`` and
every example a deadline, so nothing hangs.

The default profile is small, derandomised and takes a few seconds; set
``HYPOTHESIS_PROFILE=thorough`` for many more examples.
"""

from __future__ import annotations

import os
import warnings
from datetime import timedelta

import numpy as np
import pytest
import scipy.integrate
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.linalg import expm

from odecourse import ButcherTableau, odeint, solve_ivp

settings.register_profile(
    "default",
    max_examples=15,
    deadline=timedelta(seconds=5),
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=300, deadline=timedelta(seconds=20), print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

MAX_STEPS = 20_000
ADAPTIVE = ["RK45", "RK23", "DOP853", "bosh3", "BDF", "Radau"]
FIXED = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4, "backward_euler": 1, "trapezoid": 2}
finite_floats = st.floats(-5.0, 5.0, allow_nan=False, allow_subnormal=False)


@st.composite
def stable_linear_systems(draw, max_n: int = 3):
    """``(A, y0)``: ``A = -(M M^T + I) + S`` with ``S`` skew, so every eigenvalue has Re <= -1."""
    n = draw(st.integers(1, max_n))
    M = draw(hnp.arrays(float, (n, n), elements=st.floats(-2.0, 2.0)))
    K = draw(hnp.arrays(float, (n, n), elements=st.floats(-3.0, 3.0)))
    A = -(M @ M.T + np.eye(n)) + (K - K.T) / 2
    y0 = draw(hnp.arrays(float, (n,), elements=finite_floats))
    return A, y0


def exact(A: np.ndarray, y0: np.ndarray, t: float) -> np.ndarray:
    return expm(A * t) @ y0


# --- Valid problems ---------------------------------------------------------------------------


@given(
    system=stable_linear_systems(),
    t1=st.floats(0.1, 5.0),
    rtol=st.sampled_from([1e-3, 1e-5, 1e-7]),
    method=st.sampled_from(ADAPTIVE),
    backwards=st.booleans(),
)
def test_adaptive_methods_agree_with_scipy_or_fail_honestly(system, t1, rtol, method, backwards):
    A, y0 = system
    atol = rtol * 1e-3
    y0_before = y0.copy()
    t_span = (t1, 0.0) if backwards else (0.0, t1)
    if backwards:  # backwards in time the stable system grows: keep it short
        A = A / max(1.0, float(np.abs(np.linalg.eigvals(A)).max()))
    result = solve_ivp(
        lambda t, y: A @ y, t_span, y0, method=method, rtol=rtol, atol=atol, max_steps=MAX_STEPS
    )
    np.testing.assert_array_equal(y0, y0_before)
    assert np.all(np.isfinite(result.y))
    if not result.success:
        assert result.status == -1 and result.message
        return
    assert result.t[0] == t_span[0] and result.t[-1] == t_span[1]
    scipy_method = method if method in ("RK45", "RK23", "DOP853", "BDF", "Radau") else "RK23"
    reference = scipy.integrate.solve_ivp(
        lambda t, y: A @ y, t_span, y0, method=scipy_method, rtol=rtol, atol=atol
    )
    truth = exact(A, y0, t_span[1] - t_span[0])
    scale = rtol * max(1.0, float(np.abs(y0).max())) + atol
    ours, theirs = np.abs(result.y[:, -1] - truth), np.abs(reference.y[:, -1] - truth)
    assert np.all(ours <= 10 * theirs + 100 * scale)


@given(
    system=stable_linear_systems(),
    method=st.sampled_from(sorted(FIXED)),
    n_steps=st.integers(20, 200),
)
def test_fixed_step_methods_converge_or_fail_honestly(system, method, n_steps):
    A, y0 = system
    t1 = 1.0
    h = t1 / n_steps
    with np.errstate(over="ignore", invalid="ignore"):
        result = solve_ivp(lambda t, y: A @ y, (0.0, t1), y0, method=method, h=h)
    if not result.success:
        assert result.status == -1 and "t =" in result.message
        return
    assert np.all(np.isfinite(result.y)) and len(result.t) == n_steps + 1
    rho = float(np.abs(np.linalg.eigvals(A)).max())
    if rho * h < 0.5:  # the asymptotic regime: error O(h^p)
        error = float(np.abs(result.y[:, -1] - exact(A, y0, t1)).max())
        bound = 10 * (rho * h) ** FIXED[method] * max(1.0, float(np.abs(y0).max()))
        assert error <= bound + 1e-12


@given(
    system=stable_linear_systems(),
    fractions=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6, unique=True),
    method=st.sampled_from(["RK45", "DOP853", "rk4"]),
)
def test_t_eval_is_honoured_and_not_mutated(system, fractions, method):
    A, y0 = system
    t_eval = np.sort(np.array(fractions)) * 2.0
    before = t_eval.copy()
    extra = {"h": 0.05} if method == "rk4" else {}
    result = solve_ivp(lambda t, y: A @ y, (0.0, 2.0), y0, method=method, t_eval=t_eval, **extra)
    np.testing.assert_array_equal(t_eval, before)
    np.testing.assert_array_equal(result.t, t_eval)
    assert result.y.shape == (y0.size, t_eval.size) and np.all(np.isfinite(result.y))


@given(system=stable_linear_systems(), rtol=st.sampled_from([1e-4, 1e-6, 1e-8]))
def test_odeint_agrees_with_the_exact_solution_and_keeps_its_inputs(system, rtol):
    A, y0 = system
    At, y0t = torch.tensor(A), torch.tensor(y0)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    y0_before, t_before = y0t.clone(), t.clone()
    y = odeint(
        lambda s, z: At @ z,
        y0t,
        t,
        rtol=rtol,
        atol=rtol * 1e-3,
        options={"max_num_steps": MAX_STEPS},
    )
    assert torch.equal(y0t, y0_before) and torch.equal(t, t_before)
    truth = exact(A, y0, 1.0)
    scale = rtol * max(1.0, float(np.abs(y0).max()))
    assert np.all(np.abs(y[-1].numpy() - truth) <= 100 * scale)


@st.composite
def explicit_tableaus(draw):
    """A random consistent explicit tableau: lower-triangular A, c its row sums, sum b = 1."""
    s = draw(st.integers(1, 4))
    A = np.tril(draw(hnp.arrays(float, (s, s), elements=st.floats(-1.0, 1.0))), k=-1)
    weights = draw(hnp.arrays(float, (s,), elements=st.floats(0.1, 1.0)))
    return A, weights / weights.sum(), A.sum(axis=1)


@given(tableau=explicit_tableaus(), n_steps=st.integers(10, 50))
def test_random_consistent_tableaus_integrate_decay(tableau, n_steps):
    A, b, c = tableau
    method = ButcherTableau("random", A, b, c, order=1)
    result = solve_ivp(lambda t, y: -y, (0.0, 1.0), [1.0], method=method, h=1.0 / n_steps)
    assert result.success and np.all(np.isfinite(result.y))
    # Any consistent method has order >= 1: the error is O(h) with a modest constant.
    assert abs(result.y[0, -1] - np.exp(-1.0)) <= 5.0 / n_steps


@given(tableau=explicit_tableaus(), shift=st.floats(0.01, 1.0))
def test_tableaus_whose_nodes_are_not_the_row_sums_are_refused(tableau, shift):
    A, b, c = tableau
    with pytest.raises(ValueError, match="row sums of `A` must equal `c`"):
        ButcherTableau("bad", A, b, c + shift, order=1)


# --- Invalid input ----------------------------------------------------------------------------

not_a_number = st.sampled_from(["1.0", None, [1.0, 2.0, 3.0], {"a": 1}, 1j, True])
non_positive = st.one_of(
    st.floats(max_value=0.0, allow_nan=False), st.just(float("nan")), st.just(float("-inf"))
)


@st.composite
def invalid_solve_ivp_arguments(draw):
    """``(argument name, keyword arguments)`` with one argument of solve_ivp made invalid."""
    kwargs = {"fun": lambda t, y: -y, "t_span": (0.0, 1.0), "y0": [1.0, 2.0], "max_steps": 100}
    name = draw(
        st.sampled_from(
            ["fun", "t_span", "y0", "rtol", "atol", "first_step", "max_step", "h", "max_steps"]
        )
    )
    if name == "fun":
        value = draw(st.sampled_from([None, 1.0, "f", [1.0]]))
    elif name == "t_span":
        t0 = draw(finite_floats)
        value = draw(
            st.sampled_from(
                [(float("inf"), t0), (t0, float("nan")), (t0,), "ab", None, (t0, t0 + 1, 2.0)]
            )
        )
    elif name == "y0":
        value = draw(
            st.sampled_from(
                [[np.nan, 1.0], [[1.0, 2.0]], [1 + 1j, 2.0], ["a", "b"], None, [1.0, np.inf]]
            )
        )
    elif name in ("rtol", "atol"):
        value = draw(st.one_of(st.floats(max_value=-1e-300, allow_nan=False), not_a_number))
        value = float("nan") if value is True else value
    elif name in ("first_step", "max_step"):  # None means "choose it": valid
        value = draw(st.one_of(non_positive, not_a_number.filter(lambda v: v is not None)))
    elif name == "h":
        kwargs["method"] = "rk4"
        value = draw(st.one_of(non_positive, not_a_number))
    else:
        value = draw(st.one_of(st.integers(max_value=0), st.sampled_from([1.5, "10", None])))
    kwargs[name] = value
    return name, kwargs


@given(case=invalid_solve_ivp_arguments())
def test_invalid_solve_ivp_arguments_raise_errors_naming_them(case):
    name, kwargs = case
    kwargs.setdefault("method", "RK45")
    if kwargs["method"] == "rk4" and "h" not in kwargs:
        kwargs["h"] = 0.1
    fun, t_span, y0 = kwargs.pop("fun"), kwargs.pop("t_span"), kwargs.pop("y0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises((ValueError, TypeError)) as info:
            solve_ivp(fun, t_span, y0, **kwargs)
    assert f"`{name}" in str(info.value)


@given(
    name=st.sampled_from(
        ["first_step", "max_step", "safety", "ifactor", "dfactor", "max_num_steps"]
    ),
    value=st.one_of(non_positive, st.just("x"), st.just(None)),
)
def test_invalid_odeint_options_raise_errors_naming_them(name, value):
    y0 = torch.ones(2, dtype=torch.float64)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    with pytest.raises((ValueError, TypeError)) as info:
        odeint(lambda s, z: -z, y0, t, options={name: value})
    assert f"`{name}`" in str(info.value)
