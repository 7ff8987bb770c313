"""FGSM and the fast gradient method: the smallest flipping one-step radius, per example."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

from captum_simec.audit.attacks._inputs import clip, per_example, predictions
from captum_simec.audit.attacks._losses import ascent_direction
from captum_simec.audit.attacks.result import AttackResult
from captum_simec.audit.attacks.search import SearchSettings, _Search

__all__ = ["min_fgsm_epsilon"]


def min_fgsm_epsilon(
    model: Callable[..., Tensor],
    inputs: Tensor,
    labels: Tensor | Sequence[int] | None = None,
    *,
    norm: str = SearchSettings.norm,
    eps_max: float,
    lower_bound: float | Tensor | None = None,
    upper_bound: float | Tensor | None = None,
    tol: float = SearchSettings.tol,
    max_halvings: int = SearchSettings.max_halvings,
    loss: str = SearchSettings.loss,
    additional_forward_args: Any = None,
    progress: bool | None = None,
) -> AttackResult:
    """Per-example smallest FGSM step that changes the predicted class.

    The gradient of the loss is taken once at the clean input; the adversarial at radius
    ``eps`` is ``clip(x + eps * d)`` with ``d = sign(grad)`` (``Linf``: FGSM) or
    ``d = grad / ||grad||_2`` (``L2``: the fast gradient method). The loss is never Captum's
    default ``-log(output)``, which assumes probabilities.

    Each example gets its own radius from a vectorised bisection on ``(0, eps_max]`` (see
    :mod:`~captum_simec.audit.attacks.search`). The bisection assumes that a flip at radius
    ``e`` implies a flip at every larger radius, which holds for linear models; otherwise the
    result is a radius that flips with a non-flipping radius at most ``tol`` below it.

    Args:
        model: classifier in eval mode returning ``(B, C)`` logits (or log-probabilities).
        inputs: ``(B, ...)`` float inputs; never modified.
        labels: ``(B,)`` classes to move away from; default: the model's prediction on
            ``inputs``. Examples whose prediction already differs get ``epsilon = 0``.
        norm: ``"Linf"`` (FGSM) or ``"L2"`` (fast gradient method).
        eps_max, tol, max_halvings, loss: the search, as in :class:`SearchSettings` (the
            defaults are its own).
        lower_bound: domain lower bound, a scalar or a tensor broadcastable to ``inputs``.
        upper_bound: domain upper bound, same forms as ``lower_bound``.
        additional_forward_args: extra positional arguments for ``model`` after the input
            (a single object or a tuple); tensors whose dim 0 is the batch follow the examples.
        progress: show a tqdm bar over bisection rounds; None shows it only on a terminal.

    Returns:
        An :class:`AttackResult` with ``attack="fgsm"``, whose ``epsilon`` is the smallest
        flipping step length.

    Raises:
        TypeError: a model that cannot be called, non-float inputs or non-integer labels, a
            setting of the wrong type.
        ValueError: model in training mode, non-finite inputs, bad ``labels``, unknown
            ``norm`` or ``loss``, non-positive ``eps_max`` / ``tol``, or bad bounds.
    """
    settings = SearchSettings(eps_max, norm, tol, max_halvings, loss)
    bounds = (lower_bound, upper_bound)
    search = _Search.prepare(model, inputs, labels, settings, bounds, additional_forward_args)
    rows = search.rows
    direction, _ = ascent_direction(
        model, rows.x0, rows.labels, rows.args, settings.norm, search.loss_fn(rows)
    )

    def attack(index: Tensor, radius: Tensor) -> tuple[Tensor, Tensor]:
        sub = rows.take(index)
        step = per_example(radius, sub.x0) * direction[index]
        x_adv = clip(sub.x0 + step, sub.lower, sub.upper)
        return x_adv, predictions(model, x_adv, sub.args)

    return search.run(model, attack, "fgsm", progress)
