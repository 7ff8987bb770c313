"""Adebayo et al.'s sanity checks: cascading model-parameter randomisation and random logit.

- Cascading randomisation: re-initialise the layers of a deep copy from the top down and
  correlate each map with the original; a method passes when its maps decorrelate (a map
  that survives randomisation does not explain the model).
- Random logit: correlate the map of the target with that of a random other class; a
  target-specific method passes with a low correlation. Maps from class-agnostic methods do
  not depend on the target, so they cannot pass by construction.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from captum_simec import _compat
from captum_simec.evaluation._common import AttributionFunction, InputsType, target_indices
from captum_simec.evaluation.ranks import spearman
from captum_simec.geometry.tolerance import SaturationWarning

__all__ = [
    "model_randomisation_check",
    "random_logit_check",
    "random_other_class",
    "randomised_copies",
]


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
        (
            name,
            spearman(
                original, _on_random_weights(attribution_function, copy_, inputs, target), absolute
            ),
        )
        for name, copy_ in randomised_copies(model, seed)
    ]


def _on_random_weights(
    attribution_function: AttributionFunction,
    model: nn.Module,
    inputs: InputsType,
    target: _compat.TargetType,
) -> Tensor:
    """The map on a randomised copy, without saturation warnings: re-initialised layers
    often saturate (J = 0), and a map that dies with the weights is what the check wants."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SaturationWarning)
        return attribution_function(model, inputs, target)


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
