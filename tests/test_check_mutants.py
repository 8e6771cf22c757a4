"""Every answer check rejects plausible wrong answers ("mutants") with a verdict that says why.

For each check of :mod:`odecourse.checks`, the correct answer to the book's
exercise passes, and at least five wrong implementations of it (sign errors,
missing factors, off-by-one, wrong activation placement, transposes, ...) fail
with :class:`CheckFailed`, whose reason matches the pattern given here.  A
mutant that the check cannot reject is listed in ``ACCEPTED`` with the reason,
so that the table of what the checks catch stays honest.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction as F

import numpy as np
import pytest
import torch
from scipy.integrate import cumulative_trapezoid

import odecourse.checks as checks
from odecourse.adaptive import MAX_FACTOR, MIN_FACTOR, SAFETY
from odecourse.checks import CheckFailed
from odecourse.runge_kutta import get_tableau


@dataclass(frozen=True)
class Mutant:
    check: str
    name: str
    call: Callable[[], None]
    reason: str  # a regular expression the failure's reason must match


# --------------------------------------------------------------------------- Chapter 1


def oscillator(t):
    return np.array([np.cos(t) - np.cos(2 * t) / 3, -np.sin(t) + 2 * np.sin(2 * t) / 3])


def first_order(f):
    return lambda: checks.check_first_order_system(f, oscillator)


def picard(body):
    return lambda: checks.check_picard_step(body)


def trapezoid_integral(f, t, phi):
    return cumulative_trapezoid(f(t, phi), t, initial=0.0)


def left_riemann(f, t, phi, y0):
    values = f(t, phi)
    return y0 + np.concatenate([[0.0], np.cumsum(values[:-1] * np.diff(t))])


def from_the_end(f, t, phi, y0):
    integral = trapezoid_integral(f, t, phi)
    return y0 + integral[-1] - integral


# --------------------------------------------------------------------------- Chapters 2, 3, 6


def heun(f, t, y, h):
    k1 = f(t, y)
    k2 = f(t + h, y + h * k1)
    return y + h / 2 * (k1 + k2)


def heun_like(weights=(0.5, 0.5), stage_time=1.0, stage_factor=1.0, sign=1.0):
    def step(f, t, y, h):
        k1 = f(t, y)
        k2 = f(t + stage_time * h, y + stage_factor * h * k1)
        return y + sign * h * (weights[0] * k1 + weights[1] * k2)

    return step


def midpoint(f, t, y, h):
    return y + h * f(t + h / 2, y + h / 2 * f(t, y))


def trapezoid_newton(f, t, y, h):
    """The reference of Chapter 3: the implicit trapezoid rule solved by Newton's method."""
    f0 = f(t, y)
    z = y + h * f0
    for _ in range(20):
        residual = z - y - h / 2 * (f0 + f(t + h, z))
        eps = 1e-7
        jac = np.column_stack(
            [(f(t + h, z + eps * e) - f(t + h, z - eps * e)) / (2 * eps) for e in np.eye(y.size)]
        )
        z = z - np.linalg.solve(np.eye(y.size) - h / 2 * jac, residual)
    return z


def backward_euler_newton(f, t, y, h):
    z = y + h * f(t, y)
    for _ in range(20):
        eps = 1e-7
        jac = np.column_stack(
            [(f(t + h, z + eps * e) - f(t + h, z - eps * e)) / (2 * eps) for e in np.eye(y.size)]
        )
        z = z - np.linalg.solve(np.eye(y.size) - h * jac, z - y - h * f(t + h, z))
    return z


def step_order(step, order=2, **kwargs):
    return lambda: checks.check_step_order(step, expected_order=order, **kwargs)


RALSTON = ([[0, 0], [F(2, 3), 0]], [F(1, 4), F(3, 4)], [0, F(2, 3)])


def tableau(A, b, c, order=2):
    return lambda: checks.check_tableau(lambda: (A, b, c), expected_order=order)


def stability(R, method="heun"):
    return lambda: checks.check_stability_function(R, get_tableau(method))


# --------------------------------------------------------------------------- Chapter 4

AB3 = ([0, 0, -1, 1], [F(5, 12), F(-16, 12), F(23, 12), 0])
BDF2 = ([F(1, 3), F(-4, 3), 1], [0, 0, F(2, 3)])


def multistep(alpha, beta, order):
    return lambda: checks.check_multistep_coefficients(lambda: (alpha, beta), expected_order=order)


# --------------------------------------------------------------------------- check_close (3, 6, 7)

ERRORS = [0.0, 1e-8, 0.5, 1.0, 3.0, 1e6]
FACTORS = [MAX_FACTOR, MAX_FACTOR, SAFETY * 0.5**-0.2, SAFETY, SAFETY * 3.0**-0.2, MIN_FACTOR]


def factor_check(factor):
    """Chapter 3's check of ``step_size_factor(err, q)`` with q = 4."""

    def call():
        checks.check_close(lambda: [factor(err, 4) for err in ERRORS], FACTORS, name="factors")

    return call


def step_size_factor(err, q):
    """The reference of Chapter 3."""
    if err == 0:
        return MAX_FACTOR
    return min(MAX_FACTOR, max(MIN_FACTOR, SAFETY * err ** (-1 / (q + 1))))


def factor_without(*, clip=True, safety=SAFETY, exponent=lambda q: -1 / (q + 1), bounds=None):
    low, high = bounds or (MIN_FACTOR, MAX_FACTOR)

    def factor(err, q):
        if err == 0:
            return high if clip else np.inf
        value = safety * err ** exponent(q)
        return min(high, max(low, value)) if clip else value

    return factor


K = np.random.default_rng(3).normal(size=(6, 6))


def antisymmetric_check(antisymmetric):
    return lambda: checks.check_close(lambda: antisymmetric(K), K - K.T, atol=1e-12, name="A(K)")


# --------------------------------------------------------------------------- check_gradient (5, 7)

W5 = np.random.default_rng(5).normal(size=(4, 4))
X5 = np.random.default_rng(6).normal(size=4)


def residual_loss(x, W, h):
    x1 = x + h * W @ np.tanh(x)
    return 0.5 * x1 @ x1


def residual_gradient(identity=1.0, transpose=True, slope_power=2, h_factor=True, sign=1.0):
    def gradient(x, W, h):
        hh = h if h_factor else 1.0
        x1 = x + h * W @ np.tanh(x)
        jacobian = identity * np.eye(x.size) + hh * W * (1 - np.tanh(x) ** slope_power)
        return sign * (jacobian.T if transpose else jacobian) @ x1

    return gradient


def gradient_check(gradient):
    return lambda: checks.check_gradient(
        lambda x: residual_loss(x, W5, 0.5), X5, lambda x: gradient(x, W5, 0.5)
    )


def euler_solution(lam, y0=1.5, T=2.0, N=10):
    y = y0
    for _ in range(N):
        y = y + (T / N) * lam * y
    return y


def euler_gradient_check(gradient):
    def call():
        for lam in (-1.3, 0.4):
            checks.check_gradient(
                lambda v: euler_solution(v[0]),
                np.array([lam]),
                lambda v: np.array([gradient(v[0], 1.5, 2.0, 10)]),
            )

    return call


# --------------------------------------------------------------------------- Chapter 5


class TanhResidualBlock(torch.nn.Module):
    """The reference of Chapter 5: x -> x + h (W tanh(x) + b)."""

    def __init__(self, width, h=0.5):
        super().__init__()
        self.linear = torch.nn.Linear(width, width)
        self.h = h

    def forward(self, x):
        return x + self.h * self.linear(torch.tanh(x))


def block(forward):
    cls = type("MutantBlock", (TanhResidualBlock,), {"forward": forward})
    return lambda: checks.check_residual_block(cls, width=4)


# --------------------------------------------------------------------------- Chapter 8


def planar(log_det):
    return lambda: checks.check_planar_flow_log_det(log_det)


def planar_slope(z, w, b):
    return 1 - torch.tanh(z @ w + b) ** 2


def hutchinson(trace):
    return lambda: checks.check_hutchinson_trace(trace)


def vjp(f, z, probe):
    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        (v,) = torch.autograd.grad(f(z), z, grad_outputs=probe)
    return v


def hutchinson_reference(f, z, probe):
    return (vjp(f, z, probe) * probe).sum(dim=1)


def row_by_row(f, z, probe):
    return torch.stack(
        [hutchinson_reference(f, z[i : i + 1], probe[i : i + 1])[0] for i in range(z.shape[0])]
    )


# --------------------------------------------------------------------------- the table

CORRECT = {
    "check_first_order_system": first_order(lambda t, y: np.array([y[1], np.cos(2 * t) - y[0]])),
    "check_picard_step": picard(lambda f, t, phi, y0: y0 + trapezoid_integral(f, t, phi)),
    "check_step_order": step_order(heun, method="heun"),
    "check_tableau": tableau(*RALSTON),
    "check_stability_function": stability(lambda z: 1 + z + z**2 / 2),
    "check_multistep_coefficients": multistep(*AB3, 3),
    "check_close": factor_check(step_size_factor),
    "check_gradient": gradient_check(residual_gradient()),
    "check_residual_block": lambda: checks.check_residual_block(TanhResidualBlock, width=4),
    "check_planar_flow_log_det": planar(
        lambda z, u, w, b: torch.log(torch.abs(1 + planar_slope(z, w, b) * (u @ w)))
    ),
    "check_hutchinson_trace": hutchinson(hutchinson_reference),
}

MUTANTS = [
    # check_first_order_system: the forced oscillator u'' + u = cos 2t as y = (u, u').
    Mutant(
        "check_first_order_system",
        "sign of the restoring term (u'' = cos 2t + u)",
        first_order(lambda t, y: np.array([y[1], np.cos(2 * t) + y[0]])),
        r"f\(t, y\) = .* but y'\(t\) = ",
    ),
    Mutant(
        "check_first_order_system",
        "components swapped",
        first_order(lambda t, y: np.array([np.cos(2 * t) - y[0], y[1]])),
        r"f\(t, y\) = .* but y'\(t\) = ",
    ),
    Mutant(
        "check_first_order_system",
        "forcing forgotten",
        first_order(lambda t, y: np.array([y[1], -y[0]])),
        r"f\(t, y\) = .* but y'\(t\) = ",
    ),
    Mutant(
        "check_first_order_system",
        "forcing cos t instead of cos 2t",
        first_order(lambda t, y: np.array([y[1], np.cos(t) - y[0]])),
        r"f\(t, y\) = .* but y'\(t\) = ",
    ),
    Mutant(
        "check_first_order_system",
        "returns the state y, not its derivative",
        first_order(lambda t, y: y.copy()),
        r"f\(t, y\) = .* but y'\(t\) = ",
    ),
    Mutant(
        "check_first_order_system",
        "returns u'' only",
        first_order(lambda t, y: np.array([np.cos(2 * t) - y[0]])),
        r"shape \(1,\); the state has \(2,\)",
    ),
    Mutant(
        "check_first_order_system",
        "arguments in the order f(y, t)",
        first_order(lambda y, t: np.array([y[1], np.cos(2 * t) - y[0]])),
        r"raised (TypeError|IndexError)",
    ),
    # check_picard_step: phi_{k+1} = y0 + cumulative trapezoid of f(t, phi_k).
    Mutant(
        "check_picard_step",
        "y0 forgotten",
        picard(lambda f, t, phi, y0: trapezoid_integral(f, t, phi)),
        r"after three iterations the error is",
    ),
    Mutant(
        "check_picard_step",
        "integrates phi instead of f(t, phi)",
        picard(lambda f, t, phi, y0: y0 + cumulative_trapezoid(phi, t, initial=0.0)),
        r"after three iterations the error is",
    ),
    Mutant(
        "check_picard_step",
        "left Riemann sums instead of the trapezoid rule",
        picard(left_riemann),
        r"after three iterations the error is",
    ),
    Mutant(
        "check_picard_step",
        "no integral: y0 + f(t, phi)",
        picard(lambda f, t, phi, y0: y0 + f(t, phi)),
        r"after three iterations the error is",
    ),
    Mutant(
        "check_picard_step",
        "cumulative_trapezoid without initial=0 (off by one)",
        picard(lambda f, t, phi, y0: y0 + cumulative_trapezoid(f(t, phi), t)),
        r"returned shape \(1000,\); expected \(1001,\)",
    ),
    Mutant(
        "check_picard_step",
        "integrates from the end of the interval",
        picard(from_the_end),
        r"after three iterations the error is",
    ),
    Mutant(
        "check_picard_step",
        "multiplies by y0 instead of adding it",
        picard(lambda f, t, phi, y0: y0 * (1 + trapezoid_integral(f, t, phi))),
        r"for y\(t0\) = 2 at t0 = 0.5",
    ),
    Mutant(
        "check_picard_step",
        "integrates f(t, y0) every time (no iteration)",
        picard(lambda f, t, phi, y0: y0 + trapezoid_integral(f, t, np.full_like(t, y0))),
        r"after three iterations the error is",
    ),
    # check_step_order: Heun's method (Chapter 2), expected order 2.
    Mutant(
        "check_step_order",
        "Euler posing as Heun (second stage unused)",
        step_order(heun_like(weights=(1.0, 0.0))),
        r"observed order is 1\.\d\d, but the method should have order 2",
    ),
    Mutant(
        "check_step_order",
        "second stage at time t instead of t + h",
        step_order(heun_like(stage_time=0.0)),
        r"observed order is (0\.[6-9]|1\.[0-4])\d",
    ),
    Mutant(
        "check_step_order",
        "weights (1/4, 3/4) with Heun's stages",
        step_order(heun_like(weights=(0.25, 0.75))),
        r"observed order is (0\.[6-9]|1\.[0-4])\d",
    ),
    Mutant(
        "check_step_order",
        "factor 1/2 of the weights missing",
        step_order(heun_like(weights=(1.0, 1.0))),
        r"observed order is -?0\.\d\d",
    ),
    Mutant(
        "check_step_order",
        "sign error in the update",
        step_order(heun_like(sign=-1.0)),
        r"observed order is -?0\.\d\d|blew up",
    ),
    Mutant(
        "check_step_order",
        "stage at y + h/2 k1 but time t + h",
        step_order(heun_like(stage_factor=0.5)),
        r"observed order is (0\.[6-9]|1\.[0-4])\d",
    ),
    Mutant(
        "check_step_order",
        "midpoint rule handed in for Heun (with method='heun')",
        step_order(midpoint, method="heun"),
        r"another method of the same order",
    ),
    Mutant(
        "check_step_order",
        "backward Euler for the trapezoid rule (Chapter 3)",
        step_order(backward_euler_newton),
        r"observed order is (0\.[6-9]|1\.[0-4])\d",
    ),
    Mutant(
        "check_step_order",
        "one Heun step (an explicit predictor-corrector) for the trapezoid rule",
        step_order(heun, method="trapezoid"),
        r"another method of the same order",
    ),
    Mutant(
        "check_step_order",
        "midpoint residual layer evaluated at the full step (Chapter 6)",
        step_order(lambda f, t, y, h: y + h * f(t + h / 2, y + h * f(t, y))),
        r"observed order is (0\.[6-9]|1\.[0-4])\d",
    ),
    # check_tableau: Ralston's method, order 2.
    Mutant(
        "check_tableau",
        "c not the row sums of A",
        tableau([[0, 0], [F(2, 3), 0]], [F(1, 4), F(3, 4)], [0, 1]),
        r"the rows of A sum to",
    ),
    Mutant(
        "check_tableau",
        "weights swapped",
        tableau(RALSTON[0], [F(3, 4), F(1, 4)], RALSTON[2]),
        r"only up to order 1, not 2",
    ),
    Mutant(
        "check_tableau",
        "A transposed",
        tableau([[0, F(2, 3)], [0, 0]], RALSTON[1], RALSTON[2]),
        r"the rows of A sum to",
    ),
    Mutant(
        "check_tableau",
        "weights do not sum to one",
        tableau(RALSTON[0], [F(1, 4), F(1, 4)], RALSTON[2]),
        r"the weights b sum to 0\.5",
    ),
    Mutant(
        "check_tableau",
        "node 1/2 with Ralston's weights",
        tableau([[0, 0], [F(1, 2), 0]], RALSTON[1], [0, F(1, 2)]),
        r"only up to order 1, not 2",
    ),
    Mutant(
        "check_tableau",
        "b of wrong length",
        tableau(RALSTON[0], [F(1, 4), F(3, 4), 0], RALSTON[2]),
        r"shapes",
    ),
    # check_stability_function: Heun, R(z) = 1 + z + z^2/2 (and RK4).
    Mutant(
        "check_stability_function",
        "z^2/2 term missing",
        stability(lambda z: 1 + z),
        r"R\(z\) = .* but it should be",
    ),
    Mutant(
        "check_stability_function",
        "z^2 without the 1/2",
        stability(lambda z: 1 + z + z**2),
        r"R\(z\) = .* but it should be",
    ),
    Mutant(
        "check_stability_function",
        "sign error (1 - z + z^2/2)",
        stability(lambda z: 1 - z + z**2 / 2),
        r"R\(z\) = .* but it should be",
    ),
    Mutant(
        "check_stability_function",
        "implicit Euler's 1/(1 - z)",
        stability(lambda z: 1 / (1 - z)),
        r"R\(z\) = .* but it should be",
    ),
    Mutant(
        "check_stability_function",
        "|R(z)| instead of R(z)",
        stability(lambda z: abs(1 + z + z**2 / 2)),
        r"R\(z\) = .* but it should be",
    ),
    Mutant(
        "check_stability_function",
        "conjugate z",
        stability(lambda z: 1 + z.conjugate() + z.conjugate() ** 2 / 2),
        r"R\(z\) = .* but it should be",
    ),
    Mutant(
        "check_stability_function",
        "RK4 without its z^4/24 term",
        stability(lambda z: 1 + z + z**2 / 2 + z**3 / 6, method="rk4"),
        r"R\(z\) = .* but it should be",
    ),
    # check_multistep_coefficients: AB3 (order 3) and BDF2 (order 2) of Chapter 4.
    Mutant(
        "check_multistep_coefficients",
        "AB3: beta newest first",
        multistep(AB3[0], [*AB3[1][-2::-1], 0], 3),
        r"has order 1, not 3",
    ),
    Mutant(
        "check_multistep_coefficients",
        "AB3: the factor 1/12 missing",
        multistep(AB3[0], [5, -16, 23, 0], 3),
        r"not consistent",
    ),
    Mutant(
        "check_multistep_coefficients",
        "AB3: sign of beta",
        multistep(AB3[0], [-b for b in AB3[1]], 3),
        r"not consistent",
    ),
    Mutant(
        "check_multistep_coefficients",
        "AB2's coefficients for AB3",
        multistep(AB3[0], [0, F(-1, 2), F(3, 2), 0], 3),
        r"has order 2, not 3",
    ),
    Mutant(
        "check_multistep_coefficients",
        "AB3: typo 16 -> 15",
        multistep(AB3[0], [F(5, 12), F(-15, 12), F(23, 12), 0], 3),
        r"not consistent",
    ),
    Mutant(
        "check_multistep_coefficients",
        "AB3: alpha reversed",
        multistep(AB3[0][::-1], AB3[1], 3),
        r"alpha_k = 0",
    ),
    Mutant(
        "check_multistep_coefficients",
        "BDF2: beta on the oldest value",
        multistep(BDF2[0], [F(2, 3), 0, 0], 2),
        r"has order 1, not 2",
    ),
    Mutant(
        "check_multistep_coefficients",
        "BDF2: alpha reversed",
        multistep(BDF2[0][::-1], BDF2[1], 2),
        r"not consistent",
    ),
    Mutant(
        "check_multistep_coefficients",
        "BDF2: beta 1 instead of 2/3",
        multistep(BDF2[0], [0, 0, 1], 2),
        r"not consistent",
    ),
    # check_close: Chapter 3's step-size factor, Chapter 6's antisymmetric part.
    Mutant(
        "check_close",
        "step-size factor: exponent -1/q instead of -1/(q+1)",
        factor_check(factor_without(exponent=lambda q: -1 / q)),
        r"entries are wrong, the first at index 2",
    ),
    Mutant(
        "check_close",
        "step-size factor: no clipping",
        factor_check(factor_without(clip=False)),
        r"inf or nan",
    ),
    Mutant(
        "check_close",
        "step-size factor: safety factor missing",
        factor_check(factor_without(safety=1.0)),
        r"entries are wrong, the first at index 2",
    ),
    Mutant(
        "check_close",
        "step-size factor: clip bounds swapped",
        factor_check(factor_without(bounds=(MAX_FACTOR, MIN_FACTOR))),
        r"entries are wrong, the first at index 0",
    ),
    Mutant(
        "check_close",
        "antisymmetric part: K^T - K (sign)",
        antisymmetric_check(lambda K: K.T - K),
        r"negative of the right answer: a sign error",
    ),
    Mutant(
        "check_close",
        "antisymmetric part: (K - K^T)/2 (factor)",
        antisymmetric_check(lambda K: (K - K.T) / 2),
        r"0\.5 times the right answer",
    ),
    Mutant(
        "check_close",
        "antisymmetric part: K + K^T (symmetric part)",
        antisymmetric_check(lambda K: K + K.T),
        r"came out as .* which is not right",
    ),
    # check_gradient: Chapter 5's gradient of |x + h W tanh(x)|^2 / 2, Chapter 7's Euler one.
    Mutant(
        "check_gradient",
        "transpose of the Jacobian forgotten",
        gradient_check(residual_gradient(transpose=False)),
        r"differs from finite differences",
    ),
    Mutant(
        "check_gradient",
        "identity term missing",
        gradient_check(residual_gradient(identity=0.0)),
        r"differs from finite differences",
    ),
    Mutant(
        "check_gradient",
        "tanh' as 1 - tanh instead of 1 - tanh^2",
        gradient_check(residual_gradient(slope_power=1)),
        r"differs from finite differences",
    ),
    Mutant(
        "check_gradient",
        "h missing from the Jacobian",
        gradient_check(residual_gradient(h_factor=False)),
        r"differs from finite differences",
    ),
    Mutant(
        "check_gradient",
        "sign error",
        gradient_check(residual_gradient(sign=-1.0)),
        r"negative of the right answer: a sign error",
    ),
    Mutant(
        "check_gradient",
        "returns x1 (the Jacobian forgotten)",
        gradient_check(lambda x, W, h: x + h * W @ np.tanh(x)),
        r"differs from finite differences",
    ),
    Mutant(
        "check_gradient",
        "Euler gradient: exponent N instead of N - 1",
        euler_gradient_check(lambda lam, y0, T, N: N * (T / N) * y0 * (1 + T / N * lam) ** N),
        r"differs from finite differences",
    ),
    Mutant(
        "check_gradient",
        "Euler gradient: factor h missing",
        euler_gradient_check(lambda lam, y0, T, N: N * y0 * (1 + T / N * lam) ** (N - 1)),
        r"differs from finite differences",
    ),
    # check_residual_block: Chapter 5's x + h (W tanh(x) + b).
    Mutant(
        "check_residual_block",
        "tanh outside the linear layer",
        block(lambda self, x: x + self.h * torch.tanh(self.linear(x))),
        r"activation is applied after the linear layer",
    ),
    Mutant(
        "check_residual_block",
        "h forgotten",
        block(lambda self, x: x + self.linear(torch.tanh(x))),
        r"the step size h is missing",
    ),
    Mutant(
        "check_residual_block",
        "relu instead of tanh",
        block(lambda self, x: x + self.h * self.linear(torch.relu(x))),
        r"uses relu where the branch needs tanh",
    ),
    Mutant(
        "check_residual_block",
        "no tanh",
        block(lambda self, x: x + self.h * self.linear(x)),
        r"the activation is missing",
    ),
    Mutant(
        "check_residual_block",
        "minus sign",
        block(lambda self, x: x - self.h * self.linear(torch.tanh(x))),
        r"the branch is subtracted",
    ),
    Mutant(
        "check_residual_block",
        "shortcut forgotten",
        block(lambda self, x: self.h * self.linear(torch.tanh(x))),
        r"the shortcut is missing",
    ),
    Mutant(
        "check_residual_block",
        "W transposed",
        block(lambda self, x: x + self.h * (torch.tanh(x) @ self.linear.weight + self.linear.bias)),
        r"W is transposed",
    ),
    Mutant(
        "check_residual_block",
        "bias forgotten",
        block(lambda self, x: x + self.h * (torch.tanh(x) @ self.linear.weight.T)),
        r"the bias b is missing",
    ),
    Mutant(
        "check_residual_block",
        "branch detached from autograd",
        block(lambda self, x: x + self.h * self.linear(torch.tanh(x)).detach()),
        r"does not depend on W and b through autograd",
    ),
    Mutant(
        "check_residual_block",
        "x updated in place",
        block(lambda self, x: x.add_(self.h * self.linear(torch.tanh(x)))),
        r"changed its input x in place",
    ),
    Mutant(
        "check_residual_block",
        "branch averaged over the batch",
        block(lambda self, x: x + self.h * self.linear(torch.tanh(x)).mean(dim=0)),
        r"row 0 of the output depends on the other rows",
    ),
    Mutant(
        "check_residual_block",
        "W and b through a NumPy round trip",
        block(
            lambda self, x: (
                x
                + self.h
                * torch.from_numpy(
                    np.tanh(x.numpy()) @ self.linear.weight.detach().numpy().T
                    + self.linear.bias.detach().numpy()
                )
            )
        ),
        r"does not depend on W and b through autograd",
    ),
    # check_planar_flow_log_det (Chapter 8).
    Mutant(
        "check_planar_flow_log_det",
        "sign error in the determinant",
        planar(lambda z, u, w, b: torch.log(torch.abs(1 - planar_slope(z, w, b) * (u @ w)))),
        r"a sign error",
    ),
    Mutant(
        "check_planar_flow_log_det",
        "tanh where tanh' belongs",
        planar(lambda z, u, w, b: torch.log(torch.abs(1 + torch.tanh(z @ w + b) * (u @ w)))),
        r"sigma appears where its derivative",
    ),
    Mutant(
        "check_planar_flow_log_det",
        "the identity's 1 missing",
        planar(lambda z, u, w, b: torch.log(torch.abs(planar_slope(z, w, b) * (u @ w)))),
        r"the 1 from the identity",
    ),
    Mutant(
        "check_planar_flow_log_det",
        "no logarithm",
        planar(lambda z, u, w, b: torch.abs(1 + planar_slope(z, w, b) * (u @ w))),
        r"without the logarithm",
    ),
    Mutant(
        "check_planar_flow_log_det",
        "no absolute value (log of a negative determinant)",
        planar(lambda z, u, w, b: torch.log(1 + planar_slope(z, w, b) * (u @ w))),
        r"inf or nan",
    ),
    Mutant(
        "check_planar_flow_log_det",
        "w.w instead of u.w",
        planar(lambda z, u, w, b: torch.log(torch.abs(1 + planar_slope(z, w, b) * (w @ w)))),
        r"largest error",
    ),
    # check_hutchinson_trace (Chapter 8).
    Mutant(
        "check_hutchinson_trace",
        "sign error",
        hutchinson(lambda f, z, probe: -hutchinson_reference(f, z, probe)),
        r"a sign error",
    ),
    Mutant(
        "check_hutchinson_trace",
        "|probe^T J|^2, the Frobenius estimate",
        hutchinson(lambda f, z, probe: vjp(f, z, probe).pow(2).sum(dim=1)),
        r"Frobenius estimate",
    ),
    Mutant(
        "check_hutchinson_trace",
        "probe^T J summed without the second probe factor",
        hutchinson(lambda f, z, probe: vjp(f, z, probe).sum(dim=1)),
        r"multiply by the probe",
    ),
    Mutant(
        "check_hutchinson_trace",
        "sum over the batch instead of the features",
        hutchinson(lambda f, z, probe: (vjp(f, z, probe) * probe).sum(dim=0)),
        r"has shape \(\d+,\); expected \(6,\)",
    ),
    Mutant(
        "check_hutchinson_trace",
        "one f evaluation per sample (a loop over the batch)",
        hutchinson(row_by_row),
        r"f was called 6 times",
    ),
    Mutant(
        "check_hutchinson_trace",
        "probe drawn afresh instead of the given one",
        hutchinson(
            lambda f, z, probe: (
                vjp(f, z, p := torch.randn(z.shape, dtype=z.dtype, generator=torch.Generator())) * p
            ).sum(dim=1)
        ),
        r"largest error",
    ),
]

#: Wrong answers that a check accepts, and why: the limits of what a check can know.
ACCEPTED = {
    "check_step_order without `method`": (
        step_order(midpoint),
        "another method of the same order passes; pass method='heun' (or the tableau) to refuse it",
    ),
    "check_tableau": (
        tableau([[0, 0], [1, 0]], [F(1, 2), F(1, 2)], [0, 1]),
        "Heun's tableau for Ralston's passes: the check tests the order conditions, not the nodes",
    ),
}


def _id(mutant: Mutant) -> str:
    return f"{mutant.check}: {mutant.name}"


@pytest.mark.parametrize("name", CORRECT)
def test_the_correct_answer_passes(capsys, name):
    assert CORRECT[name]() is None
    assert capsys.readouterr().out.startswith("✓ ")


@pytest.mark.parametrize("mutant", MUTANTS, ids=_id)
def test_the_check_rejects_the_mutant_and_says_why(capsys, mutant):
    with pytest.raises(CheckFailed) as info:
        mutant.call()
    printed = capsys.readouterr().out
    failure = info.value
    assert re.search(mutant.reason, failure.reason, re.DOTALL), failure.reason
    assert printed.startswith("✗ Not yet: ") and f"Hint: {failure.hint}" in printed
    assert len(failure.hint) > 30  # a hint that says where to look, not just "wrong"


@pytest.mark.parametrize("name", ACCEPTED)
def test_the_documented_limits_are_real(capsys, name):
    call, _ = ACCEPTED[name]
    assert call() is None
    assert capsys.readouterr().out.startswith("✓ ")


def test_every_check_has_a_correct_answer_and_at_least_five_mutants():
    public = {name for name in checks.__all__ if name.startswith("check_")}
    counts = Counter(mutant.check for mutant in MUTANTS)
    assert set(CORRECT) == public
    assert {name: counts[name] for name in public if counts[name] < 5} == {}
