"""A warning before an expensive factor: many metric rows on a slow or large model.

The exact factor `A = C J` costs one vector-Jacobian product (about one backward pass) per
row of `C`: with the Euclidean metric on a 1000-class ImageNet model that is 1000 backward
passes and a 1000 x 150,528 factor (0.6 GB in float32) per example and per evaluation, minutes
per image on a CPU. `warn_if_costly` says so before the work starts and names the cheap
alternatives. Its text depends only on the shapes, so Python's warning filter shows it once
per place and shape (a walk, which evaluates the factor at every step, warns once).
"""

from __future__ import annotations

import warnings

import torch

__all__ = ["LARGE_ROWS", "warn_if_costly"]

LARGE_ROWS = 256
"""Metrics with more rows than this are checked (the randomised estimators use ~64-128)."""

_SECONDS = 10.0  # estimated seconds per call above which the work is worth a warning
_BYTES = 2**30  # factor size above which it is


def warn_if_costly(
    rows: int, features: int, batch: int, dtype: torch.dtype, forward_seconds: float
) -> None:
    """Warns when `rows` VJPs per example would take long or the factor would be large.

    The time estimate is `3 x rows x` the forward pass just measured (a VJP costs about two
    forward passes, replicating the batch one more).

    Args:
        rows: p, the rows of the metric per example.
        features: n, the flattened input size per example.
        batch: examples in the call.
        dtype: the factor's dtype.
        forward_seconds: wall time of one forward pass of the batch.
    """
    if rows <= LARGE_ROWS:
        return
    factor_bytes = batch * rows * features * torch.empty((), dtype=dtype).element_size()
    if 3 * rows * forward_seconds < _SECONDS and factor_bytes < _BYTES:
        return
    per_example = rows * features * torch.empty((), dtype=dtype).element_size()
    warnings.warn(
        f"This output metric has {rows} rows per example: the exact pullback factor costs "
        f"{rows} vector-Jacobian products (about {rows} backward passes) and "
        f"{per_example / 2**20:.0f} MiB per example, at every evaluation (every step of a "
        "walk). Cheaper: pass `target` with output_metric='target' or 'margin' (1 row), "
        "output_metric='topk' (k rows), or estimate with a few dozen probes: "
        "captum_simec.geometry.hutchinson_relevance (relevance with standard errors) and "
        "captum_simec.geometry.randomized_range (the leading range directions).",
        stacklevel=4,
    )
