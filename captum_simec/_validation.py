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
    "check_choice",
    "check_int",
    "check_labels",
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
    suffix = f" {hint}" if hint else ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"`{name}` must be a positive number, got {type(value).__name__} {value!r}.{suffix}"
        )
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}.{suffix}")
    return float(value)


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """`value` when it is one of `choices`.

    Raises:
        ValueError: any other value (the message lists the choices).
    """
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}, got {value!r}.")
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
