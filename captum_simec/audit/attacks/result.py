"""The per-example outcome of a minimal-perturbation attack, and the norms it is measured in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec.audit.attacks._inputs import Rows, per_example, predictions

__all__ = ["AttackResult", "l2_norm", "linf_norm"]


def l2_norm(t: Tensor) -> Tensor:
    """Per-example L2 norm ``||t_i||_2`` of a batch-first tensor, shape (batch,)."""
    return _compat.flatten_features(t).norm(p=2, dim=1)


def linf_norm(t: Tensor) -> Tensor:
    """Per-example L-inf norm ``max_j |t_ij|`` of a batch-first tensor; 0 without features."""
    flat = _compat.flatten_features(t)
    return flat.abs().amax(dim=1) if flat.shape[1] > 0 else t.new_zeros(t.shape[0])


@dataclass
class AttackResult:
    """Per-example outcome of a minimal-perturbation attack.

    Attributes:
        epsilon: ``(B,)`` float tensor. For the bisection attacks, the smallest radius found
            at which the attack flips the prediction (within ``tol``); for DeepFool, the norm
            of the perturbation found. ``inf`` where no flip was found, ``0`` where the clean
            input is already not classified as its label.
        flipped: ``(B,)`` bool tensor, True where ``adversarial`` is classified differently
            from ``label`` (verified with a forward pass on the whole batch).
        adversarial: ``(B, ...)`` adversarial inputs at ``epsilon``; the clean input where
            ``flipped`` is False.
        new_class: ``(B,)`` long tensor, the predicted class of ``adversarial``; ``-1`` where
            ``flipped`` is False.
        perturbation_l2: ``(B,)`` L2 norm of ``adversarial - inputs`` (after box clipping).
        perturbation_linf: ``(B,)`` L-inf norm of ``adversarial - inputs``.
        label: ``(B,)`` long tensor, the class the attack moved away from.
        norm: ``"L2"`` or ``"Linf"``, the norm ``epsilon`` is measured in.
        attack: name of the attack (``"fgsm"``, ``"pgd"`` or ``"deepfool"``).
    """

    epsilon: Tensor
    flipped: Tensor
    adversarial: Tensor
    new_class: Tensor
    perturbation_l2: Tensor
    perturbation_linf: Tensor
    label: Tensor
    norm: str
    attack: str

    def __len__(self) -> int:
        """Number of examples."""
        return int(self.epsilon.shape[0])

    def to_records(self) -> list[dict[str, Any]]:
        """One plain-Python dict per example, e.g. for ``pandas.DataFrame`` or JSON.

        Returns:
            A list of ``B`` dicts with keys ``index``, ``attack``, ``norm``, ``label``,
            ``epsilon``, ``flipped``, ``new_class``, ``perturbation_l2`` and
            ``perturbation_linf`` (Python floats, ints and bools).
        """
        eps = self.epsilon.detach().cpu().tolist()
        flipped = self.flipped.detach().cpu().tolist()
        new_class = self.new_class.detach().cpu().tolist()
        label = self.label.detach().cpu().tolist()
        l2 = self.perturbation_l2.detach().cpu().tolist()
        linf = self.perturbation_linf.detach().cpu().tolist()
        return [
            {
                "index": i,
                "attack": self.attack,
                "norm": self.norm,
                "label": int(label[i]),
                "epsilon": float(eps[i]),
                "flipped": bool(flipped[i]),
                "new_class": int(new_class[i]),
                "perturbation_l2": float(l2[i]),
                "perturbation_linf": float(linf[i]),
            }
            for i in range(len(eps))
        ]


def _verified_result(
    model: Callable[..., Tensor],
    batch: Rows,
    adversarial: Tensor,
    epsilon: Tensor,
    norm: str,
    attack: str,
) -> AttackResult:
    """Verifies the adversarials with one full-batch forward pass and assembles the result.

    A flip found inside a sub-batch that does not survive the full-batch forward pass (only
    possible within float round-off of the decision boundary) is reported as no flip.
    """
    x0, labels = batch.x0, batch.labels
    pred = predictions(model, adversarial, batch.args)
    flipped = torch.isfinite(epsilon) & (pred != labels)
    adversarial = torch.where(per_example(flipped, x0), adversarial, x0)
    epsilon = torch.where(flipped, epsilon, torch.full_like(epsilon, float("inf")))
    delta = adversarial - x0
    return AttackResult(
        epsilon=epsilon,
        flipped=flipped,
        adversarial=adversarial.detach(),
        new_class=torch.where(flipped, pred, torch.full_like(pred, -1)),
        perturbation_l2=l2_norm(delta).detach(),
        perturbation_linf=linf_norm(delta).detach(),
        label=labels,
        norm=norm,
        attack=attack,
    )
