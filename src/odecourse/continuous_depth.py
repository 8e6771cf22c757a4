r"""The continuous-depth limit: residual networks of growing depth against the ODE flow.

A residual network with :math:`N` layers of size :math:`h = T / N` built from a
*smooth* time-dependent field is a numerical integrator of :math:`\dot x = f(t, x)`, so
its output converges to the flow map as :math:`N \to \infty`, at the order of its
scheme.  :class:`TimeDependentField` is such a field, :func:`continuous_depth_errors`
measures the convergence, and :class:`EvaluationRecorder` records where a solver
evaluates a field (for the picture of finite jumps against continuous trajectories).

Taught in Chapter 6.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._validation import check_callable, check_int, check_positive
from .convergence import observed_order
from .odeint import CountedFunc, odeint
from .residual import Field, Scheme, _check_scheme, _check_state, residual_network

__all__ = ["DepthStudy", "EvaluationRecorder", "TimeDependentField", "continuous_depth_errors"]


class TimeDependentField(nn.Module):
    r"""A smooth time-dependent vector field with weights that vary smoothly in time.

    .. math:: f(t, x) = W_2(t) \tanh\big(W_1(t)\, x + b_1(t)\big) + b_2(t) .

    Every weight is a fixed combination of three smooth functions of time,

    .. math::

        P(t) = P^{(0)} + P^{(1)}\, t + P^{(2)} \sin(\pi t),
        \qquad P \in \{W_1, b_1, W_2, b_2\},

    so :math:`\theta(t)` is smooth and the ODE :math:`\dot x = f(t, x)` has smooth
    solutions.  Use it as ``func(t, x)`` for ``odeint`` and, with :math:`t = l h`, as the
    map of layer :math:`l` of a residual network.  The number of parameters,
    :math:`3 (2 w d + w + d)`, does not depend on the depth.

    Parameters
    ----------
    dim : int
        State dimension :math:`d`; states have shape ``(..., d)``.
    width : int
        Hidden width :math:`w`.
    scale : float
        The coefficients are drawn from :math:`N(0, \text{scale}^2 / \text{fan-in})`
        (torch's global generator: seed it first).
    dtype : torch.dtype, optional
        Parameter dtype (float64 for convergence studies).

    Taught in Chapter 6.
    """

    def __init__(
        self, dim: int, width: int, *, scale: float = 1.0, dtype: torch.dtype | None = None
    ) -> None:
        super().__init__()
        self.dim = check_int("dim", dim, minimum=1)
        self.width = check_int("width", width, minimum=1)
        scale = check_positive("scale", scale)
        dtype = torch.get_default_dtype() if dtype is None else dtype

        def coefficients(*shape: int, fan_in: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(3, *shape, dtype=dtype) * (scale / math.sqrt(fan_in)))

        self.W1 = coefficients(width, dim, fan_in=dim)
        self.b1 = coefficients(width, fan_in=dim)
        self.W2 = coefficients(dim, width, fan_in=width)
        self.b2 = coefficients(dim, fan_in=width)

    def parameters_at(self, t: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        r"""Return :math:`\theta(t) = (W_1(t), b_1(t), W_2(t), b_2(t))`."""
        t = torch.as_tensor(t, dtype=self.W1.dtype, device=self.W1.device)
        phi = torch.stack([torch.ones_like(t), t, torch.sin(math.pi * t)])
        return tuple(torch.tensordot(phi, P, dims=1) for P in (self.W1, self.b1, self.W2, self.b2))

    def forward(self, t: Any, x: Tensor) -> Tensor:
        """Evaluate :math:`f(t, x)` for ``t`` a float or 0-d tensor and ``x`` of shape (..., d)."""
        _check_state(x, self.dim)
        W1, b1, W2, b2 = self.parameters_at(t)
        return torch.tanh(x @ W1.T + b1) @ W2.T + b2


@dataclass(frozen=True)
class DepthStudy:
    """Errors of residual networks of increasing depth against the ODE solution.

    Attributes
    ----------
    depths : ndarray of int, shape (m,)
        Numbers of layers :math:`N`.
    h : ndarray, shape (m,)
        Step sizes :math:`T / N`.
    errors : ndarray, shape (m,)
        :math:`\\max |x_N - x(T)|` over the batch and the components.
    reference : torch.Tensor
        The reference solution :math:`x(T)`.
    """

    depths: np.ndarray
    h: np.ndarray
    errors: np.ndarray
    reference: Tensor

    @property
    def order(self) -> float:
        """The observed order: the least-squares slope of log error against log h."""
        return observed_order(self.h, self.errors)


def continuous_depth_errors(
    field: Field,
    x0: Tensor,
    T: float,
    depths: Sequence[int],
    scheme: Scheme = "euler",
    *,
    rtol: float = 1e-12,
    atol: float = 1e-12,
) -> DepthStudy:
    r"""Measure how fast residual networks of depth :math:`N` converge to the ODE flow.

    For each :math:`N` the network with :math:`h = T / N` and the given ``scheme`` maps
    ``x0`` to :math:`x_N`; the reference :math:`x(T)` solves :math:`\dot x = f(t, x)`,
    :math:`x(0) = x_0`, with ``odeint`` (dopri5, tolerances ``rtol``, ``atol``).

    .. math:: E(h) = \max_i |x_{N,i} - x_i(T)| \approx C h^p .

    Parameters
    ----------
    field : callable
        The continuous field ``f(t, x)``, e.g. a float64 :class:`TimeDependentField`.
    x0 : torch.Tensor, shape (n, d)
        Initial states (use float64 so that rounding stays far below the errors).
    T : float
        Final time :math:`T > 0`.
    depths : sequence of int
        At least two depths :math:`N \ge 1`.
    scheme : str, ButcherTableau or LinearMultistepMethod
        The integrator of the layers.
    rtol, atol : float
        Tolerances of the reference solve.

    Returns
    -------
    DepthStudy

    Taught in Chapter 6.
    """
    check_callable("field", field)
    if not isinstance(x0, Tensor):
        raise TypeError(f"`x0` must be a torch.Tensor; got {type(x0).__name__}.")
    T = check_positive("T", T)
    scheme = _check_scheme(scheme)
    depths = [check_int("depths", L, minimum=1) for L in depths]
    if len(set(depths)) < 2:
        raise ValueError(f"`depths` must hold at least two different depths; got {depths}.")
    with torch.no_grad():
        t = torch.tensor([0.0, T], dtype=x0.dtype, device=x0.device)
        reference = odeint(field, x0, t, rtol=rtol, atol=atol, method="dopri5")[-1]
        errors = [
            (residual_network(field, depth=L, T=T, scheme=scheme)(x0) - reference)
            .abs()
            .max()
            .item()
            for L in depths
        ]
    depths_array = np.array(depths)
    return DepthStudy(depths_array, T / depths_array, np.array(errors), reference)


class EvaluationRecorder(CountedFunc):
    """Wrap a vector field ``func(t, x)`` and record every evaluation point ``(t, x)``.

    A :class:`~odecourse.odeint.CountedFunc` that also keeps, in call order, the times
    as floats in ``times`` and detached copies of the states in ``states``; ``nfe`` is
    their number.  A module ``func`` is registered as a submodule.  Works with
    ``odeint`` from odecourse or torchdiffeq.

    Taught in Chapter 6.
    """

    def __init__(self, func: Field) -> None:
        super().__init__(func)
        self.times: list[float] = []
        self.states: list[Tensor] = []

    def forward(self, t: Any, x: Tensor) -> Tensor:
        self.times.append(float(t))
        self.states.append(x.detach().clone())
        return super().forward(t, x)

    def reset(self) -> None:
        """Forget all recorded evaluations and set ``nfe`` back to zero."""
        super().reset()
        self.times, self.states = [], []
