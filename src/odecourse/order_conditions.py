r"""Order conditions of Runge-Kutta methods, checked with Butcher's rooted trees.

A Runge-Kutta method has order :math:`p` when, for every rooted tree
:math:`\tau` with at most :math:`p` nodes, its weights reproduce the Taylor
coefficient of the exact solution: :math:`\sum_i b_i \Phi_i(\tau) = 1/\gamma(\tau)`.
:func:`algebraic_order` enumerates the trees and finds the largest such :math:`p`.

Taught in Chapter 2.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from odecourse._validation import check_choice, check_int, check_positive
from odecourse.runge_kutta import ButcherTableau

__all__ = ["algebraic_order"]


@cache
def _trees(n: int) -> tuple[tuple, ...]:
    """All rooted trees with ``n`` nodes; a tree is the sorted tuple of its subtrees."""
    return tuple(sorted(_forests(n - 1)))


@cache
def _forests(n: int) -> frozenset[tuple]:
    """All multisets of rooted trees with ``n`` nodes in total, as sorted tuples."""
    if n == 0:
        return frozenset({()})
    forests = set()
    for size in range(1, n + 1):
        for tree in _trees(size):
            for rest in _forests(n - size):
                forests.add(tuple(sorted((*rest, tree))))
    return frozenset(forests)


def _weight_and_density(A: np.ndarray, tree: tuple) -> tuple[np.ndarray, int]:
    """Internal weights :math:`\\Phi` (per stage) and density :math:`\\gamma` of a tree."""
    phi = np.ones(A.shape[0])
    nodes, gamma = 1, 1
    for child in tree:
        child_phi, child_gamma = _weight_and_density(A, child)
        phi = phi * (A @ child_phi)
        nodes += _count(child)
        gamma *= child_gamma
    return phi, gamma * nodes


def _count(tree: tuple) -> int:
    return 1 + sum(_count(child) for child in tree)


def algebraic_order(
    tableau: ButcherTableau, *, weights: str = "b", max_order: int = 6, tol: float = 1e-10
) -> int:
    r"""Largest :math:`p \le` ``max_order`` for which all order conditions hold.

    For every rooted tree :math:`\tau` with at most :math:`p` nodes,

    .. math:: \sum_i b_i \Phi_i(\tau) = \frac{1}{\gamma(\tau)},

    with the elementary weights :math:`\Phi` and density :math:`\gamma` of
    Butcher's theory (hairer1993, Sec. II.2).

    Parameters
    ----------
    tableau : ButcherTableau
        Any tableau, explicit or implicit.
    weights : {"b", "b_hat"}
        Check the propagated weights ``b`` or the embedded weights ``b_hat``.
    max_order : int
        Largest order tested (the number of trees grows quickly: 37 up to 6 nodes).
    tol : float
        Absolute tolerance on each condition.

    Returns
    -------
    int
        The algebraic order, between 0 and ``max_order``.

    Taught in Chapter 2.
    """
    if not isinstance(tableau, ButcherTableau):
        raise TypeError(f"`tableau` must be a ButcherTableau; got {type(tableau).__name__}.")
    check_choice("weights", weights, ("b", "b_hat"))
    max_order = check_int("max_order", max_order, minimum=1)
    tol = check_positive("tol", tol)
    b = tableau.b if weights == "b" else tableau.b_hat
    if b is None:
        raise ValueError(f"{tableau.name!r} has no embedded weights `b_hat`.")
    for p in range(1, max_order + 1):
        for tree in _trees(p):
            phi, gamma = _weight_and_density(tableau.A, tree)
            if abs(b @ phi - 1 / gamma) > tol:
                return p - 1
    return max_order
