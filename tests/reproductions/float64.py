"""Trained fixtures that are the same on every CPU: weights created and trained in float64.

float32 training is not reproducible across CPUs: kernels differ between instruction sets
(measured here by forcing another code path with ATEN_CPU_CAPABILITY=default,
MKL_ENABLE_INSTRUCTIONS=SSE4_2 and ONEDNN_MAX_CPU_ISA=SSE41): even the float32 initial
weights differ in their last bit, and SGD with momentum amplifies a 1e-7 difference into
weights that differ by 40-60 % after five epochs, so ranks, accuracies and walks differ too.
Created (not cast) in float64 and trained in float64, the paper's MNIST CNN came out the
same under both code paths to 7e-13 relative. Tests then evaluate a float32 copy (the
papers' setting), a deterministic rounding of those weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def float64_weights() -> Iterator[None]:
    """Modules built inside get float64 weights drawn in float64 (default dtype float64)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
