"""`compare_attributions`: SiMEC scores next to Captum's methods, with faithfulness and sanity.

Every method becomes a function `fn(model, inputs, target) -> map` so that it can be re-run
on perturbed inputs (sensitivity), on another class (random-logit check) and on randomised
copies of the model (parameter-randomisation check). Metrics per method:

- ``infidelity``: Captum's `infidelity` (Yeh et al.), Gaussian perturbations of standard
  deviation `0.1 std(inputs)`, normalised attributions; lower is better.
- ``sensitivity``: Captum's `sensitivity_max`, uniform L-inf perturbations of radius
  `0.02 (max - min)(inputs)`, clipped to `domain`; lower is better.
- ``deletion`` / ``insertion``: AUC of `captum_simec.evaluation.perturbation_curve` (softmax
  probability of the target) for each removal baseline; lower deletion and higher insertion
  are better.
- ``sanity``: Spearman (absolute values) between the map and the maps after cascading
  randomisation of the model's layers (``randomisation_top``: top layer only,
  ``randomisation_all``: every layer) and the map of a random other class
  (``random_logit``); lower passes. Class-agnostic maps cannot pass the random-logit check.
- ``correlation``: Spearman between every pair of methods (mean over examples).

All randomness (noise, baselines, tie-breaks, re-initialisation, GradientShap, walks) is
seeded by `seed`.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from captum.attr import GradientShap, InputXGradient, IntegratedGradients, Saliency
from captum.metrics import infidelity, infidelity_perturb_func_decorator, sensitivity_max
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_simec import evaluation
from captum_simec._runtime import show_progress
from captum_simec.attr import SiMECAttribution
from captum_simec.evaluation import AttributionFunction, InputsType, PerturbationCurve

__all__ = ["METRICS", "Comparison", "compare_attributions"]

METRICS = ("infidelity", "sensitivity", "deletion", "insertion", "sanity", "correlation")
#: infidelity noise standard deviation, relative to the inputs' standard deviation.
INFIDELITY_NOISE = 0.1
#: sensitivity_max L-inf radius, relative to the inputs' value range.
SENSITIVITY_RADIUS = 0.02
INFIDELITY_SAMPLES = 10
SENSITIVITY_SAMPLES = 5
GRADIENT_SHAP_BASELINES = 5


@dataclass
class _Method:
    """A method as `fn(model, inputs, target)`, with what the metrics need to know of it."""

    function: AttributionFunction
    multiplies_by_inputs: bool = False
    class_agnostic: bool = False
    #: whether `function` can run on another model (randomisation check).
    portable: bool = True


@contextmanager
def _isolated(seed: int) -> Iterator[None]:
    """Runs a method with torch's and numpy's global generators seeded, then restores them.

    Captum's GradientShap draws its path points from numpy's legacy global generator, hence
    the legacy calls. Captum's notice that it set `requires_grad` on an input (it undoes it)
    is silenced; every other warning passes.
    """
    state = np.random.get_state()  # noqa: NPY002
    with torch.random.fork_rng(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input Tensor .* did not already require")
        torch.manual_seed(seed)
        np.random.seed(seed)  # noqa: NPY002
        try:
            yield
        finally:
            np.random.set_state(state)  # noqa: NPY002


def _single(inputs: InputsType, like: InputsType) -> InputsType:
    """Captum metrics pass tuples; give a tensor back where the user gave a tensor."""
    if isinstance(like, Tensor) and isinstance(inputs, tuple):
        return inputs[0]
    return inputs


def _black(inputs: Tensor, domain: tuple[float, float] | None) -> Tensor:
    return evaluation.removal_baseline(inputs, "black", domain=domain)


def default_methods(
    inputs: Tensor, n_steps_ig: int, domain: tuple[float, float] | None, seed: int
) -> dict[str, _Method]:
    """SiMEC relevance, leverage and flip, IntegratedGradients, Saliency, InputXGradient,
    GradientShap.

    The SiMEC robustness `kappa` is an invariance map (high = the class absorbs the move), so
    it enters the comparison as the leverage `1 - kappa` (high = important), with the papers'
    metric `G = I` (class-agnostic); relevance uses the default metric, `"target"` here.
    """
    black = _black(inputs, domain)
    generator = torch.Generator().manual_seed(seed)
    lo, hi = domain if domain is not None else (float(inputs.min()), float(inputs.max()))
    noise = lo + (hi - lo) * torch.rand(
        (GRADIENT_SHAP_BASELINES - 1, *inputs.shape[1:]), generator=generator
    )
    shap_baselines = torch.cat([black[:1], noise.to(inputs)])

    def relevance(model: nn.Module, x: InputsType, target: Any) -> InputsType:
        return SiMECAttribution(model).attribute(x, target=target)

    def leverage(model: nn.Module, x: InputsType, target: Any) -> InputsType:
        kappa = SiMECAttribution(model).attribute(
            x, target=target, score="robustness", output_metric="euclidean"
        )
        return 1 - kappa

    def flip(model: nn.Module, x: InputsType, target: Any) -> InputsType:
        return SiMECAttribution(model).attribute(
            x, target=target, score="flip", domain=domain, seed=seed
        )

    def integrated_gradients(model: nn.Module, x: InputsType, target: Any) -> InputsType:
        return IntegratedGradients(model).attribute(
            x, baselines=_black(x, domain), target=target, n_steps=n_steps_ig
        )

    def saliency(model: nn.Module, x: InputsType, target: Any) -> InputsType:
        return Saliency(model).attribute(x, target=target)

    def input_x_gradient(model: nn.Module, x: InputsType, target: Any) -> InputsType:
        return InputXGradient(model).attribute(x, target=target)

    def gradient_shap(model: nn.Module, x: InputsType, target: Any) -> InputsType:
        return GradientShap(model).attribute(x, baselines=shap_baselines, target=target)

    return {
        "SiMEC relevance": _Method(relevance),
        "SiMEC leverage (1-robustness, G=I)": _Method(leverage, class_agnostic=True),
        "SiMEC flip": _Method(flip),
        "IntegratedGradients": _Method(integrated_gradients, multiplies_by_inputs=True),
        "Saliency": _Method(saliency),
        "InputXGradient": _Method(input_x_gradient, multiplies_by_inputs=True),
        "GradientShap": _Method(gradient_shap, multiplies_by_inputs=True),
    }


def as_method(value: Any, model: nn.Module, name: str) -> _Method:
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

        return _Method(
            run,
            multiplies_by_inputs=bool(getattr(value, "multiplies_by_inputs", False)),
            portable=portable,
        )
    if callable(value):
        return _Method(value)
    raise TypeError(
        f"methods[{name!r}] is a {type(value).__name__}; pass a Captum attribution instance, "
        "a callable fn(model, inputs, target) -> map, or None to drop a default method."
    )


@dataclass
class Comparison:
    """Maps, timings and metrics of several attribution methods on one batch.

    Attributes:
        inputs: the inputs (detached).
        target: flat target class per example (batch,).
        maps: method name -> map (input structure).
        seconds: method name -> wall time of the attribution of the batch.
        scores: method name -> metric name -> per-example values (batch,).
        curves: method name -> "deletion/black"-style key -> `PerturbationCurve`.
        randomisation: method name -> [(layer, Spearman per example)] from the top layer down.
        correlation: (k, k) mean Spearman between the methods' maps (None if not computed).
        class_agnostic: method name -> whether its map ignores the target by construction.
        notes: caveats recorded while computing (skipped checks, class-agnostic methods).
    """

    inputs: InputsType
    target: Tensor
    maps: dict[str, InputsType]
    seconds: dict[str, float]
    scores: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    curves: dict[str, dict[str, PerturbationCurve]] = field(default_factory=dict)
    randomisation: dict[str, list[tuple[str, Tensor]]] = field(default_factory=dict)
    correlation: Tensor | None = None
    class_agnostic: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def methods(self) -> list[str]:
        """Method names in the order they ran."""
        return list(self.maps)

    def summary(self) -> dict[str, dict[str, float]]:
        """Method -> metric -> mean over examples (NaN entries ignored), plus `seconds`."""
        return {
            name: {
                "seconds": self.seconds[name],
                **{
                    metric: evaluation.mean_finite(values)
                    for metric, values in self.scores.get(name, {}).items()
                },
            }
            for name in self.methods
        }

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per method: name, class-agnostic flag, seconds and metric means."""
        return [
            {"method": name, "class_agnostic": self.class_agnostic.get(name, False), **row}
            for name, row in self.summary().items()
        ]

    def to_markdown(self, digits: int = 3) -> str:
        """The metric table (and the method-correlation table) as GitHub markdown.

        Args:
            digits: significant digits of every number.
        """
        records = self.to_records()
        columns = list(dict.fromkeys(key for row in records for key in row if key != "method"))
        lines = [
            "| method | " + " | ".join(columns) + " |",
            "|---|" + "---|" * len(columns),
        ]
        for row in records:
            cells = [_cell(row.get(column), digits) for column in columns]
            lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(
            "Lower is better for infidelity, sensitivity, deletion AUC and the sanity "
            "correlations (randomisation_*, random_logit); higher is better for insertion AUC."
        )
        if self.correlation is not None:
            names = self.methods
            lines += ["", "Spearman correlation between methods (mean over examples):", ""]
            lines.append("| | " + " | ".join(names) + " |")
            lines.append("|---|" + "---|" * len(names))
            for i, name in enumerate(names):
                cells = [_cell(float(v), digits) for v in self.correlation[i]]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
        if self.notes:
            lines += ["", *[f"- {note}" for note in self.notes]]
        return "\n".join(lines)

    def plot(
        self,
        examples: int | Sequence[int] | None = None,
        kind: str = "auto",
        input_index: int = 0,
    ) -> Any:
        """Methods x examples grid of the maps on a shared colour scale (a Figure).

        Images, time series (B, T, d) and tabular (B, d) inputs are all handled; see
        `captum_simec.viz.plot_attributions`.
        """
        from captum_simec.viz import plot_attributions, select_examples

        chosen = select_examples(self.target.shape[0], examples)
        return plot_attributions(
            self.maps,
            self.inputs,
            examples=chosen,
            kind=kind,
            input_index=input_index,
            example_titles=[f"#{i} target {int(self.target[i])}" for i in chosen],
        )

    def plot_curves(self, mode: str = "deletion", baseline: str = "black") -> Any:
        """Mean `mode` curves of every method for one removal baseline (a Figure)."""
        from captum_simec.viz import plot_curves

        key = f"{mode}/{baseline}"
        curves = {name: c[key] for name, c in self.curves.items() if key in c}
        if not curves:
            raise ValueError(f"No {key!r} curves were computed; check `metrics` and `baselines`.")
        return plot_curves(curves)


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.{digits}g}"
    return "" if value is None else str(value)


def _check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"metrics {unknown} are not supported; choose from {METRICS}.")
    return tuple(metrics)


def _resolve_methods(
    model: nn.Module,
    inputs: Tensor,
    methods: Mapping[str, Any] | None,
    n_steps_ig: int,
    domain: tuple[float, float] | None,
    seed: int,
) -> dict[str, _Method]:
    resolved = default_methods(inputs, n_steps_ig, domain, seed)
    for name, value in (methods or {}).items():
        if value is None:
            resolved.pop(name, None)
        else:
            resolved[name] = as_method(value, model, name)
    if not resolved:
        raise ValueError("`methods` removed every method; keep at least one.")
    return resolved


def compare_attributions(
    model: nn.Module,
    inputs: Tensor,
    target: Any = None,
    methods: Mapping[str, Any] | None = None,
    *,
    baselines: Sequence[str | float] = ("black", "uniform", "mean"),
    n_steps_ig: int = 50,
    seed: int = 0,
    metrics: Sequence[str] = METRICS,
    domain: tuple[float, float] | None = None,
    curve_steps: int = 20,
    progress: bool | None = None,
) -> Comparison:
    """Runs SiMEC and Captum attribution methods on a batch and scores them side by side.

    Default methods: "SiMEC relevance" (target metric), "SiMEC leverage (1-robustness, G=I)"
    (class-agnostic), "SiMEC flip" (SiMExp walk that changes the decision about the target),
    "IntegratedGradients" (black baseline, `n_steps_ig` steps), "Saliency",
    "InputXGradient", "GradientShap" (black and uniform-noise baselines).

    Args:
        model: a classifier in eval mode returning (batch, classes) logits or
            log-probabilities.
        inputs: a batch of inputs (one tensor).
        target: Captum target (int, tensor or list); None uses the predicted classes.
        methods: name -> Captum attribution instance, callable `fn(model, inputs, target)`,
            or None to drop a default method; added to (or replacing) the defaults.
        baselines: removal baselines of the deletion/insertion curves: "black" (the domain's
            lower bound, else 0), "uniform", "mean", or numbers.
        n_steps_ig: IntegratedGradients steps.
        seed: seeds every random choice.
        metrics: any of `METRICS`.
        domain: `(lo, hi)` range of valid input values (black/uniform baselines, walks).
        curve_steps: points of the deletion/insertion curves (minus one).
        progress: tqdm bar; None shows it only when stderr is a terminal.

    Returns:
        A `Comparison`.
    """
    metrics = _check_metrics(metrics)
    if not isinstance(inputs, Tensor):
        raise TypeError("compare_attributions takes one input tensor (batch first).")
    inputs = inputs.detach()
    with torch.no_grad():
        outputs = model(inputs)
    if outputs.dim() != 2:
        raise ValueError(
            f"`model` returned shape {tuple(outputs.shape)}; compare_attributions needs a "
            "classifier with (batch, classes) outputs."
        )
    flat_target = evaluation.target_indices(target, outputs)
    resolved = _resolve_methods(model, inputs, methods, n_steps_ig, domain, seed)
    show = show_progress(progress)
    tasks = len(resolved) * (1 + len([m for m in metrics if m != "correlation"]))
    bar = tqdm(total=tasks, desc="compare_attributions", disable=not show)
    result = Comparison(inputs=inputs, target=flat_target, maps={}, seconds={})
    for name, method in resolved.items():
        with _isolated(seed):
            start = time.perf_counter()
            result.maps[name] = method.function(model, inputs, flat_target)
            result.seconds[name] = time.perf_counter() - start
        result.class_agnostic[name] = method.class_agnostic
        bar.update()
        result.scores[name], result.curves[name] = {}, {}
        for metric in metrics:
            if metric == "correlation":
                continue
            with _isolated(seed):
                _score(result, name, method, metric, model, baselines, domain, curve_steps, seed)
            bar.update()
    bar.close()
    if "correlation" in metrics:
        result.correlation = _method_correlation(result.maps)
    agnostic = [name for name, flag in result.class_agnostic.items() if flag]
    if agnostic and "sanity" in metrics:
        result.notes.append(
            f"{', '.join(agnostic)}: class-agnostic (metric on all outputs), so the map does "
            "not depend on the target and cannot pass the random-logit check by construction."
        )
    return result


def _score(
    result: Comparison,
    name: str,
    method: _Method,
    metric: str,
    model: nn.Module,
    baselines: Sequence[str | float],
    domain: tuple[float, float] | None,
    curve_steps: int,
    seed: int,
) -> None:
    """Adds one metric of one method to `result` (scores, curves or randomisation)."""
    inputs, target, attribution = result.inputs, result.target, result.maps[name]
    scores = result.scores[name]
    if metric == "infidelity":
        scores["infidelity"] = _infidelity(model, inputs, attribution, target, method, seed)
    elif metric == "sensitivity":
        scores["sensitivity"] = _sensitivity(model, inputs, target, method, domain, seed)
    elif metric in ("deletion", "insertion"):
        for baseline in baselines:
            curve = evaluation.perturbation_curve(
                model,
                inputs,
                attribution,
                target,
                mode=metric,
                baseline=baseline,
                steps=curve_steps,
                domain=domain,
                seed=seed,
            )
            key = f"{metric}/{curve.baseline if isinstance(baseline, str) else baseline}"
            result.curves[name][key] = curve
            scores[f"{metric}_auc/{key.split('/', 1)[1]}"] = curve.auc
    elif metric == "sanity":
        _sanity(result, name, method, model, seed)


def _infidelity(
    model: nn.Module,
    inputs: Tensor,
    attribution: InputsType,
    target: Tensor,
    method: _Method,
    seed: int,
) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    scale = INFIDELITY_NOISE * float(inputs.std())

    @infidelity_perturb_func_decorator(method.multiplies_by_inputs)
    def perturb(x: Tensor) -> Tensor:
        return x + scale * torch.randn(x.shape, generator=generator).to(x)

    return infidelity(
        model,
        perturb,
        inputs,
        attribution,
        target=target,
        n_perturb_samples=INFIDELITY_SAMPLES,
        normalize=True,
    ).detach()


def _sensitivity(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor,
    method: _Method,
    domain: tuple[float, float] | None,
    seed: int,
) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    radius = SENSITIVITY_RADIUS * float(inputs.max() - inputs.min())

    def perturb(x: InputsType) -> InputsType:
        def shift(part: Tensor) -> Tensor:
            noise = torch.rand(part.shape, generator=generator).to(part)
            moved = part + radius * (2 * noise - 1)
            return moved if domain is None else moved.clamp(*domain)

        return tuple(shift(part) for part in x) if isinstance(x, tuple) else shift(x)

    def explanation(x: InputsType, target: Any = None) -> InputsType:
        # sensitivity_max passes a tuple and miscomputes norms unless it gets a tuple back
        found = method.function(model, _single(x, inputs), target)
        return (found,) if isinstance(x, tuple) and isinstance(found, Tensor) else found

    return sensitivity_max(
        explanation,
        inputs,
        perturb_func=perturb,
        n_perturb_samples=SENSITIVITY_SAMPLES,
        target=target,
    ).detach()


def _sanity(result: Comparison, name: str, method: _Method, model: nn.Module, seed: int) -> None:
    inputs, target, attribution = result.inputs, result.target, result.maps[name]
    scores = result.scores[name]
    if method.portable:
        cascade = evaluation.model_randomisation_check(
            model, method.function, inputs, target, original=attribution, seed=seed
        )
        result.randomisation[name] = cascade
        scores["randomisation_top"] = cascade[0][1]
        scores["randomisation_all"] = cascade[-1][1]
    else:
        result.notes.append(
            f"{name}: its forward function is not the model (or it is a layer method), so it "
            "cannot be re-run on randomised copies; the randomisation check was skipped."
        )
    scores["random_logit"] = evaluation.random_logit_check(
        model, method.function, inputs, target, original=attribution, seed=seed
    )


def _method_correlation(maps: Mapping[str, InputsType]) -> Tensor:
    names = list(maps)
    matrix = torch.full((len(names), len(names)), torch.nan, dtype=torch.float64)
    for i, first in enumerate(names):
        for j, second in enumerate(names):
            if j >= i:
                value = evaluation.mean_finite(evaluation.spearman(maps[first], maps[second]))
                matrix[i, j] = matrix[j, i] = value
    return matrix
