"""What the attacks ascend: per-example losses on the logits, and the unit ascent direction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum_simec._validation import check_choice
from captum_simec.audit.attacks._inputs import per_example
from captum_simec.audit.attacks.result import l2_norm

LOSSES = ("ce", "margin", "targeted")

Loss = Callable[[Tensor, Tensor], Tensor]


def check_loss(loss: Any) -> str:
    """``"ce"``, ``"margin"`` or ``"targeted"`` from any capitalisation of one."""
    return check_choice(loss, "loss", LOSSES, ignore_case=True)


def _others(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """The label's logit ``z_y`` (n,) and the logits with ``z_y`` masked to ``-inf`` (n, C)."""
    own = logits.gather(1, labels[:, None]).squeeze(1)
    mask = torch.nn.functional.one_hot(labels, logits.shape[1]).to(torch.bool)
    return own, logits.masked_fill(mask, float("-inf"))


def log_odds_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-example ``logsumexp_{k != y} z_k - z_y``; cross-entropy is softplus of it.

    Args:
        logits: ``(n, C)`` model outputs read as logits.
        labels: ``(n,)`` class indices.

    Returns:
        ``(n,)`` loss, increasing in cross-entropy, with a gradient that never underflows.
    """
    own, others = _others(logits, labels)
    return torch.logsumexp(others, dim=1) - own


def margin_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-example ``max_{k != y} z_k - z_y`` (Carlini-Wagner-style untargeted margin)."""
    own, others = _others(logits, labels)
    return others.amax(dim=1) - own


def loss_function(loss: str, targets: Tensor | None) -> Loss:
    """The per-example loss ``(logits, labels) -> (n,)`` that the attack ascends.

    Args:
        loss: ``"ce"`` (the log-odds form of cross-entropy), ``"margin"`` or ``"targeted"``
            (``z_t - z_y`` for each row's target class ``t``).
        targets: ``(n,)`` target classes, needed by ``"targeted"`` only.
    """
    if loss == "ce":
        return log_odds_loss
    if loss == "margin":
        return margin_loss
    if targets is None:
        raise ValueError("the targeted loss needs one target class per row.")

    def targeted(logits: Tensor, labels: Tensor) -> Tensor:
        own = logits.gather(1, labels[:, None]).squeeze(1)
        return logits.gather(1, targets[:, None]).squeeze(1) - own

    return targeted


def ascent_direction(
    model: Callable[..., Tensor],
    x: Tensor,
    labels: Tensor,
    args: tuple[Any, ...],
    norm: str,
    loss_fn: Loss = log_odds_loss,
) -> tuple[Tensor, Tensor]:
    """Unit ascent direction of ``loss_fn`` at ``x``, and the logits at ``x``.

    ``sign(grad)`` for ``Linf`` (the FGSM step; exactly zero only where the gradient is), and
    ``grad / ||grad||_2`` per example for ``L2`` (zero where the gradient vanishes).

    Returns:
        ``(direction, logits)`` with shapes ``x.shape`` and ``(n, C)``; both detached.
    """
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(xg, *args)
        (grad,) = torch.autograd.grad(loss_fn(logits, labels).sum(), xg)
    if norm == "Linf":
        direction = torch.sign(grad)
    else:
        length = per_example(l2_norm(grad), grad)
        direction = torch.where(length > 0, grad / length.clamp_min(1e-30), torch.zeros_like(grad))
    return direction.detach(), logits.detach()
