"""Pulling the metric back to a hidden layer: the map from a module's output to the output.

For a layer with representation `h(x)`, the model factors as `f(x) = F(h(x))`; the metric on
the representation space is `J_F^T G J_F`. `layer_function` returns `h` and a function of
`h` that runs the model with the layer's output (or input) replaced by its argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from captum_simec.geometry._modules import model_outputs

__all__ = ["layer_function", "layer_representation"]


def _layer_tensor(value: Any, layer: nn.Module, side: str) -> Tensor:
    if isinstance(value, tuple) and len(value) == 1:
        value = value[0]
    if not isinstance(value, Tensor):
        raise ValueError(
            f"The {side} of layer {type(layer).__name__} is a {type(value).__name__}, not a "
            "single tensor; choose a submodule whose output is one tensor (e.g. the Linear "
            "after an LSTM)."
        )
    return value


def layer_representation(
    forward_func: Callable[..., Any],
    layer: nn.Module,
    inputs: tuple[Tensor, ...],
    additional_forward_args: tuple[Any, ...] | None,
    attribute_to_layer_input: bool = False,
) -> Tensor:
    """The layer's output (or input) on `inputs`, detached (batch, *layer_shape).

    Raises:
        ValueError: the layer is not called by `forward_func`, is called more than once, or
            its output is not a single tensor with the batch as dim 0.
    """
    if not isinstance(layer, nn.Module):
        raise TypeError(f"`layer` must be an nn.Module, got {type(layer).__name__}.")
    captured: list[Tensor] = []
    side = "input" if attribute_to_layer_input else "output"

    def capture_output(module: nn.Module, args: Any, output: Any) -> None:
        captured.append(_layer_tensor(output, module, side))

    def capture_input(module: nn.Module, args: Any) -> None:
        captured.append(_layer_tensor(args[0] if args else None, module, side))

    handle = (
        layer.register_forward_pre_hook(capture_input)
        if attribute_to_layer_input
        else layer.register_forward_hook(capture_output)
    )
    try:
        model_outputs(forward_func, inputs, additional_forward_args)  # as the Jacobians see h
    finally:
        handle.remove()
    if len(captured) != 1:
        raise ValueError(
            f"`layer` {type(layer).__name__} ran {len(captured)} times in one forward pass; "
            "it must run exactly once (pass a module that belongs to the model and is not "
            "reused)."
        )
    value = captured[0]
    batch = inputs[0].shape[0]
    if value.dim() == 0 or value.shape[0] != batch:
        raise ValueError(
            f"The {side} of `layer` has shape {tuple(value.shape)}, without the batch of "
            f"{batch} as dim 0; choose a layer that keeps the batch dimension."
        )
    return value.detach()


def layer_function(
    forward_func: Callable[..., Any],
    layer: nn.Module,
    inputs: tuple[Tensor, ...],
    additional_forward_args: tuple[Any, ...] | None,
    attribute_to_layer_input: bool = False,
) -> tuple[Callable[..., Any], tuple[Tensor], tuple[Any, ...]]:
    """Rewrites `f(x)` as `F(h, x)` with the layer's output (or input) `h` substituted.

    Returns:
        `(F, (h,), (*inputs, *additional_forward_args))`: call `F(h, *rest)`. The original
        inputs travel as additional arguments, so batching and chunking index them with `h`.
    """
    representation = layer_representation(
        forward_func, layer, inputs, additional_forward_args, attribute_to_layer_input
    )
    num_inputs = len(inputs)

    def through_layer(hidden: Tensor, *rest: Any) -> Any:
        def replace_output(module: nn.Module, args: Any, output: Any) -> Tensor:
            return hidden

        def replace_input(module: nn.Module, args: Any) -> tuple[Any, ...]:
            return (hidden, *args[1:])

        handle = (
            layer.register_forward_pre_hook(replace_input)
            if attribute_to_layer_input
            else layer.register_forward_hook(replace_output)
        )
        try:
            return forward_func(*rest[:num_inputs], *rest[num_inputs:])
        finally:
            handle.remove()

    return through_layer, (representation,), (*inputs, *(additional_forward_args or ()))
