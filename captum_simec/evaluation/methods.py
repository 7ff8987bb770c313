"""The attribution methods `compare_attributions` runs, each as `fn(model, inputs, target)`.

A method must be re-runnable on perturbed inputs (max-sensitivity), on another class (the
random-logit check) and on randomised copies of the model (the randomisation check), so
every method is a function of the model, the inputs and the target, with its baselines and
random choices fixed by the comparison's seed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from captum.attr import GradientShap, InputXGradient, IntegratedGradients, Saliency
from torch import Tensor, nn

from captum_simec.attr import SiMECAttribution
from captum_simec.audit import min_pgd_epsilon
from captum_simec.evaluation._common import AttributionFunction, InputsType
from captum_simec.evaluation.perturbation import removal_baseline

__all__ = ["Method", "as_method", "boundary_integrated_gradients", "default_methods"]

GRADIENT_SHAP_BASELINES = 5
#: the methods draw their noise baselines from `seed + NOISE_SEED_OFFSET`, apart from the
#: metrics' uniform removal baseline (drawn from `seed`): a method integrating from the very
#: baseline it is scored against would win that score by construction.
NOISE_SEED_OFFSET = 1
#: PGD settings of boundary-based IG (the minimal adversarial point is IG's baseline).
PGD_STEPS = 10
PGD_TOLERANCE = 1e-2

DomainType = tuple[float, float] | None


@dataclass
class Method:
    """A method as `fn(model, inputs, target)`, with what the metrics need to know of it.

    Attributes:
        function: `fn(model, inputs, target) -> map`.
        multiplies_by_inputs: whether the map is a global attribution (Captum's sense; used
            by infidelity).
        class_agnostic: whether the map ignores the target by construction.
        portable: whether `function` can run on another model (randomisation check).
    """

    function: AttributionFunction
    multiplies_by_inputs: bool = False
    class_agnostic: bool = False
    portable: bool = True


def _box(inputs: Tensor, domain: DomainType) -> tuple[float, float]:
    return domain if domain is not None else (float(inputs.min()), float(inputs.max()))


def _uniform(shape: torch.Size, domain: tuple[float, float], seed: int, like: Tensor) -> Tensor:
    """Uniform noise in the box, the same for the same shape and seed (a fixed baseline)."""
    noise = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=like.dtype)
    return (domain[0] + (domain[1] - domain[0]) * noise).to(like.device)


def boundary_integrated_gradients(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor,
    *,
    domain: DomainType = None,
    n_steps: int = 50,
    pgd_steps: int = PGD_STEPS,
) -> Tensor:
    """Boundary-based IG: Integrated Gradients from PGD's minimal L2 adversarial point.

    The baseline of each example is the point found by `min_pgd_epsilon` (L2, inside the
    domain box) moving away from the predicted class: the nearest decision change PGD finds,
    whatever the target. Examples that PGD does not flip keep themselves as baseline, hence
    a zero map.
    """
    lo, hi = _box(inputs, domain)
    diameter = math.sqrt(inputs[0].numel()) * (hi - lo)
    attack = min_pgd_epsilon(
        model,
        inputs,
        norm="L2",
        eps_max=diameter,
        steps=pgd_steps,
        lower_bound=lo if domain is not None else None,
        upper_bound=hi if domain is not None else None,
        tol=PGD_TOLERANCE * diameter / math.sqrt(inputs[0].numel()),
        progress=False,
    )
    return IntegratedGradients(model).attribute(
        inputs, baselines=attack.adversarial, target=target, n_steps=n_steps
    )


def default_methods(
    inputs: Tensor, n_steps_ig: int, domain: DomainType, seed: int
) -> dict[str, Method]:
    """SiMEC relevance, leverage, flip and boundary; Captum's IG (black and uniform-noise
    baselines), Saliency, InputXGradient and GradientShap; boundary-based IG.

    The SiMEC robustness is an invariance map (high = the prediction ignores the feature), so
    it enters the comparison as the leverage `1 - robustness` (high = important), with the
    robustness default (`G = I` on the top three outputs: class-agnostic), box-aware when a
    `domain` is given; relevance uses the default metric, `"target"` here (Saliency).
    """
    box = _box(inputs, domain)
    black = removal_baseline(inputs, "black", domain=domain)
    noise_seed = seed + NOISE_SEED_OFFSET
    shap_noise = _uniform((GRADIENT_SHAP_BASELINES - 1, *inputs.shape[1:]), box, noise_seed, inputs)
    shap_baselines = torch.cat([black[:1], shap_noise])

    def relevance(model: nn.Module, x: InputsType, target: Any) -> InputsType:
        return SiMECAttribution(model).attribute(x, target=target)

    def leverage(model: nn.Module, x: InputsType, target: Any) -> InputsType:
        box = {} if domain is None else {"domain": domain}
        return 1 - SiMECAttribution(model).attribute(x, target=target, score="robustness", **box)

    def flip(model: nn.Module, x: InputsType, target: Any) -> InputsType:
        return SiMECAttribution(model).attribute(
            x, target=target, score="flip", domain=domain, seed=seed
        )

    def boundary(model: nn.Module, x: InputsType, target: Any) -> InputsType:
        return SiMECAttribution(model).attribute(x, target=target, score="boundary", domain=domain)

    def integrated_gradients(model: nn.Module, x: Tensor, target: Any) -> Tensor:
        reference = removal_baseline(x, "black", domain=domain)
        return IntegratedGradients(model).attribute(
            x, baselines=reference, target=target, n_steps=n_steps_ig
        )

    def integrated_gradients_uniform(model: nn.Module, x: Tensor, target: Any) -> Tensor:
        reference = _uniform(x.shape, box, noise_seed, x)
        return IntegratedGradients(model).attribute(
            x, baselines=reference, target=target, n_steps=n_steps_ig
        )

    def boundary_ig(model: nn.Module, x: Tensor, target: Any) -> Tensor:
        return boundary_integrated_gradients(model, x, target, domain=domain, n_steps=n_steps_ig)

    def saliency(model: nn.Module, x: InputsType, target: Any) -> InputsType:
        return Saliency(model).attribute(x, target=target)

    def input_x_gradient(model: nn.Module, x: InputsType, target: Any) -> InputsType:
        return InputXGradient(model).attribute(x, target=target)

    def gradient_shap(model: nn.Module, x: InputsType, target: Any) -> InputsType:
        return GradientShap(model).attribute(x, baselines=shap_baselines, target=target)

    return {
        "SiMEC relevance": Method(relevance),
        "SiMEC leverage (1-robustness)": Method(leverage, class_agnostic=True),
        "SiMEC flip": Method(flip),
        "SiMEC boundary": Method(boundary, multiplies_by_inputs=True),
        "IntegratedGradients": Method(integrated_gradients, multiplies_by_inputs=True),
        "IntegratedGradients (uniform)": Method(
            integrated_gradients_uniform, multiplies_by_inputs=True
        ),
        "Boundary IG (PGD)": Method(boundary_ig, multiplies_by_inputs=True),
        "Saliency": Method(saliency),
        "InputXGradient": Method(input_x_gradient, multiplies_by_inputs=True),
        "GradientShap": Method(gradient_shap, multiplies_by_inputs=True),
    }


def as_method(value: Any, model: nn.Module, name: str) -> Method:
    """Wraps a Captum attribution instance or a callable `fn(model, inputs, target)`.

    A Captum instance whose `forward_func` is `model` (and that has no `layer`) is re-pointed
    to randomised copies for the randomisation check; any other instance is not portable.
    """
    if hasattr(value, "attribute") and hasattr(value, "forward_func"):
        portable = value.forward_func is model and not hasattr(value, "layer")

        def run(target_model: nn.Module, x: InputsType, target: Any) -> InputsType:
            method = value
            if target_model is not model:
                method = copy.copy(value)
                method.forward_func = target_model
            return method.attribute(x, target=target)

        return Method(
            run,
            multiplies_by_inputs=bool(getattr(value, "multiplies_by_inputs", False)),
            portable=portable,
        )
    if callable(value):
        return Method(value)
    raise TypeError(
        f"methods[{name!r}] is a {type(value).__name__}; pass a Captum attribution instance, "
        "a callable fn(model, inputs, target) -> map, or None to drop a default method."
    )


def resolve_methods(
    model: nn.Module,
    inputs: Tensor,
    methods: Mapping[str, Any] | None,
    n_steps_ig: int,
    domain: DomainType,
    seed: int,
) -> dict[str, Method]:
    """The default methods, with `methods` added, replacing defaults, or (None) dropping them."""
    resolved = default_methods(inputs, n_steps_ig, domain, seed)
    for name, value in (methods or {}).items():
        if value is None:
            resolved.pop(name, None)
        else:
            resolved[name] = as_method(value, model, name)
    if not resolved:
        raise ValueError("`methods` removed every method; keep at least one.")
    return resolved
