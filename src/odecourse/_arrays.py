"""A tiny array dispatch so the integrator core runs on NumPy arrays and torch tensors.

The stepping code (``rk_step``, the error norm, the step-size controller, the
adaptive and fixed-step loops, dense output) is written with ``+``, ``*``,
scalar floats and ``abs`` only, which NumPy arrays and PyTorch tensors share.
The few operations that the two libraries spell differently live here.  torch
is never imported by this module: a tensor is recognised by its type's module.

Taught in Chapter 7 (why one integrator serves both worlds).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["add_scaled", "all_finite", "detach", "is_torch", "maximum", "rms_norm"]


def is_torch(x: Any) -> bool:
    """Return True if ``x`` is a torch tensor (without importing torch)."""
    return type(x).__module__.startswith("torch")


def add_scaled(y: Any, a: float, x: Any) -> Any:
    """Return ``y + a * x``; one fused operation (and one autograd node) for tensors."""
    if is_torch(x) and is_torch(y):
        return y.add(x, alpha=a)
    return y + a * x


def detach(x: Any) -> Any:
    """Return ``x`` cut from any autograd graph (a torch tensor's ``detach()``; NumPy as is)."""
    return x.detach() if is_torch(x) else x


def maximum(a: Any, b: Any) -> Any:
    """Elementwise maximum of two arrays of the same kind."""
    if is_torch(a):
        return a.maximum(b)
    return np.maximum(a, b)


def all_finite(x: Any) -> bool:
    """Return True if every entry of ``x`` is finite."""
    if is_torch(x):
        # Detached: on a tensor that requires grad, isfinite's composite kernel would record
        # ops that keep the tensor alive for the backward pass.
        return bool(x.detach().isfinite().all())
    return bool(np.isfinite(x).all())


def rms_norm(x: Any) -> float:
    r"""Root-mean-square norm of ``x`` as a Python float (detached from any graph).

    .. math:: \|x\| = \sqrt{\tfrac{1}{n} \textstyle\sum_i x_i^2}

    The norm only steers step sizes, so it is returned as a float: time and
    step sizes inside the core are Python floats, and gradients flow through
    the states, not through the choice of steps.
    """
    size = x.numel() if is_torch(x) else x.size
    if size == 0:
        return 0.0
    magnitude = abs(x.detach()) if is_torch(x) else abs(x)
    return math.sqrt(float((magnitude * magnitude).mean()))
