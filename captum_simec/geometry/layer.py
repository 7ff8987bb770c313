"""Pulling the metric back to a hidden layer: the map from a module's output to the output.

For a layer with representation `h(x)`, the model factors as `f(x) = F(h(x))`; the metric on
the representation space is `J_F^T G J_F`. `layer_function` returns `h` and a function of
`h` that runs the model with the layer's output (or input) replaced by its argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from captum_simec.geometry._modules import model_outputs

__all__ = ["ThroughLayer", "layer_function", "layer_representation"]


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


def _hook(
    layer: nn.Module, on_input: bool, input_hook: Callable, output_hook: Callable
) -> torch.utils.hooks.RemovableHandle:
    """`input_hook` as the layer's forward pre-hook, or `output_hook` as its forward hook."""
    if on_input:
        return layer.register_forward_pre_hook(input_hook)
    return layer.register_forward_hook(output_hook)


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

    handle = _hook(layer, attribute_to_layer_input, capture_input, capture_output)
    try:
        model_outputs(forward_func, inputs, additional_forward_args)  # as the Jacobians see h
    except RuntimeError as error:
        integers = [str(x.dtype) for x in inputs if not x.is_floating_point()]
        if not integers:
            raise
        raise TypeError(
            f"`inputs` hold integers ({', '.join(integers)}) and forward_func failed on them "
            f"({error}). Integer inputs are token ids for a model whose `layer` turns them "
            "into vectors (its embedding); pass floating-point inputs otherwise."
        ) from error
    finally:
        handle.remove()
    if len(captured) != 1:
        raise ValueError(
            f"`layer` {type(layer).__name__} ran {len(captured)} times in one forward pass; "
            "it must run exactly once (pass a module that belongs to the model and is not "
            "reused)."
        )
    value = captured[0]
    if not value.is_floating_point():
        raise TypeError(
            f"The {side} of `layer` {type(layer).__name__} has dtype {value.dtype}; the "
            "metric is pulled back to a floating-point representation: choose the layer "
            "that turns indices into vectors (the embedding) or one after it."
        )
    batch = inputs[0].shape[0]
    if value.dim() == 0 or value.shape[0] != batch:
        raise ValueError(
            f"The {side} of `layer` has shape {tuple(value.shape)}, without the batch of "
            f"{batch} as dim 0; choose a layer that keeps the batch dimension."
        )
    return value.detach()


class ThroughLayer:
    """`F(h, *inputs, *args)`: the model run on its inputs with the layer's output (or input)
    replaced by `h`, so that `F(h(x), x) = f(x)` and `dF/dh` is the map from the layer on.

    An adapter: the model stays reachable as `.forward_func` (eval-mode checks, the Jacobian
    path's cache).
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: nn.Module,
        num_inputs: int,
        attribute_to_layer_input: bool = False,
    ) -> None:
        self.forward_func = forward_func
        self.layer = layer
        self.num_inputs = num_inputs
        self.attribute_to_layer_input = attribute_to_layer_input

    def __call__(self, hidden: Tensor, *rest: Any) -> Any:
        def replace_output(module: nn.Module, args: Any, output: Any) -> Tensor:
            return hidden

        def replace_input(module: nn.Module, args: Any) -> tuple[Any, ...]:
            return (hidden, *args[1:])

        handle = _hook(self.layer, self.attribute_to_layer_input, replace_input, replace_output)
        try:
            return self.forward_func(*rest[: self.num_inputs], *rest[self.num_inputs :])
        finally:
            handle.remove()


def layer_function(
    forward_func: Callable[..., Any],
    layer: nn.Module,
    inputs: tuple[Tensor, ...],
    additional_forward_args: tuple[Any, ...] | None,
    attribute_to_layer_input: bool = False,
) -> tuple[ThroughLayer, tuple[Tensor], tuple[Any, ...]]:
    """Rewrites `f(x)` as `F(h, x)` with the layer's output (or input) `h` substituted.

    The inputs may be integer token ids when the layer turns them into floats (an
    embedding): `h` is then the embedding and `F` the model from the embeddings on.

    Returns:
        `(F, (h,), (*inputs, *additional_forward_args))`: call `F(h, *rest)`. The original
        inputs travel as additional arguments, so batching and chunking index them with `h`.
    """
    representation = layer_representation(
        forward_func, layer, inputs, additional_forward_args, attribute_to_layer_input
    )
    through = ThroughLayer(forward_func, layer, len(inputs), attribute_to_layer_input)
    return through, (representation,), (*inputs, *(additional_forward_args or ()))
