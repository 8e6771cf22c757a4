r"""Discretise-then-optimise against optimise-then-discretise, on one fixed grid.

For :math:`z' = f(t, z, \theta)` on :math:`[0, T]` and a loss :math:`g(z(T))` there are
two ways to compute a gradient with :math:`N` steps of size :math:`h = T/N`.

*Discretise, then optimise* (:func:`backprop_gradient`): run a one-step scheme forward
and differentiate the discrete loss :math:`g(z_N)` exactly, by backpropagation.  For
explicit Euler, :math:`z_{n+1} = z_n + h f(t_n, z_n)`, the recursion is

.. math::
    a_N = \nabla g(z_N), \qquad
    a_n = a_{n+1} + h J(t_n, z_n)^{\mathsf T} a_{n+1}, \qquad
    \nabla_\theta = \sum_{n=0}^{N-1} h\, F(t_n, z_n)^{\mathsf T} a_{n+1},

with :math:`J = \partial f/\partial z` and :math:`F = \partial f/\partial \theta` at the
*left* end of each step.

*Optimise, then discretise* (:func:`continuous_adjoint_gradient`): solve the adjoint
system :math:`a' = -J(t, z(t))^{\mathsf T} a`, :math:`a(T) = \nabla g(z(T))`,
:math:`\nabla_\theta = \int_0^T F^{\mathsf T} a \, dt` backwards with the same scheme on
the same grid, reading :math:`z(t)` from the stored forward states.  Explicit Euler,
stepping from :math:`t_{n+1}` down to :math:`t_n`, evaluates everything at the *right*
end, :math:`a_n = a_{n+1} + h J(t_{n+1}, z_{n+1})^{\mathsf T} a_{n+1}`, so the two
gradients differ by :math:`O(h)`.  For the implicit midpoint rule,
:math:`z_{n+1} = z_n + h f(t_n + h/2, \bar z_n)` with
:math:`\bar z_n = (z_n + z_{n+1})/2`, backpropagation gives

.. math::
    a_n = a_{n+1} + h J(t_n + h/2, \bar z_n)^{\mathsf T} \frac{a_n + a_{n+1}}{2}, \qquad
    \nabla_\theta = \sum_{n=0}^{N-1} h\, F(t_n + h/2, \bar z_n)^{\mathsf T}
    \frac{a_n + a_{n+1}}{2},

which *is* the implicit midpoint rule for the adjoint system with :math:`z` at the
midpoint taken as :math:`\bar z_n`: the two routes agree to rounding error (Hager 2000;
Sanz-Serna 2016: the forward method and its discrete adjoint form a symplectic pair).

The implicit step is solved by simplified Newton iterations with the dense Jacobian
(``z0.numel()`` squared entries: meant for the small systems of the course).
Backpropagation does not go through the iterations: the converged state :math:`z^*` is
followed by one Newton correction :math:`z^* + M^{-1}(z_n + h f(\bar z) - z^*)` with the
matrix :math:`M = I - \tfrac h2 J` held constant, whose derivative is exactly the one the
implicit function theorem gives for the converged step.

Taught in Chapter 7.

References
----------
hager2000: W. W. Hager, Runge-Kutta methods in optimal control and the transformed adjoint
system, Numer. Math. 87 (2000).
sanzserna2016: J. M. Sanz-Serna, Symplectic Runge-Kutta schemes for adjoint equations,
automatic differentiation, optimal control, and more, SIAM Review 58 (2016).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from odecourse._validation import check_callable, check_choice, check_int, check_positive
from odecourse.newton import NewtonConvergenceError

__all__ = [
    "SCHEMES",
    "AdjointGradients",
    "TanhField",
    "adjoint_gap",
    "backprop_gradient",
    "continuous_adjoint_gradient",
]

#: The one-step schemes both routes implement.
SCHEMES = ("euler", "midpoint")
#: Newton's method for the implicit midpoint step stops below this relative correction.
NEWTON_TOL = 1e-14
NEWTON_MAX_ITER = 50


class TanhField(nn.Module):
    r"""The autonomous field :math:`f(t, z) = \tanh(W z + b)` with random :math:`W, b`.

    Parameters
    ----------
    dim : int
        The dimension of :math:`z`, at least 1.
    seed : int
        Seed of the generator that draws :math:`W` (entries of standard deviation
        :math:`1/\sqrt{\text{dim}}`) and :math:`b` (standard deviation 0.5).
    """

    def __init__(self, dim: int = 3, seed: int = 0) -> None:
        super().__init__()
        dim = check_int("dim", dim, minimum=1)
        seed = check_int("seed", seed, minimum=0)
        gen = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(torch.randn(dim, dim, generator=gen, dtype=torch.float64) / dim**0.5)
        self.b = nn.Parameter(0.5 * torch.randn(dim, generator=gen, dtype=torch.float64))

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        return torch.tanh(z @ self.W.T + self.b)


@dataclass(frozen=True)
class AdjointGradients:
    """Gradients of a loss, flattened: ``z0`` by the initial state, ``params`` by theta.

    ``params`` concatenates the flattened gradients of ``func``'s parameters that require
    gradients, in the order of ``func.parameters()``.
    """

    z0: Tensor
    params: Tensor

    @property
    def flat(self) -> Tensor:
        """Both gradients in one vector, ``(z0, params)``."""
        return torch.cat([self.z0, self.params])


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class _Problem:
    """A validated call: the field on flat states, the grid and the loss."""

    func: nn.Module
    shape: torch.Size
    z0: Tensor
    h: float
    n_steps: int
    loss: Callable[[Tensor], Tensor]
    scheme: str
    params: tuple[Tensor, ...]

    def f(self, t: float, z: Tensor) -> Tensor:
        """The field on a flat state."""
        t = torch.tensor(t, dtype=z.dtype)
        return self.func(t, z.view(self.shape)).reshape(-1)

    def jacobian(self, t: float, z: Tensor) -> Tensor:
        """The dense Jacobian of the field at a flat state (no graph kept)."""
        with torch.enable_grad():
            return torch.autograd.functional.jacobian(lambda x: self.f(t, x), z.detach())

    def vjp(self, t: float, z: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        """``(J^T a, F^T a)`` at ``(t, z)``, the parameter part flattened."""
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            out = self.f(t, z)
            grads = torch.autograd.grad(out, (z, *self.params), a, allow_unused=True)
        parts = [
            torch.zeros_like(p) if g is None else g
            for g, p in zip(grads, (z, *self.params), strict=True)
        ]
        return parts[0], _flatten(parts[1:], a)

    def loss_gradient(self, z_final: Tensor) -> Tensor:
        """:math:`\\nabla g` at a flat final state."""
        with torch.enable_grad():
            z = z_final.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.loss_value(z), z)
        return grad

    def loss_value(self, z_final: Tensor) -> Tensor:
        value = self.loss(z_final.view(self.shape))
        if not isinstance(value, Tensor):
            raise TypeError(f"`loss` must return a tensor; got {type(value).__name__}.")
        if value.numel() != 1:
            raise ValueError(
                f"`loss` must return a tensor with one element; got shape {tuple(value.shape)}."
            )
        return value.reshape(())


def _flatten(parts: Iterable[Tensor], like: Tensor) -> Tensor:
    parts = [p.reshape(-1) for p in parts]
    return torch.cat(parts) if parts else like.new_zeros(0)


def _check_problem(func: Any, z0: Any, T: Any, n_steps: Any, loss: Any, scheme: Any) -> _Problem:
    if not isinstance(func, nn.Module):
        raise TypeError(
            f"`func` must be a torch.nn.Module f(t, z) whose parameters are theta; "
            f"got {type(func).__name__}."
        )
    if not isinstance(z0, Tensor):
        raise TypeError(f"`z0` must be a torch.Tensor; got {type(z0).__name__} {z0!r:.60}.")
    if z0.dtype != torch.float64:
        raise TypeError(f"`z0` must have dtype torch.float64; got {z0.dtype}.")
    if z0.numel() == 0 or not bool(torch.isfinite(z0).all()):
        raise ValueError(f"`z0` must be a non-empty tensor of finite values; got {z0!r:.80}.")
    T = check_positive("T", T)
    n_steps = check_int("n_steps", n_steps, minimum=1)
    loss = check_callable("loss", loss)
    scheme = check_choice("scheme", scheme, SCHEMES)
    params = tuple(p for p in func.parameters() if p.requires_grad)
    problem = _Problem(func, z0.shape, z0.detach().reshape(-1), T / n_steps, n_steps, loss,
                       scheme, params)  # fmt: skip
    with torch.no_grad():
        try:
            out = func(torch.tensor(0.0, dtype=z0.dtype), z0.detach())
        except RuntimeError as exc:  # typically a shape mismatch inside the field
            raise ValueError(
                f"`func(t, z)` failed on `z0` of shape {tuple(z0.shape)}: {exc}"
            ) from exc
    if not isinstance(out, Tensor) or out.shape != z0.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"`func(t, z)` must return a tensor of shape {tuple(z0.shape)}; got {got}."
        )
    return problem


# --------------------------------------------------------------------------- forward


def _midpoint_solve(problem: _Problem, t: float, z: Tensor) -> Tensor:
    """The converged implicit midpoint step from ``z`` at ``t`` (no graph)."""
    h, eye = problem.h, torch.eye(z.numel(), dtype=z.dtype)
    t_mid = t + h / 2
    with torch.no_grad():
        z_new = z + h * problem.f(t, z)  # explicit Euler predictor
        # Simplified Newton: the Jacobian at the predicted midpoint serves every iteration.
        lu = torch.linalg.lu_factor(eye - h / 2 * problem.jacobian(t_mid, (z + z_new) / 2))
        for _ in range(NEWTON_MAX_ITER):
            residual = z_new - z - h * problem.f(t_mid, (z + z_new) / 2)
            correction = torch.linalg.lu_solve(*lu, residual.unsqueeze(-1)).squeeze(-1)
            z_new = z_new - correction
            if torch.linalg.vector_norm(correction) <= NEWTON_TOL * (
                1 + torch.linalg.vector_norm(z_new)
            ):
                return z_new
    raise NewtonConvergenceError(
        f"the implicit midpoint step at t = {t:.6g} with h = {h:.3g} did not converge in "
        f"{NEWTON_MAX_ITER} Newton iterations; use more steps (`n_steps`)."
    )


def _midpoint_step(problem: _Problem, t: float, z: Tensor) -> Tensor:
    """One implicit midpoint step whose derivative is that of the converged step.

    With :math:`z^*` converged and :math:`M = I - \\tfrac h2 J(\\bar z^*)` held constant,
    :math:`z^* + M^{-1}(z + h f(\\bar z) - z^*)` has the value :math:`z^*` (to the Newton tolerance)
    and the derivatives :math:`M^{-1}(I + \\tfrac h2 J)` by ``z`` and :math:`h M^{-1} F`
    by theta: those of the implicit function theorem.
    """
    h = problem.h
    z_star = _midpoint_solve(problem, t, z.detach())
    t_mid = t + h / 2
    matrix = torch.eye(z.numel(), dtype=z.dtype) - h / 2 * problem.jacobian(
        t_mid, (z.detach() + z_star) / 2
    )
    residual = z + h * problem.f(t_mid, (z + z_star) / 2) - z_star
    return z_star + torch.linalg.solve(matrix, residual)


def _step(problem: _Problem, t: float, z: Tensor) -> Tensor:
    if problem.scheme == "euler":
        return z + problem.h * problem.f(t, z)
    return _midpoint_step(problem, t, z)


def _trajectory(problem: _Problem) -> list[Tensor]:
    """The forward states :math:`z_0, \\dots, z_N` (no graph)."""
    states = [problem.z0]
    with torch.no_grad():
        for n in range(problem.n_steps):
            t, z = n * problem.h, states[-1]
            if problem.scheme == "euler":
                states.append(z + problem.h * problem.f(t, z))
            else:
                states.append(_midpoint_solve(problem, t, z))
    return states


# --------------------------------------------------------------------------- gradients


def backprop_gradient(
    func: nn.Module,
    z0: Tensor,
    T: float,
    n_steps: int,
    loss: Callable[[Tensor], Tensor],
    scheme: str = "euler",
) -> AdjointGradients:
    r"""The exact gradient of the discrete loss :math:`g(z_N)`: backprop through the scheme.

    Parameters
    ----------
    func : torch.nn.Module
        The field ``f(t, z)``; its parameters that require gradients are :math:`\theta`.
    z0 : torch.Tensor
        The initial state, float64, any shape; ``func`` returns that shape.
    T : float
        The final time; the grid is :math:`t_n = n h`, :math:`h = T / N`.
    n_steps : int
        The number of steps :math:`N \ge 1`.
    loss : callable
        ``loss(z)`` of a state of ``z0``'s shape, returning a one-element tensor.
    scheme : {"euler", "midpoint"}
        Explicit Euler or the implicit midpoint rule.

    Returns
    -------
    AdjointGradients
        :math:`\partial g(z_N) / \partial z_0` and :math:`\partial g(z_N)/\partial\theta`,
        flattened.

    Notes
    -----
    For the implicit midpoint rule the step is solved by simplified Newton iterations to a
    relative correction of ``1e-14`` and differentiated by the implicit function theorem (see the
    module docstring), never through the iterations.
    """
    problem = _check_problem(func, z0, T, n_steps, loss, scheme)
    with torch.enable_grad():
        start = problem.z0.clone().requires_grad_(True)
        z = start
        for n in range(problem.n_steps):
            z = _step(problem, n * problem.h, z)
        value = problem.loss_value(z)
        grads = torch.autograd.grad(value, (start, *problem.params), allow_unused=True)
    parts = [
        torch.zeros_like(p) if g is None else g
        for g, p in zip(grads[1:], problem.params, strict=True)
    ]
    return AdjointGradients(grads[0].detach(), _flatten(parts, start).detach())


def continuous_adjoint_gradient(
    func: nn.Module,
    z0: Tensor,
    T: float,
    n_steps: int,
    loss: Callable[[Tensor], Tensor],
    scheme: str = "euler",
) -> AdjointGradients:
    r"""The gradient from the continuous adjoint system, discretised on the forward grid.

    The adjoint :math:`a' = -J^{\mathsf T} a`, :math:`a(T) = \nabla g(z_N)`, and the
    quadrature :math:`\nabla_\theta = \int_0^T F^{\mathsf T} a\, dt` are integrated from
    :math:`T` down to 0 with ``scheme``, reading :math:`z(t)` from the forward states:

    .. math::
        \text{euler:}\quad a_n = a_{n+1} + h J(t_{n+1}, z_{n+1})^{\mathsf T} a_{n+1},
        \qquad \nabla_\theta \mathrel{+}= h F(t_{n+1}, z_{n+1})^{\mathsf T} a_{n+1};

        \text{midpoint:}\quad a_n = a_{n+1} + h \bar J_n^{\mathsf T} \tfrac{a_n + a_{n+1}}{2},
        \qquad \nabla_\theta \mathrel{+}= h \bar F_n^{\mathsf T} \tfrac{a_n + a_{n+1}}{2},

    with :math:`\bar J_n, \bar F_n` at :math:`(t_n + h/2, (z_n + z_{n+1})/2)`.

    Parameters and Returns are those of :func:`backprop_gradient`.
    """
    problem = _check_problem(func, z0, T, n_steps, loss, scheme)
    states, h = _trajectory(problem), problem.h
    a = problem.loss_gradient(states[-1])
    grad_theta = _flatten([torch.zeros_like(p) for p in problem.params], a)
    eye = torch.eye(a.numel(), dtype=a.dtype)
    for n in range(problem.n_steps - 1, -1, -1):
        if problem.scheme == "euler":
            jta, fta = problem.vjp((n + 1) * h, states[n + 1], a)
            a, grad_theta = a + h * jta, grad_theta + h * fta
        else:
            t_mid, z_mid = (n + 0.5) * h, (states[n] + states[n + 1]) / 2
            jt = problem.jacobian(t_mid, z_mid).T
            a_new = torch.linalg.solve(eye - h / 2 * jt, a + h / 2 * (jt @ a))
            _, fta = problem.vjp(t_mid, z_mid, (a + a_new) / 2)
            a, grad_theta = a_new, grad_theta + h * fta
    return AdjointGradients(a, grad_theta)


def adjoint_gap(
    func: nn.Module,
    z0: Tensor,
    T: float,
    n_steps_list: Iterable[int],
    loss: Callable[[Tensor], Tensor],
    scheme: str = "euler",
) -> np.ndarray:
    r"""The relative gaps :math:`\|g_{\text{bp}} - g_{\text{adj}}\| / \|g_{\text{bp}}\|` per grid.

    The gradients are the full vectors ``(z0, params)`` of :class:`AdjointGradients`.

    Parameters
    ----------
    n_steps_list : iterable of int
        The numbers of steps, each at least 1; at least one.
    func, z0, T, loss, scheme
        As in :func:`backprop_gradient`.

    Returns
    -------
    numpy.ndarray
        One gap per entry of ``n_steps_list``.
    """
    if isinstance(n_steps_list, str | bytes) or not isinstance(n_steps_list, Iterable):
        raise TypeError(
            f"`n_steps_list` must be an iterable of integers; got {type(n_steps_list).__name__}."
        )
    counts = [check_int(f"n_steps_list[{i}]", n, minimum=1) for i, n in enumerate(n_steps_list)]
    if not counts:
        raise ValueError("`n_steps_list` must hold at least one number of steps; got none.")
    gaps = []
    for n in counts:
        exact = backprop_gradient(func, z0, T, n, loss, scheme).flat
        adjoint = continuous_adjoint_gradient(func, z0, T, n, loss, scheme).flat
        norm = torch.linalg.vector_norm(exact).item()
        gap = torch.linalg.vector_norm(exact - adjoint).item()
        gaps.append(gap / norm if norm > 0 else (0.0 if gap == 0 else math.inf))
    return np.array(gaps)
