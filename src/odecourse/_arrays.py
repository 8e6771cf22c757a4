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
from scipy.linalg import lu_solve as _scipy_lu_solve
from scipy.linalg.lapack import dgetrs, zgetrs

__all__ = [
    "add_scaled",
    "all_finite",
    "detach",
    "is_torch",
    "lu_solve",
    "maximum",
    "rms_norm",
    "scalar_like",
]


def is_torch(x: Any) -> bool:
    """Return True if ``x`` is a torch tensor (without importing torch)."""
    return type(x).__module__.startswith("torch")


def add_scaled(y: Any, a: float, x: Any) -> Any:
    """Return ``y + a * x``; one fused operation (and one autograd node) for tensors."""
    if type(x) is not np.ndarray and is_torch(x) and is_torch(y):
        return y.add(x, alpha=a)
    return y + a * x


def scalar_like(value: Any, x: Any) -> Any:
    """``value`` as a 0-d CPU tensor of ``x``'s dtype, if that changes no bit; else as is.

    For a float32 or float64 tensor ``x`` and a Python float ``value``, ``value * x`` and
    ``x * scalar_like(value, x)`` agree to the last bit (torch rounds the float to the
    tensor's dtype either way), but the tensor spares torch wrapping and casting the float
    on every call.  Half precisions compute with the unrounded float, so they keep it.
    """
    if (
        type(value) is float
        and type(x) is not np.ndarray
        and is_torch(x)
        and x.is_floating_point()
        and x.dtype.itemsize >= 4
    ):
        return x.new_tensor(value, device="cpu")
    return value


def detach(x: Any) -> Any:
    """Return ``x`` cut from any autograd graph (a torch tensor's ``detach()``; NumPy as is)."""
    return x.detach() if type(x) is not np.ndarray and is_torch(x) else x


def maximum(a: Any, b: Any) -> Any:
    """Elementwise maximum of two arrays of the same kind."""
    if type(a) is not np.ndarray and is_torch(a):
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
    # x * x equals |x| * |x| to the last bit (a product's rounding ignores signs).
    if type(x) is np.ndarray and x.dtype == np.float64:  # the mean, without its wrapper
        return math.sqrt(float(np.add.reduce(x * x, axis=None)) / x.size) if x.size else 0.0
    if is_torch(x):
        x = x.detach() if x.requires_grad else x
        return math.sqrt(float((x * x).mean())) if x.numel() else 0.0
    if x.size == 0:
        return 0.0
    magnitude = abs(x)
    return math.sqrt(float((magnitude * magnitude).mean()))


def lu_solve(
    lu_and_piv: tuple[np.ndarray, np.ndarray], b: np.ndarray, *, check_finite: bool = True
) -> np.ndarray:
    """``scipy.linalg.lu_solve(lu_and_piv, b)``, calling LAPACK's ``getrs`` directly.

    The same LAPACK routine on the same arrays as SciPy's function, so the same result
    to the last bit, without its per-call checks and dispatch, which cost several times
    the solve itself for the small systems of the implicit solvers (BDF, Radau).  Like
    SciPy's, it refuses a non-finite ``b`` unless ``check_finite`` is False.
    """
    lu, piv = lu_and_piv
    b = np.asarray_chkfinite(b) if check_finite else np.asarray(b)
    if b.size == 0 or lu.shape[0] != b.shape[0]:  # SciPy's answer (or its error)
        return _scipy_lu_solve(lu_and_piv, b, check_finite=check_finite)
    getrs = zgetrs if lu.dtype.kind == "c" or b.dtype.kind == "c" else dgetrs
    x, info = getrs(lu, piv, b)
    if info != 0:
        raise ValueError(f"illegal value in {-info}th argument of internal getrs")
    return x
