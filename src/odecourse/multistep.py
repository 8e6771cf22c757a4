r"""Linear multistep methods as data: coefficients, derived exactly, and their theory.

A linear :math:`k`-step method advances :math:`y' = f(t, y)` by

.. math::

    \sum_{j=0}^{k} \alpha_j\, y_{n+j} = h \sum_{j=0}^{k} \beta_j\, f(t_{n+j}, y_{n+j}),
    \qquad \alpha_k = 1 .

A method is its coefficients, held in the frozen :class:`LinearMultistepMethod`.
The Adams and BDF families are *derived* here from interpolating polynomials in
exact rational arithmetic (:mod:`fractions`), so the classical tables are
reproduced digit for digit rather than typed in.  The characteristic
polynomials :math:`\rho(\zeta) = \sum_j \alpha_j \zeta^j` and
:math:`\sigma(\zeta) = \sum_j \beta_j \zeta^j` carry the theory: order and error
constant from the order conditions, consistency, zero-stability by the root
condition, and the boundary of the region of absolute stability by the boundary
locus :math:`z(\theta) = \rho(e^{i\theta}) / \sigma(e^{i\theta})`.

The integrator that steps these methods lives in :mod:`odecourse.multistep_solver`.

Taught in Chapter 4.

References
----------
Hairer, Norsett and Wanner, *Solving Ordinary Differential Equations I*, Sections III.1-III.4.
Dahlquist (1956), Convergence and stability in the numerical integration of ODEs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from numbers import Rational, Real

import numpy as np

from ._validation import check_int, check_positive

__all__ = [
    "ZERO_STABILITY_TOL",
    "LinearMultistepMethod",
    "absolute_stability_mask",
    "adams_bashforth",
    "adams_moulton",
    "bdf",
    "boundary_locus",
    "get_multistep_method",
]

#: Roots of :math:`\rho` whose modulus is within this distance of 1 count as lying on the
#: unit circle.  Multiplicities are decided exactly (by a polynomial gcd over the rationals),
#: so the tolerance only guards the floating-point moduli of simple roots.
ZERO_STABILITY_TOL = 1e-9

Poly = list[Fraction]  # coefficients, lowest degree first


def _as_coefficient(name: str, value: object) -> Fraction | float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"`{name}` must hold real numbers; got {value!r}.")
    if isinstance(value, Rational):
        return Fraction(value)
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must hold finite numbers; got {value}.")
    return value


def _as_sequence(name: str, value: object) -> tuple:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(
            f"`{name}` must be a sequence of k + 1 numbers, from {name}_0 (oldest) to "
            f"{name}_k (newest); got {type(value).__name__} {value!r:.60}."
        )
    return tuple(value)


@dataclass(frozen=True)
class LinearMultistepMethod:
    r"""A linear multistep method :math:`\sum_j \alpha_j y_{n+j} = h \sum_j \beta_j f_{n+j}`.

    Parameters
    ----------
    name : str
        Short name, for example ``"AB4"``.
    alpha, beta : sequence of numbers, each of length ``k + 1``
        Coefficients from :math:`j = 0` (oldest) to :math:`j = k` (newest).  Rational
        entries (``int``, :class:`fractions.Fraction`) are kept exact.  The method must be
        normalised, :math:`\alpha_k = 1`; it is explicit exactly when :math:`\beta_k = 0`.
    order : int, optional
        The order the method is meant to have; if given, it is checked against the
        order conditions.

    Raises
    ------
    TypeError
        If ``name`` is not a string, or ``alpha`` or ``beta`` is not a sequence of real
        numbers.
    ValueError
        If the lengths differ, ``k < 1``, :math:`\alpha_k \ne 1`, or ``order`` is wrong.
    """

    name: str
    alpha: tuple
    beta: tuple
    order: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"`name` must be a non-empty string; got {self.name!r:.60}.")
        alpha = tuple(_as_coefficient("alpha", a) for a in _as_sequence("alpha", self.alpha))
        beta = tuple(_as_coefficient("beta", b) for b in _as_sequence("beta", self.beta))
        if len(alpha) != len(beta):
            raise ValueError(
                f"`alpha` and `beta` must have the same length k + 1; got {len(alpha)} and "
                f"{len(beta)}."
            )
        if len(alpha) < 2:
            raise ValueError(f"a multistep method needs k >= 1 steps; got {len(alpha) - 1}.")
        if alpha[-1] != 1:
            raise ValueError(
                f"the method must be normalised with alpha_k = 1; got alpha_k = {alpha[-1]}. "
                "Divide alpha and beta by alpha_k."
            )
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "beta", beta)
        if self.order is not None:
            stated = check_int("order", self.order, minimum=0)
            actual = self.computed_order()
            if stated != actual:
                raise ValueError(
                    f"`order` of {self.name} was given as {stated}, but its order conditions "
                    f"give {actual}."
                )

    # --- structure -------------------------------------------------------------------
    @property
    def steps(self) -> int:
        """The number of steps :math:`k`."""
        return len(self.alpha) - 1

    @property
    def explicit(self) -> bool:
        r"""Whether :math:`\beta_k = 0`, so that :math:`y_{n+k}` is given directly."""
        return self.beta[-1] == 0

    def rho(self, zeta):
        r"""The first characteristic polynomial :math:`\rho(\zeta) = \sum_j \alpha_j \zeta^j`."""
        return _polyval(self.alpha, zeta)

    def sigma(self, zeta):
        r"""The second characteristic polynomial :math:`\sigma(\zeta) = \sum_j \beta_j \zeta^j`."""
        return _polyval(self.beta, zeta)

    # --- accuracy --------------------------------------------------------------------
    def order_constants(self, q_max: int) -> list:
        r"""The constants :math:`C_0, \dots, C_{q_{\max}}` of the order conditions.

        .. math::

            C_0 = \sum_j \alpha_j, \qquad
            C_q = \sum_j \Big(\frac{j^q}{q!}\alpha_j - \frac{j^{q-1}}{(q-1)!}\beta_j\Big),

        so that the local error of the method applied to a smooth solution is
        :math:`\sum_q C_q h^q y^{(q)}(t_n)`.  The method has order :math:`p` when
        :math:`C_0 = \dots = C_p = 0 \ne C_{p+1}`.
        """
        q_max = check_int("q_max", q_max, minimum=0)
        constants = [sum(self.alpha)]
        for q in range(1, q_max + 1):
            constants.append(
                sum(
                    Fraction(j**q, math.factorial(q)) * a
                    - Fraction(j ** (q - 1), math.factorial(q - 1)) * b
                    for j, (a, b) in enumerate(zip(self.alpha, self.beta, strict=True))
                )
            )
        return constants

    def computed_order(self) -> int:
        """The order ``p`` from the order conditions (``0`` for an inconsistent method)."""
        limit = 2 * self.steps + 2  # no zero-stable or unstable k-step method exceeds 2k
        constants = self.order_constants(limit + 1)
        if not _is_zero(constants[0]):
            return 0
        p = 0
        while p <= limit and _is_zero(constants[p + 1]):
            p += 1
        return p

    def error_constant(self):
        r"""The error constant :math:`C_{p+1} / \sigma(1)` (Hairer-Norsett-Wanner, III.2)."""
        p = self.computed_order()
        if _is_zero(self.sigma(1)):
            raise ValueError(
                f"the error constant of {self.name} is undefined: sigma(1) = 0, so the method "
                f"is not consistent (order {p}); a consistent method has "
                "rho'(1) = sigma(1) != 0."
            )
        return self.order_constants(p + 1)[p + 1] / self.sigma(1)

    def is_consistent(self) -> bool:
        r"""Whether :math:`\rho(1) = 0` and :math:`\rho'(1) = \sigma(1)` (order at least 1)."""
        return self.computed_order() >= 1

    # --- stability -------------------------------------------------------------------
    def rho_roots(self) -> np.ndarray:
        r"""The roots of :math:`\rho`, computed in floating point."""
        return np.roots([float(a) for a in reversed(self.alpha)])

    def is_zero_stable(self, tol: float = ZERO_STABILITY_TOL) -> bool:
        r"""Whether :math:`\rho` satisfies the root condition.

        Every root has modulus at most 1, and roots of modulus 1 are simple.  Moduli are
        compared with tolerance ``tol``; repeated roots are found exactly as the roots of
        :math:`\gcd(\rho, \rho')`, which must lie strictly inside the unit circle.
        """
        if np.any(np.abs(self.rho_roots()) > 1 + tol):
            return False
        # Floating-point coefficients are read as nearby rationals for the exact gcd.
        alpha = [Fraction(a).limit_denominator(10**9) for a in self.alpha]
        repeated = _poly_gcd(alpha, _poly_derivative(alpha))
        if len(repeated) <= 1:
            return True
        roots = np.roots([float(a) for a in reversed(repeated)])
        return bool(np.all(np.abs(roots) < 1 - tol))

    def __repr__(self) -> str:
        alpha = ", ".join(str(a) for a in self.alpha)
        beta = ", ".join(str(b) for b in self.beta)
        return f"LinearMultistepMethod({self.name!r}, alpha=({alpha}), beta=({beta}))"


# --- exact polynomial arithmetic over the rationals ----------------------------------------
def _is_zero(value) -> bool:
    return value == 0 if isinstance(value, Fraction) else abs(value) < 1e-12


def _polyval(coefficients, x):
    result = 0 * x if isinstance(x, np.ndarray) else 0
    for c in reversed(coefficients):
        result = result * x + (float(c) if isinstance(x, np.ndarray | float | complex) else c)
    return result


def _poly_mul(p: Poly, q: Poly) -> Poly:
    out = [Fraction(0)] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        for j, b in enumerate(q):
            out[i + j] += a * b
    return out


def _poly_derivative(p: Poly) -> Poly:
    return [i * c for i, c in enumerate(p)][1:] or [Fraction(0)]


def _poly_integral(p: Poly, a: Fraction, b: Fraction) -> Fraction:
    return sum(c / (i + 1) * (b ** (i + 1) - a ** (i + 1)) for i, c in enumerate(p))


def _trim(p: Poly) -> Poly:
    while len(p) > 1 and p[-1] == 0:
        p = p[:-1]
    return p


def _poly_gcd(p: Poly, q: Poly) -> Poly:
    """Monic greatest common divisor by Euclid's algorithm over the rationals."""
    p, q = _trim(p), _trim(q)
    while not (len(q) == 1 and q[0] == 0):
        remainder = list(p)
        while len(remainder) >= len(q) and not (len(remainder) == 1 and remainder[0] == 0):
            factor = remainder[-1] / q[-1]
            shift = len(remainder) - len(q)
            for i, c in enumerate(q):
                remainder[shift + i] -= factor * c
            remainder = _trim(remainder[:-1] or [Fraction(0)])
        p, q = q, remainder
    return [c / p[-1] for c in p]


def _lagrange_basis(nodes: list[int], j: int) -> Poly:
    r"""The Lagrange polynomial :math:`\ell_j` on ``nodes``: 1 at ``nodes[j]``, 0 at the others."""
    basis: Poly = [Fraction(1)]
    for m, node in enumerate(nodes):
        if m != j:
            scale = Fraction(1, nodes[j] - node)
            basis = _poly_mul(basis, [-node * scale, scale])
    return basis


# --- the families ------------------------------------------------------------------------
def adams_bashforth(order: int) -> LinearMultistepMethod:
    r"""The explicit Adams-Bashforth method of the given order (``order`` steps).

    The derivatives at :math:`t_n, \dots, t_{n+k-1}` are interpolated by a polynomial and
    integrated over the last step:

    .. math::

        y_{n+k} = y_{n+k-1} + h \sum_{j=0}^{k-1} \beta_j f_{n+j}, \qquad
        \beta_j = \int_{k-1}^{k} \ell_j(s)\, \dd s .

    Taught in Chapter 4.
    """
    k = check_int("order", order, minimum=1)
    nodes = list(range(k))
    beta = [_poly_integral(_lagrange_basis(nodes, j), Fraction(k - 1), Fraction(k)) for j in nodes]
    alpha = [Fraction(0)] * (k - 1) + [Fraction(-1), Fraction(1)]
    return LinearMultistepMethod(f"AB{k}", alpha, [*beta, Fraction(0)], order=k)


def adams_moulton(order: int) -> LinearMultistepMethod:
    r"""The implicit Adams-Moulton method of the given order.

    ``AM1`` is backward Euler and ``AM2`` the trapezoidal rule (one step each); for
    ``order >= 2`` the method has ``order - 1`` steps and interpolates the derivatives at
    :math:`t_n, \dots, t_{n+k}`, the new point included:

    .. math::

        y_{n+k} = y_{n+k-1} + h \sum_{j=0}^{k} \beta_j f_{n+j}, \qquad
        \beta_j = \int_{k-1}^{k} \ell_j(s)\, \dd s .

    Taught in Chapter 4.
    """
    p = check_int("order", order, minimum=1)
    k = max(p - 1, 1)
    nodes = list(range(k - p + 1, k + 1))  # p interpolation nodes ending at k
    weights = {
        node: _poly_integral(_lagrange_basis(nodes, m), Fraction(k - 1), Fraction(k))
        for m, node in enumerate(nodes)
    }
    beta = [weights.get(j, Fraction(0)) for j in range(k + 1)]
    alpha = [Fraction(0)] * (k - 1) + [Fraction(-1), Fraction(1)]
    return LinearMultistepMethod(f"AM{p}", alpha, beta, order=p)


def bdf(order: int) -> LinearMultistepMethod:
    r"""The backward differentiation formula of the given order (``order`` steps).

    The values :math:`y_n, \dots, y_{n+k}` are interpolated and the interpolant's
    derivative at :math:`t_{n+k}` is set equal to :math:`f_{n+k}`:

    .. math::

        \sum_{j=0}^{k} \ell_j'(k)\, y_{n+j} = h f_{n+k},

    then normalised so that :math:`\alpha_k = 1`.  BDF1-6 are zero-stable; BDF7 is not.

    Taught in Chapter 4.
    """
    k = check_int("order", order, minimum=1)
    nodes = list(range(k + 1))
    derivatives = [
        _polyval(_poly_derivative(_lagrange_basis(nodes, j)), Fraction(k)) for j in nodes
    ]
    scale = derivatives[-1]
    alpha = [d / scale for d in derivatives]
    beta = [Fraction(0)] * k + [1 / scale]
    # BDF of order >= 7 is not zero-stable, but its order is still k: no order check skipped.
    return LinearMultistepMethod(f"BDF{k}", alpha, beta, order=k)


_FAMILIES = {"AB": adams_bashforth, "AM": adams_moulton, "BDF": bdf}


def get_multistep_method(name: str) -> LinearMultistepMethod:
    """Look up ``"AB1"``-``"AB8"``, ``"AM1"``-``"AM8"`` or ``"BDF1"``-``"BDF6"`` by name.

    Raises
    ------
    ValueError
        For any other name (BDF7 and beyond are not zero-stable and are refused).
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string such as 'AB4'; got {type(name).__name__}.")
    family = name.rstrip("0123456789").upper()
    digits = name[len(family) :]
    limit = {"AB": 8, "AM": 8, "BDF": 6}.get(family)
    if limit is None or not digits or not 1 <= int(digits) <= limit:
        raise ValueError(
            f"`name` must be 'AB1'..'AB8', 'AM1'..'AM8' or 'BDF1'..'BDF6'; got {name!r}."
        )
    return _FAMILIES[family](int(digits))


# --- absolute stability ------------------------------------------------------------------
def _check_method(method: object) -> None:
    if not isinstance(method, LinearMultistepMethod):
        raise TypeError(f"`method` must be a LinearMultistepMethod; got {type(method).__name__}.")


def boundary_locus(method: LinearMultistepMethod, n_points: int = 721) -> np.ndarray:
    r"""The boundary locus :math:`z(\theta) = \rho(e^{i\theta}) / \sigma(e^{i\theta})`.

    Sampled at ``n_points`` angles :math:`0 \le \theta \le 2\pi`.  The boundary of the
    region of absolute stability is contained in this curve: on it,
    :math:`\rho(\zeta) - z \sigma(\zeta)` has a root of modulus one.  Points where
    :math:`\sigma(e^{i\theta}) = 0` are returned as ``nan``.

    Parameters
    ----------
    method : LinearMultistepMethod
        The method.
    n_points : int
        Number of angles, ``>= 8``.

    Returns
    -------
    numpy.ndarray of complex, shape (n_points,)
        The points :math:`z(\theta)`.

    Taught in Chapter 4.
    """
    _check_method(method)
    n_points = check_int("n_points", n_points, minimum=8)
    zeta = np.exp(1j * np.linspace(0.0, 2.0 * np.pi, n_points))
    denominator = method.sigma(zeta)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = method.rho(zeta) / denominator
    z[np.abs(denominator) < 1e-14] = np.nan
    return z


def absolute_stability_mask(
    method: LinearMultistepMethod, z: np.ndarray, tol: float = ZERO_STABILITY_TOL
) -> np.ndarray:
    r"""Whether each :math:`z = h\lambda` lies in the region of absolute stability.

    :math:`z` is in the region when every root of the stability polynomial
    :math:`\pi(\zeta; z) = \rho(\zeta) - z\sigma(\zeta)` has modulus at most one.  The roots are
    the eigenvalues of companion matrices, computed for all points at once.  Roots are
    compared with ``1 + tol`` only: at the isolated points of the boundary where a root of
    modulus one is repeated (the leapfrog method at :math:`z = \pm i`, say) the strict
    definition, which asks for simple unimodular roots, would say unstable; on a grid this
    set has measure zero.

    Parameters
    ----------
    method : LinearMultistepMethod
        The method.
    z : array_like of complex, any shape
        Points :math:`z = h\lambda` (a scalar gives a 0-d result).
    tol : float
        Non-negative tolerance on the root moduli.

    Returns
    -------
    numpy.ndarray of bool, the shape of ``z``
        True where :math:`z` is in the region of absolute stability.

    Taught in Chapter 4.
    """
    _check_method(method)
    tol = check_positive("tol", tol, allow_zero=True)
    z = np.asarray(z, dtype=complex)
    if not np.all(np.isfinite(z)):
        raise ValueError(f"`z` must contain only finite values; got {z!r:.80}.")
    alpha = np.array([float(a) for a in method.alpha])
    beta = np.array([float(b) for b in method.beta])
    coefficients = alpha[None, :] - z.reshape(-1, 1) * beta[None, :]  # (m, k+1), low->high
    k = method.steps
    leading = coefficients[:, -1]
    degenerate = np.abs(leading) < 1e-14
    leading = np.where(degenerate, 1.0, leading)
    companion = np.zeros((coefficients.shape[0], k, k), dtype=complex)
    companion[:, 0, :] = -coefficients[:, -2::-1] / leading[:, None]
    companion[:, np.arange(1, k), np.arange(k - 1)] = 1.0
    radius = np.max(np.abs(np.linalg.eigvals(companion)), axis=1)
    stable = (radius <= 1 + tol) & ~degenerate
    return stable.reshape(z.shape)
