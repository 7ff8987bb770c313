"""Projected gradient descent with one radius per example, and its smallest flipping radius.

The projected-gradient loop is implemented here, not by ``captum.robust.PGD``, because
Captum's PGD takes one scalar radius per call (the bisection needs one per example), its L2
mode takes signed (L-inf) steps, and its L2 random start crashes for batch > 1. Without
random start and with all radii equal, the ``Linf`` iterates match Captum's PGD with
``step_size = step_fraction * radius``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_simec._validation import check_int, check_positive
from captum_simec.audit.attacks._inputs import clip, per_example, predictions
from captum_simec.audit.attacks._losses import Loss, ascent_direction, log_odds_loss
from captum_simec.audit.attacks.result import AttackResult, l2_norm
from captum_simec.audit.attacks.search import SearchSettings, _Search

__all__ = ["min_pgd_epsilon"]


def _project(delta: Tensor, radius: Tensor, norm: str) -> Tensor:
    """Project each example's ``delta`` on its own ball of radius ``radius`` (shape (n,))."""
    r = per_example(radius, delta)
    if norm == "Linf":
        return torch.maximum(torch.minimum(delta, r), -r)
    length = per_example(l2_norm(delta), delta)
    scale = torch.where(length > r, r / length.clamp_min(1e-30), torch.ones_like(length))
    return delta * scale


def _random_start(x0: Tensor, radius: Tensor, norm: str, generator: torch.Generator) -> Tensor:
    """A uniform random point in each example's own ball (works for any batch size)."""
    r = per_example(radius, x0)
    if norm == "Linf":
        u = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return (2 * u - 1) * r
    g = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    unit = g / per_example(l2_norm(g), g).clamp_min(1e-30)
    dim = x0[0].numel()
    u = torch.rand(x0.shape[0], generator=generator, device=x0.device, dtype=x0.dtype)
    return unit * per_example(u ** (1.0 / dim), x0) * r


def _pgd(
    model: Callable[..., Tensor],
    x0: Tensor,
    labels: Tensor,
    radius: Tensor,
    *,
    norm: str,
    steps: int,
    step_fraction: float,
    generator: torch.Generator | None,
    lower: Tensor | None,
    upper: Tensor | None,
    args: tuple[Any, ...],
    loss_fn: Loss = log_odds_loss,
    stop_on_flip: bool = True,
) -> tuple[Tensor, Tensor]:
    """Projected gradient ascent with one radius per example.

    The step order follows Captum's PGD (step, project on the ball, clip to the box). With
    a ``generator`` the iterates start from a uniform random point of each example's ball.
    With ``stop_on_flip`` an example is frozen at the first iterate whose prediction differs
    from its label.

    Returns:
        ``(x_adv, pred)``: the first flipping iterate (or the last iterate) and its prediction.
    """
    alpha = per_example(radius * step_fraction, x0)
    if generator is not None:
        x = clip(x0 + _random_start(x0, radius, norm, generator), lower, upper)
    else:
        x = x0.clone()
    done = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)
    pred = labels.clone()
    for _ in range(steps):
        direction, logits = ascent_direction(model, x, labels, args, norm, loss_fn)
        if stop_on_flip:
            current = logits.argmax(dim=1)
            newly = (current != labels) & ~done
            pred = torch.where(newly, current, pred)
            done = done | newly
            if bool(done.all()):
                return x, pred
            direction = direction * per_example((~done).to(x.dtype), x)
        x = clip(x0 + _project(x + alpha * direction - x0, radius, norm), lower, upper)
    final = predictions(model, x, args)
    pred = torch.where(done, pred, final)
    return x, pred


def min_pgd_epsilon(
    model: Callable[..., Tensor],
    inputs: Tensor,
    labels: Tensor | Sequence[int] | None = None,
    *,
    norm: str = SearchSettings.norm,
    eps_max: float,
    steps: int = 20,
    step_fraction: float | None = None,
    random_start: bool = False,
    lower_bound: float | Tensor | None = None,
    upper_bound: float | Tensor | None = None,
    tol: float = SearchSettings.tol,
    max_halvings: int = SearchSettings.max_halvings,
    loss: str = SearchSettings.loss,
    seed: int = 0,
    generator: torch.Generator | None = None,
    additional_forward_args: Any = None,
    progress: bool | None = None,
) -> AttackResult:
    """Per-example smallest PGD radius that changes the predicted class.

    For a candidate radius ``r_i`` per example, PGD runs ``steps`` iterations of: ascent step
    of length ``step_fraction * r_i`` (``sign(grad)`` for ``Linf``, ``grad / ||grad||_2`` for
    ``L2``), projection on example ``i``'s own ball of radius ``r_i``, clipping to the domain
    box. An example stops at the first iterate that flips. A vectorised bisection on
    ``(0, eps_max]`` then narrows every example's radius at once; examples already resolved
    keep their interval. Like any attack, the result is an upper bound on the true minimal
    radius (up to ``tol``); the bisection assumes flips are monotone in the radius.

    Args:
        model: classifier in eval mode returning ``(B, C)`` logits (or log-probabilities).
        inputs: ``(B, ...)`` float inputs; never modified.
        labels: ``(B,)`` classes to move away from; default: the model's prediction on
            ``inputs``. Examples whose prediction already differs get ``epsilon = 0``.
        norm: ``"Linf"`` or ``"L2"``, the norm of the ball.
        eps_max, tol, max_halvings, loss: the search, as in :class:`SearchSettings` (the
            defaults are its own).
        steps: PGD iterations per radius.
        step_fraction: step length as a fraction of the radius; default ``2.5 / steps``.
        random_start: start from a uniform random point of each example's ball (drawn from
            ``generator``), fresh at every bisection round.
        lower_bound: domain lower bound, a scalar or a tensor broadcastable to ``inputs``.
        upper_bound: domain upper bound, same forms as ``lower_bound``.
        seed: seeds a fresh ``torch.Generator`` on the inputs' device when ``generator`` is
            None (only used with ``random_start``); a non-negative int.
        generator: random generator for the random start; overrides ``seed``.
        additional_forward_args: extra positional arguments for ``model`` after the input
            (a single object or a tuple); tensors whose dim 0 is the batch follow the examples.
        progress: show a tqdm bar over bisection rounds; None shows it only on a terminal.

    Returns:
        An :class:`AttackResult` with ``attack="pgd"``.

    Raises:
        TypeError: a model that is not callable, inputs that are not floating point, labels
            that are not integers, or a setting (``seed`` included) of the wrong type.
        ValueError: model in training mode, non-finite inputs, bad ``labels``, unknown
            ``norm`` or ``loss``, non-positive ``eps_max`` / ``tol`` / ``step_fraction``,
            ``steps < 1``, a negative ``seed`` or bad bounds.
    """
    settings = SearchSettings(eps_max, norm, tol, max_halvings, loss)
    bounds = (lower_bound, upper_bound)
    search = _Search.prepare(model, inputs, labels, settings, bounds, additional_forward_args)
    steps = check_int(steps, "steps", 1)
    if step_fraction is None:
        step_fraction = 2.5 / steps
    step_fraction = check_positive(step_fraction, "step_fraction", "Pass e.g. 2.5 / steps.")
    if not random_start:
        generator = None
    elif generator is None:
        generator = torch.Generator(device=search.batch.x0.device)
        generator.manual_seed(check_int(seed, "seed", 0))

    def attack(index: Tensor, radius: Tensor) -> tuple[Tensor, Tensor]:
        sub = search.rows.take(index)
        return _pgd(
            model,
            sub.x0,
            sub.labels,
            radius,
            norm=settings.norm,
            steps=steps,
            step_fraction=step_fraction,
            generator=generator,
            lower=sub.lower,
            upper=sub.upper,
            args=sub.args,
            loss_fn=search.loss_fn(sub),
        )

    return search.run(model, attack, "pgd", progress)
