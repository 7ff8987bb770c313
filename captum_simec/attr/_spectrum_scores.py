"""The geometric scores, from one spectrum of the pullback metric per example (method.md §4).

- ``relevance``: `rho_i = sqrt(g_ii) = ||A e_i||`, how far the output (measured by `G`) moves
  per unit move of feature `i`; ``signed`` multiplies it by `sign(df_t/dx_i)`. With
  ``estimator="hutchinson"`` it is estimated from `probes` vector-Jacobian products instead of
  one per metric row (`captum_simec.geometry.hutchinson_relevance`), for models with many
  outputs;
- ``robustness``: `kappa_i = ||P_N e_i||^2 = 1 - sum_{k<=r} v_ki^2` in [0, 1], the share of
  a move of feature `i` that the equivalence class absorbs (1: locally invariant); with a
  ``domain``, the box-aware score of `captum_simec.attr._robustness`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec._outputs import check_output
from captum_simec.attr._base import ESTIMATOR_OPTIONS, ScoreRequest, check_signed
from captum_simec.attr._robustness import box_robustness
from captum_simec.geometry import (
    OutputMetric,
    PullbackSpectrum,
    TargetMetric,
    hutchinson_relevance,
    model_outputs,
    pullback_spectrum,
    resolve_output_metric,
)

__all__ = ["ESTIMATORS", "spectrum_scores"]

#: how the relevance is computed: from the exact factor, or estimated from random probes.
ESTIMATORS = ("exact", "hutchinson")


def spectrum_scores(request: ScoreRequest) -> tuple[Tensor, PullbackSpectrum | None]:
    """Flat relevance or robustness (batch, n) and the spectrum it came from.

    The metric is `request.metric`. ``signed`` relevance is `rho_i sign(df_t/dx_i)`; the
    target gradient is the factor itself for the ``"target"`` metric, else one more backward
    pass. Coordinates outside `request.free` score 0. `request.options` are geometry options,
    for robustness ``domain`` (the box-aware score), for relevance the estimator's options
    (with ``estimator="hutchinson"`` there is no spectrum: None).

    Raises:
        ValueError: an unknown estimator, or estimator options without it.
    """
    check_signed(request.score, request.signed)
    metric = resolve_output_metric(request.metric)
    options = dict(request.options)
    domain = options.pop("domain", None)
    estimator = _estimator_settings(request.score, options)
    common = dict(
        target=request.target,
        additional_forward_args=request.additional_forward_args,
        internal_batch_size=request.internal_batch_size,
        free=request.free,
        **options,
    )
    model, inputs = request.forward_func, request.inputs
    spectrum = None
    if estimator is not None:
        relevance = _hutchinson(request, metric, estimator, options)
        if request.free is not None:
            relevance = relevance * request.free
    else:
        spectrum = pullback_spectrum(model, inputs, output_metric=metric, **common)
        if request.score == "robustness" and domain is not None:
            robustness = box_robustness(spectrum.relevance(), inputs, domain)
            return robustness if spectrum.free is None else robustness * spectrum.free, spectrum
        if request.score == "robustness":
            return spectrum.robustness(), spectrum
        relevance = spectrum.relevance()
    if request.signed:
        if request.target is None and _outputs_per_example(request, spectrum) > 1:
            raise ValueError(
                "signed=True takes the sign of the target output's derivative, but `target` "
                "is None and the model has several outputs per example: pass target=..."
            )
        gradient_of = (
            spectrum
            if isinstance(metric, TargetMetric) and spectrum is not None
            else pullback_spectrum(model, inputs, output_metric="target", **common)
        )
        relevance = relevance * gradient_of.factor[:, 0].sign().to(relevance.dtype)
    return relevance, spectrum


def _outputs_per_example(request: ScoreRequest, spectrum: PullbackSpectrum | None) -> int:
    if spectrum is not None:
        return spectrum.outputs[0].numel()
    args = _compat.format_additional_forward_args(request.additional_forward_args)
    outputs = model_outputs(request.forward_func, request.inputs, args)  # as the Jacobians do
    return check_output(outputs, request.inputs[0].shape[0])[0].numel()


def _estimator_settings(score: str, options: dict[str, Any]) -> dict[str, Any] | None:
    """The Hutchinson settings popped from `options`, or None for the exact relevance."""
    settings = {name: options.pop(name) for name in ESTIMATOR_OPTIONS if name in options}
    estimator = settings.pop("estimator", "exact")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator={estimator!r}; choose one of {ESTIMATORS}.")
    if estimator == "exact":
        if settings:
            raise ValueError(
                f"{sorted(settings)} apply to estimator='hutchinson' only: pass "
                "estimator='hutchinson' or drop them."
            )
        return None
    if score == "robustness":
        raise ValueError(
            "score='robustness' needs the range space of the factor (its right singular "
            "vectors), which the Hutchinson estimator does not give. For a model with many "
            "outputs use output_metric='topk' (G = I on the k largest outputs: k exact rows) "
            "or pass a target (one row)."
        )
    return settings


def _hutchinson(
    request: ScoreRequest,
    metric: OutputMetric,
    settings: dict[str, Any],
    options: dict[str, Any],
) -> Tensor:
    """Hutchinson relevance (batch, n), one example at a time with the same seed, so that an
    example's estimate does not depend on the rest of the batch."""
    args = _compat.format_additional_forward_args(request.additional_forward_args)
    inputs, batch = request.inputs, request.inputs[0].shape[0]
    rows = []
    for i in range(batch):
        estimate = hutchinson_relevance(
            request.forward_func,
            tuple(x[i : i + 1] for x in inputs),
            output_metric=metric,
            target=_example_target(request.target, i, batch),
            additional_forward_args=_compat.index_additional_forward_args(
                args, torch.tensor([i]), batch
            ),
            probes=settings.get("probes", 100),
            rank=settings.get("deflation_rank", 0),
            power_iterations=settings.get("power_iterations", 0),
            seed=settings.get("seed", 0),
            jacobian_method=options.get("jacobian_method", "auto"),
            internal_batch_size=request.internal_batch_size,
        )
        rows.append(_compat.flatten_features(_compat.format_inputs(estimate.relevance)))
    return torch.cat(rows)


def _example_target(target: _compat.TargetType, i: int, batch: int) -> _compat.TargetType:
    """Captum's target for example `i` alone: per-example forms are sliced, others kept."""
    if isinstance(target, Tensor) and target.dim() == 1 and target.numel() == batch > 1:
        return target[i : i + 1]
    if isinstance(target, list):
        return [target[i]]
    return target
