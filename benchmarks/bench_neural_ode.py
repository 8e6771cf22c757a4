r"""Compare odecourse.odeint / odeint_adjoint with torchdiffeq on one neural ODE.

The model is a 2-32-32-2 tanh MLP vector field on a batch of 256 states,
integrated over t in [0, 4]; the loss is the mean square of z(4).  Rows:

- dopri5 at rtol 1e-6, atol 1e-8: backprop through the solver, the adjoint,
  and the adjoint with the seminorm;
- a fixed-step run, 64 steps of size 1/16: our ``rk38`` against torchdiffeq's
  ``rk4`` (which is the 3/8 rule), and our classical ``rk4``.

Columns: forward and backward wall time (best of 9 repeats: the least noisy estimate
on a shared machine), evaluations of the
field forward and backward (counted by a wrapper), the relative difference of
the parameter gradient to torchdiffeq's (same row kind) and to our backprop,
and the memory of the autograd graph: bytes of the tensors saved for backward
(``torch.autograd.graph.saved_tensors_hooks``, each storage counted once).
That is the memory backprop pays per step and the adjoint avoids; process RSS
is too coarse on CPU to separate the rows.

A second table reports the solver's overhead on a 2-64-2 tanh MLP, dopri5 at
rtol 1e-6, atol 1e-8, t in [0, 5], at batch 256 and 4096, with and without
autograd: the share of the wall time not spent evaluating the field.  It is
measured directly, ``1 - (time inside the field) / (time of the solve)``, the time
inside being summed by a wrapper around the field during the solve (column
``overhead``), and also estimated as ``1 - NFE * (time of one evaluation alone) /
(time of the solve)`` (column ``estimate``; an evaluation alone, repeated in a
tight loop, runs faster than inside a solve, so this estimate is higher).  Each
solve is the best of 9, the libraries interleaved.  The targets (no autograd, our
dopri5): overhead <= 30% at batch 256 and <= 20% at batch 4096.

A last table times one stage sum :math:`y + h \sum_j a_{ij} k_j` at batch 256 and 4096:
ours (one ``Tensor.add`` per term), one matrix product over the stages stacked as a
matrix (stacking included), and the product alone on stages already stacked; and it says
whether the product gives our bits.  It shows what the matrix product would save per
sum.

torchdiffeq is optional: ``.venv/bin/pip install torchdiffeq==0.2.5 --no-deps``;
without it the torchdiffeq rows are skipped.  Runs single-threaded on the CPU.

Run: ``.venv/bin/python benchmarks/bench_neural_ode.py`` (one to two minutes; add ``--cpu`` to
time CPU rather than wall time on a busy machine).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import sys
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from odecourse.adjoint import odeint_adjoint
from odecourse.memory import saved_tensor_bytes
from odecourse.odeint import CountedFunc, odeint
from odecourse.runge_kutta import _combine, get_tableau

try:
    import torchdiffeq
except ImportError:  # pragma: no cover - optional dependency
    torchdiffeq = None

#: The clock of every timing: wall time by default; with ``--cpu`` the CPU time of this
#: process, which other processes on a busy machine do not inflate (the code timed is
#: single-threaded, so on an idle machine the two agree).
CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}


def _clock() -> float:
    return CLOCK["cpu" if "--cpu" in sys.argv else "wall"]()


BATCH = 256
T_END = 4.0
REPEATS = 9
TOL = {"rtol": 1e-6, "atol": 1e-8}
FIXED = {"options": {"step_size": 1 / 16}}
#: dopri5 with torchdiffeq's embedded weights (Shampine's 4th-order error estimator), so that
#: the step-size decisions, hence the NFE, can be compared like for like.
DOPRI5_TDQ = dataclasses.replace(
    get_tableau("dopri5"),
    name="dopri5_tdq",
    b_hat=[1951 / 21600, 0, 22642 / 50085, 451 / 720, -12231 / 42400, 649 / 6300, 1 / 60],
)


def _field(widths: tuple[int, ...], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(widths):
        layers += [nn.Linear(n_in, n_out), nn.Tanh()]
    return _Autonomous(nn.Sequential(*layers[:-1]))


class _Autonomous(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)


@dataclass
class Row:
    name: str
    forward_s: float
    backward_s: float
    nfe_forward: int
    nfe_backward: int
    graph_bytes: int
    grad: torch.Tensor


def _measure(
    name: str, solve: Callable, func: CountedFunc, y0: torch.Tensor, t: torch.Tensor
) -> Row:
    params = tuple(func.parameters())
    forward_times, backward_times = [], []
    for _ in range(REPEATS):
        func.reset()
        start = _clock()
        loss, graph = saved_tensor_bytes(lambda: solve(func, y0, t)[-1].pow(2).mean())
        forward_times.append(_clock() - start)
        nfe_forward = func.nfe
        func.reset()
        start = _clock()
        grads = torch.autograd.grad(loss, params)
        backward_times.append(_clock() - start)
    grad = torch.cat([g.reshape(-1) for g in grads])
    return Row(
        name, min(forward_times), min(backward_times),
        nfe_forward, func.nfe, graph, grad,
    )  # fmt: skip


def _solvers() -> list[tuple[str, str, Callable]]:
    """(row name, reference row for gradient agreement, solve(func, y0, t))."""
    rows: list[tuple[str, str, Callable]] = []
    adjoint_semi = {"adjoint_options": {"norm": "seminorm"}}
    ours = [
        ("dopri5 backprop", lambda f, y, t: odeint(f, y, t, **TOL)),
        ("dopri5 adjoint", lambda f, y, t: odeint_adjoint(f, y, t, **TOL)),
        ("dopri5 adjoint+seminorm", lambda f, y, t: odeint_adjoint(f, y, t, **TOL, **adjoint_semi)),
        ("dopri5* backprop", lambda f, y, t: odeint(f, y, t, method=DOPRI5_TDQ, **TOL)),
        ("rk38 h=1/16 backprop", lambda f, y, t: odeint(f, y, t, method="rk38", **FIXED)),
        ("rk4 h=1/16 backprop", lambda f, y, t: odeint(f, y, t, method="rk4", **FIXED)),
    ]
    if torchdiffeq is not None:
        theirs = [
            ("dopri5 backprop", lambda f, y, t: torchdiffeq.odeint(f, y, t, **TOL)),
            ("dopri5 adjoint", lambda f, y, t: torchdiffeq.odeint_adjoint(f, y, t, **TOL)),
            (
                "dopri5 adjoint+seminorm",
                lambda f, y, t: torchdiffeq.odeint_adjoint(f, y, t, **TOL, **adjoint_semi),
            ),
            (
                "rk38 h=1/16 backprop",
                lambda f, y, t: torchdiffeq.odeint(f, y, t, method="rk4", **FIXED),
            ),
        ]
    else:
        theirs = []
    for label, solve in ours:
        reference = f"torchdiffeq {label.replace('*', '')}"
        rows.append((f"odecourse  {label}", reference, solve))
    for label, solve in theirs:
        rows.append((f"torchdiffeq {label}", "", solve))
    return rows


def comparison_table(dtype: torch.dtype = torch.float32) -> list[Row]:
    func = CountedFunc(_field((2, 32, 32, 2))).to(dtype)
    y0 = torch.randn(BATCH, 2, generator=torch.Generator().manual_seed(1)).to(dtype)
    t = torch.tensor([0.0, T_END], dtype=dtype)
    results = {name: _measure(name, solve, func, y0, t) for name, _, solve in _solvers()}
    backprop = results["odecourse  dopri5 backprop"].grad
    header = (
        f"{'solver':<38} {'fwd ms':>8} {'bwd ms':>8} {'NFE f':>6} {'NFE b':>6} "
        f"{'graph KiB':>10} {'vs tdq':>9} {'vs ours bp':>10}"
    )
    print(f"\nNeural ODE 2-32-32-2 tanh, batch {BATCH}, {dtype}, t in [0, {T_END:g}]")
    print(header)
    print("-" * len(header))
    for name, reference, _ in _solvers():
        row = results[name]
        vs_tdq = _relative(row.grad, results[reference].grad) if reference in results else "-"
        print(
            f"{name:<38} {1e3 * row.forward_s:8.1f} {1e3 * row.backward_s:8.1f} "
            f"{row.nfe_forward:6d} {row.nfe_backward:6d} {row.graph_bytes / 1024:10.0f} "
            f"{vs_tdq:>9} {_relative(row.grad, backprop):>10}"
        )
    if torchdiffeq is None:
        print("torchdiffeq is not installed: its rows are skipped "
              "(.venv/bin/pip install torchdiffeq==0.2.5 --no-deps).")  # fmt: skip
    return list(results.values())


def _relative(a: torch.Tensor, b: torch.Tensor) -> str:
    return f"{float((a - b).norm() / b.norm()):.1e}"


def _time_it(run: Callable[[], Any], repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = _clock()
        run()
        times.append(_clock() - start)
    return min(times)


class _TimedField(nn.Module):
    """Wrap a field: count its evaluations and add up the wall time spent inside it."""

    def __init__(self, func: nn.Module) -> None:
        super().__init__()
        self.func, self.inside, self.nfe = func, 0.0, 0

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        start = _clock()
        out = self.func(t, y)
        self.inside += _clock() - start
        self.nfe += 1
        return out


OVERHEAD_BATCHES = (256, 4096)
OVERHEAD_T_END = 5.0
OVERHEAD_TARGETS = {256: 0.30, 4096: 0.20}  #: our dopri5, no autograd


def overhead_table() -> None:
    """Share of the solve's wall time spent outside the field, forward only."""
    field = _field((2, 64, 2))
    t = torch.tensor([0.0, OVERHEAD_T_END])
    libraries = [
        ("odecourse", odeint),
        ("odecourse*", lambda *args, **kw: odeint(*args, method=DOPRI5_TDQ, **kw)),
    ]
    if torchdiffeq is not None:
        libraries.append(("torchdiffeq", torchdiffeq.odeint))
    print(
        f"\nSolver overhead, 2-64-2 tanh MLP, dopri5 rtol 1e-6 atol 1e-8, "
        f"t in [0, {OVERHEAD_T_END:g}]"
    )
    header = (
        f"{'solver':<12} {'batch':>5} {'grad':<4} {'NFE':>4} {'solve ms':>9} {'field ms':>9} "
        f"{'overhead':>8} {'estimate':>8}  target"
    )
    print(header)
    print("-" * len(header))
    for batch in OVERHEAD_BATCHES:
        y0 = torch.randn(batch, 2, generator=torch.Generator().manual_seed(2))
        for grad in (False, True):
            with torch.set_grad_enabled(grad):
                per_eval = _time_it(lambda y0=y0: [field(t[0], y0) for _ in range(50)]) / 50
                best: dict[str, tuple[float, float, int]] = {}
                for _ in range(REPEATS):  # interleaved: every library sees the same load
                    for name, solve in libraries:
                        timed = _TimedField(field)
                        start = _clock()
                        solve(timed, y0, t, **TOL)
                        total = _clock() - start
                        if name not in best or total < best[name][0]:
                            best[name] = (total, timed.inside, timed.nfe)
            for name, _ in libraries:
                total, inside, nfe = best[name]
                share, estimate = 1.0 - inside / total, 1.0 - nfe * per_eval / total
                target = ""
                if name == "odecourse" and not grad:
                    limit = OVERHEAD_TARGETS[batch]
                    target = f"<= {100 * limit:.0f}%: {'met' if share <= limit else 'MISSED'}"
                print(
                    f"{name:<12} {batch:5d} {'on' if grad else 'off':<4} {nfe:4d} "
                    f"{1e3 * total:9.2f} {1e3 * inside:9.2f} {100 * share:7.0f}% "
                    f"{100 * estimate:7.0f}%  {target}"
                )


STAGE_SUM_BATCHES = (256, 4096)
STAGE_SUM_H = 0.01


def _stage_sums(y: torch.Tensor | None, terms: Any, k: list[torch.Tensor]) -> tuple:
    """The three ways of :func:`stage_sum_table` to form ``y + h * sum_j w_j k_j``.

    With ``y`` None they form ``h * sum_j w_j k_j`` alone, as for an error estimate.
    """
    h, index = STAGE_SUM_H, [j for j, _ in terms]
    weights = torch.tensor([[w for _, w in terms]], dtype=k[0].dtype)
    shape = k[0].shape

    def stack() -> torch.Tensor:
        return torch.stack([k[j] for j in index]).view(len(index), -1)

    def product(stages: torch.Tensor) -> torch.Tensor:
        if y is None:
            return torch.mm(weights, stages).mul_(h).view(shape)
        return torch.addmm(y.view(1, -1), weights, stages, alpha=h).view(shape)

    def ours() -> torch.Tensor:
        return _combine(y, h, terms, k)

    def stack_mm() -> torch.Tensor:
        return product(stack())

    stacked = stack()

    def mm_only() -> torch.Tensor:
        return product(stacked)

    return ours, stack_mm, mm_only


def stage_sum_table(number: int = 200) -> None:
    """Time one stage sum of dopri5 on float32 states of shape (batch, 2), three ways.

    ``ours`` is the core's sum (:func:`odecourse.runge_kutta._combine`): one
    ``Tensor.add(alpha=)`` per term.  ``stack+mm`` is one matrix product over the stages
    stacked as the rows of a matrix, ``torch.addmm(y, a_i, K, alpha=h)``, with the stacking
    counted (the core keeps the stages as separate tensors, as the field returns them).
    ``mm only`` is the product alone, on stages already stacked: the most a stacked layout
    could save.  The last column says whether the product gives our bits.
    """
    print(
        "\nOne stage sum y + h * sum_j a_ij k_j of dopri5 (float32, state (batch, 2)), "
        f"best of 30 x {number} calls, interleaved"
    )
    header = (
        f"{'row':<12} {'terms':>5} {'batch':>5} | {'ours us':>8} {'stack+mm us':>11} "
        f"{'mm only us':>10} | same bits"
    )
    print(header)
    print("-" * len(header))
    tableau = get_tableau("dopri5")
    generator = torch.Generator().manual_seed(3)
    for batch in STAGE_SUM_BATCHES:
        k = [torch.randn(batch, 2, generator=generator) for _ in range(tableau.stages)]
        y = torch.randn(batch, 2, generator=generator)
        for label, state, terms in (
            ("stage 6", y, tableau._rows[5]),
            ("error", None, tableau._weights[1]),
        ):
            runs = _stage_sums(state, terms, k)
            best = [math.inf] * len(runs)
            for _ in range(30):
                for i, run in enumerate(runs):
                    best[i] = min(best[i], timeit.timeit(run, number=number) / number)
            same = "yes" if torch.equal(runs[0](), runs[1]()) else "no"
            print(
                f"{label:<12} {len(terms):>5d} {batch:>5d} | {1e6 * best[0]:>8.1f} "
                f"{1e6 * best[1]:>11.1f} {1e6 * best[2]:>10.1f} | {same}"
            )


def main() -> None:
    torch.set_num_threads(1)
    print("dopri5* = our dopri5 with torchdiffeq's embedded error weights (Shampine's estimator).")
    comparison_table()
    overhead_table()
    stage_sum_table()


if __name__ == "__main__":
    main()
