"""`LayerSiMECAttribution`: SiMEC scores of a hidden layer's neurons (metric pulled back there)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from captum.attr import GradientAttribution, LayerAttribution
from captum.log import log_usage
from torch import Tensor, nn

from captum_simec import _compat
from captum_simec._outputs import OutputSpec, select_output
from captum_simec.attr._base import (
    SCORES,
    BaselinesType,
    InputsType,
    ScoreRequest,
    SiMECMethod,
    check_request,
    position_mask,
    times_distance,
)
from captum_simec.attr._scores import score_maps
from captum_simec.geometry import layer_function, layer_representation
from captum_simec.geometry.metrics import MetricSpec

__all__ = ["LayerSiMECAttribution"]


class LayerSiMECAttribution(SiMECMethod, LayerAttribution, GradientAttribution):
    r"""SiMEC scores of a layer's neurons: the metric pulled back to the layer.

    The model factors through the layer as `f(x) = F(h(x))`; the output metric `G` is pulled
    back to the layer's representation `h` by `J_F = dF/dh`: `g_h = J_F^T G J_F = A^T A`.
    Every score of `SiMECAttribution` is offered, with `h` in the role of the input:
    relevance `rho_j = ||A e_j||`, robustness `kappa_j = 1 - sum_{k<=r} v_kj^2`, and the walk
    and path scores (``flip``, ``class_extent``, ``boundary``), whose SiMExp / SiMEC walks
    move `h` with the inputs held fixed (see `SiMECAttribution` for the meaning and for which
    metrics are target-specific; the default metric is ``"target"`` with a `target`, else
    ``"euclidean"``, and for robustness `G = I` on the top three outputs; ``domain`` is then
    a box of the layer's values). The result has the layer's shape, so
    `LayerAttribution.interpolate` upsamples a convolutional map to the input's size.

    Token ids. As with Captum's `LayerIntegratedGradients`, the inputs may be integer token
    ids when `layer` is the embedding (``model.get_input_embeddings()`` for Hugging Face
    models): the maps are then (batch, T, H) over the embedding coordinates, `attention_mask`
    holds the padded positions fixed (they score exactly 0), and
    `captum_simec.text.token_scores` sums them up per token.

    With ``multiply_by_inputs=True`` the scores are multiplied by `|h(x) - h(baseline)|`, the
    layer's activation difference, as LayerIntegratedGradients' global attribution (by
    `h(x) - h(baseline)` with ``signed=True``).
    """

    _DISTANCE = "|h(x) - h(baseline)|"
    _CONSTRUCTOR = "LayerSiMECAttribution(model, layer, multiply_by_inputs=True)"

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: nn.Module,
        device_ids: list[int] | None = None,
        multiply_by_inputs: bool = False,
        output: OutputSpec = None,
    ) -> None:
        """
        Args:
            forward_func: the model or a function of the inputs returning a tensor.
            layer: a module called exactly once per forward pass, with one tensor as output
                (or input, with ``attribute_to_layer_input=True``).
            device_ids: Captum's DataParallel device list; must be None (the layer's
                representation is substituted through hooks on one device).
            multiply_by_inputs: multiply by `|h(x) - h(baseline)|` (by `h(x) - h(baseline)`
                with ``signed=True``).
            output: the tensor to explain when the model returns a ModelOutput, dict or
                tuple: a key or attribute (``output="logits"``), a position, or a callable
                of the output.

        Raises:
            ValueError: `layer` is not an nn.Module, or a DataParallel setup is requested.
        """
        if not isinstance(layer, nn.Module):
            raise ValueError(f"`layer` must be an nn.Module of the model, got {type(layer)}.")
        if device_ids is not None or isinstance(forward_func, nn.DataParallel):
            raise ValueError(
                "LayerSiMECAttribution does not support DataParallel (`device_ids`): pass the "
                "underlying module (model.module) on one device and device_ids=None."
            )
        forward_func = select_output(forward_func, output)
        LayerAttribution.__init__(self, forward_func, layer, device_ids)
        GradientAttribution.__init__(self, forward_func)
        self._multiply_by_inputs = bool(multiply_by_inputs)

    @log_usage()
    def attribute(
        self,
        inputs: InputsType,
        target: _compat.TargetType = None,
        additional_forward_args: Any = None,
        score: str = "relevance",
        output_metric: MetricSpec | None = None,
        baselines: BaselinesType = None,
        signed: bool = False,
        internal_batch_size: int | None = None,
        attribute_to_layer_input: bool = False,
        return_convergence_delta: bool = False,
        attention_mask: Tensor | None = None,
        **options: Any,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Per-neuron SiMEC scores of the layer, in the layer's shape (batch, *layer_shape).

        Args:
            inputs: a tensor or a tuple of tensors, batch first; integer token ids when
                `layer` turns them into vectors (an embedding).
            target: Captum target (int, tuple, tensor, list of ints or of tuples); for
                (batch, T, V) sequence outputs `(t, v)`, whose class decision (flip) is the
                argmax at position t.
            additional_forward_args: extra arguments of `forward_func` (e.g. the attention
                mask of a Hugging Face model), as in Captum.
            score: ``"relevance"``, ``"robustness"``, ``"flip"``, ``"class_extent"`` or
                ``"boundary"`` (see `SiMECAttribution`).
            output_metric: None (``"target"`` with a target, else ``"euclidean"``) or any
                metric `SiMECAttribution` accepts.
            baselines: input-space reference for ``multiply_by_inputs`` (None = 0, number,
                tensor, tuple); only allowed when the instance multiplies by inputs.
            signed: relevance times the sign of `dF_t/dh_j`; flip as `h_flip - h`.
            internal_batch_size: most (example, output row) pairs per backward pass.
            attribute_to_layer_input: score the layer's input instead of its output.
            return_convergence_delta: with ``score="boundary"``, also return the delta
                `sum_j a_j - (F_t(h) - F_t(h_end))` per example; other scores raise.
            attention_mask: for a (batch, T, ...) layer such as an embedding, (batch, T) with
                1 for a token and 0 for padding (Hugging Face's mask): padded positions are
                held fixed by the walks and score exactly 0. The model still needs the mask
                in `additional_forward_args`.
            **options: as for `SiMECAttribution` (geometry options, the relevance
                estimator's, the options of `simexp` / `simec` / `boundary_path`), with `h` in
                the role of the input.

        Returns:
            A tensor of the layer's output (or input) shape; with
            ``return_convergence_delta``, also the delta (batch,).
        """
        check_request(score, SCORES, return_convergence_delta, options)
        formatted = _compat.format_inputs(inputs, integers=True)
        references = self._baselines(baselines, formatted, score)
        args = _compat.format_additional_forward_args(additional_forward_args)
        through, hidden, rest = layer_function(
            self.forward_func, self.layer, formatted, args, attribute_to_layer_input
        )
        request = ScoreRequest.collect(
            locals(),
            forward_func=through,
            inputs=hidden,
            additional_forward_args=rest,
            free=position_mask(attention_mask, hidden),
            options=options,
        )
        flat, delta = score_maps(request)
        if references is not None:
            baseline_hidden = layer_representation(
                self.forward_func, self.layer, references, args, attribute_to_layer_input
            )
            flat = times_distance(flat, (hidden[0] - baseline_hidden).reshape(flat.shape), signed)
        attributions = flat.reshape(hidden[0].shape)
        return (attributions, delta) if return_convergence_delta else attributions
