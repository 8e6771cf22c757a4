"""Answer checks for normalising flows (Chapter 8): log-determinants and trace estimates.

See :mod:`odecourse.checks` for how the checks report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from odecourse._validation import check_callable

from ._verdict import _failure, _passed, _student_code

__all__ = ["check_hutchinson_trace", "check_planar_flow_log_det"]


def _tensor_answer(value: Any, what: str, shape: tuple[int, ...], hint: str) -> Any:
    """``value`` as a float64 tensor of ``shape``, or :class:`CheckFailed` saying why not."""
    import torch

    if not isinstance(value, torch.Tensor):
        raise _failure(f"{what} is a {type(value).__name__}, not a torch.Tensor.", hint)
    if tuple(value.shape) != shape:
        raise _failure(
            f"{what} has shape {tuple(value.shape)}; expected {shape}, one number per sample.",
            hint,
        )
    value = value.detach().double()
    if not bool(torch.isfinite(value).all()):
        raise _failure(f"{what} contains inf or nan.", hint)
    return value


def _matches(value: Any, candidate: Any) -> bool:
    import torch

    return bool(torch.isfinite(candidate).all()) and torch.allclose(
        value, candidate, rtol=1e-5, atol=1e-6
    )


def _diagnose(value: Any, wrong: dict[str, Any], default: str) -> str:
    """The first known mistake that ``value`` reproduces, else ``default``."""
    for reason, candidate in wrong.items():
        if _matches(value, candidate):
            return reason
    return default


# --------------------------------------------------------------------------- planar flow


def _planar_cases() -> list[tuple[Any, Any, Any, Any]]:
    """(z, u, w, b): a non-invertible case (w.u < -1, det < 0 at the points), then 2-d, 3-d ones."""
    import torch

    generator = torch.Generator().manual_seed(8)

    def randn(*shape: int) -> Any:
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    w = torch.tensor([1.0, 0.5], dtype=torch.float64)
    u = torch.tensor([-2.5, 0.0], dtype=torch.float64)  # w.u < -1: not invertible, det < 0 near 0
    cases = [(0.1 * randn(4, 2), u, w, torch.tensor(0.0, dtype=torch.float64))]
    return cases + [(randn(5, d), 0.8 * randn(d), randn(d), randn(())) for d in (2, 3)]


def check_planar_flow_log_det(
    planar_log_det: Callable[[Any, Any, Any, Any], Any], *, hint: str | None = None
) -> None:
    r"""Check ``planar_log_det(z, u, w, b)``, the log-determinant of a planar flow.

    The planar flow of rezende2015 with :math:`\sigma = \tanh` is
    :math:`g(z) = z + u\, \sigma(w^\T z + b)`; by the matrix determinant lemma

    .. math:: \log\left|\det \frac{\partial g}{\partial z}\right|
              = \log\left|1 + \sigma'(w^\T z + b)\, u^\T w\right| .

    The map is invertible if and only if :math:`w^\T u \ge -1` (for :math:`w \ne 0`).

    The answer must be a tensor of shape (batch,) for ``z`` of shape (batch, d),
    ``u`` and ``w`` of shape (d,) and a 0-d ``b``.  It is compared with the
    log-determinant of the Jacobian computed by autograd, on cases in two and three
    dimensions and on a non-invertible one (:math:`w^\T u < -1`) where the determinant
    is negative.

    Parameters
    ----------
    planar_log_det : callable
        The reader's function.
    hint : str, optional
        Replaces the default hint.

    Examples
    --------
    >>> import torch
    >>> def planar_log_det(z, u, w, b):
    ...     slope = 1 - torch.tanh(z @ w + b) ** 2
    ...     return torch.log(torch.abs(1 + slope * (u @ w)))
    >>> check_planar_flow_log_det(planar_log_det)
    ✓ log|det dg/dz| of the planar flow agrees with autograd's Jacobian in 3 cases.

    Taught in Chapter 8.
    """
    import torch

    check_callable("planar_log_det", planar_log_det)
    hint = hint or (
        "the Jacobian is I + sigma'(w.z + b) u w^T; the matrix determinant lemma gives "
        "det = 1 + sigma'(w.z + b) u.w, with sigma'(s) = 1 - tanh(s)^2; return log|det| per "
        "sample."
    )
    for z, u, w, b in _planar_cases():
        with _student_code("planar_log_det", hint):
            value = planar_log_det(z.clone(), u.clone(), w.clone(), b.clone())
        value = _tensor_answer(value, "planar_log_det(z, u, w, b)", (z.shape[0],), hint)
        s = z @ w + b
        slope = 1 - torch.tanh(s) ** 2
        expected = torch.stack([_planar_slogdet(row, u, w, b) for row in z])
        if _matches(value, expected):
            continue
        dot = u @ w
        wrong = {
            "it matches log|1 - sigma' u.w|: a sign error in the determinant.": torch.log(
                torch.abs(1 - slope * dot)
            ),
            "it matches log|1 + tanh(w.z + b) u.w|: sigma appears where its derivative "
            "sigma' belongs.": (torch.log(torch.abs(1 + torch.tanh(s) * dot))),
            "it matches log|sigma' u.w|: the 1 from the identity (the shortcut z) is missing.": (
                torch.log(torch.abs(slope * dot))
            ),
            "it matches the determinant itself: take the logarithm of its absolute value.": (
                1 + slope * dot
            ),
            "it matches |det| without the logarithm.": torch.abs(1 + slope * dot),
        }
        reason = _diagnose(
            value,
            wrong,
            f"in the case with d = {z.shape[1]} the largest error is "
            f"{float((value - expected).abs().max()):.2e}.",
        )
        raise _failure(reason, hint)
    _passed("log|det dg/dz| of the planar flow agrees with autograd's Jacobian in 3 cases.")


def _planar_slogdet(z: Any, u: Any, w: Any, b: Any) -> Any:
    import torch

    jacobian = torch.autograd.functional.jacobian(lambda v: v + u * torch.tanh(v @ w + b), z)
    return torch.linalg.slogdet(jacobian).logabsdet


# --------------------------------------------------------------------------- Hutchinson


class _Field:
    """A nonlinear field, row by row, with a non-symmetric Jacobian: V tanh(W z + c)."""

    def __init__(self, d: int, generator: Any) -> None:
        import torch

        self.W = torch.randn(d, d, generator=generator, dtype=torch.float64)
        self.V = torch.randn(d, d, generator=generator, dtype=torch.float64)
        self.c = torch.randn(d, generator=generator, dtype=torch.float64)
        self.calls = 0

    def __call__(self, z: Any) -> Any:
        import torch

        self.calls += 1
        return torch.tanh(z @ self.W.T + self.c) @ self.V.T

    def jacobians(self, z: Any) -> Any:
        import torch

        slope = 1 - torch.tanh(z @ self.W.T + self.c) ** 2  # (batch, d)
        return torch.einsum("ij,bj,jk->bik", self.V, slope, self.W)


def check_hutchinson_trace(
    hutchinson_trace: Callable[[Callable, Any, Any], Any], *, hint: str | None = None
) -> None:
    r"""Check ``hutchinson_trace(f, z, probe)``, a one-probe estimate of the trace of df/dz.

    For a field ``f`` applied row by row to ``z`` of shape (batch, d) and a probe
    :math:`\varepsilon` of the same shape, the answer must be the tensor of shape
    (batch,) with entries :math:`\varepsilon_b^\T J_b \varepsilon_b`, where
    :math:`J_b = \partial f(z_b)/\partial z_b`, computed with one vector-Jacobian
    product (hutchinson1989; grathwohl2019).  ``z`` is passed without
    ``requires_grad``.  The check compares the answer with the exact quadratic forms
    for Rademacher and Gaussian probes in two and four dimensions, and counts the
    calls of ``f``: one per answer is enough, and more than two is refused.

    Parameters
    ----------
    hutchinson_trace : callable
        The reader's function.
    hint : str, optional
        Replaces the default hint.

    Examples
    --------
    >>> import torch
    >>> def hutchinson_trace(f, z, probe):
    ...     z = z.detach().requires_grad_(True)
    ...     with torch.enable_grad():
    ...         (vjp,) = torch.autograd.grad(f(z), z, grad_outputs=probe)
    ...     return (vjp * probe).sum(dim=1)
    >>> check_hutchinson_trace(hutchinson_trace)
    ✓ the estimate equals probe^T (df/dz) probe for every sample, in 4 cases.

    Taught in Chapter 8.
    """
    import torch

    from odecourse.regularization import draw_probe

    check_callable("hutchinson_trace", hutchinson_trace)
    hint = hint or (
        "make z require grad, evaluate f(z) once, take v = torch.autograd.grad(f(z), z, "
        "grad_outputs=probe)[0] (that is probe^T J for every row), and return "
        "(v * probe).sum(dim=1)."
    )
    generator = torch.Generator().manual_seed(4)
    cases = 0
    for d in (2, 4):
        for kind in ("rademacher", "gaussian"):
            field = _Field(d, generator)
            z = torch.randn(6, d, generator=generator, dtype=torch.float64)
            probe = draw_probe(z, kind, generator)
            with _student_code("hutchinson_trace", hint):
                value = hutchinson_trace(field, z.clone(), probe.clone())
            value = _tensor_answer(value, "hutchinson_trace(f, z, probe)", (6,), hint)
            jac = field.jacobians(z)
            expected = torch.einsum("bi,bij,bj->b", probe, jac, probe)
            if not _matches(value, expected):
                vjp = torch.einsum("bi,bij->bj", probe, jac)
                wrong = {
                    "it matches -probe^T J probe: a sign error.": -expected,
                    "it matches |probe^T J|^2, the Frobenius estimate, not the trace "
                    "estimate.": vjp.pow(2).sum(-1),
                    "it matches the sum of probe^T J: multiply by the probe before "
                    "summing.": vjp.sum(-1),
                    "it matches the exact trace: the estimator must use the given probe.": (
                        torch.diagonal(jac, dim1=1, dim2=2).sum(-1)
                    ),
                }
                default = (
                    f"for d = {d} and {kind} probes the largest error is "
                    f"{float((value - expected).abs().max()):.2e}."
                )
                raise _failure(_diagnose(value, wrong, default), hint)
            if field.calls > 2:
                raise _failure(
                    f"f was called {field.calls} times for one estimate; one evaluation and "
                    "one vector-Jacobian product are enough (that is the point of the "
                    "estimator).",
                    hint,
                )
            cases += 1
    _passed(f"the estimate equals probe^T (df/dz) probe for every sample, in {cases} cases.")
