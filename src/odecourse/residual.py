r"""Integrators as architectures: residual networks built from Runge-Kutta and multistep steps.

A residual network with step size :math:`h` is a numerical integrator of the ODE
:math:`\dot x = f(t, x; \theta(t))` on :math:`[0, T]`, :math:`h = T / N`:

.. math::

    x_{l+1} = x_l + h\, f(t_l, x_l; \theta_l), \qquad t_l = l h

is one explicit Euler step per layer.  Any other explicit integrator gives another
architecture.  :class:`RKResNet` takes one step of an arbitrary explicit Butcher tableau
per layer (through the shared :func:`odecourse.runge_kutta.rk_step`), and
:class:`MultistepResNet` one step of an explicit linear multistep method whose
coefficients come from :mod:`odecourse.multistep` (the LM-ResNet idea of Lu et al.).
Both accept either one continuous field :math:`f(t, x)` (such as
:class:`~odecourse.continuous_depth.TimeDependentField`, for the continuous-depth limit
studied in :mod:`odecourse.continuous_depth`) or one field per layer with independent
parameters (:func:`make_layer_fields`, for training).  The single-layer blocks of Haber
and Ruthotto live in :mod:`odecourse.forward_stability`.

Taught in Chapter 6.

References
----------
he2016deep: K. He, X. Zhang, S. Ren, J. Sun, Deep residual learning for image recognition, 2016.
weinan2017: W. E, A proposal on machine learning via dynamical systems, 2017.
haber2017: E. Haber, L. Ruthotto, Stable architectures for deep neural networks, 2017.
lu2018: Y. Lu, A. Zhong, Q. Li, B. Dong, Beyond finite layer neural networks: bridging deep
architectures and numerical differential equations, ICML 2018.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from ._validation import check_callable, check_choice, check_int, check_positive
from .multistep import LinearMultistepMethod
from .networks import ACTIVATIONS
from .runge_kutta import ButcherTableau, resolve_tableau, rk_step

__all__ = [
    "LayerField",
    "MultistepResNet",
    "RKResNet",
    "ResidualClassifier",
    "make_classifier",
    "make_layer_fields",
    "residual_network",
]

Field = Callable[[Any, Tensor], Tensor]


def _check_state(x: Any, dim: int) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"`x` must be a torch.Tensor; got {type(x).__name__}.")
    if x.ndim == 0 or x.shape[-1] != dim:
        raise ValueError(f"`x` must have shape (..., {dim}); got {tuple(x.shape)}.")
    return x


# --------------------------------------------------------------------------- vector fields


class LayerField(nn.Module):
    r"""The residual branch of one layer, :math:`f_l(t, x) = W_l\, \sigma(x) + b_l` (no ``t``).

    The pre-activation branch of :class:`odecourse.networks.ResidualBlock`, with the
    signature ``f(t, x)`` of a vector field so that an integrator can call it.
    :math:`(w + 1) w` parameters.

    Taught in Chapter 6.
    """

    def __init__(self, width: int, activation: str = "relu") -> None:
        super().__init__()
        self.dim = self.width = check_int("width", width, minimum=1)
        check_choice("activation", activation, ACTIVATIONS)
        self.linear = nn.Linear(width, width)
        self.activation = ACTIVATIONS[activation]()

    def forward(self, t: Any, x: Tensor) -> Tensor:
        """Return :math:`W \\sigma(x) + b` for ``x`` of shape (..., w); ``t`` is ignored."""
        return self.linear(self.activation(_check_state(x, self.dim)))


def make_layer_fields(depth: int, width: int, activation: str = "relu") -> nn.ModuleList:
    """Return ``depth`` :class:`LayerField` modules with independent parameters.

    Parameters are created in layer order from torch's global generator.  Taught in Chapter 6.
    """
    depth = check_int("depth", depth, minimum=1)
    return nn.ModuleList(LayerField(width, activation) for _ in range(depth))


# --------------------------------------------------------------------------- architectures


class _DepthNetwork(nn.Module):
    """Shared bookkeeping: depth, step size and the field(s) of the layers."""

    def __init__(self, field: Field | Sequence[Field], depth: int, T: float) -> None:
        super().__init__()
        self.depth = check_int("depth", depth, minimum=1)
        self.T = check_positive("T", T)
        self.h = self.T / self.depth
        if isinstance(field, Sequence | nn.ModuleList):
            if len(field) != self.depth:
                raise ValueError(
                    f"`field` must be one callable or a sequence of `depth` = {self.depth} "
                    f"callables; got a sequence of {len(field)}."
                )
            for i, f in enumerate(field):
                check_callable(f"field[{i}]", f)
            modules = all(isinstance(f, nn.Module) for f in field)
            self.fields = nn.ModuleList(field) if modules else list(field)
            self.shared = False
        else:
            self.field = check_callable("field", field)
            self.shared = True
        self.dim = getattr(self.field if self.shared else self.fields[0], "dim", None)

    def layer_field(self, l: int) -> Field:  # noqa: E741 - l is the layer index of the text
        """The vector field used by layer ``l`` (the shared one, or layer ``l``'s own)."""
        return self.field if self.shared else self.fields[l]

    def times(self) -> list[float]:
        """The layer times :math:`t_l = l h`, :math:`l = 0, \\dots, N`."""
        return [layer * self.h for layer in range(self.depth + 1)]

    def forward(self, x: Tensor) -> Tensor:
        """Map states ``x`` of shape (..., d) at depth 0 to depth :math:`T`."""
        return self.states(x)[-1]

    def states(self, x: Tensor) -> list[Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


class RKResNet(_DepthNetwork):
    r"""A residual network whose layer is one step of an explicit Runge-Kutta method.

    .. math::

        k_i = f_l\Big(t_l + c_i h,\; x_l + h \sum_{j<i} a_{ij} k_j\Big), \qquad
        x_{l+1} = x_l + h \sum_{i=1}^{s} b_i k_i, \qquad h = T / N .

    The Euler tableau gives the classic ResNet :math:`x_{l+1} = x_l + h f_l(t_l, x_l)`;
    ``"midpoint"`` gives an RK2 network with two evaluations of the layer's field.

    Parameters
    ----------
    field : callable or sequence of callables
        One field ``f(t, x)`` shared by all layers (its parameters :math:`\theta(t)` vary
        smoothly with depth), or ``depth`` fields ``f_l(t, x)`` with independent parameters.
    depth : int
        Number of layers :math:`N \ge 1`.
    T : float
        Final time (total depth) :math:`T > 0`.
    tableau : str or ButcherTableau
        An explicit tableau or the name of one (see :data:`odecourse.runge_kutta.TABLEAUS`).

    References
    ----------
    he2016deep; weinan2017; lu2018; hairer1993, Sec. II.1.

    Taught in Chapter 6.
    """

    def __init__(
        self,
        field: Field | Sequence[Field],
        *,
        depth: int,
        T: float = 1.0,
        tableau: str | ButcherTableau = "euler",
    ) -> None:
        super().__init__(field, depth, T)
        self.tableau = _explicit_tableau(tableau)

    def states(self, x: Tensor) -> list[Tensor]:
        """Return the hidden states :math:`[x_0, x_1, \\dots, x_N]`, each shaped like ``x``."""
        _check_input(x, self.dim)
        states = [x]
        for l, t in enumerate(self.times()[:-1]):  # noqa: E741
            states.append(rk_step(self.layer_field(l), t, states[-1], self.h, self.tableau).y)
        return states


class MultistepResNet(_DepthNetwork):
    r"""A residual network whose layer is one step of an explicit linear multistep method.

    With the normalised coefficients :math:`\alpha_k = 1`, :math:`\beta_k = 0` of a
    :math:`k`-step method and :math:`F_l = f_l(t_l, x_l)`,

    .. math::

        x_{l+k} = -\sum_{j=0}^{k-1} \alpha_j\, x_{l+j} + h \sum_{j=0}^{k-1} \beta_j\, F_{l+j};

    for Adams-Bashforth 2, :math:`x_{l+1} = x_l + h(\tfrac32 F_l - \tfrac12 F_{l-1})`.
    The first :math:`k - 1` layers are one-step layers with the ``starter`` tableau
    (Euler by default).  Each layer evaluates its field once.  Global order
    :math:`\min(p, q + 1)` for a zero-stable method of order :math:`p` and a starter of
    order :math:`q`.  Lu et al. learn the two-step coefficient; here the coefficients are
    fixed by the method.

    Parameters
    ----------
    field : callable or sequence of callables
        As for :class:`RKResNet`.
    depth : int
        Number of layers :math:`N \ge 1`.
    T : float
        Final time :math:`T > 0`.
    method : LinearMultistepMethod
        An explicit method, e.g. ``odecourse.multistep.adams_bashforth(2)``.
    starter : str or ButcherTableau
        Explicit tableau for the first ``k - 1`` layers.

    References
    ----------
    lu2018; hairer1993, Sec. III.1.

    Taught in Chapter 6.
    """

    def __init__(
        self,
        field: Field | Sequence[Field],
        *,
        depth: int,
        T: float = 1.0,
        method: LinearMultistepMethod,
        starter: str | ButcherTableau = "euler",
    ) -> None:
        super().__init__(field, depth, T)
        if not isinstance(method, LinearMultistepMethod):
            raise TypeError(
                f"`method` must be a LinearMultistepMethod; got {type(method).__name__}."
            )
        if not method.explicit:
            raise ValueError(f"`method` must be explicit (beta_k = 0); {method.name} is implicit.")
        self.method = method
        self.starter = _explicit_tableau(starter, name="starter")
        self._alpha = [float(a) for a in method.alpha[:-1]]
        self._beta = [float(b) for b in method.beta[:-1]]

    def states(self, x: Tensor) -> list[Tensor]:
        """Return the hidden states :math:`[x_0, x_1, \\dots, x_N]`, each shaped like ``x``."""
        _check_input(x, self.dim)
        k, h = self.method.steps, self.h
        states, derivatives = [x], []
        for l, t in enumerate(self.times()[:-1]):  # noqa: E741
            f = self.layer_field(l)
            derivatives.append(f(t, states[-1]))
            if l < k - 1:
                step = rk_step(f, t, states[-1], h, self.starter, k0=derivatives[-1])
                states.append(step.y)
                continue
            window = range(l - k + 1, l + 1)
            new = sum(-a * states[i] for a, i in zip(self._alpha, window, strict=True) if a)
            new = new + h * sum(b * derivatives[i] for b, i in zip(self._beta, window, strict=True))
            states.append(new)
        return states


def _explicit_tableau(tableau: Any, name: str = "tableau") -> ButcherTableau:
    return resolve_tableau(tableau, name, explicit=True)


def _check_input(x: Any, width: int | None) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"`x` must be a torch.Tensor; got {type(x).__name__}.")
    if width is not None:
        _check_state(x, width)


Scheme = str | ButcherTableau | LinearMultistepMethod


def _check_scheme(scheme: Any) -> ButcherTableau | LinearMultistepMethod:
    """Return an explicit tableau (names resolved) or an explicit multistep method."""
    if isinstance(scheme, LinearMultistepMethod):
        if not scheme.explicit:
            raise ValueError(f"`scheme` must be explicit (beta_k = 0); {scheme.name} is implicit.")
        return scheme
    if not isinstance(scheme, str | ButcherTableau):
        raise TypeError(
            "`scheme` must be a tableau name, a ButcherTableau or a LinearMultistepMethod; "
            f"got {type(scheme).__name__} {scheme!r:.60}."
        )
    return _explicit_tableau(scheme, name="scheme")


def residual_network(
    field: Field | Sequence[Field], *, depth: int, T: float, scheme: Scheme = "euler"
) -> nn.Module:
    """The residual network of ``depth`` layers on ``[0, T]`` whose layers follow ``scheme``.

    An :class:`RKResNet` for a Butcher tableau (or its name, e.g. ``"euler"``,
    ``"midpoint"``), a :class:`MultistepResNet` for an explicit
    :class:`~odecourse.multistep.LinearMultistepMethod`.  ``field`` is one field
    ``f(t, x)`` or one per layer.  Taught in Chapter 6.
    """
    scheme = _check_scheme(scheme)
    if isinstance(scheme, LinearMultistepMethod):
        return MultistepResNet(field, depth=depth, T=T, method=scheme)
    return RKResNet(field, depth=depth, T=T, tableau=scheme)


class ResidualClassifier(nn.Module):
    r"""A classifier around a residual body: lift, integrate, read out.

    .. math::

        x_0 = A_{\text{in}} u + a_{\text{in}}, \qquad x_N = \text{body}(x_0), \qquad
        z = A_{\text{out}} x_N + a_{\text{out}} .

    Parameters
    ----------
    input : torch.nn.Linear
        The lift :math:`\R^d \to \R^w`.
    body : RKResNet or MultistepResNet
        The residual network acting on states of width :math:`w`.
    output : torch.nn.Linear
        The read-out :math:`\R^w \to \R^c`.

    Taught in Chapter 6.
    """

    def __init__(self, input: nn.Linear, body: _DepthNetwork, output: nn.Linear) -> None:
        super().__init__()
        if not isinstance(body, _DepthNetwork):
            raise TypeError(
                f"`body` must be an RKResNet or a MultistepResNet; got {type(body).__name__}."
            )
        for name, layer in (("input", input), ("output", output)):
            if not isinstance(layer, nn.Linear):
                raise TypeError(f"`{name}` must be a torch.nn.Linear; got {type(layer).__name__}.")
        if body.dim is not None and not input.out_features == body.dim == output.in_features:
            raise ValueError(
                f"the widths must agree: input gives {input.out_features}, the body acts on "
                f"{body.dim}, output takes {output.in_features}."
            )
        self.input, self.body, self.output = input, body, output

    def forward(self, u: Tensor) -> Tensor:
        """Return logits of shape (n, c) for inputs ``u`` of shape (n, d)."""
        d = self.input.in_features
        if not isinstance(u, Tensor) or u.ndim != 2 or u.shape[1] != d:
            got = tuple(u.shape) if isinstance(u, Tensor) else type(u).__name__
            raise ValueError(f"`u` must be a tensor of shape (n, {d}); got {got}.")
        return self.output(self.body(self.input(u)))


def make_classifier(
    scheme: Scheme,
    in_features: int,
    out_features: int,
    *,
    depth: int,
    width: int,
    T: float | None = None,
    activation: str = "relu",
) -> ResidualClassifier:
    r"""Build a classifier whose body integrates with ``scheme`` over independent layer fields.

    Every scheme gets the same parameters, :math:`(d+1)w + N(w+1)w + (w+1)c`, created in
    the same order (layer fields, input layer, output layer), so with the same seed all
    architectures start from identical weights.  ``T`` defaults to ``depth`` (:math:`h = 1`);
    with the Euler tableau and :math:`h = 1` this is :class:`~odecourse.networks.ResidualMLP`.

    Parameters
    ----------
    scheme : str, ButcherTableau or LinearMultistepMethod
        ``"euler"``, ``"midpoint"``, any explicit tableau, or e.g. ``adams_bashforth(2)``.
    in_features, out_features : int
        Input dimension :math:`d` and number of classes :math:`c`.
    depth, width : int
        Number of layers :math:`N` and hidden width :math:`w`.
    T : float, optional
        Total depth; :math:`h = T / N`.
    activation : str
        Activation of the layer fields.

    Taught in Chapter 6.
    """
    scheme = _check_scheme(scheme)
    depth = check_int("depth", depth, minimum=1)
    width = check_int("width", width, minimum=1)
    T = float(depth) if T is None else check_positive("T", T)
    fields = make_layer_fields(depth, width, activation)  # drawn first, as in ResidualMLP
    lift = nn.Linear(check_int("in_features", in_features, minimum=1), width)
    readout = nn.Linear(width, check_int("out_features", out_features, minimum=1))
    return ResidualClassifier(
        lift, residual_network(fields, depth=depth, T=T, scheme=scheme), readout
    )
