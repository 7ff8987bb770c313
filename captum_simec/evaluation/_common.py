"""What the metric families share: input types, targets, target scores, domains, finite means."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from captum_simec import _compat

__all__ = [
    "OUTPUT_TRANSFORMS",
    "AttributionFunction",
    "InputsType",
    "check_domain",
    "check_output_transform",
    "curve_scores",
    "forward_in_chunks",
    "mean_finite",
    "target_indices",
    "target_scores",
]

OUTPUT_TRANSFORMS = ("softmax", "identity")

InputsType = Tensor | tuple[Tensor, ...]
#: `fn(model, inputs, target) -> map`, a map in the structure of `inputs`.
AttributionFunction = Callable[[nn.Module, InputsType, Any], InputsType]


def target_indices(target: _compat.TargetType, outputs: Tensor) -> Tensor:
    """Flat target index per example (batch,): Captum's `target`, or the predicted class."""
    flat = _compat.target_to_flat_indices(target, outputs.shape, outputs.device)
    return outputs.reshape(outputs.shape[0], -1).argmax(dim=1) if flat is None else flat


def check_output_transform(transform: str | Callable[[Tensor], Tensor]) -> None:
    """Raises ValueError for a transform that is neither a known name nor a callable."""
    if not callable(transform) and transform not in OUTPUT_TRANSFORMS:
        raise ValueError(
            f"output_transform={transform!r}; choose one of {OUTPUT_TRANSFORMS} or pass a callable."
        )


def target_scores(outputs: Tensor, target: Tensor, transform: str | Callable) -> Tensor:
    """The (transformed) score of each example's target output (batch,).

    ``"softmax"`` gives probabilities (right for logits and log-softmax heads), ``"identity"``
    the raw output; a callable is applied to the flattened outputs (batch, m).
    """
    flat = outputs.reshape(outputs.shape[0], -1)
    if callable(transform):
        flat = transform(flat)
    elif transform == "softmax":
        flat = torch.softmax(flat, dim=1)
    return flat.gather(1, target.unsqueeze(1)).squeeze(1)


def check_domain(domain: tuple[Any, Any] | None) -> None:
    """Raises ValueError for a `(lo, hi)` domain with lo > hi somewhere."""
    if domain is None:
        return
    if not (isinstance(domain, tuple) and len(domain) == 2):
        raise TypeError(f"`domain` must be None or a (lo, hi) pair, got {type(domain).__name__}.")
    lo, hi = (torch.as_tensor(bound, dtype=torch.float64) for bound in domain)
    if not bool((lo <= hi).all()):
        raise ValueError(f"`domain` {domain} has lo > hi; pass (lo, hi) with lo <= hi.")


def forward_in_chunks(
    forward_func: Callable[..., Tensor],
    points: Tensor,
    example: Tensor,
    shapes: Sequence[torch.Size],
    args: tuple[Any, ...],
    batch: int,
    batch_size: int,
) -> Tensor:
    """Outputs at flat `points` (k, n) whose example index is `example` (k,), in chunks.

    Additional forward arguments are indexed by `example`, so each point sees its own.
    """
    outputs = []
    with torch.no_grad():
        for first in range(0, points.shape[0], batch_size):
            index = example[first : first + batch_size]
            chunk = _compat.unflatten_features(points[first : first + batch_size], shapes)
            outputs.append(
                forward_func(*chunk, *_compat.index_additional_forward_args(args, index, batch))
            )
    return torch.cat(outputs)


def curve_scores(
    forward_func: Callable[..., Tensor],
    parts: tuple[Tensor, ...],
    args: tuple[Any, ...],
    target: _compat.TargetType,
    points: Tensor,
    transform: str | Callable,
    batch_size: int,
) -> Tensor:
    """The target's (transformed) score at flat `points` (batch, k, n) of each example.

    The target is resolved at the clean inputs `parts` (None: the predicted class).

    Returns:
        Scores (batch, k), float64.
    """
    batch, count, n = points.shape
    with torch.no_grad():
        flat_target = target_indices(target, forward_func(*parts, *args))
    example = torch.arange(batch, device=points.device).repeat_interleave(count)
    shapes = _compat.feature_shapes(parts)
    outputs = forward_in_chunks(
        forward_func, points.reshape(-1, n), example, shapes, args, batch, batch_size
    )
    return target_scores(outputs, flat_target[example], transform).reshape(batch, count).double()


def mean_finite(values: Tensor | Sequence[float]) -> float:
    """Mean of the finite entries (NaN if none)."""
    values = torch.as_tensor(values, dtype=torch.float64)
    finite = values[torch.isfinite(values)]
    return float(finite.mean()) if finite.numel() else float("nan")
