"""The answer checks accept correct answers and reject wrong ones with a hint, never a crash."""

from __future__ import annotations

import re
from fractions import Fraction

import numpy as np
import pytest
import torch
from scipy.integrate import cumulative_trapezoid

import odecourse.checks as checks
from odecourse.checks import (
    CheckFailed,
    check_close,
    check_first_order_system,
    check_gradient,
    check_multistep_coefficients,
    check_picard_step,
    check_residual_block,
    check_stability_function,
    check_step_order,
    check_tableau,
)
from odecourse.multistep import adams_bashforth, bdf
from odecourse.networks import PlainBlock, ResidualBlock
from odecourse.runge_kutta import TABLEAUS, get_tableau, rk_step


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise ch0-demo: replace this line with your code.")


def assert_fails(capsys, call, *args, match: str | None = None, **kwargs) -> CheckFailed:
    """Run a check that must fail; return the exception after checking the printed verdict."""
    with pytest.raises(CheckFailed, match=match) as info:
        call(*args, **kwargs)
    printed = capsys.readouterr().out
    assert printed.startswith("✗ Not yet:") and "Hint:" in printed
    assert info.value.hint and isinstance(info.value, AssertionError)
    return info.value


def assert_passes(capsys, call, *args, **kwargs):
    """Run a check that must pass; return its verdict line (checks return nothing)."""
    assert call(*args, **kwargs) is None
    out = capsys.readouterr().out
    assert out.startswith("✓ ")
    return out


# --------------------------------------------------------------------------- stubs, any check


STUB_CALLS = {
    "first_order_system": lambda: check_first_order_system(stub, lambda t: np.array([t])),
    "picard_step": lambda: check_picard_step(stub),
    "step_order": lambda: check_step_order(stub, 2),
    "tableau": lambda: check_tableau(stub, expected_order=2),
    "stability_function": lambda: check_stability_function(stub, get_tableau("heun")),
    "multistep": lambda: check_multistep_coefficients(stub),
    "residual_block": lambda: check_residual_block(stub, width=3),
    "gradient": lambda: check_gradient(lambda x: x @ x, np.ones(2), stub),
    "close": lambda: check_close(stub, 1.0),
}


@pytest.mark.parametrize("name", STUB_CALLS)
def test_a_stub_is_reported_as_not_implemented_with_a_hint(capsys, name):
    failure = assert_fails(capsys, STUB_CALLS[name], match="not implemented yet")
    assert "ch0-demo" in failure.reason
    assert isinstance(failure.__cause__, NotImplementedError)


def test_other_exceptions_in_student_code_are_reported_and_chained(capsys):
    failure = assert_fails(capsys, check_step_order, lambda f, t, y, h: y + h * g(t), 1)  # noqa: F821
    assert "NameError" in failure.reason and isinstance(failure.__cause__, NameError)


# --------------------------------------------------------------------------- Chapter 1


def oscillator_solution(t):
    return np.array([np.cos(t) - np.cos(2 * t) / 3, -np.sin(t) + 2 * np.sin(2 * t) / 3])


def test_first_order_system(capsys):
    assert_passes(
        capsys,
        check_first_order_system,
        lambda t, y: np.array([y[1], np.cos(2 * t) - y[0]]),
        oscillator_solution,
    )
    # The forcing forgotten, the sign of u wrong, the wrong shape.
    for wrong in (
        lambda t, y: np.array([y[1], -y[0]]),
        lambda t, y: np.array([y[1], np.cos(2 * t) + y[0]]),
        lambda t, y: np.array([y[1]]),
    ):
        assert_fails(capsys, check_first_order_system, wrong, oscillator_solution)


def test_first_order_system_misuse():
    with pytest.raises(TypeError, match="`f` must be callable"):
        check_first_order_system(1.0, oscillator_solution)
    with pytest.raises(ValueError, match="`n_points` must be an integer >= 2"):
        check_first_order_system(lambda t, y: y, oscillator_solution, n_points=1)
    with pytest.raises(ValueError, match="`t_span` must be a non-empty interval"):
        check_first_order_system(lambda t, y: y, oscillator_solution, t_span=(1, 1))


def test_picard_step(capsys):
    def right(f, t, phi, y0):
        return y0 + cumulative_trapezoid(f(t, phi), t, initial=0.0)

    def left_endpoint(f, t, phi, y0):  # first-order rule: too inaccurate
        values = f(t, phi)
        return y0 + np.concatenate([[0.0], np.cumsum(values[:-1] * np.diff(t))])

    def forgets_y0(f, t, phi, y0):
        return cumulative_trapezoid(f(t, phi), t, initial=0.0)

    assert_passes(capsys, check_picard_step, right)
    assert_fails(capsys, check_picard_step, left_endpoint, match="error")
    assert_fails(capsys, check_picard_step, forgets_y0)
    assert_fails(capsys, check_picard_step, lambda f, t, phi, y0: phi[:-1], match="shape")
    with pytest.raises(TypeError, match="`picard_step` must be callable"):
        check_picard_step("picard")


# --------------------------------------------------------------------------- one-step methods


def tableau_step(name):
    tableau = get_tableau(name)
    return lambda f, t, y, h: rk_step(f, t, y, h, tableau).y


@pytest.mark.parametrize("name", ["euler", "midpoint", "heun", "ralston", "rk4", "rk38"])
def test_step_order_accepts_every_explicit_registered_method(capsys, name):
    verdict = assert_passes(capsys, check_step_order, tableau_step(name), TABLEAUS[name].order)
    order = float(re.search(r"observed order (\d+\.\d+)", verdict).group(1))
    assert abs(order - TABLEAUS[name].order) < 0.3


def test_a_first_order_method_posing_as_second_order_fails(capsys):
    failure = assert_fails(capsys, check_step_order, tableau_step("euler"), 2)
    assert "observed order is 1.0" in failure.reason


def test_a_step_with_the_wrong_stage_time_fails(capsys):
    def heun_wrong_time(f, t, y, h):  # the second stage evaluated at t instead of t + h
        k1 = f(t, y)
        k2 = f(t, y + h * k1)
        return y + h / 2 * (k1 + k2)

    assert_fails(capsys, check_step_order, heun_wrong_time, 2, match="observed order")


def test_step_order_shape_and_misuse(capsys):
    assert_fails(capsys, check_step_order, lambda f, t, y, h: y[0], 1, match="shape")
    assert_fails(capsys, check_step_order, lambda f, t, y, h: y * np.nan, 1, match="nan")
    with pytest.raises(ValueError, match="`expected_order` must be an integer >= 1"):
        check_step_order(tableau_step("euler"), 0)
    with pytest.raises(ValueError, match="`n_steps` must hold at least two"):
        check_step_order(tableau_step("euler"), 1, n_steps=(8, 8))


def test_tableau(capsys):
    heun = ([[0, 0], [1, 0]], [0.5, 0.5], [0, 1])
    verdict = assert_passes(capsys, check_tableau, heun, expected_order=2)
    assert "2 stages and order 2" in verdict
    assert_passes(capsys, check_tableau, get_tableau("rk4"), expected_order=4)
    assert_passes(capsys, check_tableau, lambda: heun)


def test_tableau_failures(capsys):
    rows_wrong = ([[0, 0], [1, 0]], [0.5, 0.5], [0, 0.5])
    assert_fails(capsys, check_tableau, rows_wrong, match="rows of A sum")
    weights_wrong = ([[0, 0], [1, 0]], [0.5, 0.6], [0, 1])
    assert_fails(capsys, check_tableau, weights_wrong, match="weights b sum")
    first_order = ([[0, 0], [1, 0]], [1.0, 0.0], [0, 1])
    failure = assert_fails(capsys, check_tableau, first_order, expected_order=2)
    assert "only up to order 1" in failure.reason and "0.5" in failure.reason
    shapes = ([[0, 0], [1, 0]], [1.0], [0, 1])
    assert_fails(capsys, check_tableau, shapes, match="shapes")
    with pytest.raises(TypeError, match="`tableau` must be a ButcherTableau"):
        check_tableau(3.0)


def test_stability_function(capsys):
    heun = get_tableau("heun")
    assert_passes(capsys, check_stability_function, lambda z: 1 + z + z**2 / 2, heun)
    assert_passes(capsys, check_stability_function, lambda z: 1 / (1 - z), lambda z: 1 / (1 - z))
    assert_fails(capsys, check_stability_function, lambda z: 1 + z, heun, match="R\\(z\\)")
    with pytest.raises(TypeError, match="`reference` must be a ButcherTableau"):
        check_stability_function(lambda z: z, "heun")


# --------------------------------------------------------------------------- multistep methods


def test_multistep_coefficients(capsys):
    ab3 = adams_bashforth(3)
    verdict = assert_passes(
        capsys, check_multistep_coefficients, ab3.alpha, ab3.beta, expected_order=3
    )
    assert "3-step method of order 3" in verdict
    # Unnormalised BDF2 (3 y_{n+2} - 4 y_{n+1} + y_n = 2 h f_{n+2}) and a coefficient function.
    assert_passes(capsys, check_multistep_coefficients, [1, -4, 3], [0, 0, 2], expected_order=2)
    assert_passes(capsys, check_multistep_coefficients, lambda: (bdf(2).alpha, bdf(2).beta))


def test_multistep_failures(capsys):
    # The explicit two-step method of order 3 violates the root condition (rho has root -5).
    unstable = ([-5, 4, 1], [2, 4, 0])
    assert_fails(capsys, check_multistep_coefficients, *unstable, match="violate")
    assert_passes(capsys, check_multistep_coefficients, *unstable, zero_stable=False)
    ab2 = adams_bashforth(2)
    assert_fails(
        capsys, check_multistep_coefficients, ab2.alpha, ab2.beta, expected_order=3, match="2"
    )
    wrong_beta = ([0, -1, 1], [Fraction(-1, 2), Fraction(1, 2), 0])  # beta sums to 0
    assert_fails(capsys, check_multistep_coefficients, *wrong_beta, match="not consistent")
    assert_fails(capsys, check_multistep_coefficients, [1, 0], [1, 1], match="alpha_k = 0")
    assert_fails(capsys, check_multistep_coefficients, [1, -1], [1], match="lengths")


def test_multistep_misuse():
    with pytest.raises(TypeError, match="`zero_stable` must be True, False or None"):
        check_multistep_coefficients([-1, 1], [1, 0], zero_stable="yes")
    with pytest.raises(TypeError, match="pass `alpha` and `beta`"):
        check_multistep_coefficients(lambda: 3)
    with pytest.raises(ValueError, match="`expected_order` must be an integer >= 1"):
        check_multistep_coefficients([-1, 1], [1, 0], expected_order=0)


# --------------------------------------------------------------------------- networks


class ForgetsShortcut(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.linear = torch.nn.Linear(width, width)

    def forward(self, x):
        return self.linear(torch.tanh(x))


class MixesBatch(ResidualBlock):
    def forward(self, x):
        return x + self.h * self.residual(x).mean(dim=0, keepdim=True)


class TwoLinearLayers(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.first, self.second = torch.nn.Linear(width, width), torch.nn.Linear(width, width)

    def forward(self, x):
        return x + self.second(torch.tanh(self.first(x)))


def test_residual_block(capsys):
    out = assert_passes(capsys, check_residual_block, ResidualBlock, width=4, activation="relu")
    assert "x + h (W relu(x) + b)" in out and "h = 1," in out and "gradient" in out
    tanh_block = ResidualBlock(3, activation="tanh", h=0.1)
    assert "h = 0.1," in assert_passes(capsys, check_residual_block, tanh_block, width=3)
    # A function without parameters is checked with W = I, b = 0.
    assert_passes(capsys, check_residual_block, lambda x: x + torch.tanh(x), width=3)
    assert_passes(capsys, check_residual_block, lambda x: x + 0.5 * torch.tanh(x), width=3, h=0.5)
    # float64 blocks are checked in float64.
    block = ResidualBlock(4, activation="tanh", h=0.5).double()
    assert_passes(capsys, check_residual_block, block, width=4)


def test_residual_block_h_argument_overrides_the_attribute(capsys):
    block = ResidualBlock(3, activation="tanh", h=1.0)
    assert_fails(capsys, check_residual_block, block, width=3, h=0.3, match="h")


def test_residual_block_failures(capsys):
    assert_fails(capsys, check_residual_block, ForgetsShortcut, 4, match="shortcut is missing")
    assert_fails(capsys, check_residual_block, PlainBlock, 4, activation="relu", match="shortcut")
    assert_fails(capsys, check_residual_block, MixesBatch, 4, activation="relu", match="other rows")
    assert_fails(capsys, check_residual_block, lambda x: x[:, :2], 4, match="shape")
    assert_fails(capsys, check_residual_block, lambda x: x.clone(), 4, match="branch h F")
    assert_fails(capsys, check_residual_block, lambda x: x.numpy(), 4, match="torch.Tensor")
    assert_fails(capsys, check_residual_block, TwoLinearLayers, 4, match="cannot find the layer")
    assert_fails(
        capsys, check_residual_block, lambda x: x + torch.tanh(x) ** 3, 4, match=r"output\[\d, \d\]"
    )
    with pytest.raises(TypeError, match="`block` must be"):
        check_residual_block(3, width=4)
    with pytest.raises(ValueError, match="`width` must be an integer >= 1"):
        check_residual_block(ResidualBlock, width=0)
    with pytest.raises(ValueError, match="`activation` must be one of"):
        check_residual_block(ResidualBlock, width=2, activation="swish")
    with pytest.raises(ValueError, match="`h` must be positive"):
        check_residual_block(ResidualBlock, width=2, h=-1.0)


# --------------------------------------------------------------------------- generic checks


def test_gradient(capsys):
    W = np.array([[1.0, 2.0], [-0.5, 0.3]])

    def loss(x):
        return 0.5 * np.sum(np.tanh(W @ x) ** 2)

    def gradient(x):
        z = np.tanh(W @ x)
        return W.T @ (z * (1 - z**2))

    x = np.array([0.3, -0.7])
    assert_passes(capsys, check_gradient, loss, x, gradient)
    assert_passes(capsys, check_gradient, loss, x, gradient(x))
    assert_passes(capsys, check_gradient, lambda x: (x**2).sum(), torch.ones(3), lambda x: 2 * x)
    # The transpose forgotten: a wrong gradient.
    assert_fails(capsys, check_gradient, loss, x, lambda x: W @ (np.tanh(W @ x)), match="differs")
    assert_fails(capsys, check_gradient, loss, x, np.zeros(3), match="shape")


def test_gradient_misuse():
    with pytest.raises(TypeError, match="`fn` must be callable"):
        check_gradient(None, np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="`eps` must be positive"):
        check_gradient(np.sum, np.ones(2), np.ones(2), eps=0)
    with pytest.raises(ValueError, match="`x` must contain only finite values"):
        check_gradient(np.sum, [np.nan], [1.0])


def test_close(capsys):
    assert_passes(capsys, check_close, 0.1 + 0.2, 0.3)
    assert_passes(capsys, check_close, lambda: np.array([1.0, 2.0]), [1.0, 2.0 + 1e-9])
    assert_fails(capsys, check_close, 0.31, 0.3, name="the sum", match="the sum came out as 0.31")
    assert_fails(capsys, check_close, [1.0], 1.0, match="shape")
    assert_fails(capsys, check_close, "abc", 1.0, match="not an array of numbers")
    with pytest.raises(ValueError, match="`rtol` and `atol` must be >= 0"):
        check_close(1.0, 1.0, rtol=0, atol=0)


# --------------------------------------------------------------------------- harder to fool


def test_the_checks_cannot_be_rebound_in_a_notebook():
    import odecourse.checks
    import odecourse.checks.generic
    import odecourse.checks.one_step

    for module, name in [
        (odecourse.checks, "check_close"),
        (odecourse.checks.generic, "check_close"),
        (odecourse.checks.one_step, "ORDER_TOLERANCE"),
        (odecourse.checks.generic, "_failure"),
    ]:
        original = getattr(module, name)
        with pytest.raises(AttributeError, match=f"`{module.__name__}.{name}` is read-only"):
            setattr(module, name, lambda *args, **kwargs: None)
        with pytest.raises(AttributeError, match="read-only"):
            delattr(module, name)
        assert getattr(module, name) is original
    # New names and submodules can still be attached (the import system does that).
    odecourse.checks.generic.scratch = 1
    del vars(odecourse.checks.generic)["scratch"]


def tamper(monkeypatch, module, name, value):
    """Change a check module behind the read-only guard, as a determined student could."""
    monkeypatch.setitem(vars(module), name, value)


@pytest.mark.parametrize(
    ("module_name", "name", "value", "match"),
    [
        ("odecourse.checks", "check_close", print, "odecourse.checks.check_close is no longer"),
        ("odecourse.checks.networks", "_run_block", lambda *a: None, "does not come from"),
        ("odecourse.checks.one_step", "ORDER_TOLERANCE", 9.0, "ORDER_TOLERANCE is no longer"),
        ("odecourse.checks._verdict", "_passed", print, "_verdict._passed"),
    ],
)
def test_verify_finds_a_replaced_check_or_helper(
    capsys, monkeypatch, module_name, name, value, match
):
    import sys

    tamper(monkeypatch, sys.modules[module_name], name, value)
    with pytest.raises(CheckFailed, match="changed in this kernel") as info:
        checks.verify()
    assert re.search(match, info.value.reason) and "restart the kernel" in info.value.hint
    monkeypatch.undo()
    assert checks.verify() is None


def test_verify_finds_a_check_module_taken_out_of_sys_modules(monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "odecourse.checks.networks")
    with pytest.raises(CheckFailed, match=re.escape("no longer odecourse.checks.networks")):
        checks.verify()
    monkeypatch.undo()
    checks.verify()


def test_verify_finds_new_code_and_new_defaults(monkeypatch):
    import odecourse._validation

    fake = (lambda tableau, expected_order=None, *, hint=None: None).__code__
    monkeypatch.setattr(check_tableau, "__code__", fake)
    with pytest.raises(
        CheckFailed, match=re.escape("not the code of odecourse.checks.one_step.check_tableau")
    ):
        checks.verify()
    monkeypatch.undo()
    monkeypatch.setitem(check_close.__kwdefaults__, "rtol", 1.0)
    with pytest.raises(CheckFailed, match="other default arguments"):
        checks.verify()
    monkeypatch.undo()
    # Helpers the checks import from the rest of the package are compared too.
    fake = (lambda name, value, *, minimum=None: value).__code__
    monkeypatch.setattr(odecourse._validation.check_int, "__code__", fake)
    with pytest.raises(CheckFailed, match=re.escape("_validation.check_int")):
        checks.verify()
    monkeypatch.undo()
    checks.verify()


def test_a_check_does_not_pass_in_a_tampered_kernel(capsys, monkeypatch):
    import odecourse.checks.generic

    # A helper replaced inside a check module: the check refuses to print a pass.
    tamper(monkeypatch, odecourse.checks.generic, "_relation", lambda *args: "")
    with pytest.raises(CheckFailed, match="changed in this kernel"):
        check_close(0.3, 0.3)
    assert "✓" not in capsys.readouterr().out


#: The search the appendix "Using this book in a course" gives instructors for tampering.
CHEAT_PATTERN = (
    r"odecourse\.checks\.[A-Za-z_]+ *=|vars\(|__dict__|__code__|sys\.modules|setattr\(|importlib"
    r"|builtins|(np|numpy|torch)\.[A-Za-z_.]+ *=[^=]"
)


@pytest.mark.parametrize(
    "cheat",
    [
        "odecourse.checks.check_tableau = lambda *args, **kwargs: None",
        'vars(odecourse.checks)["check_tableau"] = print',
        "odecourse.checks.one_step.__dict__['ORDER_TOLERANCE'] = 9",
        "check_tableau.__code__ = (lambda *a: None).__code__",
        "sys.modules['odecourse.checks'] = fake",
        "setattr(checks, 'check_close', print)",
        "importlib.reload(fake_checks)",
        "np.allclose = lambda *args, **kwargs: True",
        "torch.allclose =lambda *args: True",
    ],
)
def test_the_documented_search_finds_each_way_round_the_checks(cheat):
    assert re.search(CHEAT_PATTERN, cheat)


def test_the_documented_search_is_in_the_appendix_and_finds_nothing_in_the_book():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    assert f"grep -l -E '{CHEAT_PATTERN}'" in (root / "appendix/using-in-a-course.md").read_text()
    for notebook in sorted((root / "chapters").glob("*.ipynb")):
        assert not re.search(CHEAT_PATTERN, notebook.read_text(encoding="utf-8")), notebook.name
