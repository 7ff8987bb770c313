"""Multi-class DeepFool: repeated linearised steps to the nearest decision boundary."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_simec._runtime import show_progress
from captum_simec._validation import check_int, check_non_negative
from captum_simec.audit.attacks._inputs import check_norm, clip, predictions, prepare_rows
from captum_simec.audit.attacks.result import AttackResult, _verified_result, l2_norm, linf_norm

__all__ = ["deepfool"]

#: The push past the boundary that the original algorithm adds to every step.
_PUSH = 1e-4


def _candidate_gradients(
    model: Callable[..., Tensor], x: Tensor, candidates: Tensor, args: tuple[Any, ...]
) -> tuple[Tensor, Tensor]:
    """The candidate classes' logits ``(n, K)`` at ``x`` and their gradients ``(n, K, ...)``.

    One backward pass per candidate class, batched over the examples.
    """
    xi = x.detach().requires_grad_(True)
    count = candidates.shape[1]
    with torch.enable_grad():
        picked = model(xi, *args).gather(1, candidates)
        grads = [
            torch.autograd.grad(picked[:, j].sum(), xi, retain_graph=j < count - 1)[0]
            for j in range(count)
        ]
    return picked.detach(), torch.stack(grads, dim=1)


def _boundary_step(picked: Tensor, grads: Tensor, norm: str) -> tuple[Tensor, Tensor]:
    """The minimal step onto the nearest linearised boundary, per example.

    For each candidate ``k`` (column 0 is the label ``y``) the boundary is the hyperplane
    ``f_k - f_y + (w_k - w_y) . r = 0`` at distance ``|f_k - f_y| / ||w_k - w_y||_q`` (``q``
    the dual norm: 2 for ``L2``, 1 for ``Linf``); the step goes onto the nearest one.

    Returns:
        ``(step, stuck)``: the step, flattened to ``(n, features)`` (zero where ``stuck``), and
        where no boundary can be reached (every ``w_k - w_y`` vanishes).
    """
    n, count = picked.shape
    w = (grads[:, 1:] - grads[:, :1]).reshape(n, count - 1, -1)
    gap = (picked[:, 1:] - picked[:, :1]).abs()  # (n, K-1)
    dual = w.norm(p=2, dim=2) if norm == "L2" else w.abs().sum(dim=2)
    dist = torch.where(dual > 0, gap / dual.clamp_min(1e-30), torch.full_like(gap, math.inf))
    best = dist.argmin(dim=1)
    stuck = ~torch.isfinite(dist.gather(1, best[:, None]).squeeze(1))
    w_l = w.gather(1, best[:, None, None].expand(-1, 1, w.shape[2])).squeeze(1)
    gap_l = gap.gather(1, best[:, None]).squeeze(1)
    dual_l = dual.gather(1, best[:, None]).squeeze(1).clamp_min(1e-30)
    if norm == "L2":
        step = ((gap_l + _PUSH) / dual_l**2)[:, None] * w_l
    else:
        step = ((gap_l + _PUSH) / dual_l)[:, None] * torch.sign(w_l)
    return torch.where(stuck[:, None], torch.zeros_like(step), step), stuck


def _candidates(scores: Tensor, labels: Tensor, candidates: int | None) -> Tensor:
    """Per example, the label first, then the classes of the highest remaining clean logits."""
    classes = scores.shape[1]
    count = classes if candidates is None else check_int(candidates, "candidates", 2)
    scores = scores.scatter(1, labels[:, None], float("inf"))
    return scores.topk(min(count, classes), dim=1).indices


def deepfool(
    model: Callable[..., Tensor],
    inputs: Tensor,
    labels: Tensor | Sequence[int] | None = None,
    *,
    norm: str = "L2",
    max_iter: int = 50,
    overshoot: float = 0.02,
    candidates: int | None = 10,
    lower_bound: float | Tensor | None = None,
    upper_bound: float | Tensor | None = None,
    additional_forward_args: Any = None,
    progress: bool | None = None,
) -> AttackResult:
    """Multi-class DeepFool: repeated linearised steps to the nearest decision boundary.

    At each iteration every unflipped example is linearised around its current point; for
    each candidate class ``k`` the boundary with the label ``y`` is the hyperplane
    ``f_k - f_y + (w_k - w_y) . r = 0``, the nearest one (distance ``|f_k - f_y| / ||w_k -
    w_y||_q``, ``q`` the dual norm) is chosen and the minimal step onto it is added to the
    accumulated perturbation; the candidate point is ``clip(x + (1 + overshoot) * r_total)``.
    DeepFool's step lies in the range of the Jacobian: it is a linearised SiMExp step.

    Gradients are batched over examples, with one backward pass per candidate class. For a
    linear model one iteration lands on the nearest boundary exactly (times ``1 + overshoot``,
    plus the ``1e-4`` push of the original algorithm).

    Args:
        model: classifier in eval mode returning ``(B, C)`` logits.
        inputs: ``(B, ...)`` float inputs; never modified.
        labels: ``(B,)`` classes to move away from; default: the model's prediction on
            ``inputs``. Examples whose prediction already differs get ``epsilon = 0``.
        norm: ``"L2"`` (the original DeepFool) or ``"Linf"`` (steps along the sign of the
            boundary normal, distance measured with its L1 norm).
        max_iter: maximum number of linearised steps.
        overshoot: relative overshoot applied to the accumulated perturbation.
        candidates: number of classes considered per example (the label plus the
            ``candidates - 1`` highest clean logits); None considers all classes.
        lower_bound: domain lower bound, a scalar or a tensor broadcastable to ``inputs``.
        upper_bound: domain upper bound, same forms as ``lower_bound``.
        additional_forward_args: extra positional arguments for ``model`` after the input
            (a single object or a tuple); tensors whose dim 0 is the batch follow the examples.
        progress: show a tqdm bar over iterations; None shows it only on a terminal.

    Returns:
        An :class:`AttackResult` with ``attack="deepfool"``; ``epsilon`` is the ``norm`` of
        the perturbation found (``inf`` where none flips within ``max_iter``).

    Raises:
        TypeError: a model that cannot be called, non-float inputs or non-integer labels, a
            setting of the wrong type.
        ValueError: model in training mode, non-finite inputs, bad ``labels``, unknown
            ``norm``, ``max_iter < 1``, negative ``overshoot``, ``candidates < 2`` or bad
            bounds.
    """
    norm = check_norm(norm)
    batch, scores = prepare_rows(
        model, inputs, labels, lower_bound, upper_bound, additional_forward_args
    )
    max_iter = check_int(max_iter, "max_iter", 1)
    overshoot = check_non_negative(overshoot, "overshoot", "Pass e.g. 0.02.")
    cand = _candidates(scores, batch.labels, candidates)
    x0 = batch.x0
    epsilon = torch.full((x0.shape[0],), float("inf"), dtype=x0.dtype, device=x0.device)
    already = batch.clean_pred != batch.labels
    epsilon[already] = 0.0
    adversarial = x0.clone()
    r_total = torch.zeros_like(x0)
    x = x0.clone()
    active = ~already
    norm_of = l2_norm if norm == "L2" else linf_norm

    from tqdm.auto import tqdm

    show = show_progress(progress)
    with tqdm(
        total=max_iter, desc=f"DeepFool ({norm})", unit="iter", leave=False, disable=not show
    ) as bar:
        for _ in range(max_iter):
            index = active.nonzero().squeeze(1)
            if index.numel() == 0:
                break
            sub = batch.take(index)
            picked, grads = _candidate_gradients(model, x[index], cand[index], sub.args)
            step, stuck = _boundary_step(picked, grads, norm)
            r_total[index] = r_total[index] + step.view_as(sub.x0)
            x_new = clip(sub.x0 + (1 + overshoot) * r_total[index], sub.lower, sub.upper)
            x[index] = x_new
            ok = predictions(model, x_new, sub.args) != sub.labels
            adversarial[index[ok]] = x_new[ok]
            epsilon[index[ok]] = norm_of(x_new[ok] - sub.x0[ok])
            active[index[ok | stuck]] = False
            bar.update(1)
    return _verified_result(model, batch, adversarial, epsilon, norm, "deepfool")
