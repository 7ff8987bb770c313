"""The geometric scores, from one spectrum of the pullback metric per example (method.md §4).

- ``relevance``: `rho_i = sqrt(g_ii) = ||A e_i||`, how far the output (measured by `G`) moves
  per unit move of feature `i`; ``signed`` multiplies it by `sign(df_t/dx_i)`;
- ``robustness``: `kappa_i = ||P_N e_i||^2 = 1 - sum_{k<=r} v_ki^2` in [0, 1], the share of
  a move of feature `i` that the equivalence class absorbs (1: locally invariant); with a
  ``domain``, the box-aware score of `captum_simec.attr._robustness`.
"""

from __future__ import annotations

from torch import Tensor, nn

from captum_simec.attr._base import ScoreRequest, check_signed
from captum_simec.attr._robustness import box_robustness
from captum_simec.geometry import (
    PullbackSpectrum,
    TargetMetric,
    pullback_spectrum,
    resolve_output_metric,
)

__all__ = ["spectrum_scores"]


def spectrum_scores(
    request: ScoreRequest,
    layer: nn.Module | None = None,
    attribute_to_layer_input: bool = False,
) -> tuple[Tensor, PullbackSpectrum]:
    """Flat relevance or robustness (batch, n) and the spectrum it came from.

    The metric is `request.metric`; with `layer`, `n` counts the layer's neurons. ``signed``
    relevance is `rho_i sign(df_t/dx_i)`; the target gradient is the factor itself for the
    ``"target"`` metric, else one more backward pass. `request.options` are geometry options
    and, for robustness, ``domain`` (the box-aware score).

    Raises:
        ValueError: a ``domain`` with a `layer` (it bounds input features, not neurons).
    """
    check_signed(request.score, request.signed)
    metric = resolve_output_metric(request.metric)
    options = dict(request.options)
    domain = options.pop("domain", None)
    if domain is not None and layer is not None:
        raise ValueError(
            "`domain` (box-aware robustness) applies to input features, not to a layer's "
            "neurons: drop it for LayerSiMECAttribution."
        )
    common = dict(
        target=request.target,
        additional_forward_args=request.additional_forward_args,
        layer=layer,
        attribute_to_layer_input=attribute_to_layer_input,
        internal_batch_size=request.internal_batch_size,
        **options,
    )
    model, inputs = request.forward_func, request.inputs
    spectrum = pullback_spectrum(model, inputs, output_metric=metric, **common)
    if request.score == "robustness" and domain is not None:
        return box_robustness(spectrum.relevance(), inputs, domain), spectrum
    if request.score == "robustness":
        return spectrum.robustness(), spectrum
    relevance = spectrum.relevance()
    if request.signed:
        outputs = spectrum.outputs
        if request.target is None and outputs[0].numel() > 1:
            raise ValueError(
                "signed=True takes the sign of the target output's derivative, but `target` "
                f"is None and the model has {outputs[0].numel()} outputs per example: pass "
                "target=..."
            )
        gradient_of = (
            spectrum
            if isinstance(metric, TargetMetric)
            else pullback_spectrum(model, inputs, output_metric="target", **common)
        )
        relevance = relevance * gradient_of.factor[:, 0].sign().to(relevance.dtype)
    return relevance, spectrum
