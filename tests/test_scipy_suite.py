"""SciPy's own ``solve_ivp`` test suite, run unchanged against ``odecourse.solve_ivp``.

The test functions are imported from the ``test_ivp`` module that ships inside the
installed SciPy wheel (no SciPy code is copied here).  An autouse fixture replaces the
name ``solve_ivp`` in that module's namespace by :func:`odecourse.solve_ivp`, so every
call the tests make goes to our solver.  Two adaptations, both about what a call *asks
for* rather than what it checks:

- SciPy's tests sometimes pass a solver *class* (``method=RK45``); our ``solve_ivp``
  takes method names, so a SciPy class is replaced by its name.
- LSODA is not implemented here.  Tests that loop over every method include LSODA;
  those LSODA calls are answered by SciPy's own ``solve_ivp``, so that the same loop
  still checks our RK23, RK45, DOP853, Radau and BDF.  Tests about LSODA alone are
  deselected.

Each deselected test is listed in :data:`DESELECTED` with its reason.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

suite = pytest.importorskip("scipy.integrate._ivp.tests.test_ivp")
scipy_solve_ivp = suite.solve_ivp

import odecourse  # noqa: E402

#: Tests of SciPy's internals or of what this package does not implement, with reasons.
DESELECTED = {
    "test_classes": "exercises SciPy's solver classes (RK45(...).step()), not solve_ivp",
    "test_no_integration_class": "SciPy's solver classes, not solve_ivp",
    "test_ConstantDenseOutput": "a SciPy internal class",
    "test_OdeSolution": "SciPy's OdeSolution class",
    "test_num_jac": "SciPy's internal finite-difference Jacobian num_jac",
    "test_num_jac_sparse": "SciPy's internal num_jac with sparsity groups",
    "test_event_dense_output_LSODA": "LSODA is not implemented in odecourse",
    "test_integration_complex": (
        "complex states are refused on purpose (the implicit methods, Newton and the torch "
        "front end are written for real states); see the `y0` entry of solve_ivp's docstring"
    ),
    "test_t_eval_early_event": (
        "asserts `not res.t`: SciPy returns empty Python lists when no `t_eval` point is "
        "reached, odecourse empty arrays of shapes (0,) and (n, 0), whose truth value NumPy 2 "
        "refuses; the same case is checked by test_terminal_event_before_every_t_eval below"
    ),
}


def _swapped_solve_ivp(fun, t_span, y0, method="RK45", *args, **kwargs):
    if inspect.isclass(method):
        method = method.__name__
    if method == "LSODA":
        return scipy_solve_ivp(fun, t_span, y0, method, *args, **kwargs)
    return odecourse.solve_ivp(fun, t_span, y0, method, *args, **kwargs)


@pytest.fixture(autouse=True)
def _use_odecourse(monkeypatch):
    monkeypatch.setattr(suite, "solve_ivp", _swapped_solve_ivp)


@pytest.fixture
def num_parallel_threads():
    return 1


for _name, _test in inspect.getmembers(suite, inspect.isfunction):
    if _name.startswith("test_") and _name not in DESELECTED:
        globals()[_name] = _test


def test_the_suite_was_found():
    collected = [name for name in dir(suite) if name.startswith("test_")]
    assert len(collected) > 30, collected
    assert set(DESELECTED) <= set(collected), set(DESELECTED) - set(collected)


@pytest.mark.parametrize("method", ["RK23", "RK45", "DOP853", "Radau", "BDF"])
def test_terminal_event_before_every_t_eval(method):
    def early(t, y):
        return t - 7

    early.terminal = True
    res = odecourse.solve_ivp(
        suite.fun_rational, (5, 9), [1 / 3, 2 / 9], method=method,
        t_eval=np.linspace(7.5, 9, 16), events=early,
    )  # fmt: skip
    assert res.success and res.status == 1
    assert res.message == "A termination event occurred."
    assert res.t.shape == (0,) and res.y.shape == (2, 0)
    assert res.t_events[0].tolist() == [7.0]


def test_zero_length_interval_returns_the_initial_state():
    res = odecourse.solve_ivp(lambda t, y: -y, (2.0, 2.0), [1.0, -3.0], dense_output=True)
    assert res.success and res.status == 0 and res.nfev == 0
    assert res.t.tolist() == [2.0] and res.y.tolist() == [[1.0], [-3.0]]
    assert res.sol(2.0).tolist() == [1.0, -3.0]
