"""Compare odecourse.solve_ivp with scipy.integrate.solve_ivp on non-stiff problems.

For each problem, method (RK45 = our dopri5, RK23 = our bosh3, DOP853) and
tolerance (rtol in 1e-3, 1e-6, 1e-9 with atol = 1e-3 * rtol) it prints the number
of function evaluations, accepted steps, the max-norm error at the final time
against a tight reference (SciPy DOP853, rtol 1e-13), and the wall time: the best
of ``REPEATS`` runs, ours and SciPy's interleaved in the same process so that both
see the same load, and their ratio.  A summary gives, per method, the geometric
mean of the time ratios next to the target (ours <= 1.0 x SciPy's).  A second table
times wider systems, a heat equation on 16, 64 and 256 grid points (not part of the
target's mean: it shows how the ratio moves with the state size).  On the finer grids
the steps sit at the explicit methods' stability limit, where accepting a step hinges on
the last bits of the error estimate, and those differ between our stage sums and SciPy's:
there the NFE can differ from SciPy's although the algorithm is the same (on 64 points,
on this machine, they do).  A last table times one stage sum
:math:`y + h \\sum_j a_{ij} k_j` both ways: ours, products and left-to-right sums by
NumPy ufuncs (the same bits on every CPU), and SciPy's ``np.dot`` (BLAS, whose kernel
and so whose last bits depend on the CPU), and says whether the two agree to the last
bit.  The script asserts nothing.

Run: ``.venv/bin/python benchmarks/bench_solve_ivp.py`` (about a minute; add ``--cpu`` to time
CPU rather than wall time on a busy machine).
"""

from __future__ import annotations

import math
import sys
import time
import timeit

import numpy as np
import scipy.integrate

from odecourse.dop853 import DOP853
from odecourse.ivp import get_problem
from odecourse.runge_kutta import _combine, _nonzero, get_tableau
from odecourse.solve import solve_ivp

#: The clock of every timing: wall time by default; with ``--cpu`` the CPU time of this
#: process, which other processes on a busy machine do not inflate (the code timed is
#: single-threaded, so on an idle machine the two agree).
CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}


def _clock() -> float:
    return CLOCK["cpu" if "--cpu" in sys.argv else "wall"]()


RTOLS = (1e-3, 1e-6, 1e-9)
METHODS = ("RK45", "RK23", "DOP853")
REPEATS = 5  #: best of REPEATS interleaved runs: the least noisy estimate on a shared machine
TARGET = 1.0  #: geometric mean of the time ratios ours / SciPy, per method


def _arenstorf() -> tuple:
    """The Arenstorf orbit of the restricted three-body problem (hairer1993, Sec. II.0)."""
    mu = 0.012277471

    def f(t, y):
        x, v, u, w = y
        d1 = ((x + mu) ** 2 + v**2) ** 1.5
        d2 = ((x - 1 + mu) ** 2 + v**2) ** 1.5
        ax = x + 2 * w - (1 - mu) * (x + mu) / d1 - mu * (x - 1 + mu) / d2
        av = v - 2 * u - (1 - mu) * v / d1 - mu * v / d2
        return np.array([u, w, ax, av])

    y0 = np.array([0.994, 0.0, 0.0, -2.00158510637908252240537862224])
    return "arenstorf", f, (0.0, 17.0652165601579625588917206249), y0


def problems() -> list[tuple]:
    """(name, f, t_span, y0) for each benchmark problem."""
    chosen = [
        get_problem("lotka_volterra"),
        get_problem("van_der_pol", mu=1.0),
        get_problem("harmonic_oscillator"),
    ]
    return [(p.name, p.f, p.t_span, p.y0) for p in chosen] + [_arenstorf()]


def _timed(solver, *args, **kwargs):
    start = _clock()
    result = solver(*args, **kwargs)
    return result, _clock() - start


def _best_of(repeats: int, *args, **kwargs) -> tuple:
    """Ours and SciPy's, run alternately ``repeats`` times: results and best wall times."""
    best_ours = best_theirs = math.inf
    for _ in range(repeats):
        ours, t_ours = _timed(solve_ivp, *args, **kwargs)
        theirs, t_theirs = _timed(scipy.integrate.solve_ivp, *args, **kwargs)
        best_ours, best_theirs = min(best_ours, t_ours), min(best_theirs, t_theirs)
    return ours, theirs, best_ours, best_theirs


def _geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main() -> None:
    header = (
        f"{'problem':<20} {'method':<6} {'rtol':>6} | {'nfev':>6} {'scipy':>6} {'ratio':>5} | "
        f"{'steps':>5} {'scipy':>5} | {'error':>9} {'scipy':>9} | {'ms':>7} {'scipy':>7} "
        f"{'ratio':>5}"
    )
    print(header)
    print("-" * len(header))
    ratios, time_ratios = [], {method: [] for method in METHODS}
    for name, f, t_span, y0 in problems():
        reference = scipy.integrate.solve_ivp(
            f, t_span, y0, method="DOP853", rtol=1e-13, atol=1e-16
        ).y[:, -1]
        for method in METHODS:
            for rtol in RTOLS:
                kwargs = {"method": method, "rtol": rtol, "atol": rtol * 1e-3}
                ours, theirs, t_ours, t_theirs = _best_of(REPEATS, f, t_span, y0, **kwargs)
                time_ratios[method].append(t_ours / t_theirs)
                err_ours = np.max(np.abs(ours.y[:, -1] - reference))
                err_theirs = np.max(np.abs(theirs.y[:, -1] - reference))
                ratio = ours.nfev / theirs.nfev
                ratios.append(ratio)
                print(
                    f"{name:<20} {method:<6} {rtol:>6.0e} | {ours.nfev:>6d} {theirs.nfev:>6d} "
                    f"{ratio:>5.2f} | {ours.n_steps:>5d} {len(theirs.t) - 1:>5d} | "
                    f"{err_ours:>9.2e} {err_theirs:>9.2e} | "
                    f"{1e3 * t_ours:>7.2f} {1e3 * t_theirs:>7.2f} {t_ours / t_theirs:>5.2f}"
                )
    print(f"\nnfev ratio ours/scipy: min {min(ratios):.3f}, max {max(ratios):.3f}")
    clock = "CPU" if "--cpu" in sys.argv else "wall"
    print(f"{clock}-time ratio ours/scipy, geometric mean (target <= {TARGET:.1f}):")
    for method, values in time_ratios.items():
        mean = _geometric_mean(values)
        verdict = "met" if mean <= TARGET else "MISSED"
        print(f"  {method:<6} {mean:5.2f}  {verdict}")
    wide_table()
    stage_sum_table()


def _heat(n: int) -> tuple:
    """Method of lines for u_t = 0.01 u_xx + sin(pi x) cos t on (0, 1), u = 0 at both ends."""
    x = np.linspace(0.0, 1.0, n + 2)[1:-1]
    laplacian = (np.diag(-2.0 * np.ones(n)) + np.diag(np.ones(n - 1), 1)
                 + np.diag(np.ones(n - 1), -1)) / (x[1] - x[0]) ** 2  # fmt: skip
    source = np.sin(np.pi * x)

    def f(t, u):
        return 0.01 * (laplacian @ u) + source * math.cos(t)

    return f, (0.0, 1.0), np.sin(2.0 * np.pi * x)


def wide_table(sizes: tuple[int, ...] = (16, 64, 256)) -> None:
    """Ours against SciPy on the heat equation for growing state sizes, rtol 1e-6."""
    print("\nWider systems: heat equation by the method of lines, rtol 1e-6, atol 1e-9")
    header = (
        f"{'n':>4} {'method':<6} | {'nfev':>6} {'scipy':>6} | {'ms':>7} {'scipy':>7} {'ratio':>5}"
    )
    print(header)
    print("-" * len(header))
    for n in sizes:
        f, t_span, y0 = _heat(n)
        for method in METHODS:
            kwargs = {"method": method, "rtol": 1e-6, "atol": 1e-9}
            ours, theirs, t_ours, t_theirs = _best_of(REPEATS, f, t_span, y0, **kwargs)
            print(
                f"{n:>4d} {method:<6} | {ours.nfev:>6d} {theirs.nfev:>6d} | "
                f"{1e3 * t_ours:>7.2f} {1e3 * t_theirs:>7.2f} {t_ours / t_theirs:>5.2f}"
            )


def stage_sum_table(widths: tuple[int, ...] = (2, 4, 64), number: int = 200) -> None:
    """Time one stage sum: dopri5's sixth stage (5 terms) and DOP853's twelfth (9 terms)."""
    print("\nOne stage sum y + h * sum_j a_ij k_j, best of 30 x 200 calls, interleaved")
    header = (
        f"{'method':<7} {'terms':>5} {'n':>4} | {'ours ns':>8} {'np.dot ns':>9} {'ratio':>5} "
        "| same bits"
    )
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    for name, row in (("dopri5", 5), ("DOP853", 11)):
        tableau = get_tableau("dopri5") if name == "dopri5" else DOP853
        terms = _nonzero(tableau.A[row])
        a = np.ascontiguousarray(tableau.A[row, :row])
        for n in widths:
            k = rng.standard_normal((tableau.stages, n))
            y, h = rng.standard_normal(n), 0.01
            h_array = np.array(h)  # as rk_step passes it for stacked stages

            def ours(k=k, y=y, terms=terms, h=h_array):
                return _combine(y, h, terms, k)

            def scipy_sum(k=k, y=y, a=a, h=h, row=row):  # scipy.integrate._ivp.rk.rk_step
                return y + np.dot(k[:row].T, a) * h

            best = [math.inf, math.inf]
            for _ in range(30):
                best[0] = min(best[0], timeit.timeit(ours, number=number) / number)
                best[1] = min(best[1], timeit.timeit(scipy_sum, number=number) / number)
            same = "yes" if np.array_equal(ours(), scipy_sum()) else "no"
            print(
                f"{name:<7} {len(terms):>5d} {n:>4d} | {1e9 * best[0]:>8.0f} {1e9 * best[1]:>9.0f} "
                f"{best[0] / best[1]:>5.2f} | {same}"
            )


if __name__ == "__main__":
    main()
