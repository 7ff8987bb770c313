"""Spearman rank correlation between attribution maps, with average ranks for ties, in torch."""

from __future__ import annotations

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec.evaluation._common import InputsType

__all__ = ["average_ranks", "spearman"]


def average_ranks(values: Tensor) -> Tensor:
    """Ranks (1..n) of each row of `values` (batch, n), ties sharing their average rank."""
    batch, n = values.shape
    sorted_values, order = values.sort(dim=1, stable=True)
    new_run = torch.ones_like(sorted_values, dtype=torch.bool)
    new_run[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    run = new_run.cumsum(dim=1) - 1 + n * torch.arange(batch, device=values.device).unsqueeze(1)
    positions = torch.arange(1, n + 1, dtype=torch.float64, device=values.device).expand(batch, n)
    total = torch.zeros(batch * n, dtype=torch.float64, device=values.device)
    count = torch.zeros_like(total)
    total.scatter_add_(0, run.flatten(), positions.flatten())
    count.scatter_add_(0, run.flatten(), torch.ones_like(positions).flatten())
    ranked_sorted = (total / count.clamp_min(1))[run]
    return torch.empty_like(ranked_sorted).scatter_(1, order, ranked_sorted)


def spearman(first: InputsType, second: InputsType, absolute: bool = False) -> Tensor:
    """Spearman rank correlation per example between two maps (batch,), in [-1, 1].

    `rho = corr(rank(a), rank(b))` with average ranks for ties; NaN where a map is constant
    (the correlation is undefined).

    Args:
        first, second: maps of the same structure and shape, batch first.
        absolute: correlate `|a|` and `|b|` (Adebayo et al. report both).
    """
    a, b = _compat.flatten_features(first), _compat.flatten_features(second)
    if a.shape != b.shape:
        raise ValueError(
            f"`first` and `second` have {tuple(a.shape)} and {tuple(b.shape)} features per "
            "batch; pass maps of the same shape."
        )
    if absolute:
        a, b = a.abs(), b.abs()
    ra, rb = average_ranks(a.double()), average_ranks(b.double())
    ra, rb = ra - ra.mean(dim=1, keepdim=True), rb - rb.mean(dim=1, keepdim=True)
    denominator = ra.norm(dim=1) * rb.norm(dim=1)
    value = (ra * rb).sum(dim=1) / denominator
    return torch.where(denominator > 0, value, torch.nan)
