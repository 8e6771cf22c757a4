"""Runge-Kutta methods as data: validated Butcher tableaus and one generic explicit step.

A Runge-Kutta method with :math:`s` stages is its Butcher tableau
:math:`(A, b, c)`.  This module holds the :class:`ButcherTableau` type, which
checks itself on construction, a registry of named tableaus
(:data:`TABLEAUS`, :func:`get_tableau`), the single explicit step routine
:func:`rk_step` that serves every explicit tableau.  Dense output built from a
step lives in :mod:`odecourse.dense_output`, and the check of a tableau's
order conditions by rooted trees in :mod:`odecourse.order_conditions`.

The step and the interpolants use only ``+``, ``*`` and Python floats on the
state, so the same lines integrate a NumPy array or a batch of torch tensors.

Taught in Chapter 2 (tableaus, the generic step, order conditions) and
Chapter 3 (embedded pairs, FSAL, dense output).

References
----------
hairer1993: E. Hairer, S. P. Norsett, G. Wanner, Solving Ordinary Differential
Equations I: Nonstiff Problems, 2nd ed., Springer, 1993, Sec. II.1-II.6.
dormand1980: J. R. Dormand, P. J. Prince, A family of embedded Runge-Kutta
formulae, J. Comput. Appl. Math. 6 (1980) 19-26.
bogacki1989: P. Bogacki, L. F. Shampine, A 3(2) pair of Runge-Kutta formulas,
Appl. Math. Lett. 2 (1989) 321-325.
shampine1997: L. F. Shampine, M. W. Reichelt, The MATLAB ODE suite, SIAM J. Sci.
Comput. 18 (1997) 1-22.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from numbers import Integral
from typing import Any

import numpy as np

from odecourse._arrays import add_scaled, is_torch, scalar_like
from odecourse._validation import check_choice, real_array

__all__ = [
    "ALIASES",
    "TABLEAUS",
    "ButcherTableau",
    "RKStep",
    "get_tableau",
    "resolve_tableau",
    "rk_step",
]

_TOL = 1e-12  # tolerance for the consistency checks on tableau coefficients


def _read_only(name: str, value: Any, ndim: int) -> np.ndarray:
    """Return ``value`` as a read-only float64 copy of rank ``ndim``."""
    array = real_array(name, value).copy()
    if array.ndim != ndim or not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must be a finite {ndim}-D array; got shape {array.shape}.")
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class ButcherTableau:
    r"""A Runge-Kutta method, explicit or implicit, as its Butcher tableau.

    Parameters
    ----------
    name : str
        Short name, as in the registry (``"rk4"``).
    A : array_like, shape (s, s)
        Stage coefficients :math:`a_{ij}`.
    b : array_like, shape (s,)
        Weights of the propagated solution.
    c : array_like, shape (s,)
        Nodes; must equal the row sums of ``A``.
    order : int
        Order of the propagated solution.
    b_hat : array_like, shape (s,), optional
        Weights of the embedded solution used for the error estimate.
    error_order : int, optional
        Order of the embedded solution (required with ``b_hat``).
    P : array_like, shape (s, q), optional
        Dense-output coefficients: :math:`b(\theta) = P\,[\theta, \theta^2, \dots, \theta^q]^T`,
        so that :math:`b(1) = b`.
    dense_order : int, optional
        Order of the dense output (required with ``P``).
    b_hat2 : array_like, shape (s,), optional
        A second, lower-order embedded formula (DOP853's order-3 one).  The error
        estimate then combines both, :math:`\|e\|^2 / \sqrt{\|e\|^2 + 0.01\,\|e_2\|^2}`
        (see :func:`odecourse.adaptive.error_norm`), and ``error_order`` is the
        order that this combined estimate behaves like (7 for DOP853).
    A_extra : array_like, shape (m, s + m), optional
        Stages used only by the dense output (DOP853's three): extra stage
        :math:`i` combines the :math:`s` stages of the step and the extra stages
        before it.  ``P`` then has :math:`s + m` rows.
    c_extra : array_like, shape (m,), optional
        Nodes of the extra stages (required with ``A_extra``).
    error_weights : array_like, shape (s,), optional
        The error weights :math:`b - \hat b` as published, for a method given by
        them (DOP853's order-5 estimate): used instead of the rounded difference
        ``b - b_hat``, with which they must agree.

    Notes
    -----
    One step of size :math:`h` reads

    .. math::
        k_i = f\Big(t + c_i h,\; y + h \sum_j a_{ij} k_j\Big), \qquad
        y_{n+1} = y_n + h \sum_i b_i k_i .

    Construction checks shapes, :math:`\sum_j a_{ij} = c_i`, :math:`\sum_i b_i = 1`,
    :math:`\sum_i \hat b_i = 1` and :math:`P\mathbf{1} = b` (extra stages: weight 0,
    rows of ``A_extra`` summing to ``c_extra``), and raises ``ValueError``
    naming the failed condition.  Arrays are stored read-only.

    Taught in Chapter 2.
    """

    name: str
    A: np.ndarray
    b: np.ndarray
    c: np.ndarray
    order: int
    b_hat: np.ndarray | None = None
    error_order: int | None = None
    P: np.ndarray | None = None
    dense_order: int | None = None
    b_hat2: np.ndarray | None = None
    A_extra: np.ndarray | None = None
    c_extra: np.ndarray | None = None
    error_weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        A = _read_only("A", self.A, 2)
        s = A.shape[0]
        if A.shape != (s, s) or s == 0:
            raise ValueError(f"`A` must be a non-empty square matrix; got shape {A.shape}.")
        arrays = {"A": A}
        for key in ("b", "c", "b_hat", "b_hat2", "error_weights"):
            value = getattr(self, key)
            if value is None and key in ("b", "c"):
                raise TypeError(f"`{key}` is required: an array of shape ({s},); got None.")
            if value is not None:
                arrays[key] = _read_only(key, value, 1)
                if arrays[key].shape != (s,):
                    raise ValueError(f"`{key}` must have shape ({s},); got {arrays[key].shape}.")
        arrays.update(self._extra_stages(s))
        rows = s + (len(arrays["c_extra"]) if "c_extra" in arrays else 0)
        if self.P is not None:
            arrays["P"] = _read_only("P", self.P, 2)
            if arrays["P"].shape[0] != rows:
                raise ValueError(f"`P` must have {rows} rows; got shape {arrays['P'].shape}.")
        for key, array in arrays.items():
            object.__setattr__(self, key, array)
        self._check_consistency()
        for key in ("order", "error_order", "dense_order"):  # np.int64(4) is stored as 4
            if getattr(self, key) is not None:
                object.__setattr__(self, key, int(getattr(self, key)))
        self._check_extensions()

    def _extra_stages(self, s: int) -> dict[str, np.ndarray]:
        """Read ``A_extra`` and ``c_extra`` (dense-output stages), checking their shapes."""
        if (self.A_extra is None) != (self.c_extra is None):
            raise ValueError(f"{self.name}: give `A_extra` and `c_extra` together.")
        if self.A_extra is None:
            return {}
        A_extra = _read_only("A_extra", self.A_extra, 2)
        c_extra = _read_only("c_extra", self.c_extra, 1)
        m = c_extra.shape[0]
        if m == 0 or A_extra.shape != (m, s + m):
            raise ValueError(
                f"`A_extra` must have shape (m, {s} + m) with m = len(c_extra) >= 1; "
                f"got shapes {A_extra.shape} and {c_extra.shape}."
            )
        return {"A_extra": A_extra, "c_extra": c_extra}

    def _check_extensions(self) -> None:
        """Check the published error weights, the second embedded formula, the extra stages."""
        if self.error_weights is not None and (
            self.b_hat is None
            or not np.allclose(self.b - self.b_hat, self.error_weights, rtol=0, atol=_TOL)
        ):
            raise ValueError(f"{self.name}: `error_weights` must equal `b - b_hat`.")
        if self.b_hat2 is not None:
            if self.b_hat is None:
                raise ValueError(f"{self.name}: `b_hat2` needs `b_hat` and `error_order`.")
            if abs(self.b_hat2.sum() - 1) > _TOL:
                raise ValueError(
                    f"{self.name}: the embedded weights `b_hat2` must sum to one; "
                    f"got {self.b_hat2.sum()}."
                )
        if self.A_extra is None:
            return
        s = self.stages
        if self.P is None:
            raise ValueError(f"{self.name}: the extra stages `A_extra` need `P`.")
        if any(np.any(row[s + i :] != 0) for i, row in enumerate(self.A_extra)):
            raise ValueError(f"{self.name}: extra stage i may only use the extra stages before it.")
        if not np.allclose(self.A_extra.sum(axis=1), self.c_extra, rtol=0, atol=_TOL):
            raise ValueError(
                f"{self.name}: the row sums of `A_extra` must equal `c_extra`; got row sums "
                f"{self.A_extra.sum(axis=1)} and c_extra = {self.c_extra}."
            )

    def _check_consistency(self) -> None:
        if not _is_int(self.order) or self.order < 1:
            raise ValueError(f"`order` must be a positive integer; got {self.order!r}.")
        if not np.allclose(self.A.sum(axis=1), self.c, rtol=0, atol=_TOL):
            raise ValueError(
                f"{self.name}: the row sums of `A` must equal `c`; got row sums "
                f"{self.A.sum(axis=1)} and c = {self.c}."
            )
        if abs(self.b.sum() - 1) > _TOL:
            raise ValueError(f"{self.name}: the weights `b` must sum to one; got {self.b.sum()}.")
        if (self.b_hat is None) != (self.error_order is None):
            raise ValueError(f"{self.name}: give `b_hat` and `error_order` together.")
        if self.b_hat is not None:
            if abs(self.b_hat.sum() - 1) > _TOL:
                raise ValueError(
                    f"{self.name}: the embedded weights `b_hat` must sum to one; "
                    f"got {self.b_hat.sum()}."
                )
            if np.allclose(self.b_hat, self.b, rtol=0, atol=_TOL):
                raise ValueError(
                    f"{self.name}: the embedded weights `b_hat` must differ from `b`; got "
                    f"b_hat = b = {self.b}, whose error estimate b - b_hat is zero, so every "
                    "step would be accepted. Give the weights of a lower-order formula."
                )
            if not _is_int(self.error_order) or not 1 <= self.error_order < self.order:
                raise ValueError(
                    f"{self.name}: `error_order` must be an integer in [1, order); "
                    f"got {self.error_order!r}."
                )
        if (self.P is None) != (self.dense_order is None):
            raise ValueError(f"{self.name}: give `P` and `dense_order` together.")
        if self.dense_order is not None and (not _is_int(self.dense_order) or self.dense_order < 1):
            raise ValueError(
                f"{self.name}: `dense_order` must be a positive integer; got {self.dense_order!r}."
            )
        b = self.b if self.c_extra is None else np.pad(self.b, (0, len(self.c_extra)))
        if self.P is not None and not np.allclose(self.P.sum(axis=1), b, rtol=0, atol=_TOL):
            raise ValueError(
                f"{self.name}: the dense output at theta = 1 must equal `b`; got row sums of "
                f"`P` {self.P.sum(axis=1)}."
            )

    @property
    def stages(self) -> int:
        """Number of stages :math:`s`."""
        return self.A.shape[0]

    @cached_property
    def explicit(self) -> bool:
        """True if ``A`` is strictly lower triangular (each stage uses earlier ones only)."""
        return bool(np.all(np.triu(self.A) == 0))

    @cached_property
    def fsal(self) -> bool:
        """First Same As Last: the last stage is :math:`f(t_{n+1}, y_{n+1})`."""
        return (
            self.explicit
            and self.stages > 1
            and self.c[-1] == 1
            and bool(np.array_equal(self.A[-1], self.b))
        )

    @property
    def adaptive(self) -> bool:
        """True if the tableau carries an embedded pair for error estimation."""
        return self.b_hat is not None

    @cached_property
    def _rows(self) -> tuple[tuple[tuple[int, float], ...], ...]:
        """Non-zero entries of each row of ``A`` as ``(j, a_ij)`` float pairs."""
        return tuple(_nonzero(row) for row in self.A)

    @cached_property
    def _nodes(self) -> tuple[float, ...]:
        """The nodes ``c`` as Python floats."""
        return tuple(float(node) for node in self.c)

    @cached_property
    def _extra_rows(self) -> tuple[tuple[tuple[int, float], ...], ...]:
        """Non-zero entries of each row of ``A_extra`` as ``(j, a_ij)`` pairs (empty if none)."""
        return () if self.A_extra is None else tuple(_nonzero(row) for row in self.A_extra)

    @cached_property
    def _error2_weights(self) -> tuple[tuple[int, float], ...]:
        """Non-zero entries of ``b - b_hat2`` (empty without a second embedded formula)."""
        return () if self.b_hat2 is None else _nonzero(self.b - self.b_hat2)

    @cached_property
    def _weights(self) -> tuple[tuple[tuple[int, float], ...], tuple[tuple[int, float], ...]]:
        """Non-zero entries of ``b`` and of ``b - b_hat`` as ``(i, w_i)`` pairs."""
        error = () if self.b_hat is None else _nonzero(self.b - self.b_hat)
        if self.error_weights is not None:
            error = _nonzero(self.error_weights)
        return _nonzero(self.b), error

    def __repr__(self) -> str:
        kind = "explicit" if self.explicit else "implicit"
        pair = f"{self.order}({self.error_order})" if self.adaptive else f"{self.order}"
        return f"ButcherTableau({self.name!r}, {kind}, stages={self.stages}, order={pair})"


def _is_int(value: Any) -> bool:
    """True for an integer (Python or NumPy) that is not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool | np.bool_)


class _Terms(tuple):
    """The ``(j, w_j)`` pairs of a weighted sum of stages, and the same as two arrays.

    :meth:`columns` gives the stage indices (a slice when they are consecutive) and the
    weights as an array of one row per term, for stages stacked as the rows of one array;
    :meth:`first_weight` the first weight as a 0-d tensor where that changes no bit.  Both
    are built once and kept.
    """

    def __new__(cls, terms: Any = ()) -> _Terms:
        self = super().__new__(cls, terms)
        self._by_width: dict[int, tuple[slice | np.ndarray, np.ndarray]] = {}
        self._first_weight: dict[Any, Any] = {}
        return self

    def columns(self, width: int) -> tuple[slice | np.ndarray, np.ndarray]:
        """Stage indices and weights, each weight repeated ``width`` times along its row.

        Multiplying stacked stages by an array of their own shape is cheaper than
        broadcasting a column of weights across them.
        """
        if width not in self._by_width:
            index = [j for j, _ in self]
            consecutive = index == list(range(index[0], index[-1] + 1))
            rows = slice(index[0], index[-1] + 1) if consecutive else np.array(index)
            weights = np.repeat(np.array([[w] for _, w in self]), width, axis=1)
            weights.flags.writeable = False
            self._by_width[width] = rows, weights
        return self._by_width[width]

    def first_weight(self, like: Any) -> Any:
        """The first weight as :func:`~odecourse._arrays.scalar_like` makes it for ``like``.

        ``k * w`` then gives the bits of ``w * k`` with the float ``w``, without torch
        wrapping and casting the float on every call.
        """
        if like.dtype not in self._first_weight:
            self._first_weight[like.dtype] = scalar_like(self[0][1], like)
        return self._first_weight[like.dtype]


def _nonzero(weights: np.ndarray) -> _Terms:
    return _Terms((i, float(w)) for i, w in enumerate(weights) if w != 0)


#: From this state size on, ``np.add.reduce`` sums the rows faster than ``accumulate``.
_WIDE = 16


def _sum_rows(terms: np.ndarray) -> np.ndarray:
    """Sum the rows of a C-contiguous 2-D array left to right: ``(r_0 + r_1) + r_2 + ...``.

    The running sum's last row is the whole sum; one row needs no sum.  From 16 entries
    per row on, ``np.add.reduce`` over axis 0 is faster than the running sum (which walks
    each column with a stride) and gives the same bits: NumPy sums pairwise only along the
    contiguous axis, and axis 0 is not, so it adds whole rows one after another.  (A single
    column is contiguous, and there the two differ from eight rows on.)  The tests check the
    bits at both sides of the switch.
    """
    if len(terms) == 1:
        return terms[0]
    if terms.shape[1] >= _WIDE:
        return np.add.reduce(terms, 0)
    return np.add.accumulate(terms, 0)[-1]


def _combine(y: Any, h: float, terms: Sequence[tuple[int, float]], k: Sequence[Any]) -> Any:
    """Return :math:`y + h \\sum_j w_j k_j` over the given ``(j, w_j)`` terms.

    With ``y`` None it returns :math:`h \\sum_j w_j k_j` alone (an error estimate).  The sum
    runs left to right, :math:`(w_1 k_1 + w_2 k_2) + w_3 k_3 + \\dots`.  Stages stacked as
    the rows of one float64 array (as :func:`rk_step` keeps them for a NumPy state) are
    summed in that same order by :func:`_sum_rows`, one NumPy call per operation instead of
    one per term, so the result is the same to the last bit; torch tensors are summed by
    ``Tensor.add_`` with ``alpha``, one fused operation (and autograd node) per term, into
    the product of the first term (a tensor of its own, so nothing else sees it change; in
    place, the sum allocates no tensor per term, as the out-of-place ``add`` would).
    """
    if not terms:
        return 0.0 if y is None else y
    if type(k) is np.ndarray:
        rows, weights = (terms if type(terms) is _Terms else _Terms(terms)).columns(k.shape[1])
        total = _sum_rows(weights * k[rows])
        return h * total if y is None else y + h * total
    (first, weight), *rest = terms
    head = k[first]
    if type(head) is np.ndarray or not is_torch(head):
        dy = weight * head
        for j, w in rest:
            dy = dy + w * k[j]
        return h * dy if y is None else add_scaled(y, h, dy)
    if type(terms) is _Terms and not head.requires_grad:  # autograd: the float is cheaper
        weight = terms.first_weight(head)
    dy = head * weight  # a new tensor: the sum accumulates in it, in place
    for j, w in rest:
        dy.add_(k[j], alpha=w)
    return dy.mul_(h) if y is None else y.add(dy, alpha=h)


@dataclass(slots=True)  # not frozen: a frozen dataclass costs microseconds per step to build
class RKStep:
    """Result of one explicit Runge-Kutta step.

    Attributes
    ----------
    y : array, shape like the state
        The new state :math:`y_{n+1}`.
    k : tuple of arrays
        The stage derivatives :math:`k_1, \\dots, k_s`.
    error : array or None
        Embedded error estimate :math:`h \\sum_i (b_i - \\hat b_i) k_i`, or None.
    error2 : array or None
        Second estimate :math:`h \\sum_i (b_i - \\hat b^{(2)}_i) k_i` when the tableau has
        ``b_hat2`` (DOP853), else None.
    """

    y: Any
    k: tuple[Any, ...]
    error: Any | None
    error2: Any | None = None


def rk_step(
    f: Callable[[float, Any], Any],
    t: float,
    y: Any,
    h: float,
    tableau: ButcherTableau,
    k0: Any | None = None,
) -> RKStep:
    r"""Take one step of an explicit Runge-Kutta method.

    Parameters
    ----------
    f : callable
        Right-hand side ``f(t, y)``; returns an array shaped like ``y``.
    t : float
        Current time.
    y : array (NumPy array or torch tensor)
        Current state.
    h : float
        Step size (negative to integrate backwards).
    tableau : ButcherTableau
        An explicit tableau.
    k0 : array, optional
        ``f(t, y)`` if already known (FSAL reuse, or the last derivative of the
        previous step); saves one evaluation.

    Returns
    -------
    RKStep
        The new state, the stage derivatives, and the embedded error estimate.

    Notes
    -----
    .. math::
        k_i = f\Big(t + c_i h,\; y + h \sum_{j<i} a_{ij} k_j\Big), \quad
        y_{n+1} = y + h \sum_i b_i k_i, \quad
        e_{n+1} = h \sum_i (b_i - \hat b_i) k_i .

    Only ``+``, ``*`` and Python floats touch the state, so torch tensors keep
    their autograd graph.  Taught in Chapter 2.

    References
    ----------
    hairer1993, Sec. II.1 and II.4.
    """
    if not tableau.explicit:
        raise ValueError(
            f"rk_step needs an explicit tableau; {tableau.name!r} is implicit "
            "(use odecourse.implicit.implicit_rk_step)."
        )
    k = _stage_storage(y, k0, tableau.stages)
    # For stacked stages, h as a 0-d array: NumPy multiplies by it faster than by a float.
    scale = np.array(h) if type(k) is np.ndarray else h
    stage_y = y
    for i, row in enumerate(tableau._rows):
        if i == 0 and k0 is not None:
            k[0] = k0
            continue
        stage_y = _combine(y, scale, row, k)
        k[i] = f(t + tableau._nodes[i] * h, stage_y)
    weights, error_weights = tableau._weights
    # For an FSAL tableau the last stage was evaluated at y_{n+1} itself.
    y_new = stage_y if tableau.fsal else _combine(y, scale, weights, k)
    error = _combine(None, scale, error_weights, k) if tableau.adaptive else None
    error2 = None if tableau.b_hat2 is None else _combine(None, scale, tableau._error2_weights, k)
    return RKStep(y=y_new, k=tuple(k), error=error, error2=error2)


def _stage_storage(y: Any, k0: Any, stages: int) -> np.ndarray | list[Any]:
    """Room for the stages: rows of one array for a float64 NumPy vector, else a list.

    Stacked stages let :func:`_combine` sum them with one NumPy call per operation
    (the same operations in the same order); a torch tensor, or a state of another
    shape or dtype, keeps a list.
    """
    if type(y) is np.ndarray and y.dtype == np.float64 and y.ndim == 1:
        if k0 is None or (type(k0) is np.ndarray and k0.dtype == y.dtype and k0.shape == y.shape):
            return np.empty((stages, y.shape[0]))
    return [None] * stages


# --------------------------------------------------------------------------- the registry


def _tableaus() -> dict[str, ButcherTableau]:
    """Build the registry of named tableaus (coefficients from hairer1993 and the papers)."""
    third, sixth = 1 / 3, 1 / 6
    dopri_b = [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0]
    bosh_b = [2 / 9, 1 / 3, 4 / 9, 0]
    tableaus = [
        ButcherTableau("euler", [[0]], [1], [0], order=1),
        ButcherTableau("midpoint", [[0, 0], [0.5, 0]], [0, 1], [0, 0.5], order=2),
        ButcherTableau("heun", [[0, 0], [1, 0]], [0.5, 0.5], [0, 1], order=2),
        ButcherTableau("ralston", [[0, 0], [2 / 3, 0]], [0.25, 0.75], [0, 2 / 3], order=2),
        ButcherTableau(
            "rk4",
            [[0, 0, 0, 0], [0.5, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 1, 0]],
            [sixth, third, third, sixth],
            [0, 0.5, 0.5, 1],
            order=4,
        ),
        ButcherTableau(
            "rk38",
            [[0, 0, 0, 0], [third, 0, 0, 0], [-third, 1, 0, 0], [1, -1, 1, 0]],
            [1 / 8, 3 / 8, 3 / 8, 1 / 8],
            [0, third, 2 * third, 1],
            order=4,
        ),
        ButcherTableau(
            "bosh3",
            [[0, 0, 0, 0], [1 / 2, 0, 0, 0], [0, 3 / 4, 0, 0], bosh_b],
            bosh_b,
            [0, 1 / 2, 3 / 4, 1],
            order=3,
            b_hat=[7 / 24, 1 / 4, 1 / 3, 1 / 8],
            error_order=2,
            # Cubic Hermite written in the stage basis (shampine1997; SciPy's RK23).
            P=[[1, -4 / 3, 5 / 9], [0, 1, -2 / 3], [0, 4 / 3, -8 / 9], [0, -1, 1]],
            dense_order=3,
        ),
        ButcherTableau(
            "dopri5",
            [
                [0, 0, 0, 0, 0, 0, 0],
                [1 / 5, 0, 0, 0, 0, 0, 0],
                [3 / 40, 9 / 40, 0, 0, 0, 0, 0],
                [44 / 45, -56 / 15, 32 / 9, 0, 0, 0, 0],
                [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0, 0, 0],
                [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0, 0],
                dopri_b,
            ],
            dopri_b,
            [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1],
            order=5,
            b_hat=[5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40],
            error_order=4,
            P=_DOPRI5_DENSE,
            dense_order=4,
        ),
        ButcherTableau("backward_euler", [[1]], [1], [1], order=1),
        ButcherTableau("implicit_midpoint", [[0.5]], [1], [0.5], order=2),
        ButcherTableau("trapezoid", [[0, 0], [0.5, 0.5]], [0.5, 0.5], [0, 1], order=2),
    ]
    return {tableau.name: tableau for tableau in tableaus}


# Dense output of Dormand-Prince (hairer1993, Sec. II.6; the coefficients used by SciPy's RK45).
_DOPRI5_DENSE = [
    [1, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432],
    [0, 0, 0, 0],
    [
        0,
        131558114200 / 32700410799,
        -68118460800 / 10900136933,
        87487479700 / 32700410799,
    ],
    [0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072],
    [
        0,
        127303824393 / 49829197408,
        -318862633887 / 49829197408,
        701980252875 / 199316789632,
    ],
    [0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844],
    [0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423],
]

#: Named tableaus, keyed by our names.
TABLEAUS: dict[str, ButcherTableau] = _tableaus()

#: SciPy's method names mapped to ours.
ALIASES: dict[str, str] = {"RK45": "dopri5", "RK23": "bosh3"}


def get_tableau(name: str) -> ButcherTableau:
    """Return the registered tableau called ``name`` (ours, or SciPy's ``"RK45"``/``"RK23"``).

    Parameters
    ----------
    name : str
        A key of :data:`TABLEAUS` (``"rk4"``, ``"dopri5"``, ...) or of :data:`ALIASES`.

    Returns
    -------
    ButcherTableau
        The registered (immutable) tableau itself.

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If the name is unknown; the message lists the accepted names.

    Taught in Chapter 2.
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string; got {type(name).__name__} {name!r:.60}.")
    return resolve_tableau(name, "name")


def resolve_tableau(
    value: Any,
    name: str = "tableau",
    *,
    explicit: bool = False,
    adaptive: bool = False,
    choices: Sequence[str] | None = None,
) -> ButcherTableau:
    """Turn "a tableau or its name" into a tableau: the one place that does it.

    Every function that accepts a method as a :class:`ButcherTableau` or a registered name
    calls this, so they accept the same things and say the same things when they refuse.

    Parameters
    ----------
    value : ButcherTableau or str
        The tableau, or a key of :data:`TABLEAUS` or :data:`ALIASES`.
    name : str
        The argument's name, for the error messages.
    explicit, adaptive : bool
        Require an explicit tableau, or one with an embedded pair.
    choices : sequence of str, optional
        The names this caller accepts (default: every registered name).

    Returns
    -------
    ButcherTableau

    Raises
    ------
    TypeError
        If ``value`` is neither a tableau nor a string.
    ValueError
        If the name is not accepted (the message lists the accepted ones), or the tableau
        is implicit when ``explicit`` or has no embedded pair when ``adaptive``.

    Taught in Chapter 2.
    """
    if isinstance(value, str):
        check_choice(name, value, (*TABLEAUS, *ALIASES) if choices is None else choices)
        value = TABLEAUS[ALIASES.get(value, value)]
    elif not isinstance(value, ButcherTableau):
        raise TypeError(
            f"`{name}` must be a ButcherTableau or the name of one; got {type(value).__name__} "
            f"{value!r:.60}."
        )
    if explicit and not value.explicit:
        raise ValueError(f"`{name}` must be an explicit tableau; {value.name!r} is implicit.")
    if adaptive and not value.adaptive:
        raise ValueError(
            f"`{name}` must be an embedded pair (a tableau with `b_hat`); {value.name!r} has none."
        )
    return value
