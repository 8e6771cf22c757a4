"""Compare odecourse.solve_ivp with scipy.integrate.solve_ivp on stiff problems.

For each problem, method (BDF, and Radau once ``"Radau"`` is registered in
``odecourse.solve.METHODS``; until then BDF only) and tolerance (rtol in 1e-4, 1e-7,
atol = 1e-3 * rtol for every problem) it runs ours and SciPy's with the same arguments
and the analytic Jacobian, and prints the function evaluations (nfev), Jacobian
evaluations (njev), LU factorisations (nlu), steps (``len(t) - 1``), the error of the
final state and the wall time (best of 3 runs, or 1 run if the first takes over a
second).  The error is the RMS norm of ``(y - y_ref) / (atol + rtol * |y_ref|)`` with the
run's own tolerances, so 1 means "the tolerance was met"; ``y_ref`` comes from SciPy's
Radau at rtol 1e-12, atol 1e-14, computed afresh on every run (nothing is cached; the
slowest reference, the Oregonator's, takes about 10 s, so no looser one was needed).

A summary gives, per method, the geometric means over problems and tolerances of the
ours/SciPy ratios of nfev, error and time, next to the project's targets (nfev ratio
<= 1.25, error ratio <= 3, time ratio <= 1.5).  A missed target is printed as such; the
script asserts nothing and always exits with status 0.

The problems, with their full intervals (none had to be shortened):

- Robertson's chemical kinetics on [0, 1e5] (hairer1996, Sec. IV.1 and IV.10, ROBER);
- Van der Pol with mu = 1000, y1' = y2, y2' = mu (1 - y1^2) y2 - y1, on [0, 3000]
  (hairer1996, Sec. IV.10, VDPOL, in the unscaled form);
- HIRES, 8 components, on [0, 321.8122] (hairer1996, Sec. IV.10; F. Mazzia,
  C. Magherini et al., Test Set for IVP Solvers, Univ. of Bari, problem HIRES);
- the Oregonator (Field-Noyes), 3 components, on [0, 360] (hairer1996, Sec. IV.10, OREGO);
- the Brusselator in one space dimension by the method of lines, N = 32 grid points,
  2N = 64 unknowns, alpha = 1/50, on [0, 10] (hairer1993, Sec. II.10; hairer1996,
  Sec. IV.10, BRUSS, with N = 500 there).

Run: ``.venv/bin/python benchmarks/bench_stiff.py`` (under a minute on two cores:
about 30 s with BDF alone, 50 s with Radau too).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.integrate

from odecourse.solve import METHODS as REGISTERED
from odecourse.solve import solve_ivp

RTOLS = (1e-4, 1e-7)
ATOL_FACTOR = 1e-3  #: atol = ATOL_FACTOR * rtol
REFERENCE = {"method": "Radau", "rtol": 1e-12, "atol": 1e-14}
REPEAT = 3  #: best of REPEAT timed runs ...
SLOW_RUN_S = 1.0  #: ... unless the first run took longer than this
TARGETS = {"nfev": 1.25, "error": 3.0, "time": 1.5}  #: upper bounds on the geometric means


@dataclass(frozen=True)
class Problem:
    """A stiff test problem: ``y' = f(t, y)``, ``y(t_span[0]) = y0``, Jacobian ``jac(t, y)``."""

    name: str
    f: Callable[[float, np.ndarray], np.ndarray]
    jac: Callable[[float, np.ndarray], np.ndarray]
    t_span: tuple[float, float]
    y0: np.ndarray


def robertson() -> Problem:
    """Robertson's reaction A -> B, 2B -> B + C, B + C -> A + C (hairer1996, Sec. IV.10)."""

    def f(t, y):
        slow, fast, square = 0.04 * y[0], 1e4 * y[1] * y[2], 3e7 * y[1] ** 2
        return np.array([-slow + fast, slow - fast - square, square])

    def jac(t, y):
        return np.array(
            [
                [-0.04, 1e4 * y[2], 1e4 * y[1]],
                [0.04, -1e4 * y[2] - 6e7 * y[1], -1e4 * y[1]],
                [0.0, 6e7 * y[1], 0.0],
            ]
        )

    return Problem("robertson", f, jac, (0.0, 1e5), np.array([1.0, 0.0, 0.0]))


def van_der_pol(mu: float = 1000.0) -> Problem:
    """Van der Pol, y1' = y2, y2' = mu (1 - y1^2) y2 - y1 (hairer1996, Sec. IV.10, VDPOL)."""

    def f(t, y):
        return np.array([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]])

    def jac(t, y):
        return np.array([[0.0, 1.0], [-2 * mu * y[0] * y[1] - 1, mu * (1 - y[0] ** 2)]])

    return Problem(f"van_der_pol_{mu:g}", f, jac, (0.0, 3000.0), np.array([2.0, 0.0]))


def hires() -> Problem:
    """HIRES, plant growth under light (hairer1996, Sec. IV.10; Mazzia et al., IVP test set)."""
    linear = np.array(
        [
            [-1.71, 0.43, 8.32, 0, 0, 0, 0, 0],
            [1.71, -8.75, 0, 0, 0, 0, 0, 0],
            [0, 0, -10.03, 0.43, 0.035, 0, 0, 0],
            [0, 8.32, 1.71, -1.12, 0, 0, 0, 0],
            [0, 0, 0, 0, -1.745, 0.43, 0.43, 0],
            [0, 0, 0, 0.69, 1.71, -0.43, 0.69, 0],
            [0, 0, 0, 0, 0, 0, -1.81, 0],
            [0, 0, 0, 0, 0, 0, 1.81, 0],
        ]
    )
    source = np.array([0.0007, 0, 0, 0, 0, 0, 0, 0])
    k = 280.0  # the one nonlinear term, k y6 y8, leaves 6 and 8 and enters 7

    def f(t, y):
        rate = k * y[5] * y[7]
        dy = linear @ y + source
        dy[5] -= rate
        dy[6] += rate
        dy[7] -= rate
        return dy

    def jac(t, y):
        J = linear.copy()
        for row, sign in ((5, -1.0), (6, 1.0), (7, -1.0)):
            J[row, 5] += sign * k * y[7]
            J[row, 7] += sign * k * y[5]
        return J

    y0 = np.array([1.0, 0, 0, 0, 0, 0, 0, 0.0057])
    return Problem("hires", f, jac, (0.0, 321.8122), y0)


def oregonator() -> Problem:
    """The Field-Noyes Oregonator (hairer1996, Sec. IV.10, OREGO)."""
    s, q, w = 77.27, 8.375e-6, 0.161

    def f(t, y):
        return np.array(
            [
                s * (y[1] + y[0] * (1 - q * y[0] - y[1])),
                (y[2] - (1 + y[0]) * y[1]) / s,
                w * (y[0] - y[2]),
            ]
        )

    def jac(t, y):
        return np.array(
            [
                [s * (1 - 2 * q * y[0] - y[1]), s * (1 - y[0]), 0.0],
                [-y[1] / s, -(1 + y[0]) / s, 1 / s],
                [w, 0.0, -w],
            ]
        )

    return Problem("oregonator", f, jac, (0.0, 360.0), np.array([1.0, 2.0, 3.0]))


def brusselator(n: int = 32, alpha: float = 1 / 50) -> Problem:
    """The 1-D Brusselator by the method of lines, y = (u_1..u_N, v_1..v_N)
    (hairer1993, Sec. II.10; hairer1996, Sec. IV.10, BRUSS), boundary u = 1, v = 3."""
    c = alpha * (n + 1) ** 2
    laplacian = c * (np.diag(-2.0 * np.ones(n)) + np.diag(np.ones(n - 1), 1))
    laplacian += c * np.diag(np.ones(n - 1), -1)
    boundary_u, boundary_v = np.zeros(n), np.zeros(n)
    boundary_u[[0, -1]], boundary_v[[0, -1]] = c * 1.0, c * 3.0

    def f(t, y):
        u, v = y[:n], y[n:]
        u2v = u * u * v
        du = 1 + u2v - 4 * u + laplacian @ u + boundary_u
        dv = 3 * u - u2v + laplacian @ v + boundary_v
        return np.concatenate([du, dv])

    def jac(t, y):
        u, v = y[:n], y[n:]
        J = np.zeros((2 * n, 2 * n))
        J[:n, :n] = laplacian + np.diag(2 * u * v - 4)
        J[:n, n:] = np.diag(u * u)
        J[n:, :n] = np.diag(3 - 2 * u * v)
        J[n:, n:] = laplacian - np.diag(u * u)
        return J

    x = np.arange(1, n + 1) / (n + 1)
    y0 = np.concatenate([1 + np.sin(2 * np.pi * x), 3 * np.ones(n)])
    return Problem(f"brusselator_{n}", f, jac, (0.0, 10.0), y0)


def problems() -> list[Problem]:
    """The benchmark problems, in the order of the table."""
    return [robertson(), van_der_pol(), hires(), oregonator(), brusselator()]


def methods() -> tuple[str, ...]:
    """BDF, and Radau if odecourse has registered it."""
    return ("BDF", "Radau") if "Radau" in REGISTERED else ("BDF",)


def _timed(solver, *args, **kwargs) -> tuple:
    """The result of the first run and the best wall time of up to REPEAT runs."""
    start = time.perf_counter()
    result = solver(*args, **kwargs)
    best = time.perf_counter() - start
    for _ in range(REPEAT - 1 if best <= SLOW_RUN_S else 0):
        start = time.perf_counter()
        solver(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return result, best


def _reference(problem: Problem) -> tuple[np.ndarray, float]:
    """The final state from SciPy's Radau at tight tolerances, and how long it took."""
    start = time.perf_counter()
    result = scipy.integrate.solve_ivp(
        problem.f, problem.t_span, problem.y0, jac=problem.jac, **REFERENCE
    )
    if result.status != 0:
        raise RuntimeError(f"reference for {problem.name} failed: {result.message}")
    return result.y[:, -1], time.perf_counter() - start


def scaled_error(y: np.ndarray, reference: np.ndarray, rtol: float, atol: float) -> float:
    """RMS of (y - y_ref) / (atol + rtol |y_ref|): 1 means the tolerance was just met."""
    return float(np.sqrt(np.mean(((y - reference) / (atol + rtol * np.abs(reference))) ** 2)))


def _run_ours(problem: Problem, kwargs: dict) -> tuple:
    """Our result and time, or (None, message) if the solver raised."""
    try:
        return _timed(solve_ivp, problem.f, problem.t_span, problem.y0, **kwargs)
    except Exception as exc:  # a half-finished method should not stop the table
        return None, f"raised {type(exc).__name__}: {exc}"


def _counts(result) -> tuple[int, int, int, int]:
    return result.nfev, result.njev, result.nlu, len(result.t) - 1


HEADER = (
    f"{'problem':<16} {'method':<6} {'rtol':>5} | {'nfev':>6} {'scipy':>6} {'ratio':>5} | "
    f"{'njev':>4} {'scipy':>5} | {'nlu':>5} {'scipy':>5} | {'steps':>5} {'scipy':>5} | "
    f"{'error':>8} {'scipy':>8} | {'ms':>7} {'scipy':>7}"
)


def _row(name: str, method: str, rtol: float, ours, theirs, errors, times) -> str:
    (nfev, njev, nlu, steps), (s_nfev, s_njev, s_nlu, s_steps) = _counts(ours), _counts(theirs)
    return (
        f"{name:<16} {method:<6} {rtol:>5.0e} | {nfev:>6d} {s_nfev:>6d} {nfev / s_nfev:>5.2f} | "
        f"{njev:>4d} {s_njev:>5d} | {nlu:>5d} {s_nlu:>5d} | {steps:>5d} {s_steps:>5d} | "
        f"{errors[0]:>8.2e} {errors[1]:>8.2e} | {1e3 * times[0]:>7.1f} {1e3 * times[1]:>7.1f}"
    )


def _geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _summary(ratios: dict[str, dict[str, list[float]]], failures: dict[str, int]) -> None:
    print("\nGeometric means of ours/SciPy over problems and tolerances (successful runs):")
    for method, by_quantity in ratios.items():
        if not by_quantity["nfev"]:
            print(f"  {method:<6} no successful runs to compare")
            continue
        parts, missed = [], []
        for quantity, target in TARGETS.items():
            value = _geometric_mean(by_quantity[quantity])
            parts.append(f"{quantity} {value:5.2f} (target <= {target:g})")
            if value > target:
                missed.append(quantity)
        verdict = "all targets met" if not missed else f"TARGET MISSED: {', '.join(missed)}"
        print(f"  {method:<6} " + ", ".join(parts) + f"  -> {verdict}")
        if failures[method]:
            print(f"  {method:<6} {failures[method]} run(s) failed and are left out of the means")


def _footnotes(radau_nlu_even: bool | None) -> None:
    print(
        "\nNotes: error = RMS of (y - y_ref)/(atol + rtol |y_ref|) at the final time, "
        f"y_ref from SciPy Radau rtol {REFERENCE['rtol']:g}, atol {REFERENCE['atol']:g};"
        f" atol = {ATOL_FACTOR:g} * rtol; time = best of {REPEAT} (1 run if over "
        f"{SLOW_RUN_S:g} s)."
    )
    print(
        "  nfev: SciPy's does not count the evaluations of a finite-difference Jacobian and "
        "ours does; every run here passes the analytic Jacobian, so the two agree."
    )
    line = (
        "  nlu: counted the same way on both sides, one per LU factorisation: BDF factors "
        "I - c J once per Newton matrix; Radau factors a real and a complex matrix "
        "per Newton matrix and counts 2 (scipy radau.py calls self.lu twice, "
        "odecourse.radau._factorise adds 2)"
    )
    if radau_nlu_even is not None:
        line += "; every Radau nlu above is even: " + ("yes" if radau_nlu_even else "NO")
    print(line + ".")


def main() -> None:
    start = time.perf_counter()
    chosen = methods()
    if "Radau" not in chosen:
        print("Radau is not registered in odecourse.solve.METHODS yet: comparing BDF only.\n")
    print(HEADER)
    print("-" * len(HEADER))
    ratios = {m: {q: [] for q in TARGETS} for m in chosen}
    failures = dict.fromkeys(chosen, 0)
    radau_nlu = []
    for problem in problems():
        reference, seconds = _reference(problem)
        print(f"{problem.name} (n = {problem.y0.size}, reference in {seconds:.1f} s)")
        for method in chosen:
            for rtol in RTOLS:
                atol = ATOL_FACTOR * rtol
                kwargs = {"method": method, "rtol": rtol, "atol": atol, "jac": problem.jac}
                ours, t_ours = _run_ours(problem, kwargs)
                theirs, t_theirs = _timed(
                    scipy.integrate.solve_ivp, problem.f, problem.t_span, problem.y0, **kwargs
                )
                prefix = f"{problem.name:<16} {method:<6} {rtol:>5.0e} |"
                if ours is None or ours.status != 0 or theirs.status != 0:
                    why = t_ours if ours is None else (ours.message, theirs.message)
                    print(f"{prefix} FAILED (ours, scipy): {why}")
                    failures[method] += 1
                    continue
                errors = [scaled_error(r.y[:, -1], reference, rtol, atol) for r in (ours, theirs)]
                print(_row(problem.name, method, rtol, ours, theirs, errors, (t_ours, t_theirs)))
                ratios[method]["nfev"].append(ours.nfev / theirs.nfev)
                ratios[method]["error"].append(max(errors[0], 1e-300) / max(errors[1], 1e-300))
                ratios[method]["time"].append(t_ours / t_theirs)
                if method == "Radau":
                    radau_nlu += [ours.nlu, theirs.nlu]
    _summary(ratios, failures)
    _footnotes(all(k % 2 == 0 for k in radau_nlu) if radau_nlu else None)
    print(f"\nTotal wall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
