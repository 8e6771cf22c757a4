"""Answer checks for linear multistep methods (Chapter 4).

See :mod:`odecourse.checks` for how the checks report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction
from numbers import Rational, Real
from typing import Any

from odecourse._validation import (
    check_int,
)
from odecourse.multistep import LinearMultistepMethod

from ._verdict import (
    _answer,
    _failure,
    _passed,
    _student_code,
)

__all__ = ["check_multistep_coefficients"]


def _coefficients(name: str, value: Any, hint: str) -> list:
    """``value`` as a list of finite real numbers, or :class:`CheckFailed` saying why not."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise _failure(f"{name} must be a list of numbers; got {value!r:.60}.", hint)
    values = list(value)
    for j, x in enumerate(values):
        if isinstance(x, bool) or not isinstance(x, Real):
            raise _failure(f"{name}[{j}] = {x!r:.40} is not a real number.", hint)
        if not math.isfinite(x):
            raise _failure(f"{name}[{j}] = {x} is not finite.", hint)
    return values


def _multistep_method(alpha: Any, beta: Any, hint: str) -> LinearMultistepMethod:
    if beta is None:
        answer = _answer(alpha, "your coefficients function", hint)
        if isinstance(answer, LinearMultistepMethod):
            return answer
        try:
            alpha, beta = answer
        except (TypeError, ValueError) as exc:
            raise TypeError(
                "pass `alpha` and `beta`, a LinearMultistepMethod, or a function of no "
                f"arguments returning (alpha, beta); got {type(answer).__name__}."
            ) from exc
    alpha, beta = _coefficients("alpha", alpha, hint), _coefficients("beta", beta, hint)
    if len(alpha) != len(beta) or len(alpha) < 2:
        raise _failure(
            f"alpha and beta have lengths {len(alpha)} and {len(beta)}; a k-step method "
            "needs k + 1 of each, k >= 1.",
            hint,
        )
    if alpha[-1] == 0:
        raise _failure("alpha_k = 0: the newest value y_{n+k} does not appear.", hint)
    if alpha[-1] != 1:
        scale = Fraction(alpha[-1]) if isinstance(alpha[-1], Rational) else alpha[-1]
        alpha, beta = ([x / scale for x in coefficients] for coefficients in (alpha, beta))
    with _student_code("building the method", hint):
        return LinearMultistepMethod("your method", alpha, beta)


def check_multistep_coefficients(
    alpha: Any,
    beta: Any = None,
    *,
    expected_order: int | None = None,
    zero_stable: bool | None = True,
    hint: str | None = None,
) -> None:
    r"""Check linear multistep coefficients: consistency, order, and the root condition.

    The method :math:`\sum_j \alpha_j y_{n+j} = h \sum_j \beta_j f_{n+j}` (oldest
    coefficient first, normalised here so that :math:`\alpha_k = 1`) must be
    consistent, have order ``expected_order`` exactly if given (the order conditions
    :math:`C_0 = \dots = C_p = 0` of
    :meth:`odecourse.multistep.LinearMultistepMethod.order_constants`), and satisfy
    the root condition (``zero_stable=True``), violate it (``False``), or either (``None``).

    Parameters
    ----------
    alpha, beta : sequences of k + 1 numbers
        The coefficients.  Instead, pass a single function of no arguments that
        returns ``(alpha, beta)`` (and leave ``beta`` out).
    expected_order : int, optional
    zero_stable : bool or None
    hint : str, optional
        Replaces the default hint.

    Examples
    --------
    >>> from fractions import Fraction as F
    >>> check_multistep_coefficients([0, -1, 1], [F(-1, 2), F(3, 2), 0], expected_order=2)
    ✓ consistent 2-step method of order 2; the roots of rho satisfy the root condition.

    Taught in Chapter 4.
    """
    if expected_order is not None:
        expected_order = check_int("expected_order", expected_order, minimum=1)
    if zero_stable not in (True, False, None):
        raise TypeError(f"`zero_stable` must be True, False or None; got {zero_stable!r}.")
    hint = hint or (
        "write the order conditions C_0 = sum_j alpha_j = 0 and C_q = sum_j (j^q alpha_j / q! "
        "- j^(q-1) beta_j / (q-1)!) = 0, and solve them for the unknown coefficients."
    )
    method = _multistep_method(alpha, beta, hint)
    order = method.computed_order()
    if order == 0:
        raise _failure("the method is not consistent (C_0 or C_1 is not zero).", hint)
    if expected_order is not None and order != expected_order:
        raise _failure(f"the method has order {order}, not {expected_order}.", hint)
    stable = method.is_zero_stable()
    roots = ", ".join(f"{abs(r):.3f}" for r in method.rho_roots())
    if zero_stable is not None and stable != zero_stable:
        verdict = "violate" if zero_stable else "satisfy"
        raise _failure(
            f"the roots of rho (moduli {roots}) {verdict} the root condition.",
            "every root of rho(zeta) must have modulus <= 1, and those on the unit circle "
            "must be simple.",
        )
    condition = "satisfy" if stable else "violate"
    _passed(
        f"consistent {method.steps}-step method of order {order}; the roots of rho "
        f"{condition} the root condition."
    )
