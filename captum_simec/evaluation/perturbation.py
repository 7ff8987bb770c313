"""Deletion and insertion curves (Petsiuk et al., RISE) and the baselines features are removed to.

Features are replaced by a baseline (deletion) or revealed on top of it (insertion), most
relevant first; the curve is the model's score of the target class against the fraction of
features changed, and its area (trapezoid rule, divided by the span of the fractions) is the
AUC. Lower deletion AUC and higher insertion AUC are better.

Inputs may be a tensor or a tuple of tensors (batch first); features are the elements of all
inputs of an example, flattened and concatenated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_simec import _compat
from captum_simec.evaluation._common import (
    InputsType,
    check_domain,
    check_output_transform,
    curve_scores,
)

__all__ = [
    "BASELINE_KINDS",
    "PerturbationCurve",
    "blur",
    "feature_order",
    "perturbation_curve",
    "removal_baseline",
]

BASELINE_KINDS = ("black", "uniform", "mean", "blur")
CURVE_MODES = ("deletion", "insertion")

DomainType = tuple[float | Tensor, float | Tensor]


def blur(x: Tensor) -> Tensor:
    """3x3 box blur of images over their last two dimensions (B, H, W) or (B, C, H, W).

    Each pixel becomes the mean of its in-image 3x3 neighbourhood (border pixels average
    fewer neighbours), per channel.
    """
    if x.dim() < 3:
        raise ValueError(
            f"The 'blur' baseline needs images (batch, [channels,] height, width); got inputs of "
            f"shape {tuple(x.shape)}. Use 'black', 'uniform' or 'mean' for tabular data."
        )
    planes = x.reshape(-1, 1, *x.shape[-2:])
    smooth = F.avg_pool2d(planes, 3, stride=1, padding=1, count_include_pad=False)
    return smooth.reshape(x.shape)


def _bounds(domain: DomainType, x: Tensor) -> tuple[Tensor, Tensor]:
    """The domain's bounds as tensors broadcastable to `x` (numbers or per-feature tensors)."""
    return tuple(torch.as_tensor(bound, dtype=x.dtype, device=x.device) for bound in domain)


def _one_baseline(
    x: Tensor, kind: str, domain: DomainType | None, generator: torch.Generator | None
) -> Tensor:
    per_example = x.reshape(x.shape[0], -1)
    view = (x.shape[0],) + (1,) * (x.dim() - 1)
    if kind == "black":
        return torch.zeros_like(x) + (0.0 if domain is None else _bounds(domain, x)[0])
    if kind == "mean":
        return per_example.mean(dim=1).reshape(view).expand_as(x).clone()
    if kind == "blur":
        return blur(x)
    if domain is None:
        lo = per_example.min(dim=1).values.reshape(view)
        hi = per_example.max(dim=1).values.reshape(view)
    else:
        lo, hi = _bounds(domain, x)
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return lo + (hi - lo) * noise


def removal_baseline(
    inputs: InputsType,
    kind: str | float | Tensor = "black",
    *,
    domain: DomainType | None = None,
    generator: torch.Generator | None = None,
) -> InputsType:
    """The reference that removed features are set to, in the structure of `inputs`.

    Args:
        inputs: a tensor or tuple of tensors, batch first.
        kind: ``"black"`` (the domain's lower bound, 0 without a domain), ``"uniform"``
            (uniform noise in the domain, or in each example's [min, max] without one),
            ``"mean"`` (each example's mean value), ``"blur"`` (a 3x3 box blur of each
            image), a number, or a tensor broadcastable to the inputs (e.g. a training-set
            mean image; one tensor per input for tuple inputs is not supported: use a
            tuple of inputs with a number).
        domain: `(lo, hi)` range of valid feature values: numbers, or tensors broadcastable
            to the inputs (per-feature bounds).
        generator: random generator for ``"uniform"``.
    """
    parts = _compat.format_inputs(inputs)
    check_domain(domain)
    if isinstance(kind, Tensor):
        references = tuple(torch.broadcast_to(kind.to(x), x.shape) for x in parts)
    elif isinstance(kind, int | float) and not isinstance(kind, bool):
        references = tuple(torch.full_like(x, float(kind)) for x in parts)
    elif kind in BASELINE_KINDS:
        references = tuple(_one_baseline(x, kind, domain, generator) for x in parts)
    else:
        raise ValueError(
            f"baseline {kind!r} is not supported; choose one of {BASELINE_KINDS}, a number or "
            "a tensor."
        )
    return _compat.format_output(_compat.is_tuple(inputs), references)


def feature_order(attributions: InputsType, generator: torch.Generator | None = None) -> Tensor:
    """Feature indices (batch, n), most relevant (largest value) first; ties in random order.

    Ranking is by the attribution's value, so negative evidence comes last; pass `|a|` to rank
    by magnitude.
    """
    flat = _compat.flatten_features(attributions)
    shuffle = torch.stack(
        [torch.randperm(flat.shape[1], generator=generator) for _ in range(flat.shape[0])]
    ).to(flat.device)
    shuffled = flat.gather(1, shuffle)
    order = shuffled.argsort(dim=1, descending=True, stable=True)
    return shuffle.gather(1, order)


def rank_positions(order: Tensor) -> Tensor:
    """Position of each feature in `order` (batch, n): the inverse permutation."""
    batch, n = order.shape
    positions = torch.arange(n, device=order.device).expand(batch, n)
    return torch.empty_like(order).scatter_(1, order, positions)


@dataclass
class PerturbationCurve:
    """A deletion, insertion or ROAD curve per example.

    Attributes:
        fractions: fraction of features changed at each point (points,), ascending.
        scores: the model's (transformed) target score at each point (batch, points).
        mode: ``"deletion"``, ``"insertion"``, ``"road_morf"`` or ``"road_lerf"``.
        baseline: name of the removal baseline (``"road"`` for ROAD's imputation).
    """

    fractions: Tensor
    scores: Tensor
    mode: str
    baseline: str

    @property
    def auc(self) -> Tensor:
        """Mean score over the fractions per example (batch,): the trapezoid area divided by
        the span of the fractions (the plain area for fractions from 0 to 1)."""
        span = (self.fractions[-1] - self.fractions[0]).clamp_min(torch.finfo(torch.float64).tiny)
        return torch.trapezoid(self.scores, self.fractions, dim=1) / span


def _check_curve(mode: str, output_transform: Any, steps: Any) -> None:
    if mode not in CURVE_MODES:
        raise ValueError(f"mode={mode!r}; choose one of {CURVE_MODES}.")
    check_output_transform(output_transform)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be a positive int, got {steps!r}.")


def flat_pair(inputs: InputsType, attributions: InputsType) -> tuple[Tensor, Tensor]:
    """Flat inputs and attributions (batch, n), detached; raises if their shapes differ."""
    x = _compat.flatten_features(_compat.format_inputs(inputs)).detach()
    flat = _compat.flatten_features(attributions)
    if flat.shape != x.shape:
        raise ValueError(
            "`attributions` must have the structure and shape of `inputs` "
            f"({tuple(x.shape)} features per batch), got {tuple(flat.shape)}."
        )
    return x, flat


def perturbation_curve(
    forward_func: Callable[..., Tensor],
    inputs: InputsType,
    attributions: InputsType,
    target: _compat.TargetType = None,
    *,
    mode: str = "deletion",
    baseline: str | float | Tensor = "black",
    steps: int = 20,
    domain: DomainType | None = None,
    additional_forward_args: Any = None,
    output_transform: str | Callable[[Tensor], Tensor] = "softmax",
    seed: int = 0,
    batch_size: int = 512,
) -> PerturbationCurve:
    """Deletion or insertion curve of `attributions`: the target score as features change.

    Deletion replaces the most relevant features by the baseline first; insertion starts from
    the baseline and restores the most relevant features first. At step `k` the first
    `round(k n / steps)` features of `feature_order(attributions)` are changed.

    Args:
        forward_func: the model.
        inputs: a tensor or a tuple of tensors, batch first.
        attributions: maps in the structure of `inputs` (larger = more relevant).
        target: Captum target; None uses the model's predicted class at `inputs`.
        mode: ``"deletion"`` or ``"insertion"``.
        baseline: see `removal_baseline`.
        steps: number of removal steps (the curve has steps + 1 points).
        domain: `(lo, hi)` range of valid feature values (for "black" and "uniform").
        additional_forward_args: extra arguments of `forward_func`.
        output_transform: ``"softmax"`` (probabilities; right for logits and log-softmax
            heads), ``"identity"``, or a callable on the flattened outputs (batch, m).
        seed: seeds the tie-breaking order and the "uniform" baseline.
        batch_size: most perturbed inputs per forward pass.

    Returns:
        A `PerturbationCurve`.
    """
    _check_curve(mode, output_transform, steps)
    parts = _compat.format_inputs(inputs)
    args = _compat.format_additional_forward_args(additional_forward_args) or ()
    generator = torch.Generator().manual_seed(seed)
    x, flat_attributions = flat_pair(parts, attributions)
    reference = _compat.flatten_features(
        removal_baseline(parts, baseline, domain=domain, generator=generator)
    ).to(x.dtype)
    order = feature_order(flat_attributions, generator)
    batch, n = x.shape
    counts = [round(k * n / steps) for k in range(steps + 1)]
    start, end = (x, reference) if mode == "deletion" else (reference, x)
    position = rank_positions(order)
    points = torch.stack([torch.where(position < c, end, start) for c in counts], dim=1)
    scores = curve_scores(forward_func, parts, args, target, points, output_transform, batch_size)
    return PerturbationCurve(
        fractions=(torch.tensor(counts, dtype=torch.float64) / n).to(x.device),
        scores=scores,
        mode=mode,
        baseline=baseline if isinstance(baseline, str) else "custom",
    )
