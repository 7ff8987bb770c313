"""Models with closed-form flip distances, and the tolerances the attack tests use."""

from __future__ import annotations

import torch
from torch import nn

from captum_simec.audit.attacks import AttackResult

TOL = 1e-4  # bisection tolerance used against the closed forms
SLACK = 1e-5  # float32 round-off on top of the tolerance


def linear(n_features: int, n_classes: int, seed: int) -> nn.Linear:
    """A float32 linear classifier with standard normal weights and biases, in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    model = nn.Linear(n_features, n_classes)
    with torch.no_grad():
        model.weight.copy_(torch.randn(n_classes, n_features, generator=gen))
        model.bias.copy_(torch.randn(n_classes, generator=gen))
    return model.eval()


def mlp(seed: int = 0) -> nn.Module:
    """A 4 -> 16 -> 3 tanh MLP in eval mode."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3)).eval()


def binary_problem() -> tuple[nn.Linear, torch.Tensor]:
    """A two-class linear model and ten inputs whose margins differ."""
    model = linear(6, 2, seed=1)
    x = torch.randn(10, 6, generator=torch.Generator().manual_seed(2))
    return model, x


def closed_form(model: nn.Linear, x: torch.Tensor, dual: float) -> torch.Tensor:
    """Exact minimal flip distance of a linear classifier.

    The flip region is the union of half-spaces {z_k > z_y}; its distance is the minimum over
    k of (z_y - z_k) / ||w_y - w_k||_q with q the dual norm (2 for L2, 1 for L-inf).
    """
    weight, bias = model.weight.detach(), model.bias.detach()
    z = x @ weight.T + bias
    y = z.argmax(dim=1)
    best = torch.full((x.shape[0],), float("inf"), dtype=x.dtype)
    for k in range(weight.shape[0]):
        gap = z.gather(1, y[:, None]).squeeze(1) - z[:, k]
        normal = (weight[y] - weight[k]).norm(p=dual, dim=1)
        dist = torch.where(y == k, torch.full_like(gap, float("inf")), gap / normal)
        best = torch.minimum(best, dist)
    return best


def assert_finds_exact(res: AttackResult, exact: torch.Tensor) -> None:
    """Every example flipped, at the exact radius up to the bisection tolerance."""
    assert res.flipped.all()
    assert (res.epsilon >= exact - SLACK).all()
    assert (res.epsilon <= exact + TOL + SLACK).all()
