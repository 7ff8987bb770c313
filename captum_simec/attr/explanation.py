"""`explain`: relevance, robustness and the spectrum of `g = J^T G J` in one `Explanation`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from captum_simec import _compat
from captum_simec._outputs import OutputSpec, select_output
from captum_simec.attr._base import (
    GEOMETRY_OPTIONS,
    InputsType,
    ScoreRequest,
    check_options,
    default_output_metric,
)
from captum_simec.attr._spectrum_scores import spectrum_scores
from captum_simec.geometry import resolve_output_metric
from captum_simec.geometry.decisions import num_classes, predicted_class
from captum_simec.geometry.metrics import MetricSpec

__all__ = ["Explanation", "explain"]


@dataclass
class Explanation:
    """Geometry of the pullback metric at each example, in one object.

    Attributes:
        inputs: the inputs, detached (input structure).
        relevance: `rho_i = ||A e_i||` (input structure).
        robustness: `kappa_i = ||P_N e_i||^2` (input structure), from `output_metric` when
            it is given, else from the robustness default (`G = I` on the top three outputs).
        eigenvalues: the largest `p` eigenvalues `s_k^2` of `g` (batch, p), float64,
            descending; the other `n - p` are 0.
        rank: rank of `g` per example (batch,).
        null_dim: dimension `n - rank` of the null space (the class's tangent space).
        spectral_gap: `s_r / s_{r+1}` per example (batch,): how clearly the rank stands out
            (inf when nothing was discarded, 0 at rank 0).
        rank_margin: how far the rank tolerance could move without changing the rank
            (batch,), >= 1; near 1 the rank is a close call (see `PullbackSpectrum`).
        outputs: model outputs (batch, *output_shape), detached.
        predicted: the decided class per example, a flat output index (batch,): the arg-max
            of the output, at the target's position for (T, V) sequence outputs.
        target: flat target index per example, or None.
        output_metric: name of the output metric used.
    """

    inputs: InputsType
    relevance: InputsType
    robustness: InputsType
    eigenvalues: Tensor
    rank: Tensor
    null_dim: Tensor
    spectral_gap: Tensor
    rank_margin: Tensor
    outputs: Tensor
    predicted: Tensor
    target: Tensor | None
    output_metric: str

    def plot(self, examples: int | list[int] | None = None, input_index: int = 0) -> Any:
        """`captum_simec.viz.plot_explanation(self, ...)`: input, relevance, robustness and
        eigenvalue spectrum per example (a Figure). Imports the presentation layer on use."""
        from captum_simec.viz import plot_explanation

        return plot_explanation(self, examples=examples, input_index=input_index)


def explain(
    forward_func: Callable[..., Any],
    inputs: InputsType,
    target: _compat.TargetType = None,
    *,
    additional_forward_args: Any = None,
    output_metric: MetricSpec | None = None,
    internal_batch_size: int | None = None,
    output: OutputSpec = None,
    **geometry_options: Any,
) -> Explanation:
    """Relevance, robustness and the spectrum of `g = J^T G J` in one call.

    Relevance, eigenvalues and rank come from the metric `output_metric`; robustness from
    the same spectrum when `output_metric` is given, else from the robustness default (`G = I`
    on the top three outputs: one more Jacobian), so that it equals
    ``SiMECAttribution.attribute(..., score="robustness")``.

    Args:
        forward_func: the model.
        inputs: a tensor or a tuple of tensors, batch first.
        target: Captum target; with the default metric it makes the maps target-specific.
        additional_forward_args: extra arguments of `forward_func`.
        output_metric: as in `SiMECAttribution.attribute` (None: "target" with a target,
            else "euclidean").
        internal_batch_size: most (example, output row) pairs per backward pass.
        output: the tensor to explain when the model returns a ModelOutput, dict or tuple:
            a key or attribute (``"logits"``), a position, or a callable of the output.
        **geometry_options: `rtol`, `atol`, `solver`, `jacobian_method`.

    Returns:
        An `Explanation`.
    """
    check_options("relevance", geometry_options, GEOMETRY_OPTIONS)
    is_tuple = _compat.is_tuple(inputs)
    formatted = _compat.format_inputs(inputs)
    metric = resolve_output_metric(default_output_metric(output_metric, target))
    request = ScoreRequest.collect(
        locals(),
        forward_func=select_output(forward_func, output),
        inputs=formatted,
        score="relevance",
        output_metric=metric,
        options=geometry_options,
    )
    relevance, spectrum = spectrum_scores(request)
    robustness = spectrum.robustness()
    if output_metric is None:
        robust = dataclasses.replace(request, score="robustness", output_metric=None)
        robustness = spectrum_scores(robust)[0]

    def structured(flat: Tensor) -> InputsType:
        shaped = _compat.unflatten_features(flat, _compat.feature_shapes(formatted))
        return _compat.format_output(is_tuple, shaped)

    outputs = spectrum.outputs
    return Explanation(
        inputs=_compat.format_output(is_tuple, tuple(x.detach() for x in formatted)),
        relevance=structured(relevance),
        robustness=structured(robustness),
        eigenvalues=spectrum.eigenvalues,
        rank=spectrum.rank,
        null_dim=spectrum.null_dim,
        spectral_gap=spectrum.spectral_gap,
        rank_margin=spectrum.rank_margin,
        outputs=outputs,
        predicted=_decisions(outputs, spectrum.target),
        target=spectrum.target,
        output_metric=metric.name,
    )


def _decisions(outputs: Tensor, target: Tensor | None) -> Tensor:
    """The decided class per example (flat index), at the target's position if it has one."""
    flat = outputs.reshape(outputs.shape[0], -1)
    classes = num_classes(tuple(outputs.shape[1:]))
    return predicted_class(flat, flat.shape[1] if target is None else classes, target)
