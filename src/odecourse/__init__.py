"""odecourse: the tested code behind the course *From ODEs to Neural ODEs*.

One module per concept; the names a reader uses most are re-exported here.

- Chapter 1: :mod:`~odecourse.ivp`, :mod:`~odecourse.picard`, :mod:`~odecourse.plotting`
- Chapters 2-3: :mod:`~odecourse.runge_kutta`, :mod:`~odecourse.implicit`,
  :mod:`~odecourse.adaptive`, :mod:`~odecourse.fixed_step`, :mod:`~odecourse.solve`,
  :mod:`~odecourse.stability`, :mod:`~odecourse.convergence`, :mod:`~odecourse.step_history`
- Chapter 4: :mod:`~odecourse.multistep`, :mod:`~odecourse.multistep_solver`
- Chapter 5: :mod:`~odecourse.networks`, :mod:`~odecourse.data`, :mod:`~odecourse.training`
- Chapter 6: :mod:`~odecourse.residual`, :mod:`~odecourse.continuous_depth`,
  :mod:`~odecourse.forward_stability`, :mod:`~odecourse.depth_limits`
- Chapters 6-7: :mod:`~odecourse.odeint` (the PyTorch front end), :mod:`~odecourse.adjoint`,
  :mod:`~odecourse.odeint_event`, :mod:`~odecourse.neural_ode`, :mod:`~odecourse.memory`,
  :mod:`~odecourse.discrete_adjoint`, :mod:`~odecourse.regularization`
- Chapter 8: :mod:`~odecourse.flows`
- Coursework: :mod:`~odecourse.checks`, :mod:`~odecourse.assignments`

``odecourse.odeint`` is the module of that name, and calling it calls the solver
(``odecourse.odeint(func, y0, t)``, torchdiffeq's spelling); ``from odecourse import odeint``
gives the same callable module.  ``odecourse.odeint_event`` is made the same way.
"""

from . import odeint, odeint_event
from .adjoint import odeint_adjoint
from .continuous_depth import EvaluationRecorder, TimeDependentField, continuous_depth_errors
from .convergence import convergence_study, observed_order, work_precision
from .data import Dataset, concentric_circles, digits, two_moons, two_spirals
from .flows import CNF
from .forward_stability import AntisymmetricBlock, increment_eigenvalues
from .ivp import IVP, PROBLEMS, get_problem
from .memory import saved_tensor_bytes
from .multistep import LinearMultistepMethod, boundary_locus, get_multistep_method
from .multistep_solver import multistep_solve
from .networks import PlainMLP, ResidualBlock, ResidualMLP, count_parameters
from .neural_ode import ODEBlock, ODEClassifier, ODEFunc, fit_trajectory
from .newton import NewtonConvergenceError
from .odeint import CountedFunc, SolveStats
from .picard import picard_iterates
from .regularization import RegularizedODEClassifier, rnode_solve, train_rnode
from .residual import MultistepResNet, RKResNet, make_classifier, residual_network
from .runge_kutta import TABLEAUS, ButcherTableau, get_tableau, rk_step
from .seeding import seed_everything
from .solve import METHODS, OdeResult, OdeSolution, register_method, solve_ivp
from .stability import plot_stability_region, stability_function
from .training import History, evaluate, gradient_norms, train

__version__ = "0.1.0"

__all__ = [
    "CNF",
    "IVP",
    "METHODS",
    "PROBLEMS",
    "TABLEAUS",
    "AntisymmetricBlock",
    "ButcherTableau",
    "CountedFunc",
    "Dataset",
    "EvaluationRecorder",
    "History",
    "LinearMultistepMethod",
    "MultistepResNet",
    "NewtonConvergenceError",
    "ODEBlock",
    "ODEClassifier",
    "ODEFunc",
    "OdeResult",
    "OdeSolution",
    "PlainMLP",
    "RKResNet",
    "RegularizedODEClassifier",
    "ResidualBlock",
    "ResidualMLP",
    "SolveStats",
    "TimeDependentField",
    "boundary_locus",
    "concentric_circles",
    "continuous_depth_errors",
    "convergence_study",
    "count_parameters",
    "digits",
    "evaluate",
    "fit_trajectory",
    "get_multistep_method",
    "get_problem",
    "get_tableau",
    "gradient_norms",
    "increment_eigenvalues",
    "make_classifier",
    "multistep_solve",
    "observed_order",
    "odeint",
    "odeint_adjoint",
    "odeint_event",
    "picard_iterates",
    "plot_stability_region",
    "register_method",
    "residual_network",
    "rk_step",
    "rnode_solve",
    "saved_tensor_bytes",
    "seed_everything",
    "solve_ivp",
    "stability_function",
    "train",
    "train_rnode",
    "two_moons",
    "two_spirals",
    "work_precision",
]
