"""The Chapter 8 checks accept correct answers and reject plausible wrong ones with a hint."""

from __future__ import annotations

import pytest
import torch

from odecourse.checks import CheckFailed, check_hutchinson_trace, check_planar_flow_log_det


def assert_passes(capsys, call, *args):
    assert call(*args) is None
    assert capsys.readouterr().out.startswith("✓ ")


def assert_fails(capsys, call, *args, match: str) -> CheckFailed:
    with pytest.raises(CheckFailed, match=match) as info:
        call(*args)
    printed = capsys.readouterr().out
    assert printed.startswith("✗ Not yet:") and "Hint:" in printed
    return info.value


def stub(*args):
    raise NotImplementedError("Exercise ch8-demo: replace this line with your code.")


# --------------------------------------------------------------------------- planar flow


def planar(z, u, w, b):
    slope = 1 - torch.tanh(z @ w + b) ** 2
    return torch.log(torch.abs(1 + slope * (u @ w)))


def planar_by_autograd(z, u, w, b):
    """A different correct answer: slogdet of the Jacobian, row by row."""
    rows = []
    for row in z:
        jac = torch.autograd.functional.jacobian(lambda v: v + u * torch.tanh(v @ w + b), row)
        rows.append(torch.linalg.slogdet(jac).logabsdet)
    return torch.stack(rows)


def test_planar_accepts_correct_answers(capsys):
    assert_passes(capsys, check_planar_flow_log_det, planar)
    assert_passes(capsys, check_planar_flow_log_det, planar_by_autograd)
    assert_passes(capsys, check_planar_flow_log_det, lambda z, u, w, b: planar(z, u, w, b).float())


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (
            lambda z, u, w, b: torch.log(torch.abs(1 - (1 - torch.tanh(z @ w + b) ** 2) * (u @ w))),
            "sign error",
        ),
        (
            lambda z, u, w, b: torch.log(torch.abs(1 + torch.tanh(z @ w + b) * (u @ w))),
            "sigma appears",
        ),
        (
            lambda z, u, w, b: torch.log(torch.abs((1 - torch.tanh(z @ w + b) ** 2) * (u @ w))),
            "the 1 from the identity",
        ),
        (
            lambda z, u, w, b: 1 + (1 - torch.tanh(z @ w + b) ** 2) * (u @ w),
            "the determinant itself",
        ),
        (lambda z, u, w, b: torch.exp(planar(z, u, w, b)), "without the logarithm"),
        (
            lambda z, u, w, b: torch.log(1 + (1 - torch.tanh(z @ w + b) ** 2) * (u @ w)),
            "inf or nan",
        ),
        (lambda z, u, w, b: planar(z, u, w, b).sum(), "shape"),
        (lambda z, u, w, b: planar(z, u, w, b).numpy(), "not a torch.Tensor"),
        (lambda z, u, w, b: planar(z, u, w, b) + 0.01, "largest error"),
        (stub, "not implemented yet"),
    ],
)
def test_planar_rejects_wrong_answers(capsys, answer, match):
    assert_fails(capsys, check_planar_flow_log_det, answer, match=match)


def test_planar_misuse():
    with pytest.raises(TypeError, match="`planar_log_det` must be callable"):
        check_planar_flow_log_det(3.0)


# --------------------------------------------------------------------------- Hutchinson


def hutchinson(f, z, probe):
    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        (vjp,) = torch.autograd.grad(f(z), z, grad_outputs=probe)
    return (vjp * probe).sum(dim=1)


def hutchinson_by_jvp(f, z, probe):
    """Another correct answer: J probe by forward mode, then the dot product."""
    _, jvp = torch.func.jvp(f, (z,), (probe,))
    return (jvp * probe).sum(dim=1)


def _vjp(f, z, probe):
    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        return torch.autograd.grad(f(z), z, grad_outputs=probe)[0]


def exact_trace(f, z, probe):
    rows = [torch.autograd.functional.jacobian(lambda v: f(v[None])[0], row) for row in z]
    return torch.stack([torch.trace(j) for j in rows])


def per_dimension(f, z, probe):
    """Right values, but one evaluation of f per dimension."""
    total = 0
    for i in range(z.shape[1]):
        total = (
            total + _vjp(f, z, probe[:, i : i + 1] * torch.eye(z.shape[1])[i])[:, i] * probe[:, i]
        )
    return hutchinson(f, z, probe) + 0 * total


def test_hutchinson_accepts_correct_answers(capsys):
    assert_passes(capsys, check_hutchinson_trace, hutchinson)
    assert_passes(capsys, check_hutchinson_trace, hutchinson_by_jvp)


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (lambda f, z, p: -hutchinson(f, z, p), "sign error"),
        (lambda f, z, p: _vjp(f, z, p).pow(2).sum(1), "Frobenius"),
        (lambda f, z, p: _vjp(f, z, p).sum(1), "multiply by the probe"),
        (exact_trace, "the exact trace"),
        (lambda f, z, p: hutchinson(f, z, p).sum(), "shape"),
        (lambda f, z, p: hutchinson(f, z, p) * 1.001, "largest error"),
        (per_dimension, "called"),
        (lambda f, z, p: _vjp(f, z, p), "shape"),
        (stub, "not implemented yet"),
    ],
)
def test_hutchinson_rejects_wrong_answers(capsys, answer, match):
    assert_fails(capsys, check_hutchinson_trace, answer, match=match)


def test_hutchinson_misuse():
    with pytest.raises(TypeError, match="`hutchinson_trace` must be callable"):
        check_hutchinson_trace(None)
