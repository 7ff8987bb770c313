"""Faithfulness and sanity measures of attribution maps, as pure functions of tensors and models.

- Deletion / insertion curves (Petsiuk et al., RISE): features are replaced by a baseline
  (deletion) or revealed on top of it (insertion), most relevant first; the curve is the
  model's score of the target class against the fraction of features changed, and its area
  (trapezoid rule on [0, 1]) is the AUC. Lower deletion AUC and higher insertion AUC are
  better.
- Spearman rank correlation between maps, with average ranks for ties, in torch.
- Adebayo et al.'s sanity checks: cascading model-parameter randomisation (re-initialise the
  layers of a deep copy from the top down, correlate each map with the original) and the
  random-logit check (correlate the map of the target with that of a random other class).
  Maps from class-agnostic methods do not depend on the target, so they cannot pass the
  random-logit check by construction.

Inputs may be a tensor or a tuple of tensors (batch first); features are the elements of all
inputs of an example, flattened and concatenated.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from captum_simec import _compat

__all__ = [
    "BASELINE_KINDS",
    "AttributionFunction",
    "PerturbationCurve",
    "average_ranks",
    "feature_order",
    "mean_finite",
    "model_randomisation_check",
    "perturbation_curve",
    "random_logit_check",
    "random_other_class",
    "randomised_copies",
    "removal_baseline",
    "spearman",
    "target_indices",
]

BASELINE_KINDS = ("black", "uniform", "mean")
CURVE_MODES = ("deletion", "insertion")
OUTPUT_TRANSFORMS = ("softmax", "identity")

InputsType = Tensor | tuple[Tensor, ...]
#: `fn(model, inputs, target) -> map`, a map in the structure of `inputs`.
AttributionFunction = Callable[[nn.Module, InputsType, Any], InputsType]


# ----- ranks and correlation -----
def average_ranks(values: Tensor) -> Tensor:
    """Ranks (1..n) of each row of `values` (batch, n), ties sharing their average rank."""
    batch, n = values.shape
    sorted_values, order = values.sort(dim=1, stable=True)
    new_run = torch.ones_like(sorted_values, dtype=torch.bool)
    new_run[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    run = new_run.cumsum(dim=1) - 1 + n * torch.arange(batch, device=values.device).unsqueeze(1)
    positions = torch.arange(1, n + 1, dtype=torch.float64, device=values.device).expand(batch, n)
    total = torch.zeros(batch * n, dtype=torch.float64, device=values.device)
    count = torch.zeros_like(total)
    total.scatter_add_(0, run.flatten(), positions.flatten())
    count.scatter_add_(0, run.flatten(), torch.ones_like(positions).flatten())
    ranked_sorted = (total / count.clamp_min(1))[run]
    return torch.empty_like(ranked_sorted).scatter_(1, order, ranked_sorted)


def spearman(first: InputsType, second: InputsType, absolute: bool = False) -> Tensor:
    """Spearman rank correlation per example between two maps (batch,), in [-1, 1].

    `rho = corr(rank(a), rank(b))` with average ranks for ties; NaN where a map is constant
    (the correlation is undefined).

    Args:
        first, second: maps of the same structure and shape, batch first.
        absolute: correlate `|a|` and `|b|` (Adebayo et al. report both).
    """
    a, b = _compat.flatten_features(first), _compat.flatten_features(second)
    if a.shape != b.shape:
        raise ValueError(
            f"`first` and `second` have {tuple(a.shape)} and {tuple(b.shape)} features per "
            "batch; pass maps of the same shape."
        )
    if absolute:
        a, b = a.abs(), b.abs()
    ra, rb = average_ranks(a.double()), average_ranks(b.double())
    ra, rb = ra - ra.mean(dim=1, keepdim=True), rb - rb.mean(dim=1, keepdim=True)
    denominator = ra.norm(dim=1) * rb.norm(dim=1)
    value = (ra * rb).sum(dim=1) / denominator
    return torch.where(denominator > 0, value, torch.nan)


def target_indices(target: _compat.TargetType, outputs: Tensor) -> Tensor:
    """Flat target index per example (batch,): Captum's `target`, or the predicted class."""
    flat = _compat.target_to_flat_indices(target, outputs.shape, outputs.device)
    return outputs.reshape(outputs.shape[0], -1).argmax(dim=1) if flat is None else flat


# ----- deletion / insertion -----
def removal_baseline(
    inputs: InputsType,
    kind: str | float | Tensor = "black",
    *,
    domain: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
) -> InputsType:
    """The reference that removed features are set to, in the structure of `inputs`.

    Args:
        inputs: a tensor or tuple of tensors, batch first.
        kind: ``"black"`` (the domain's lower bound, 0 without a domain), ``"uniform"``
            (uniform noise in the domain, or in each example's [min, max] without one),
            ``"mean"`` (each example's mean value), a number, or a tensor broadcastable to
            the inputs (one tensor per input for tuple inputs is not supported: use a tuple
            of inputs with a number).
        domain: `(lo, hi)` range of valid feature values.
        generator: random generator for ``"uniform"``.
    """
    parts = _compat.format_inputs(inputs)
    if domain is not None and not domain[0] <= domain[1]:
        raise ValueError(f"`domain` {domain} has lo > hi; pass (lo, hi) with lo <= hi.")
    if isinstance(kind, Tensor):
        return _compat.format_output(
            _compat.is_tuple(inputs), tuple(torch.broadcast_to(kind, x.shape) for x in parts)
        )
    if isinstance(kind, int | float) and not isinstance(kind, bool):
        return _compat.format_output(
            _compat.is_tuple(inputs), tuple(torch.full_like(x, float(kind)) for x in parts)
        )
    if kind not in BASELINE_KINDS:
        raise ValueError(
            f"baseline {kind!r} is not supported; choose one of {BASELINE_KINDS}, a number or "
            "a tensor."
        )
    built = []
    for x in parts:
        per_example = x.reshape(x.shape[0], -1)
        view = (x.shape[0],) + (1,) * (x.dim() - 1)
        if kind == "black":
            built.append(torch.full_like(x, 0.0 if domain is None else domain[0]))
        elif kind == "mean":
            built.append(per_example.mean(dim=1).reshape(view).expand_as(x).clone())
        else:
            if domain is None:
                lo = per_example.min(dim=1).values.reshape(view)
                hi = per_example.max(dim=1).values.reshape(view)
            else:
                lo, hi = domain
            noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            built.append(lo + (hi - lo) * noise)
    return _compat.format_output(_compat.is_tuple(inputs), tuple(built))


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


@dataclass
class PerturbationCurve:
    """A deletion or insertion curve per example.

    Attributes:
        fractions: fraction of features changed at each point (steps + 1,), from 0 to 1.
        scores: the model's (transformed) target score at each point (batch, steps + 1).
        mode: ``"deletion"`` or ``"insertion"``.
        baseline: name of the removal baseline.
    """

    fractions: Tensor
    scores: Tensor
    mode: str
    baseline: str

    @property
    def auc(self) -> Tensor:
        """Area under the curve per example (batch,), trapezoid rule over fractions in [0, 1]."""
        return torch.trapezoid(self.scores, self.fractions, dim=1)


def _target_scores(outputs: Tensor, target: Tensor, transform: str | Callable) -> Tensor:
    flat = outputs.reshape(outputs.shape[0], -1)
    if callable(transform):
        flat = transform(flat)
    elif transform == "softmax":
        flat = torch.softmax(flat, dim=1)
    return flat.gather(1, target.unsqueeze(1)).squeeze(1)


def perturbation_curve(
    forward_func: Callable[..., Tensor],
    inputs: InputsType,
    attributions: InputsType,
    target: _compat.TargetType = None,
    *,
    mode: str = "deletion",
    baseline: str | float | Tensor = "black",
    steps: int = 20,
    domain: tuple[float, float] | None = None,
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
    if mode not in CURVE_MODES:
        raise ValueError(f"mode={mode!r}; choose one of {CURVE_MODES}.")
    if not callable(output_transform) and output_transform not in OUTPUT_TRANSFORMS:
        raise ValueError(
            f"output_transform={output_transform!r}; choose one of {OUTPUT_TRANSFORMS} or pass "
            "a callable."
        )
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be a positive int, got {steps!r}.")
    parts = _compat.format_inputs(inputs)
    args = _compat.format_additional_forward_args(additional_forward_args) or ()
    generator = torch.Generator().manual_seed(seed)
    x = _compat.flatten_features(parts).detach()
    flat_attributions = _compat.flatten_features(attributions)
    if flat_attributions.shape != x.shape:
        raise ValueError(
            "`attributions` must have the structure and shape of `inputs` "
            f"({tuple(x.shape)} features per batch), got {tuple(flat_attributions.shape)}."
        )
    reference = _compat.flatten_features(
        removal_baseline(parts, baseline, domain=domain, generator=generator)
    ).to(x.dtype)
    order = feature_order(flat_attributions, generator)
    batch, n = x.shape
    counts = [round(k * n / steps) for k in range(steps + 1)]
    start, end = (x, reference) if mode == "deletion" else (reference, x)
    with torch.no_grad():
        clean = forward_func(*parts, *args)
        flat_target = target_indices(target, clean)
        rank_of = torch.empty_like(order).scatter_(
            1, order, torch.arange(n, device=x.device).expand(batch, n)
        )
        points = torch.stack([torch.where(rank_of < c, end, start) for c in counts], dim=1)
        points = points.reshape(batch * (steps + 1), n)
        example = torch.arange(batch, device=x.device).repeat_interleave(steps + 1)
        shapes = _compat.feature_shapes(parts)
        scores = []
        for first in range(0, points.shape[0], batch_size):
            index = example[first : first + batch_size]
            chunk = _compat.unflatten_features(points[first : first + batch_size], shapes)
            outputs = forward_func(
                *chunk, *_compat.index_additional_forward_args(args, index, batch)
            )
            scores.append(_target_scores(outputs, flat_target[index], output_transform))
    fractions = torch.tensor(counts, dtype=torch.float64) / n
    return PerturbationCurve(
        fractions=fractions.to(x.device),
        scores=torch.cat(scores).reshape(batch, steps + 1).double(),
        mode=mode,
        baseline=baseline if isinstance(baseline, str) else "custom",
    )


# ----- sanity checks -----
def _parameter_layers(model: nn.Module) -> list[str]:
    return [
        name
        for name, module in model.named_modules()
        if next(module.parameters(False), None) is not None
    ]


def _reinitialise(module: nn.Module) -> None:
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
        return
    with torch.no_grad():
        for parameter in module.parameters(recurse=False):
            scale = parameter.std() if parameter.numel() > 1 else parameter.abs()
            parameter.normal_(0.0, float(scale) or 1.0)


def randomised_copies(model: nn.Module, seed: int = 0) -> list[tuple[str, nn.Module]]:
    """Cascading randomisation: deep copies with the top 1, 2, ... parameter layers re-drawn.

    Layers with parameters are taken in reverse registration order (the output layer first)
    and re-initialised with their `reset_parameters()` (else a normal draw at the parameter's
    scale) under a forked, seeded random state. The original model is untouched.

    Returns:
        `[(layer name, copy with that layer and all above it randomised), ...]`.
    """
    names = _parameter_layers(model)[::-1]
    if not names:
        raise ValueError("`model` has no parameters to randomise.")
    devices = sorted({p.device.index for p in model.parameters() if p.is_cuda})
    current = copy.deepcopy(model)
    stages = []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for name in names:
            _reinitialise(current.get_submodule(name))
            stages.append((name, copy.deepcopy(current)))
    return stages


def model_randomisation_check(
    model: nn.Module,
    attribution_function: AttributionFunction,
    inputs: InputsType,
    target: _compat.TargetType,
    *,
    original: InputsType | None = None,
    seed: int = 0,
    absolute: bool = True,
) -> list[tuple[str, Tensor]]:
    """Adebayo et al.'s cascading model-parameter randomisation check.

    A method passes when its maps decorrelate from the original as layers are randomised
    (Spearman near 0): a map that survives randomisation does not explain the model.

    Args:
        model: the model (not modified).
        attribution_function: `fn(model, inputs, target) -> map`.
        inputs: a tensor or a tuple of tensors.
        target: Captum target.
        original: the map on the unmodified model, if already computed.
        seed: seed of the re-initialisation.
        absolute: correlate absolute values (as Adebayo et al.'s main figures).

    Returns:
        `[(layer name, Spearman per example (batch,)), ...]` from the top layer down.
    """
    if original is None:
        original = attribution_function(model, inputs, target)
    return [
        (name, spearman(original, attribution_function(copy_, inputs, target), absolute))
        for name, copy_ in randomised_copies(model, seed)
    ]


def random_other_class(
    target: Tensor, num_classes: int, generator: torch.Generator | None = None
) -> Tensor:
    """A uniformly drawn class different from `target`, per example (batch,)."""
    if num_classes < 2:
        raise ValueError("The random-logit check needs a model with at least two outputs.")
    shift = torch.randint(1, num_classes, target.shape, generator=generator)
    return (target + shift.to(target.device)) % num_classes


def random_logit_check(
    model: nn.Module,
    attribution_function: AttributionFunction,
    inputs: InputsType,
    target: _compat.TargetType,
    *,
    original: InputsType | None = None,
    additional_forward_args: Any = None,
    seed: int = 0,
    absolute: bool = True,
) -> Tensor:
    """Adebayo et al.'s random-logit check: Spearman between the maps of two classes (batch,).

    The map of `target` is compared with the map of a random other class; a target-specific
    method passes with a low correlation. Class-agnostic maps (a metric on all outputs) are
    identical for both classes, so they score 1 and cannot pass, by construction.
    """
    parts = _compat.format_inputs(inputs)
    args = _compat.format_additional_forward_args(additional_forward_args) or ()
    with torch.no_grad():
        outputs = model(*parts, *args)
    flat_target = target_indices(target, outputs)
    if original is None:
        original = attribution_function(model, inputs, flat_target)
    other = random_other_class(flat_target, outputs[0].numel(), torch.Generator().manual_seed(seed))
    return spearman(original, attribution_function(model, inputs, other), absolute)


def mean_finite(values: Tensor | Sequence[float]) -> float:
    """Mean of the finite entries (NaN if none)."""
    values = torch.as_tensor(values, dtype=torch.float64)
    finite = values[torch.isfinite(values)]
    return float(finite.mean()) if finite.numel() else float("nan")
