"""Argument checks shared by every public entry point, with one rule for the exception type.

A value of the wrong type raises `TypeError`; a value of the right type that is out of range
or otherwise wrong raises `ValueError`. Every message names the argument (in backticks) and
says how to fix it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "check_bool",
    "check_callable",
    "check_choice",
    "check_input_tensor",
    "check_int",
    "check_labels",
    "check_non_negative",
    "check_positive",
]


def check_bool(value: Any, name: str) -> bool:
    """`value` itself when it is a bool.

    Raises:
        TypeError: anything but True or False.
    """
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be True or False, got {value!r}.")
    return value


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    """`value` when it is an int (not a bool) of at least `minimum`.

    Raises:
        TypeError: not an int.
        ValueError: an int below `minimum`.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be an int, got {type(value).__name__} {value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value}.")
    return value


def check_positive(value: Any, name: str, hint: str = "") -> float:
    """`value` as a float when it is a finite number > 0.

    Args:
        value: the argument.
        name: its name, for the message.
        hint: an optional sentence on how to choose it, appended to the message.

    Raises:
        TypeError: not an int or float (bools are refused).
        ValueError: zero, negative, NaN or infinite.
    """
    number = _check_real(value, name, "a positive number", hint)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(
            f"`{name}` must be a positive finite number, got {value!r}.{_suffix(hint)}"
        )
    return number


def check_non_negative(value: Any, name: str, hint: str = "") -> float:
    """`value` as a float when it is a finite number >= 0 (arguments as in `check_positive`).

    Raises:
        TypeError: not an int or float (bools are refused).
        ValueError: negative, NaN or infinite.
    """
    number = _check_real(value, name, "a number >= 0", hint)
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.{_suffix(hint)}")
    return number


def _suffix(hint: str) -> str:
    return f" {hint}" if hint else ""


def _check_real(value: Any, name: str, what: str, hint: str) -> float:
    """`value` as a float when it is an int or a float (not a bool); else TypeError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"`{name}` must be {what}, got {type(value).__name__} {value!r}.{_suffix(hint)}"
        )
    return float(value)


def check_choice(value: Any, name: str, choices: Sequence[str], ignore_case: bool = False) -> str:
    """`value` when it is one of `choices`; with `ignore_case`, the choice it spells.

    Raises:
        ValueError: any other value (the message lists the choices).
    """
    if isinstance(value, str):
        for choice in choices:
            if value == choice or (ignore_case and value.lower() == choice.lower()):
                return choice
    case = " (in any case)" if ignore_case else ""
    raise ValueError(f"`{name}` must be one of {tuple(choices)}{case}, got {value!r}.")


def check_callable(value: Any, name: str) -> Any:
    """`value` when it can be called (a module or a function).

    Raises:
        TypeError: anything that cannot be called.
    """
    if not callable(value):
        raise TypeError(
            f"`{name}` must be a torch.nn.Module or another callable, got {type(value).__name__}."
        )
    return value


def check_input_tensor(
    value: Any, name: str = "inputs", min_dim: int = 1, integers: bool = False
) -> Tensor:
    """`value` when it is one finite floating-point tensor whose dim 0 is the batch.

    Args:
        value: the argument.
        name: its name, for the messages.
        min_dim: the fewest dimensions it may have (2 when features need a dimension of
            their own).
        integers: accept integer tensors too (token ids that a layer turns into floats).

    Raises:
        TypeError: not a tensor (a tuple of several inputs included), or not floating point
            (nor integer, with `integers`).
        ValueError: fewer than `min_dim` dimensions, or NaN or inf values.
    """
    if not isinstance(value, Tensor):
        raise TypeError(f"`{name}` must be a tensor, got {type(value).__name__}.")
    integer = not (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool)
    if not value.is_floating_point() and not (integers and integer):
        raise TypeError(
            f"`{name}` has dtype {value.dtype}; it must hold floating point values. Values "
            "that are measurements (e.g. uint8 pixels): convert them with `.float()` (or "
            "`.double()`). Indices such as token ids: `.float()` does not make them "
            "differentiable (an embedding lookup casts them back, and every gradient is "
            "zero); attribute to the embedding layer, LayerSiMECAttribution(model, "
            "embedding), or walk in embedding space (captum_simec.text)."
        )
    if value.dim() < min_dim:
        features = " and features a dimension of their own (x[:, None])" if min_dim > 1 else ""
        raise ValueError(
            f"`{name}` has shape {tuple(value.shape)}: dim 0 is the batch, so a single example "
            f"needs a batch dimension (x[None]){features}."
        )
    # the sum is finite unless some element is not (or it overflows): one cheap pass
    if (
        value.is_floating_point()
        and not torch.isfinite(value.sum())
        and not torch.isfinite(value).all()
    ):
        raise ValueError(f"`{name}` contains NaN or inf values; clean or drop those examples.")
    return value


def check_labels(
    labels: Tensor | Sequence[int] | None,
    batch: int,
    num_classes: int | None = None,
    name: str = "labels",
) -> Tensor | None:
    """Integer class labels, one per example, as a long tensor (None stays None).

    Args:
        labels: a (batch,) tensor or a sequence of ints, or None.
        batch: the number of examples.
        num_classes: when given, every label must lie in [0, num_classes).
        name: the argument's name, for the messages.

    Raises:
        TypeError: labels that are not integers (floats, bools, complex, other objects).
        ValueError: a shape other than (batch,), or a label out of range.
    """
    if labels is None:
        return None
    if not isinstance(labels, Tensor):
        try:
            labels = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(
                f"`{name}` must be a ({batch},) tensor or a sequence of class indices: {error}"
            ) from error
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(
            f"`{name}` must hold integer class indices, got dtype {labels.dtype}; convert them "
            "with `.long()`."
        )
    if tuple(labels.shape) != (batch,):
        raise ValueError(
            f"`{name}` has shape {tuple(labels.shape)} but there are {batch} examples: give one "
            "class index per example."
        )
    labels = labels.long()
    if num_classes is not None and bool(((labels < 0) | (labels >= num_classes)).any()):
        raise ValueError(
            f"`{name}` must lie in [0, {num_classes}) for a model with {num_classes} outputs, "
            f"got values in [{int(labels.min())}, {int(labels.max())}]."
        )
    return labels
