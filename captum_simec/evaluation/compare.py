"""`compare_attributions`: SiMEC scores next to Captum's methods, with faithfulness and sanity.

Every method is a function `fn(model, inputs, target) -> map` (`methods.py`), so that it can
be re-run on perturbed inputs (sensitivity), on another class (random-logit check) and on
randomised copies of the model (parameter-randomisation check). Metrics per method:

- ``infidelity``: Captum's `infidelity` (Yeh et al.), Gaussian perturbations of standard
  deviation `0.1 std(inputs)`, normalised attributions; lower is better. For methods that
  multiply by inputs Captum assumes a zero baseline.
- ``sensitivity``: max-sensitivity (`captum_simec.evaluation.max_sensitivity`), uniform
  L-inf perturbations of radius `0.02` times the domain's width, clipped to the domain;
  lower is better.
- ``deletion`` / ``insertion``: AUC of `perturbation_curve` (softmax probability of the
  target) for each removal baseline; lower deletion and higher insertion are better.
- ``road``: ROAD with noisy linear imputation (`road_curve`), MoRF (``road_morf_auc``, lower
  is better) and LeRF (``road_lerf_auc``, higher is better); images by default, other inputs
  with `road_imputer`.
- ``invariance``: AUC of the invariance curve (`invariance_curve`) with the least relevant
  features (smallest `|a|`) noised first: does the map know what the decision ignores?
  Higher is better.
- ``sanity``: Spearman (absolute values) between the map and the maps after cascading
  randomisation of the model's layers (``randomisation_top``: top layer only,
  ``randomisation_all``: every layer, ``randomisation_mean``: the mean over the cascade) and
  the map of a random other class (``random_logit``); lower passes. Class-agnostic maps
  cannot pass the random-logit check.
- ``correlation``: Spearman between every pair of methods (mean over examples).

All randomness (noise, baselines, tie-breaks, re-initialisation, GradientShap, walks) is
seeded by `seed`.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from captum.metrics import infidelity, infidelity_perturb_func_decorator
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_simec._runtime import show_progress
from captum_simec._validation import check_labels
from captum_simec.evaluation._common import InputsType, mean_finite, target_indices
from captum_simec.evaluation.comparison import Comparison
from captum_simec.evaluation.invariance import invariance_curve
from captum_simec.evaluation.methods import Method, resolve_methods
from captum_simec.evaluation.perturbation import perturbation_curve
from captum_simec.evaluation.randomisation import model_randomisation_check, random_logit_check
from captum_simec.evaluation.ranks import spearman
from captum_simec.evaluation.road import default_imputer, road_curve
from captum_simec.evaluation.sensitivity import max_sensitivity

__all__ = ["METRICS", "compare_attributions"]

METRICS = (
    "infidelity",
    "sensitivity",
    "deletion",
    "insertion",
    "road",
    "invariance",
    "sanity",
    "correlation",
)
#: infidelity noise standard deviation, relative to the inputs' standard deviation.
INFIDELITY_NOISE = 0.1
INFIDELITY_SAMPLES = 10
SENSITIVITY_SAMPLES = 5
#: ROAD's imputation noise, relative to the domain's width.
ROAD_NOISE = 0.01
INVARIANCE_DRAWS = 20
#: the warning of a flip or boundary walk that stopped before the decision changed.
_SHORT_WALK = r"score='(flip|boundary)': .*stopped before"

BaselinesType = Sequence[str | float] | Mapping[str, str | float | Tensor] | None


@dataclass
class _Settings:
    """What every metric of one comparison shares."""

    baselines: dict[str, str | float | Tensor]
    domain: tuple[float, float]
    given_domain: tuple[float, float] | None
    curve_steps: int
    seed: int
    road_imputer: Callable[[Tensor, Tensor], Tensor] | None
    invariance_draws: int


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


def _check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"metrics {unknown} are not supported; choose from {METRICS}.")
    return tuple(metrics)


def _named_baselines(baselines: BaselinesType, inputs: Tensor) -> dict[str, str | float | Tensor]:
    """Name -> removal baseline; by default black, uniform, mean, and blur for (B, C, H, W)."""
    if baselines is None:
        names = ("black", "uniform", "mean") + (("blur",) if inputs.dim() == 4 else ())
        return {name: name for name in names}
    if isinstance(baselines, Mapping):
        return dict(baselines)
    if isinstance(baselines, str):
        raise TypeError(
            f"`baselines` must be a sequence or a mapping, got the string {baselines!r}."
        )
    return {str(kind): kind for kind in baselines}


def compare_attributions(
    model: Callable[..., Tensor],
    inputs: Tensor,
    target: Any = None,
    methods: Mapping[str, Any] | None = None,
    *,
    labels: Tensor | Sequence[int] | None = None,
    baselines: BaselinesType = None,
    n_steps_ig: int = 50,
    seed: int = 0,
    metrics: Sequence[str] = METRICS,
    domain: tuple[float, float] | None = None,
    curve_steps: int = 20,
    road_imputer: Callable[[Tensor, Tensor], Tensor] | None = None,
    invariance_draws: int = INVARIANCE_DRAWS,
    progress: bool | None = None,
) -> Comparison:
    """Runs SiMEC and Captum attribution methods on a batch and scores them side by side.

    Default methods (`captum_simec.evaluation.methods.default_methods`): "SiMEC relevance"
    (target metric: `Saliency(abs=True)`), "SiMEC leverage (1-robustness)" (class-agnostic;
    box-aware with `domain`), "SiMEC flip", "SiMEC boundary" (the target's gradient
    integrated along the SiMExp path out of the class), "IntegratedGradients" (black baseline) and
    "IntegratedGradients (uniform)" (a uniform-noise baseline), "Boundary IG (PGD)" (IG from
    PGD's minimal L2 adversarial point), "Saliency", "InputXGradient", "GradientShap".

    Args:
        model: a classifier in eval mode returning (batch, classes) logits or
            log-probabilities: an `nn.Module` or a plain function (the randomisation check,
            which re-draws a module's layers, is then skipped with a note).
        inputs: a batch of inputs (one tensor).
        target: Captum target (int, tensor or list); None uses the predicted classes.
        methods: name -> Captum attribution instance, callable `fn(model, inputs, target)`,
            or None to drop a default method; added to (or replacing) the defaults.
        labels: the true class per example, shown next to the predicted and target classes
            in the figures (not used by any metric).
        baselines: removal baselines of the deletion/insertion curves: a sequence of kinds
            ("black": the domain's lower bound, else 0; "uniform"; "mean": each example's
            mean; "blur": a 3x3 box blur; numbers), or a mapping name -> kind or tensor
            (e.g. ``{"mean": training_mean_image}``). Default: black, uniform, mean, and
            blur for (batch, channels, height, width) inputs.
        n_steps_ig: IntegratedGradients steps (all IG variants).
        seed: seeds every random choice.
        metrics: any of `METRICS`.
        domain: `(lo, hi)` range of valid input values (baselines, walks, noise, clipping);
            default: the inputs' [min, max].
        curve_steps: points of the deletion/insertion and invariance curves (minus one).
        road_imputer: ROAD's imputation `fn(x, removed) -> x` for non-image inputs (e.g.
            `GaussianImputer(training_inputs)`); without it ROAD is skipped for them.
        invariance_draws: noise draws per example of the invariance curve.
        progress: tqdm bar; None shows it only when stderr is a terminal.

    Returns:
        A `Comparison`.
    """
    metrics = _check_metrics(metrics)
    if not callable(model):
        raise TypeError(f"`model` must be a callable (an nn.Module or a function), got {model!r}.")
    if not isinstance(inputs, Tensor):
        raise TypeError("compare_attributions takes one input tensor (batch first).")
    inputs = inputs.detach()
    labels = check_labels(labels, inputs.shape[0])
    with torch.no_grad():
        outputs = model(inputs)
    if outputs.dim() != 2:
        raise ValueError(
            f"`model` returned shape {tuple(outputs.shape)}; compare_attributions needs a "
            "classifier with (batch, classes) outputs."
        )
    settings = _Settings(
        baselines=_named_baselines(baselines, inputs),
        domain=domain if domain is not None else (float(inputs.min()), float(inputs.max())),
        given_domain=domain,
        curve_steps=curve_steps,
        seed=seed,
        road_imputer=road_imputer,
        invariance_draws=invariance_draws,
    )
    resolved = resolve_methods(model, inputs, methods, n_steps_ig, domain, seed)
    result = Comparison(
        inputs=inputs,
        target=target_indices(target, outputs),
        maps={},
        seconds={},
        predicted=outputs.argmax(dim=1),
        labels=labels,
    )
    _run(result, resolved, model, metrics, settings, show_progress(progress))
    if "correlation" in metrics:
        result.correlation = _method_correlation(result.maps)
    _add_notes(result, metrics, settings)
    return result


def _run(
    result: Comparison,
    resolved: dict[str, Method],
    model: Callable[..., Tensor],
    metrics: tuple[str, ...],
    settings: _Settings,
    show: bool,
) -> None:
    """Computes every method's map (timed) and metrics into `result`."""
    scored = [metric for metric in metrics if metric != "correlation"]
    bar = tqdm(
        total=len(resolved) * (1 + len(scored)), desc="compare_attributions", disable=not show
    )
    for name, method in resolved.items():
        with _isolated(settings.seed):
            start = time.perf_counter()
            result.maps[name] = method.function(model, result.inputs, result.target)
            result.seconds[name] = time.perf_counter() - start
        result.class_agnostic[name] = method.class_agnostic
        bar.update()
        result.scores[name], result.curves[name] = {}, {}
        for metric in scored:
            with _isolated(settings.seed):
                _score(result, name, method, metric, model, settings)
            bar.update()
    bar.close()


def _add_notes(result: Comparison, metrics: tuple[str, ...], settings: _Settings) -> None:
    agnostic = [name for name, flag in result.class_agnostic.items() if flag]
    if agnostic and "sanity" in metrics:
        result.notes.append(
            f"{', '.join(agnostic)}: class-agnostic (its output metric does not single out the "
            "target), so the map does not depend on the target and cannot pass the random-logit "
            "check by construction."
        )
    if "road" in metrics and _road_imputer(result.inputs, settings) is None:
        result.notes.append(
            "ROAD was skipped: its default (neighbour) imputation needs (batch, channels, "
            "height, width) images; pass road_imputer=GaussianImputer(training_inputs) for "
            "other inputs."
        )


def _road_imputer(inputs: Tensor, settings: _Settings) -> Callable | None:
    if settings.road_imputer is not None:
        return settings.road_imputer
    return default_imputer((inputs,))


def _score(
    result: Comparison,
    name: str,
    method: Method,
    metric: str,
    model: Callable[..., Tensor],
    settings: _Settings,
) -> None:
    """Adds one metric of one method to `result` (scores, curves or randomisation)."""
    inputs, target, attribution = result.inputs, result.target, result.maps[name]
    scores = result.scores[name]
    if metric == "infidelity":
        scores["infidelity"] = _infidelity(
            model, inputs, attribution, target, method, settings.seed
        )
    elif metric == "sensitivity":
        scores["sensitivity"] = max_sensitivity(
            lambda x, t: method.function(model, x, t),
            inputs,
            target,
            domain=settings.domain,
            samples=SENSITIVITY_SAMPLES,
            seed=settings.seed,
        )
    elif metric in ("deletion", "insertion"):
        _curves(result, name, metric, model, settings)
    elif metric == "road":
        _road(result, name, model, settings)
    elif metric == "invariance":
        curve = invariance_curve(
            model,
            inputs,
            attribution,
            domain=settings.domain,
            robust_first=False,
            steps=settings.curve_steps,
            draws=settings.invariance_draws,
            seed=settings.seed,
        )
        result.invariance[name] = curve
        scores["invariance_auc"] = curve.auc
    elif metric == "sanity":
        _sanity(result, name, method, model, settings.seed)


def _curves(
    result: Comparison, name: str, mode: str, model: Callable[..., Tensor], settings: _Settings
) -> None:
    for label, baseline in settings.baselines.items():
        curve = perturbation_curve(
            model,
            result.inputs,
            result.maps[name],
            result.target,
            mode=mode,
            baseline=baseline,
            steps=settings.curve_steps,
            domain=settings.given_domain,
            seed=settings.seed,
        )
        result.curves[name][f"{mode}/{label}"] = curve
        result.scores[name][f"{mode}_auc/{label}"] = curve.auc


def _road(result: Comparison, name: str, model: Callable[..., Tensor], settings: _Settings) -> None:
    imputer = _road_imputer(result.inputs, settings)
    if imputer is None:
        return
    lo, hi = settings.domain
    for order in ("morf", "lerf"):
        curve = road_curve(
            model,
            result.inputs,
            result.maps[name],
            result.target,
            order=order,
            imputer=imputer,
            noise_std=ROAD_NOISE * (hi - lo),
            domain=settings.domain,
            seed=settings.seed,
        )
        result.curves[name][f"road_{order}/road"] = curve
        result.scores[name][f"road_{order}_auc"] = curve.auc


def _infidelity(
    model: Callable[..., Tensor],
    inputs: Tensor,
    attribution: InputsType,
    target: Tensor,
    method: Method,
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


def _sanity(
    result: Comparison, name: str, method: Method, model: Callable[..., Tensor], seed: int
) -> None:
    """The sanity checks of one method; a walk that stops short on a randomised model or
    towards a random class becomes one note instead of a warning per re-run."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", message=_SHORT_WALK)
        _sanity_checks(result, name, method, model, seed)
    for warning in caught:
        if re.match(_SHORT_WALK, str(warning.message)):
            _note_once(
                result,
                f"{name}: in the sanity checks, some walks (towards a random class, or on "
                "randomised models) stopped before the decision changed; their maps so far "
                "were used.",
            )
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )


def _sanity_checks(
    result: Comparison, name: str, method: Method, model: Callable[..., Tensor], seed: int
) -> None:
    inputs, target, attribution = result.inputs, result.target, result.maps[name]
    scores = result.scores[name]
    if not _has_layers(model):
        _note_once(
            result,
            "The randomisation check was skipped: `model` is not an nn.Module with "
            "parameters, so there are no layers to re-draw (the random-logit check ran).",
        )
    elif method.portable:
        cascade = model_randomisation_check(
            model, method.function, inputs, target, original=attribution, seed=seed
        )
        result.randomisation[name] = cascade
        scores["randomisation_top"] = cascade[0][1]
        scores["randomisation_all"] = cascade[-1][1]
        scores["randomisation_mean"] = torch.stack([rho for _, rho in cascade]).nanmean(dim=0)
    else:
        result.notes.append(
            f"{name}: its forward function is not the model (or it is a layer method), so it "
            "cannot be re-run on randomised copies; the randomisation check was skipped."
        )
    scores["random_logit"] = random_logit_check(
        model, method.function, inputs, target, original=attribution, seed=seed
    )


def _has_layers(model: Callable[..., Tensor]) -> bool:
    return isinstance(model, nn.Module) and next(model.parameters(), None) is not None


def _note_once(result: Comparison, note: str) -> None:
    if note not in result.notes:
        result.notes.append(note)


def _method_correlation(maps: Mapping[str, InputsType]) -> Tensor:
    names = list(maps)
    matrix = torch.full((len(names), len(names)), torch.nan, dtype=torch.float64)
    for i, first in enumerate(names):
        for j, second in enumerate(names):
            if j >= i:
                value = mean_finite(spearman(maps[first], maps[second]))
                matrix[i, j] = matrix[j, i] = value
    return matrix
