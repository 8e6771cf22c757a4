"""Compare odecourse.solve_ivp with scipy.integrate.solve_ivp on non-stiff problems.

For each problem, method (RK45 = our dopri5, RK23 = our bosh3) and tolerance
(rtol in 1e-3, 1e-6, 1e-9 with atol = 1e-3 * rtol) it prints the number of
function evaluations, accepted steps, the max-norm error at the final time
against a tight reference (SciPy DOP853, rtol 1e-13), and the wall time.

Run: ``.venv/bin/python benchmarks/bench_solve_ivp.py`` (well under a minute).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.integrate

from odecourse.ivp import get_problem
from odecourse.solve import solve_ivp

RTOLS = (1e-3, 1e-6, 1e-9)
METHODS = ("RK45", "RK23")


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
    start = time.perf_counter()
    result = solver(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    header = (
        f"{'problem':<20} {'method':<6} {'rtol':>6} | {'nfev':>6} {'scipy':>6} {'ratio':>5} | "
        f"{'steps':>5} {'scipy':>5} | {'error':>9} {'scipy':>9} | {'ms':>6} {'scipy':>6}"
    )
    print(header)
    print("-" * len(header))
    ratios = []
    for name, f, t_span, y0 in problems():
        reference = scipy.integrate.solve_ivp(
            f, t_span, y0, method="DOP853", rtol=1e-13, atol=1e-16
        ).y[:, -1]
        for method in METHODS:
            for rtol in RTOLS:
                kwargs = {"method": method, "rtol": rtol, "atol": rtol * 1e-3}
                ours, t_ours = _timed(solve_ivp, f, t_span, y0, **kwargs)
                theirs, t_theirs = _timed(scipy.integrate.solve_ivp, f, t_span, y0, **kwargs)
                err_ours = np.max(np.abs(ours.y[:, -1] - reference))
                err_theirs = np.max(np.abs(theirs.y[:, -1] - reference))
                ratio = ours.nfev / theirs.nfev
                ratios.append(ratio)
                print(
                    f"{name:<20} {method:<6} {rtol:>6.0e} | {ours.nfev:>6d} {theirs.nfev:>6d} "
                    f"{ratio:>5.2f} | {ours.n_steps:>5d} {len(theirs.t) - 1:>5d} | "
                    f"{err_ours:>9.2e} {err_theirs:>9.2e} | "
                    f"{1e3 * t_ours:>6.1f} {1e3 * t_theirs:>6.1f}"
                )
    print(f"\nnfev ratio ours/scipy: min {min(ratios):.3f}, max {max(ratios):.3f}")


if __name__ == "__main__":
    main()
