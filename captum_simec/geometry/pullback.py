"""`pullback_spectrum`: the spectrum of `g = J^T G J` of a model at a batch of inputs.

Captum's argument forms in (inputs, target, additional forward arguments, a layer), one
pulled-back factor `A = C J` per example (`captum_simec.geometry.jacobian`), its
factorisation out (`PullbackSpectrum`, `captum_simec.geometry.spectrum`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from captum_simec import _compat
from captum_simec._outputs import OutputSpec, select_output
from captum_simec.geometry.jacobian import pullback_factor
from captum_simec.geometry.layer import layer_function
from captum_simec.geometry.metrics import OutputMetric, resolve_output_metric
from captum_simec.geometry.spectrum import PullbackSpectrum
from captum_simec.geometry.tolerance import noise_floor, warn_if_saturated

__all__ = ["pullback_spectrum"]


def pullback_spectrum(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    *,
    output_metric: str | OutputMetric | Tensor | Callable[[Tensor], Tensor] = "euclidean",
    target: _compat.TargetType = None,
    additional_forward_args: Any = None,
    layer: nn.Module | None = None,
    attribute_to_layer_input: bool = False,
    free: Tensor | None = None,
    rtol: float | None = None,
    atol: float = 0.0,
    solver: str = "auto",
    jacobian_method: str = "auto",
    internal_batch_size: int | None = None,
    output: OutputSpec = None,
) -> PullbackSpectrum:
    """Spectrum of the pullback metric `g(x) = J(x)^T G J(x)` for a batch of inputs.

    Args:
        forward_func: model or function, called as `forward_func(*inputs, *additional_args)`.
        inputs: a tensor or tuple of tensors, batch first, any trailing shape.
        output_metric: "euclidean" (default, the papers' `G = I`), "target", "margin",
            "topk", "fisher", an (m, m) PSD tensor, a callable of the flattened outputs, or
            an `OutputMetric`.
        target: Captum target (int, tuple, tensor, list); needed by "target" and "margin".
        additional_forward_args: extra arguments for `forward_func`, as in Captum.
        layer: if given, the metric is pulled back to this module's output (or input with
            `attribute_to_layer_input`): the map from that representation to the output.
        free: bool mask (batch, n) of coordinates allowed to move; the null space is then
            that of `J` restricted to them (used by domain constraints).
        rtol: relative rank tolerance; default `10 sqrt(p) eps(dtype)`, the error of the
            computed factor, plus a rank-0 verdict for Jacobians of pure rounding noise
            (`captum_simec.geometry.tolerance`). Passing `rtol` sets `max(rtol s_max, atol)`
            exactly.
        atol: absolute floor of the rank tolerance.
        solver: "auto", "gram" (eigh of `A A^T`, fast) or "svd".
        jacobian_method: see `captum_simec.geometry.jacobian`.
        internal_batch_size: most (example, output row) pairs per backward pass.
        output: the tensor to explain when the model returns a ModelOutput, dict or tuple:
            a key or attribute (``"logits"``), a position, or a callable of the output.

    Returns:
        A `PullbackSpectrum`.

    Warns:
        SaturationWarning: the Jacobian is zero (rank 0) at some example.
    """
    forward_func = select_output(forward_func, output)
    is_tuple = _compat.is_tuple(inputs)
    formatted = _compat.format_inputs(inputs, integers=layer is not None)
    args = _compat.format_additional_forward_args(additional_forward_args)
    metric = resolve_output_metric(output_metric)
    device = formatted[0].device
    if layer is not None:
        forward_func, formatted, args = layer_function(
            forward_func, layer, formatted, args, attribute_to_layer_input
        )
        is_tuple = False
    flat_n = sum(x[0].numel() for x in formatted)
    if free is not None and (
        free.dtype != torch.bool or free.shape != (formatted[0].shape[0], flat_n)
    ):
        raise ValueError(
            f"`free` must be a bool tensor of shape (batch, n) = "
            f"{(formatted[0].shape[0], flat_n)}, got {free.dtype} {tuple(free.shape)}."
        )
    pulled = pullback_factor(
        forward_func,
        formatted,
        metric,
        lambda shape: _compat.target_to_flat_indices(target, shape, device),
        args,
        jacobian_method,
        internal_batch_size,
    )
    floor = None
    if rtol is None:
        floor = noise_floor(pulled.outputs, pulled.cotangents, formatted, pulled.factor.dtype)
    spectrum = PullbackSpectrum.from_factor(
        pulled.factor,
        rtol,
        atol,
        solver,
        free,
        floor,
        outputs=pulled.outputs,
        input_shapes=_compat.feature_shapes(formatted),
        is_inputs_tuple=is_tuple,
        target=pulled.target,
        jacobian_method=pulled.method,
        fallback_reason=pulled.fallback_reason,
    )
    warn_if_saturated(spectrum.rank, spectrum.free)
    return spectrum
