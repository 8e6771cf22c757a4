"""Tests for odecourse.runge_kutta: tableau invariants, order conditions, the generic step."""

import importlib
import inspect
import math

import numpy as np
import pytest
import torch

from odecourse.convergence import observed_order
from odecourse.dense_output import HermiteInterpolant, RKInterpolant, make_interpolant
from odecourse.order_conditions import algebraic_order
from odecourse.runge_kutta import ALIASES, TABLEAUS, ButcherTableau, get_tableau, rk_step

NAMES = sorted(TABLEAUS)
EXPLICIT = [name for name in NAMES if TABLEAUS[name].explicit]
ADAPTIVE = [name for name in NAMES if TABLEAUS[name].adaptive]
DENSE = [name for name in NAMES if TABLEAUS[name].P is not None]
IMPLICIT = {"backward_euler", "implicit_midpoint", "trapezoid"}


@pytest.mark.parametrize("name", NAMES)
def test_tableau_invariants(name):
    tableau = TABLEAUS[name]
    assert tableau.name == name
    np.testing.assert_allclose(tableau.A.sum(axis=1), tableau.c, atol=1e-14)
    assert tableau.b.sum() == pytest.approx(1.0, abs=1e-14)
    assert tableau.explicit == (name not in IMPLICIT)
    assert tableau.explicit == bool(np.all(np.triu(tableau.A) == 0))
    for array in (tableau.A, tableau.b, tableau.c):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1.0


@pytest.mark.parametrize("name", NAMES)
def test_order_conditions_hold_up_to_stated_order(name):
    tableau = TABLEAUS[name]
    assert algebraic_order(tableau) == tableau.order
    if tableau.adaptive:
        assert algebraic_order(tableau, weights="b_hat") == tableau.error_order


@pytest.mark.parametrize("name", ADAPTIVE)
def test_embedded_pairs_are_fsal(name):
    tableau = TABLEAUS[name]
    assert tableau.fsal
    assert tableau.b_hat.sum() == pytest.approx(1.0, abs=1e-14)


@pytest.mark.parametrize("name", DENSE)
def test_dense_weights_satisfy_quadrature_conditions(name):
    tableau = TABLEAUS[name]
    np.testing.assert_allclose(tableau.P.sum(axis=1), tableau.b, atol=1e-14)
    for theta in (0.25, 0.5, 0.8):
        weights = tableau.P @ theta ** np.arange(1, tableau.P.shape[1] + 1)
        for k in range(1, tableau.dense_order + 1):
            assert weights @ tableau.c ** (k - 1) == pytest.approx(theta**k / k, abs=1e-13)


@pytest.mark.parametrize("name", EXPLICIT)
def test_rk_step_integrates_polynomials_exactly(name):
    tableau = TABLEAUS[name]
    t, h = 0.3, 0.7
    for k in range(tableau.order):
        step = rk_step(lambda s, y, k=k: (k + 1) * s**k * np.ones(1), t, np.zeros(1), h, tableau)
        assert step.y[0] == pytest.approx((t + h) ** (k + 1) - t ** (k + 1), rel=1e-13)


def test_rk4_matches_hand_unrolled_formula():
    def f(t, y):
        return np.array([y[1], -np.sin(y[0]) + 0.1 * t])

    t, y, h = 0.2, np.array([1.0, 0.5]), 0.1
    k1 = f(t, y)
    k2 = f(t + h / 2, y + h / 2 * k1)
    k3 = f(t + h / 2, y + h / 2 * k2)
    k4 = f(t + h, y + h * k3)
    expected = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    np.testing.assert_allclose(rk_step(f, t, y, h, get_tableau("rk4")).y, expected, rtol=1e-15)


@pytest.mark.parametrize("name", ["rk4", "dopri5"])
def test_k0_reuse_saves_one_evaluation(name):
    calls = []

    def f(t, y):
        calls.append(t)
        return -y

    y0 = np.array([1.0, 2.0])
    full = rk_step(f, 0.0, y0, 0.1, get_tableau(name))
    n_full = len(calls)
    reused = rk_step(f, 0.0, y0, 0.1, get_tableau(name), k0=-y0)
    assert len(calls) - n_full == n_full - 1
    np.testing.assert_array_equal(full.y, reused.y)


@pytest.mark.parametrize("name", ADAPTIVE)
def test_embedded_error_estimate_scales_like_h_to_error_order_plus_one(name):
    tableau = TABLEAUS[name]
    hs = np.array([0.04, 0.02, 0.01, 0.005])
    errors = [
        abs(rk_step(lambda t, y: np.sin(t) - y * y, 0.4, np.ones(1), h, tableau).error[0])
        for h in hs
    ]
    assert observed_order(hs, errors) == pytest.approx(tableau.error_order + 1, abs=0.2)


def test_rk_step_rejects_implicit_tableau():
    with pytest.raises(ValueError, match="explicit tableau"):
        rk_step(lambda t, y: -y, 0.0, np.ones(1), 0.1, get_tableau("backward_euler"))


def _rhs(t, y):
    """Array-generic right-hand side: +, *, float coefficients and ``.sum()`` only."""
    return -0.5 * y * y * y + (0.3 * math.cos(t)) * y.sum()


@pytest.mark.parametrize("name", EXPLICIT)
def test_numpy_and_torch_steps_agree(name):
    y = np.array([0.3, -1.2, 0.7])
    numpy_step = rk_step(_rhs, 0.1, y, 0.05, TABLEAUS[name])
    torch_step = rk_step(_rhs, 0.1, torch.tensor(y, dtype=torch.float64), 0.05, TABLEAUS[name])
    np.testing.assert_allclose(torch_step.y.numpy(), numpy_step.y, rtol=1e-13, atol=1e-15)


def test_torch_gradient_through_rk_step_matches_finite_differences():
    y0 = torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64, requires_grad=True)
    step = rk_step(_rhs, 0.1, y0, 0.2, get_tableau("dopri5"))
    (grad,) = torch.autograd.grad(step.y.sum(), y0)
    y = y0.detach().numpy()
    eps = 1e-6
    for j in range(3):
        e = np.eye(3)[j] * eps
        plus = rk_step(_rhs, 0.1, y + e, 0.2, get_tableau("dopri5")).y.sum()
        minus = rk_step(_rhs, 0.1, y - e, 0.2, get_tableau("dopri5")).y.sum()
        assert grad[j].item() == pytest.approx((plus - minus) / (2 * eps), rel=1e-7)


def test_hermite_interpolant_is_exact_for_cubics():
    def p(t):
        return np.array([2 * t**3 - t**2 + 3])

    def dp(t):
        return np.array([6 * t**2 - 2 * t])

    segment = HermiteInterpolant(0.5, 1.5, p(0.5), p(1.5), dp(0.5), dp(1.5))
    for t in (0.5, 0.7, 1.1, 1.5):
        np.testing.assert_allclose(segment(t), p(t), rtol=1e-14)


def test_get_tableau_accepts_scipy_aliases():
    for alias, name in ALIASES.items():
        assert get_tableau(alias) is TABLEAUS[name]
    assert get_tableau("RK45").name == "dopri5"


def test_get_tableau_unknown_name_lists_names():
    with pytest.raises(ValueError, match=r"must be one of.*'dopri5'.*got 'rk5'"):
        get_tableau("rk5")
    with pytest.raises(TypeError, match="must be a string"):
        get_tableau(4)


GOOD = {"A": [[0, 0], [1, 0]], "b": [0.5, 0.5], "c": [0, 1], "order": 2}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"c": [0, 0.9]}, "row sums of `A` must equal `c`"),
        ({"b": [0.5, 0.6]}, "`b` must sum to one"),
        ({"b": [1.0]}, r"`b` must have shape \(2,\)"),
        ({"A": [[0, 0, 0], [1, 0, 0]]}, "square"),
        ({"A": [[0, 0], [np.nan, 0]]}, "finite"),
        ({"order": 0}, "`order` must be a positive integer"),
        ({"b_hat": [1.0, 0.0]}, "give `b_hat` and `error_order` together"),
        ({"b_hat": [0.9, 0.0], "error_order": 1}, "`b_hat` must sum to one"),
        ({"b_hat": [1.0, 0.0], "error_order": 2}, "`error_order` must be an integer in"),
        ({"P": [[1.0], [0.0]], "dense_order": 1}, "dense output at theta = 1 must equal `b`"),
        ({"P": [[0.5]], "dense_order": 1}, "`P` must have 2 rows"),
        ({"P": [[0.5], [0.5]]}, "give `P` and `dense_order` together"),
    ],
)
def test_tableau_validation_errors(change, message):
    with pytest.raises(ValueError, match=message):
        ButcherTableau("bad", **{**GOOD, **change})


def test_valid_custom_tableau_with_embedded_pair():
    tableau = ButcherTableau("heun_euler", **GOOD, b_hat=[1.0, 0.0], error_order=1)
    assert tableau.adaptive and tableau.explicit and not tableau.fsal
    assert "heun_euler" in repr(tableau)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"b": None}, TypeError, "`b` is required"),
        ({"c": None}, TypeError, "`c` is required"),
        ({"order": True}, ValueError, "`order` must be a positive integer; got True"),
        ({"order": 2.0}, ValueError, "`order` must be a positive integer"),
        ({"P": [[0.5], [0.5]], "dense_order": 0}, ValueError, "`dense_order` must be a positive"),
    ],
)
def test_tableau_rejects_missing_or_mistyped_fields(change, error, message):
    with pytest.raises(error, match=message):
        ButcherTableau("bad", **{**GOOD, **change})


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (("rk4",), {}, TypeError, "`tableau` must be a ButcherTableau; got str"),
        ((TABLEAUS["rk4"],), {"weights": "c"}, ValueError, "`weights` must be one of"),
        ((TABLEAUS["rk4"],), {"weights": "b_hat"}, ValueError, "no embedded weights"),
        ((TABLEAUS["rk4"],), {"max_order": 0}, ValueError, "`max_order` must be an integer >= 1"),
        ((TABLEAUS["rk4"],), {"max_order": 2.5}, TypeError, "`max_order` must be an integer"),
        ((TABLEAUS["rk4"],), {"tol": 0.0}, ValueError, "`tol` must be positive"),
    ],
)
def test_algebraic_order_validation(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        algebraic_order(*args, **kwargs)


def test_algebraic_order_is_capped_by_max_order():
    assert algebraic_order(TABLEAUS["dopri5"], max_order=3) == 3
    assert algebraic_order(TABLEAUS["euler"], max_order=1) == 1


@pytest.mark.parametrize("name", [*EXPLICIT, "hermite"])
@pytest.mark.parametrize("h", [0.3, -0.3])
def test_interpolants_reproduce_both_ends_of_the_step(name, h):
    """Dense output (tableau or Hermite) is continuous: exact at t_old and t_new, both ways."""
    tableau = None if name == "hermite" else TABLEAUS[name]
    t, y = 0.2, np.array([0.3, -1.2, 0.7])
    step = rk_step(_rhs, t, y, h, tableau or TABLEAUS["rk4"])
    f_old, f_new = _rhs(t, y), _rhs(t + h, step.y)
    interpolant = make_interpolant(tableau, t, t + h, y, step.y, f_old, f_new, step.k)
    expected = (
        RKInterpolant if tableau is not None and tableau.P is not None else HermiteInterpolant
    )
    assert isinstance(interpolant, expected)
    np.testing.assert_allclose(interpolant(t), y, rtol=1e-15)
    np.testing.assert_allclose(interpolant(t + h), step.y, rtol=1e-14, atol=1e-15)


MODULES = [
    "runge_kutta", "dense_output", "order_conditions", "adaptive", "implicit", "solve",
    "stability", "convergence", "step_history", "multistep", "multistep_solver", "ivp",
    "picard", "_validation", "_arrays",
]  # fmt: skip


@pytest.mark.parametrize("module_name", MODULES)
def test_docstrings_have_no_stray_escape_characters(module_name):
    r"""A ``\t`` in a non-raw docstring (``:math:`\theta```) silently becomes a tab."""
    module = importlib.import_module(f"odecourse.{module_name}")
    objects = [module] + [getattr(module, name) for name in module.__all__]
    for obj in objects:
        for doc in (inspect.getdoc(obj) or "", getattr(obj, "__doc__", None) or ""):
            assert not set(doc) & set("\t\b\f\a\r\v"), f"{module_name}: {obj!r:.40}"


@pytest.mark.parametrize("name", [*EXPLICIT, "dop853"])
def test_stacked_stages_give_the_same_bits_as_the_term_by_term_sum(name):
    # rk_step keeps a float64 vector's stages as rows of one array and sums them with
    # np.add.accumulate; that must add the same products in the same order as the loop.
    from odecourse.dop853 import DOP853
    from odecourse.runge_kutta import _combine

    tableau = DOP853 if name == "dop853" else TABLEAUS[name]
    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 15, 16, 64, 300):  # the sum of rows switches method at 16 entries
        y = rng.standard_normal(n)
        k = rng.standard_normal((tableau.stages, n)) * np.logspace(-8, 8, tableau.stages)[:, None]
        rows = [*tableau._rows, *tableau._weights, tableau._error2_weights]
        for terms in rows:
            for base in (y, None):  # None: an error estimate, h * sum alone
                listed = _combine(base, 0.37, terms, list(k))
                for h in (0.37, np.array(0.37)):  # rk_step passes h as a 0-d array
                    stacked = _combine(base, h, terms, k)
                    assert np.asarray(stacked).tobytes() == np.asarray(listed).tobytes()


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_tensor_stage_sums_give_the_bits_of_the_plain_formula(dtype):
    # _combine multiplies the first stage by a cached 0-d tensor of the weight (for float32
    # and float64) to spare torch wrapping the float; the bits must be those of w * k.
    from odecourse.runge_kutta import _combine

    tableau = TABLEAUS["dopri5"]
    generator = torch.Generator().manual_seed(4)
    k = [torch.randn(64, 3, generator=generator).to(dtype) * 3.0**j for j in range(7)]
    y = torch.randn(64, 3, generator=generator).to(dtype)
    before = [stage.clone() for stage in (y, *k)]
    for terms in [*tableau._rows[1:], *tableau._weights]:
        (first, weight), *rest = terms
        dy = weight * k[first]
        for j, w in rest:
            dy = dy.add(k[j], alpha=w)
        assert torch.equal(_combine(y, 0.37, terms, k), y.add(dy, alpha=0.37))
        assert torch.equal(_combine(None, 0.37, terms, k), 0.37 * dy)
    # The sum accumulates in place, in a tensor of its own: the stages and y are untouched.
    assert all(torch.equal(a, b) for a, b in zip(before, (y, *k), strict=True))


def test_tensor_stage_sum_gradients_match_finite_differences():
    # The in-place accumulation must leave autograd's graph right, for the stages and for y.
    from odecourse.runge_kutta import _combine

    terms = TABLEAUS["dopri5"]._rows[5]  # five terms
    generator = torch.Generator().manual_seed(5)
    inputs = [torch.randn(4, 2, generator=generator, dtype=torch.float64) for _ in range(7)]
    inputs = [x.requires_grad_() for x in inputs]

    def stage_sum(y, *k):
        return _combine(y, 0.37, terms, list(k))

    def error_estimate(*k):
        return _combine(None, 0.37, terms, list(k))

    assert torch.autograd.gradcheck(stage_sum, inputs)
    assert torch.autograd.gradcheck(error_estimate, inputs[:6])


def test_scalar_like_makes_a_tensor_only_where_no_bit_changes():
    from odecourse._arrays import scalar_like

    for dtype in (torch.float32, torch.float64):
        value = scalar_like(1e-6, torch.ones(2, dtype=dtype))
        assert isinstance(value, torch.Tensor) and value.dtype == dtype and value.ndim == 0
        assert value.device.type == "cpu" and float(value) == float(torch.tensor(1e-6, dtype=dtype))
    # Half precisions compute with the unrounded float; NumPy and non-floats pass as they are.
    for x, value in [(torch.ones(2, dtype=torch.float16), 1e-6), (np.ones(2), 1e-6),
                     (torch.ones(2), 3), (torch.ones(2), np.float64(0.5))]:  # fmt: skip
        assert scalar_like(value, x) is value


def test_rk_step_stacks_only_float64_vectors():
    tableau = get_tableau("dopri5")
    for y in (np.ones(3), np.ones((2, 2)), np.ones(3, dtype=np.float32), torch.ones(3)):
        step = rk_step(lambda t, y: -y, 0.0, y, 0.1, tableau)
        assert type(step.y) is type(y) and step.y.dtype == y.dtype and step.y.shape == y.shape
        assert len(step.k) == tableau.stages
    # A float32 state keeps float32 arithmetic (the stages are not widened to float64).
    y32 = np.ones(3, dtype=np.float32)
    step = rk_step(lambda t, y: -y, 0.0, y32, 0.1, tableau)
    assert step.y.dtype == np.float32
    assert float(step.y[0]) == pytest.approx(math.exp(-0.1), rel=1e-6)
