"""Regression tests for issue 18: no hangs, no false successes, clear errors for bad input.

Each test is one case of the issue; a message is matched where the issue asks that it
name the argument or the cause.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from odecourse import (
    ButcherTableau,
    Dataset,
    LinearMultistepMethod,
    convergence_study,
    get_multistep_method,
    get_problem,
    get_tableau,
    multistep_solve,
    odeint,
    odeint_adjoint,
    picard_iterates,
    solve_ivp,
    train,
    work_precision,
)
from odecourse.checks import (
    CheckFailed,
    check_first_order_system,
    check_gradient,
    check_multistep_coefficients,
    check_residual_block,
    check_stability_function,
)


def decay(t, y):
    return -y


T01 = torch.tensor([0.0, 10.0], dtype=torch.float64)
Y1 = torch.tensor([1.0], dtype=torch.float64)


# --- Hangs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"dfactor": 5.0, "first_step": 10.0}, r"`dfactor` must be in \(0, 1\)"),
        ({"dfactor": 1.0}, r"`dfactor` must be in \(0, 1\)"),
        ({"safety": 100.0, "first_step": 10.0}, r"`safety` must be in \(0, 1\]"),
        ({"ifactor": 0.5}, "`ifactor` must be >= 1"),
    ],
)
def test_controller_factors_that_would_hang_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        odeint(decay, Y1, T01, options=options)


@pytest.mark.parametrize("method", ["rk4", "AB3"])
def test_tiny_fixed_step_over_a_huge_span_stops_at_max_steps(method):
    result = solve_ivp(decay, (0, 1e9), [1.0], method=method, h=1e-3, max_steps=10)
    assert result.status == -1 and "maximum number of steps (10)" in result.message


# --- Wrong answers and false successes ------------------------------------------------------


@pytest.mark.parametrize("y0", [np.array([1 + 2j]), [1 + 2j]])
def test_complex_y0_is_a_type_error(y0):
    with pytest.raises(TypeError, match="`y0` must be real numbers; got complex"):
        solve_ivp(decay, (0, 1), y0)


def test_complex_output_of_fun_is_a_type_error():
    with pytest.raises(TypeError, match="`fun` must return real numbers; got complex"):
        solve_ivp(lambda t, y: 1j * y, (0, 1), [1.0])


@pytest.mark.parametrize(
    ("f", "error", "match"),
    [
        (lambda t, y: np.ones(3), ValueError, r"`f` must return an array of shape \(1,\)"),
        (lambda t, y: None, TypeError, "`f` must return an array of real numbers; got None"),
    ],
)
def test_multistep_solve_checks_the_output_of_f(f, error, match):
    with pytest.raises(error, match=match):
        multistep_solve(f, (0, 1), [1.0], 0.1, get_multistep_method("AB2"))


def test_multistep_solve_with_nan_f_fails_honestly():
    result = multistep_solve(
        lambda t, y: np.nan * y, (0, 1), [1.0], 0.1, get_multistep_method("AB2")
    )
    assert result.status == -1 and "not finite at the initial time" in result.message


@pytest.mark.parametrize(
    ("f", "error", "match"),
    [
        (lambda t, y: None, TypeError, "`f` must return an array of real numbers; got None"),
        (lambda t, y: np.nan * y, ValueError, "`f` returned non-finite values"),
    ],
)
def test_picard_iterates_checks_the_output_of_f(f, error, match):
    with pytest.raises(error, match=match):
        picard_iterates(f, (0, 1), 1.0, 3)


def test_max_step_below_the_time_resolution_fails():
    result = solve_ivp(decay, (1e6, 1e6 + 1e-6), [1.0], max_step=1e-12)
    assert result.status == -1 and "`max_step` = 1e-12 is below the resolution" in result.message


def test_h_below_the_time_resolution_warns_and_fails():
    with pytest.warns(UserWarning, match="`h` = 1 is close to the spacing"):
        result = solve_ivp(decay, (1e16, 1e16 + 8), [1.0], method="rk4", h=1.0)
    assert result.status == -1 and "zero length" in result.message
    assert np.all(np.diff(result.t) > 0)


def test_tableau_with_b_hat_equal_to_b_is_refused():
    with pytest.raises(ValueError, match="`b_hat` must differ from `b`"):
        ButcherTableau(
            "x", [[0, 0], [1, 0]], [0.5, 0.5], [0, 1], order=2, b_hat=[0.5, 0.5], error_order=1
        )


# --- Checks that passed on NaN -----------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_check_gradient_fails_on_a_non_finite_function(bad):
    with pytest.raises(CheckFailed, match="finite") as info:
        check_gradient(lambda x: bad, [1.0], [1.0])
    assert info.value.hint


def test_check_gradient_fails_on_a_non_finite_gradient():
    with pytest.raises(CheckFailed, match="inf or nan"):
        check_gradient(lambda x: float(np.sum(x)), [1.0], [np.nan])


def test_check_stability_function_fails_on_nan():
    with pytest.raises(CheckFailed, match="not finite") as info:
        check_stability_function(lambda z: np.nan, get_tableau("heun"))
    assert info.value.hint


def test_check_first_order_system_fails_on_a_nan_solution():
    with pytest.raises(CheckFailed, match="inf or nan") as info:
        check_first_order_system(lambda t, y: np.zeros(1), lambda t: np.array([np.nan]))
    assert info.value.hint


def test_check_first_order_system_fails_on_a_nan_f():
    with pytest.raises(CheckFailed, match="inf or nan"):
        check_first_order_system(lambda t, y: np.array([np.nan]), lambda t: np.array([1.0]))


def test_check_residual_block_says_the_output_is_not_finite():
    with pytest.raises(CheckFailed, match="not finite"):
        check_residual_block(lambda x: x * np.nan, width=3)


@pytest.mark.parametrize(
    ("alpha", "beta", "match"),
    [
        (1, [0, 1], "alpha must be a list of numbers"),
        ([-1, 1], "ab", "beta must be a list of numbers"),
        ([-1, "x"], [0, 1], r"alpha\[1\] = 'x' is not a real number"),
        ([-1, 1], [np.nan, 0], r"beta\[0\] = nan is not finite"),
    ],
)
def test_check_multistep_coefficients_fails_on_bad_coefficients(alpha, beta, match):
    with pytest.raises(CheckFailed, match=match):
        check_multistep_coefficients(alpha, beta)


# --- Inputs mutated, valid input refused, spurious failures ---------------------------------


def test_dense_output_returns_a_copy():
    y0 = np.array([1.0])
    result = solve_ivp(decay, (0, 1), y0, dense_output=True)
    result.sol(0.0)[0] = 5.0
    assert y0[0] == 1.0 and result.sol(0.0)[0] == 1.0


def test_zero_dimensional_atol_is_accepted():
    result = solve_ivp(decay, (0, 1), [1.0], atol=np.array(1e-6))
    reference = solve_ivp(decay, (0, 1), [1.0], atol=1e-6)
    np.testing.assert_array_equal(result.y, reference.y)


def test_numpy_integer_order_is_accepted():
    tableau = ButcherTableau("e", [[0]], [1], [0], order=np.int64(1))
    assert tableau.order == 1 and type(tableau.order) is int


@pytest.mark.parametrize(
    ("method", "options"),
    [("rk4", {"step_size": torch.tensor(0.1)}), ("dopri5", {"first_step": torch.tensor(0.1)})],
)
def test_odeint_accepts_tensor_options(method, options):
    with_tensor = odeint(decay, Y1, T01, method=method, options=options)
    plain = {k: float(v) for k, v in options.items()}
    torch.testing.assert_close(with_tensor, odeint(decay, Y1, T01, method=method, options=plain))


def test_odeint_accepts_a_tensor_atol_per_entry():
    y0 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    per_entry = odeint(decay, y0, T01, atol=torch.tensor([1e-8, 1e-8]))
    torch.testing.assert_close(per_entry, odeint(decay, y0, T01, atol=1e-8))


def test_odeint_refuses_a_tensor_atol_of_the_wrong_shape():
    with pytest.raises(ValueError, match="`atol` must be a number or a tensor that broadcasts"):
        odeint(decay, Y1, T01, atol=torch.tensor([1e-8, 1e-8, 1e-8]))


def test_stiff_trial_steps_that_overflow_are_rejected():
    with np.errstate(over="ignore", invalid="ignore"):
        result = solve_ivp(lambda t, y: -(y**3), (0, 1000), [1.0], first_step=100)
    assert result.success
    np.testing.assert_allclose(result.y[0, -1], 1 / np.sqrt(2001), rtol=1e-2)


@pytest.mark.parametrize("method", ["BDF2", "AM3"])
def test_empty_state_with_an_implicit_multistep_method(method):
    result = solve_ivp(decay, (0, 1), np.zeros(0), method=method, h=0.1)
    assert result.success and result.y.shape == (0, len(result.t))


def test_t_that_requires_grad_gets_the_gradient_of_the_solution():
    # tests/test_time_gradients.py tests these gradients; here: same values, finite grad.
    t = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    y = odeint(decay, Y1, t)
    torch.testing.assert_close(y, odeint(decay, Y1, t.detach()))
    y[-1].sum().backward()  # y(t1) = exp(t0 - t1): gradient (e^-1, -e^-1)
    expected = torch.tensor([1.0, -1.0], dtype=torch.float64) * np.exp(-1.0)
    torch.testing.assert_close(t.grad, expected, rtol=1e-5, atol=0)


# --- Misleading errors ----------------------------------------------------------------------


def test_backward_euler_with_a_wrong_jac_fails_with_newtons_message():
    result = solve_ivp(
        decay, (0, 1), [1.0], method="backward_euler", h=0.5, jac=lambda t, y: np.array([[5.0]])
    )
    assert result.status == -1 and "Newton" in result.message


def test_backward_euler_on_sqrt_is_newton_or_success_never_blames_fun():
    result = solve_ivp(lambda t, y: -np.sqrt(y), (0, 1), [1.0], method="backward_euler", h=0.5)
    assert result.success or "Newton" in result.message


def test_odeint_names_func_when_it_is_nan_at_t0():
    with pytest.raises(ValueError, match="`func` returned non-finite values at the initial"):
        odeint(lambda t, y: y * np.nan, Y1, T01)


def test_odeint_refuses_float16():
    with pytest.raises(TypeError, match=r"`y0` must be float32 or float64; got torch\.float16"):
        odeint(decay, Y1.half(), T01.half())


def test_odeint_names_a_norm_that_returns_nan():
    with pytest.raises(ValueError, match="`norm` returned NaN"):
        odeint(decay, Y1, T01, options={"norm": lambda x: torch.tensor(float("nan"))})


def test_odeint_adjoint_names_a_nan_incoming_gradient():
    y0 = Y1.clone().requires_grad_(True)
    y = odeint_adjoint(decay, y0, T01, adjoint_params=())
    with pytest.raises(ValueError, match="incoming gradient dL/dy"):
        y.backward(torch.full_like(y, float("nan")))


# --- Obscure errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["backward_euler", "implicit_midpoint", "trapezoid"])
@pytest.mark.parametrize(
    ("jac", "error", "match"),
    [
        (lambda t, y: np.eye(3), ValueError, r"`jac\(t, y\)` must be an array of shape \(2, 2\)"),
        (lambda t, y: None, TypeError, r"`jac\(t, y\)` must be an array of real numbers"),
    ],
)
def test_implicit_rk_checks_jac(method, jac, error, match):
    with pytest.raises(error, match=match):
        solve_ivp(decay, (0, 1), [1.0, 1.0], method=method, h=0.1, jac=jac)


def test_implicit_rk_with_a_nan_jac_fails_honestly():
    result = solve_ivp(
        decay,
        (0, 1),
        [1.0, 1.0],
        method="trapezoid",
        h=0.1,
        jac=lambda t, y: np.full((2, 2), np.nan),
    )
    assert result.status == -1 and "Jacobian is not finite" in result.message


@pytest.mark.parametrize("value", [{}, np.array([object()])])
def test_fun_returning_a_non_array_is_a_type_error(value):
    with pytest.raises(TypeError, match="`fun` must return an array of real numbers"):
        solve_ivp(lambda t, y: value, (0, 1), [1.0])


def test_ode_result_is_a_dict():
    result = solve_ivp(decay, (0, 1), [1.0])
    assert isinstance(result, dict) and "y" in result and "nope" not in result
    assert result["t"] is result.t and dict(result)["status"] == 0
    with pytest.raises(AttributeError, match="no field 'nope'"):
        _ = result.nope


def test_odeint_with_a_tuple_of_empty_tensors():
    empty = torch.zeros(0, dtype=torch.float64)
    first, second = odeint(lambda t, y: y, (empty, empty), T01)
    assert first.shape == second.shape == (2, 0)


def test_odeint_names_a_vector_valued_norm():
    with pytest.raises(ValueError, match="`norm` must return a scalar"):
        odeint(decay, torch.ones(2, dtype=torch.float64), T01, options={"norm": torch.abs})


@pytest.mark.parametrize(
    ("A", "match"),
    [
        ([[0], [1, 0]], "`A` must be an array of real numbers"),
        ([[0, 0], [1j, 0]], "`A` must be real numbers; got complex"),
        ([["a", 0], [1, 0]], "`A` must be an array of real numbers"),
    ],
)
def test_tableau_with_a_bad_A_is_a_type_error(A, match):
    with pytest.raises(TypeError, match=match):
        ButcherTableau("x", A, [0.5, 0.5], [0, 1], order=2)


def test_multistep_method_with_scalar_coefficients_is_a_type_error():
    with pytest.raises(TypeError, match="`alpha` must be a sequence of k"):
        LinearMultistepMethod("x", 1, 0)


def test_error_constant_of_an_inconsistent_method_is_a_value_error():
    with pytest.raises(ValueError, match=r"sigma\(1\) = 0"):
        LinearMultistepMethod("x", [-1, 1], [0, 0]).error_constant()


def test_multistep_solve_refuses_a_torch_y0_with_newton():
    y0 = torch.tensor([1.0], dtype=torch.float64)
    with pytest.raises(TypeError, match="corrector='pece'"):
        multistep_solve(decay, (0, 1), y0, 0.1, get_multistep_method("BDF2"))


def test_multistep_solve_with_a_torch_y0_and_pece_runs():
    y0 = torch.tensor([1.0], dtype=torch.float64)
    result = multistep_solve(decay, (0, 1), y0, 0.1, get_multistep_method("AM2"), corrector="pece")
    assert result.success and abs(float(result.y[-1][0]) - np.exp(-1)) < 1e-3


def test_convergence_study_names_a_missing_problem():
    with pytest.raises(TypeError, match="`problem` must be an IVP-like object"):
        convergence_study(None, "rk4")


@pytest.mark.parametrize("rtols", [[], [-1e-3]])
def test_work_precision_names_empty_or_negative_rtols(rtols):
    with pytest.raises(ValueError, match="`rtols` must hold at least one positive value"):
        work_precision(get_problem("exponential_decay"), "RK45", rtols=rtols)


def _data(**changes):
    X = torch.randn(8, 2, dtype=torch.float64)
    y = torch.tensor([0, 1] * 4)
    fields = {"X_train": X, "y_train": y, "X_test": X[:4], "y_test": y[:4], **changes}
    return fields


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"X_train": torch.zeros(0, 2)}, ValueError, "`X_train` must hold at least one sample"),
        ({"y_train": torch.tensor([0, 1])}, ValueError, r"`y_train` must hold one label per row"),
        ({"y_train": torch.zeros(8)}, TypeError, "`y_train` must be an integer tensor"),
        ({"X_test": torch.zeros(4, 3)}, ValueError, "`X_test` must have the 2 features"),
        ({"X_train": np.zeros((8, 2))}, TypeError, "`X_train` must be a floating torch.Tensor"),
    ],
)
def test_dataset_validates_its_fields(changes, error, match):
    with pytest.raises(error, match=match):
        Dataset(**_data(**changes))


def test_dataset_accepts_float64_inputs_and_train_runs():
    data = Dataset(**_data())
    model = torch.nn.Linear(2, 2)  # float32 model, float64 data
    history = train(model, data, epochs=2, device="cpu")
    assert len(history.train_loss) == 2


def test_train_names_a_model_with_too_few_outputs():
    data = Dataset(**_data())
    with pytest.raises(ValueError, match=r"`model` returns 1 logit\(s\) per sample.*2 classes"):
        train(torch.nn.Linear(2, 1), data, epochs=1, device="cpu")
