"""Answer checks for network code (Chapters 5 and 6): residual blocks.

See :mod:`odecourse.checks` for how the checks report.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

from odecourse._validation import (
    check_int,
)

from ._verdict import (
    _failure,
    _passed,
    _student_code,
)

__all__ = ["check_residual_block"]


def _build_block(block: Any, width: int, hint: str) -> Any:
    import torch

    if isinstance(block, type):
        with _student_code(f"{block.__name__}({width})", hint):
            block = block(width)
    if not callable(block):
        raise TypeError(f"`block` must be a torch.nn.Module, a class or a callable; got {block!r}.")
    return block if isinstance(block, torch.nn.Module) else _FunctionBlock(block)


class _FunctionBlock:
    """A plain function ``x -> y`` seen as a block without parameters."""

    def __init__(self, function: Callable) -> None:
        self.function = function

    def __call__(self, x: Any) -> Any:
        return self.function(x)

    def parameters(self) -> Iterator[Any]:
        return iter(())


def _run_block(block: Any, x: Any, hint: str) -> Any:
    import torch

    with _student_code("your block", hint):
        y = block(x)
    if not isinstance(y, torch.Tensor):
        raise _failure(f"the block returned {type(y).__name__}, not a torch.Tensor.", hint)
    if not bool(torch.isfinite(y).all()):
        raise _failure(
            "the block's output is not finite (it contains nan or inf).",
            "look for a division by zero, a log of a non-positive number, or an overflow "
            "in the residual branch.",
        )
    if tuple(y.shape) != tuple(x.shape):
        raise _failure(
            f"the block maps shape {tuple(x.shape)} to {tuple(y.shape)}; a residual block "
            "keeps the shape (batch, width).",
            hint,
        )
    return y


def check_residual_block(
    block: Any, width: int, *, batch: int = 5, zero_is_identity: bool = True, hint=None
) -> None:
    r"""Check a residual block :math:`x \mapsto x + h F(x)` on a batch of shape ``(batch, width)``.

    The block must return a tensor of the input's shape, treat the rows of a
    batch independently, and actually change its input.  With
    ``zero_is_identity`` (for blocks with parameters), a copy whose parameters
    are all set to zero must be the identity, which is what the shortcut means:
    with :math:`F = 0` the block passes :math:`x` through unchanged.

    Parameters
    ----------
    block : torch.nn.Module, class, or callable
        A block, a class whose constructor takes ``width``, or a function ``x -> y``.
    width : int
        The width ``w`` of the hidden state.
    batch : int
        Number of random inputs.
    zero_is_identity : bool
        Also test the zero-parameter identity.
    hint : str, optional
        Replaces the default hint.

    Examples
    --------
    >>> from odecourse.networks import ResidualBlock
    >>> check_residual_block(ResidualBlock, width=4)
    ✓ the block maps (5, 4) to (5, 4), acts row by row, and is the identity when F = 0.

    Taught in Chapter 5.
    """
    import torch

    width = check_int("width", width, minimum=1)
    batch = check_int("batch", batch, minimum=2)
    hint = hint or "return x + h * F(x), where F is the residual branch (here W sigma(x) + b)."
    module = _build_block(block, width, hint)
    x = torch.randn(batch, width, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = _run_block(module, x, hint)
        if torch.allclose(y, x):
            raise _failure("the block returns its input unchanged: the branch is missing.", hint)
        if not torch.allclose(_run_block(module, x[:1], hint), y[:1], atol=1e-6):
            raise _failure("row 0 of the output depends on the other rows of the batch.", hint)
        identity = ""
        if zero_is_identity and any(True for _ in module.parameters()):
            zeroed = copy.deepcopy(module)
            for parameter in zeroed.parameters():
                parameter.zero_()
            if not torch.allclose(_run_block(zeroed, x, hint), x, atol=1e-6):
                raise _failure(
                    "with all weights set to zero the block is not the identity: the "
                    "shortcut x + ... is missing.",
                    hint,
                )
            identity = ", and is the identity when F = 0"
    _passed(f"the block maps {tuple(x.shape)} to {tuple(y.shape)}, acts row by row{identity}.")
