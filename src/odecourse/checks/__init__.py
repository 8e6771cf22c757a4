"""Answer checks for the coding exercises: test a student's code and print a friendly verdict.

Every check runs the reader's code on a small problem whose answer is known,
prints one line, and either returns quietly or raises :class:`CheckFailed`:

- ``✓ ...`` when the code passes;
- ``✗ Not yet: <what went wrong>. Hint: <where to look>`` when it does not.

:class:`CheckFailed` is an :class:`AssertionError`, so nbgrader's autograder
awards zero points for a failing test cell.  A function that still raises the
``NotImplementedError`` of the student edition's stub is reported as "not
implemented yet", with the hint, rather than as a traceback from deep inside
the check.  Any other exception from the reader's code is reported the same
way and chained, so its traceback is still there to read.

Checks that take an answer which is data (a tableau, multistep coefficients,
a number) also accept a function of no arguments that returns it, so that the
call runs inside the check and its stub is caught there.

The check modules are read-only (``odecourse.checks.check_close = ...``
raises :class:`AttributeError`), and before a check prints a pass it runs
:func:`verify`, which compares the checks with the installed source files.

Taught in every chapter's coding exercises; see the appendix "Using this book
in a course".
"""

from . import _integrity
from ._integrity import verify
from ._verdict import ORDER_TOLERANCE, CheckFailed
from .flows import check_hutchinson_trace, check_planar_flow_log_det
from .generic import check_close, check_gradient
from .ivp import check_first_order_system, check_picard_step
from .multistep import check_multistep_coefficients
from .networks import check_residual_block
from .one_step import check_stability_function, check_step_order, check_tableau

__all__ = [
    "ORDER_TOLERANCE",
    "CheckFailed",
    "check_close",
    "check_first_order_system",
    "check_gradient",
    "check_hutchinson_trace",
    "check_multistep_coefficients",
    "check_picard_step",
    "check_planar_flow_log_det",
    "check_residual_block",
    "check_stability_function",
    "check_step_order",
    "check_tableau",
    "verify",
]

_integrity._protect()
