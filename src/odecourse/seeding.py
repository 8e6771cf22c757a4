"""One place that seeds every random source the course uses."""

from __future__ import annotations

import random

import numpy as np

from ._validation import check_int

__all__ = ["seed_everything"]


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's ``random``, NumPy's global state and PyTorch; return a NumPy generator.

    Parameters
    ----------
    seed : int
        A non-negative integer.

    Returns
    -------
    numpy.random.Generator
        A fresh generator seeded with ``seed``, for code that prefers an explicit generator.

    Used from Chapter 5 on.
    """
    seed = check_int("seed", seed, minimum=0)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds legacy global-state users too
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency of the course
        pass
    else:
        torch.manual_seed(seed)
    return np.random.default_rng(seed)
