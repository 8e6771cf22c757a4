r"""How much memory backpropagation keeps: the bytes of the tensors saved for backward.

Reverse-mode differentiation needs, for every operation on the way forward, some
of its inputs or outputs (a matrix product keeps both factors, ``tanh`` keeps
its output).  Autograd hands each such tensor to the *pack hook* of
``torch.autograd.graph.saved_tensors_hooks`` when it saves it, so a hook that
records the tensor's storage measures exactly what the graph holds on to, on the
CPU as on a GPU, without the noise of a process's resident memory.  Storages
are counted once, however many views of them are saved.

Taught in Chapter 7, where backprop through an ODE solver keeps memory linear
in the number of steps and the adjoint method keeps it constant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from odecourse._validation import check_callable

__all__ = ["saved_tensor_bytes"]


def saved_tensor_bytes(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """Call ``fn(*args, **kwargs)`` and count the bytes autograd saves for backward meanwhile.

    Parameters
    ----------
    fn : callable
        Runs a forward computation, typically up to a scalar loss.
    *args, **kwargs
        Passed to ``fn``.

    Returns
    -------
    result : Any
        What ``fn`` returned (its graph is intact: call ``backward`` on it as usual).
    nbytes : int
        Total size in bytes of the distinct storages saved for backward while
        ``fn`` ran, parameters included.  Zero when nothing requires grad.

    Notes
    -----
    Only tensors saved by the autograd graph are counted, not every tensor
    allocated: intermediate results that no backward formula needs are freed
    and do not appear.  Taught in Chapter 7.

    Examples
    --------
    >>> w = torch.ones(3, requires_grad=True)
    >>> x = torch.ones(3)
    >>> _, nbytes = saved_tensor_bytes(lambda: (w * x).sum())
    >>> nbytes  # w * x keeps x (and w, which does not need it, is not saved)
    12
    """
    check_callable("fn", fn)
    sizes: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        sizes[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = fn(*args, **kwargs)
    return result, sum(sizes.values())
