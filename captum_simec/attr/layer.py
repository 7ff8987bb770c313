"""`LayerSiMECAttribution`: SiMEC scores of a hidden layer's neurons (metric pulled back there)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from captum.attr import GradientAttribution, LayerAttribution
from captum.log import log_usage
from torch import Tensor, nn

from captum_simec import _compat
from captum_simec.attr._base import (
    GEOMETRIC_SCORES,
    BaselinesType,
    InputsType,
    ScoreRequest,
    SiMECMethod,
    check_request,
    times_distance,
)
from captum_simec.attr._spectrum_scores import spectrum_scores
from captum_simec.geometry import layer_representation
from captum_simec.geometry.metrics import MetricSpec

__all__ = ["LayerSiMECAttribution"]


class LayerSiMECAttribution(SiMECMethod, LayerAttribution, GradientAttribution):
    r"""SiMEC relevance and robustness of a layer's neurons.

    The model factors through the layer as `f(x) = F(h(x))`; the output metric `G` is pulled
    back to the layer's representation `h` by `J_F = dF/dh`: `g_h = J_F^T G J_F = A^T A`.
    Per neuron `j`: relevance `rho_j = ||A e_j||` and robustness
    `kappa_j = 1 - sum_{k<=r} v_kj^2` (see `SiMECAttribution` for the meaning and for which
    metrics are target-specific; the default metric is ``"target"`` with a `target`, else
    ``"euclidean"``, and for robustness `G = I` on the top three outputs). The result has the
    layer's shape, so `LayerAttribution.interpolate` upsamples a convolutional map to the
    input's size.

    With ``multiply_by_inputs=True`` the scores are multiplied by `|h(x) - h(baseline)|`, the
    layer's activation difference, as LayerIntegratedGradients' global attribution (by
    `h(x) - h(baseline)` with ``signed=True``). The walk and path scores (flip,
    class_extent, boundary) move inputs, not activations, and are not offered here.
    """

    _DISTANCE = "|h(x) - h(baseline)|"
    _CONSTRUCTOR = "LayerSiMECAttribution(model, layer, multiply_by_inputs=True)"

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: nn.Module,
        device_ids: list[int] | None = None,
        multiply_by_inputs: bool = False,
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
        **options: Any,
    ) -> Tensor:
        """Per-neuron SiMEC scores of the layer, in the layer's shape (batch, *layer_shape).

        Args:
            inputs: a tensor or a tuple of tensors, batch first.
            target: Captum target (int, tuple, tensor, list of ints or of tuples).
            additional_forward_args: extra arguments of `forward_func`.
            score: ``"relevance"`` or ``"robustness"``.
            output_metric: None (``"target"`` with a target, else ``"euclidean"``) or any
                metric `SiMECAttribution` accepts.
            baselines: input-space reference for ``multiply_by_inputs`` (None = 0, number,
                tensor, tuple); only allowed when the instance multiplies by inputs.
            signed: relevance times the sign of `dF_t/dh_j`.
            internal_batch_size: most (example, output row) pairs per backward pass.
            attribute_to_layer_input: score the layer's input instead of its output.
            return_convergence_delta: must be False (there is no delta); True raises.
            **options: `rtol`, `atol`, `solver`, `jacobian_method` (see `pullback_spectrum`).

        Returns:
            A tensor of the layer's output (or input) shape.
        """
        check_request(score, GEOMETRIC_SCORES, return_convergence_delta, options)
        formatted = _compat.format_inputs(inputs)
        references = self._baselines(baselines, formatted, score)
        request = ScoreRequest.collect(
            locals(), forward_func=self.forward_func, inputs=formatted, options=options
        )
        flat, spectrum = spectrum_scores(request, self.layer, attribute_to_layer_input)
        if references is not None:
            args = _compat.format_additional_forward_args(additional_forward_args)

            def represent(points: tuple[Tensor, ...]) -> Tensor:
                return layer_representation(
                    self.forward_func, self.layer, points, args, attribute_to_layer_input
                )

            distances = represent(formatted) - represent(references)
            flat = times_distance(flat, distances.reshape(flat.shape), signed)
        return spectrum.unflatten(flat)
