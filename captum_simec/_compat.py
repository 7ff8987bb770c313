"""The only module that touches Captum's private helpers, plus Captum-style argument handling.

Captum's public classes accept inputs as a tensor or a tuple of tensors, `target` in five
forms and `additional_forward_args` as an object or a tuple. The helpers here reproduce those
semantics for the geometry layer, with errors that name the argument and the fix.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from captum_simec._validation import check_input_tensor

__all__ = [
    "TargetType",
    "expand_additional_forward_args",
    "feature_shapes",
    "flatten_features",
    "format_additional_forward_args",
    "format_inputs",
    "format_output",
    "index_additional_forward_args",
    "is_tuple",
    "target_to_flat_indices",
    "unflatten_features",
]

TargetType = int | tuple[int, ...] | Tensor | Sequence[int] | Sequence[tuple[int, ...]] | None


@functools.cache
def _captum_common() -> ModuleType:
    """`captum._utils.common`, imported on first use.

    Importing any part of Captum runs `captum/__init__.py`, which loads all of Captum
    (`captum.robust` included, seconds on a busy machine); the geometry layer imports this
    module, and should not pay for that until it formats its first inputs.
    """
    return importlib.import_module("captum._utils.common")


def is_tuple(inputs: Any) -> bool:
    """Whether Captum treats `inputs` as a tuple of inputs."""
    return _captum_common()._is_tuple(inputs)


def format_inputs(
    inputs: Tensor | tuple[Tensor, ...], name: str = "inputs", integers: bool = False
) -> tuple[Tensor, ...]:
    """Turns a tensor or tuple of tensors into a validated tuple of float tensors.

    With `integers`, integer tensors pass too (token ids that a layer turns into floats).

    Raises:
        TypeError: a non-tensor, an integer (unless `integers`) or boolean tensor.
        ValueError: an empty tuple, an empty batch, NaN or inf values, or tensors whose batch
            sizes differ.
    """
    if not isinstance(inputs, Tensor) and not isinstance(inputs, tuple):
        raise TypeError(
            f"`{name}` must be a tensor or a tuple of tensors, got {type(inputs).__name__}; "
            "wrap several inputs in a tuple."
        )
    formatted = _captum_common()._format_tensor_into_tuples(inputs)
    if len(formatted) == 0:
        raise ValueError(f"`{name}` is an empty tuple; pass at least one tensor.")
    for i, tensor in enumerate(formatted):
        check_input_tensor(
            tensor, name if len(formatted) == 1 else f"{name}[{i}]", integers=integers
        )
    batch = formatted[0].shape[0]
    if batch == 0:
        raise ValueError(f"`{name}` has an empty batch (dim 0 is 0); pass at least one example.")
    if any(t.shape[0] != batch for t in formatted):
        sizes = [t.shape[0] for t in formatted]
        raise ValueError(
            f"The tensors in `{name}` have different batch sizes {sizes}; dim 0 is the batch "
            "and must agree across inputs."
        )
    return formatted


def format_output(is_inputs_tuple: bool, output: tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
    """Returns a tuple for tuple inputs and a tensor for tensor inputs, as Captum does."""
    return _captum_common()._format_output(is_inputs_tuple, output)


def format_additional_forward_args(args: Any) -> tuple[Any, ...] | None:
    """Wraps a single additional forward argument into a tuple (None stays None)."""
    return _captum_common()._format_additional_forward_args(args)


def expand_additional_forward_args(args: tuple[Any, ...] | None, times: int) -> tuple | None:
    """Tiles every tensor argument `times` along dim 0 (Captum's `repeat` expansion)."""
    return _captum_common()._expand_additional_forward_args(args, times)


def index_additional_forward_args(
    args: tuple[Any, ...] | None, index: Tensor, batch_size: int
) -> tuple[Any, ...]:
    """Selects rows `index` of every tensor argument with a batch dimension of `batch_size`.

    Tensors without a leading batch dimension (scalars, shared parameters) and non-tensors
    pass through unchanged, as with Captum's expansion.
    """
    if args is None:
        return ()
    return tuple(
        arg[index]
        if isinstance(arg, Tensor) and arg.dim() > 0 and arg.shape[0] == batch_size
        else arg
        for arg in args
    )


def _flat_index(position: tuple[int, ...], trailing_shape: tuple[int, ...]) -> int:
    if len(position) != len(trailing_shape):
        raise ValueError(
            f"`target` {position} selects {len(position)} output dimension(s) but each "
            f"example's output has shape {tuple(trailing_shape)}: give one index per output "
            "dimension so that the target is a single scalar output."
        )
    flat = 0
    for index, size in zip(position, trailing_shape, strict=True):
        if not -size <= index < size:
            raise ValueError(
                f"`target` index {index} is out of range for an output dimension of size "
                f"{size} (output shape per example {tuple(trailing_shape)})."
            )
        flat = flat * size + (index % size)
    return flat


def target_to_flat_indices(
    target: TargetType, output_shape: torch.Size | tuple[int, ...], device: torch.device
) -> Tensor | None:
    """Maps any Captum target form to one flat output index per example.

    Captum's semantics: an int or a tuple selects the same output for every example; a tensor
    or a list gives one int (or tuple) per example. The output of each example is flattened
    in row-major order.

    Args:
        target: None, int, tuple of ints, tensor (one element, or one per example), list of
            ints or list of tuples (one per example).
        output_shape: shape of the model output, batch first.
        device: device of the returned indices.

    Returns:
        A long tensor of shape (batch,), or None when `target` is None.
    """
    if target is None:
        return None
    batch, trailing = output_shape[0], tuple(output_shape[1:])
    if len(trailing) == 0:
        trailing = (1,)
    if isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex():
            raise TypeError("`target` must be an integer tensor; use `.long()`.")
        if target.numel() == 1:
            target = int(target.item())
        elif target.dim() == 1 and target.numel() == batch:
            target = [int(t) for t in target.tolist()]
        else:
            raise ValueError(
                f"`target` tensor of shape {tuple(target.shape)} does not fit a batch of "
                f"{batch}: pass one element or a 1-D tensor with one index per example."
            )
    if isinstance(target, bool):
        raise TypeError("`target` must be an int, tuple, tensor or list, not a bool.")
    if isinstance(target, int):
        flat = [_flat_index((target,), trailing)] * batch
    elif isinstance(target, tuple):
        flat = [_flat_index(tuple(target), trailing)] * batch
    elif isinstance(target, list):
        if len(target) != batch:
            raise ValueError(
                f"`target` list has {len(target)} elements for a batch of {batch}: give one "
                "target per example (or a single int/tuple for all)."
            )
        flat = [_flat_index(t if isinstance(t, tuple) else (int(t),), trailing) for t in target]
    else:
        raise TypeError(
            f"`target` of type {type(target).__name__} is not a Captum target form: use an "
            "int, a tuple, a tensor, a list of ints or a list of tuples."
        )
    return torch.tensor(flat, dtype=torch.long, device=device)


def flatten_features(values: Tensor | tuple[Tensor, ...]) -> Tensor:
    """A tensor or tuple of tensors (batch first) as a new (batch, n) tensor, inputs in order.

    A 1-D tensor counts as one feature per example; the result never shares memory with
    `values`.
    """
    parts = values if isinstance(values, tuple) else (values,)
    return torch.cat([part.reshape(part.shape[0], math.prod(part.shape[1:])) for part in parts], 1)


def unflatten_features(flat: Tensor, shapes: Sequence[torch.Size]) -> tuple[Tensor, ...]:
    """Splits (..., n) into one tensor per per-example shape in `shapes`, leading dims kept."""
    sizes = [math.prod(shape) for shape in shapes]
    lead = flat.shape[:-1]
    return tuple(
        part.reshape(*lead, *shape)
        for part, shape in zip(flat.split(sizes, dim=-1), shapes, strict=True)
    )


def feature_shapes(inputs: tuple[Tensor, ...]) -> tuple[torch.Size, ...]:
    """The per-example shape of each input (batch first)."""
    return tuple(x.shape[1:] for x in inputs)
