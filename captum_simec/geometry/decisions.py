"""A model's class decision: the argmax over the output's last dimension, at one position.

A classifier returns m class scores per example and decides their argmax. A sequence model
returns (T, V) scores per example (a language model's logits): one decision per position,
the argmax over the V scores at position t. With Captum's target `(t, v)`, flat index
`t V + v`, the decision that a walk changes or reaches is the one at position t. In
general the classes are the last output dimension (`classes` = its size, `num_classes`),
and the position is that of the target: the block of `classes` flat outputs holding it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["num_classes", "predicted_class", "runner_up"]


def num_classes(output_shape: Sequence[int]) -> int:
    """Classes per decision: the size of the last dimension of one example's output.

    Args:
        output_shape: the output's shape per example (without the batch); () for a scalar.
    """
    return int(output_shape[-1]) if len(output_shape) > 0 else 1


def _block(outputs: Tensor, classes: int, position: Tensor | None) -> tuple[Tensor, Tensor]:
    """The first flat index (batch,) and the outputs (batch, classes) of each decision block.

    Raises:
        ValueError: outputs with several positions and no `position` to choose one.
    """
    batch, m = outputs.shape
    if classes >= m:
        return torch.zeros(batch, dtype=torch.long, device=outputs.device), outputs
    if position is None:
        raise ValueError(
            f"The model returns {m // classes} positions of {classes} classes per example: "
            "its class decision is the argmax over the last output dimension at one "
            "position. Pass target=(t, class), one index per output dimension, to choose "
            "position t (for to_class walks, target_class=(t, class))."
        )
    start = torch.div(position, classes, rounding_mode="floor") * classes
    columns = start.unsqueeze(1) + torch.arange(classes, device=outputs.device)
    return start, outputs.gather(1, columns)


def predicted_class(outputs: Tensor, classes: int, position: Tensor | None = None) -> Tensor:
    """The decided class as a flat output index (batch,), at the position of `position`.

    Args:
        outputs: flat outputs (batch, m).
        classes: classes per decision (`num_classes` of the output shape); the whole output
            when it is m.
        position: flat output indices (batch,) naming each example's position (its target);
            needed when `classes < m`.

    Raises:
        ValueError: `classes < m` without `position`.
    """
    start, block = _block(outputs, classes, position)
    return start + block.argmax(dim=1)


def runner_up(outputs: Tensor, target: Tensor, classes: int) -> Tensor:
    """The largest output other than `target` at the target's position, as a flat index."""
    start, block = _block(outputs.detach(), classes, target)
    others = block.clone()
    others.scatter_(1, (target - start).unsqueeze(1), float("-inf"))
    return start + others.argmax(dim=1)
