"""The invariance curve: does the prediction survive noise on the features a map calls robust?

For k = 0..n, the k features that a robustness map ranks highest (most robust first) are
replaced by uniform noise inside the domain box, and the curve records the share of noise
draws for which the predicted class stays what it was. Its area (trapezoid rule over the
fraction of features replaced, in [0, 1]) scores the map: higher is better. The same draw is
used at every k (common random numbers), so curves of two maps differ only by their order.

For a relevance map (high = important), rank by `-|a|`: the least relevant features are the
ones it calls robust (`robust_first=False` in `invariance_curve` does this).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec.evaluation._common import InputsType, forward_in_chunks
from captum_simec.evaluation.perturbation import feature_order, flat_pair, rank_positions
from captum_simec.explore.constraints import Box

__all__ = ["InvarianceCurve", "invariance_curve"]


@dataclass
class InvarianceCurve:
    """Share of unchanged predictions as features are replaced by noise, per example.

    Attributes:
        fractions: fraction of features replaced at each point (steps + 1,), from 0 to 1.
        shares: share of the noise draws whose prediction is unchanged (batch, steps + 1).
        draws: noise draws per example.
    """

    fractions: Tensor
    shares: Tensor
    draws: int

    @property
    def auc(self) -> Tensor:
        """Area under the curve per example (batch,), trapezoid rule over [0, 1]."""
        return torch.trapezoid(self.shares, self.fractions, dim=1)


def invariance_curve(
    forward_func: Callable[..., Tensor],
    inputs: InputsType,
    robustness: InputsType,
    *,
    domain: tuple[Any, Any],
    robust_first: bool = True,
    steps: int = 20,
    draws: int = 20,
    additional_forward_args: Any = None,
    seed: int = 0,
    batch_size: int = 2048,
) -> InvarianceCurve:
    """Invariance curve of a robustness map (module docstring).

    Args:
        forward_func: the classifier (argmax of the flattened output is the prediction).
        inputs: a tensor or tuple of tensors, batch first.
        robustness: a map in the structure of `inputs`.
        domain: `(lo, hi)` box of valid values (numbers, or tensors broadcastable to one
            example's input shape); the noise is uniform in it.
        robust_first: rank by the map's value, largest first (a robustness map); False ranks
            by `-|map|` (a relevance map: least relevant first).
        steps: points of the curve minus one; at step j, `round(j n / steps)` features.
        draws: noise draws per example.
        additional_forward_args: extra arguments of `forward_func`.
        seed: seeds the noise and the tie-breaking order.
        batch_size: most noisy inputs per forward pass.

    Returns:
        An `InvarianceCurve`.
    """
    for name, value in (("steps", steps), ("draws", draws)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
    if not (isinstance(domain, tuple) and len(domain) == 2):
        raise TypeError("`domain` must be a (lo, hi) pair: the box the noise is drawn from.")
    parts = _compat.format_inputs(inputs)
    args = _compat.format_additional_forward_args(additional_forward_args) or ()
    x, flat_map = flat_pair(parts, robustness)
    box = Box(*domain).bind(_compat.feature_shapes(parts), x.dtype, x.device)
    lo, hi = box.lower, box.upper
    generator = torch.Generator().manual_seed(seed)
    ranking = flat_map if robust_first else -flat_map.abs()
    position = rank_positions(feature_order(ranking, generator))
    batch, n = x.shape
    counts = [round(j * n / steps) for j in range(steps + 1)]
    noise = lo + (hi - lo) * torch.rand(batch, draws, n, generator=generator, dtype=x.dtype).to(x)
    replaced = torch.stack([position < c for c in counts], dim=1)  # (batch, points, n)
    points = torch.where(replaced.unsqueeze(2), noise.unsqueeze(1), x[:, None, None, :])
    example = torch.arange(batch, device=x.device).repeat_interleave(len(counts) * draws)
    shapes = _compat.feature_shapes(parts)
    with torch.no_grad():
        clean = forward_func(*parts, *args).reshape(batch, -1).argmax(dim=1)
    outputs = forward_in_chunks(
        forward_func, points.reshape(-1, n), example, shapes, args, batch, batch_size
    )
    kept = outputs.reshape(outputs.shape[0], -1).argmax(dim=1) == clean[example]
    return InvarianceCurve(
        fractions=(torch.tensor(counts, dtype=torch.float64) / n).to(x.device),
        shares=kept.reshape(batch, len(counts), draws).double().mean(dim=2),
        draws=draws,
    )
