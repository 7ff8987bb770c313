"""The rank tolerance: which singular values of a computed factor `A = C J` are real.

The p rows of `A` come from p backward passes in the model's dtype, each accurate to a small
multiple of `eps(dtype)` times its own norm, so the error `E` of the computed factor has
`||E||_2 <= sqrt(p) max_j ||e_j|| ~ sqrt(p) eps s_max`, and by Weyl's inequality every
singular value moves by at most `||E||_2`. The input size n does not enter. Measured float32
against float64 on the reference models (MLPs, CNNs, residual and recurrent nets, up to
3 x 224 x 224; `benchmarks/bench_tolerance.py`): `||E||_2 <= 1.6 sqrt(p) eps s_max`. The
default keeps a safety factor `c = 10` over it (docs/method.md). Half precision is worse on
deep networks (bfloat16 up to 10, float16 up to 72): there a warning flags the decisions the
dtype cannot make.

A Jacobian of pure rounding noise (a mathematically constant output, such as softmax over
identical logits) has no real direction at all, but its largest singular value is not small
relative to itself: an absolute floor (`noise_floor`: the rounding of the outputs per move of
the input) decides that such a Jacobian has rank 0.
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from collections.abc import Iterator

import torch
from torch import Tensor

__all__ = [
    "RANK_SAFETY",
    "SaturationWarning",
    "default_rtol",
    "noise_floor",
    "saturation_recorded",
    "warn_if_saturated",
    "working_dtype",
]

RANK_SAFETY = 10.0
"""c: the default tolerance is `c sqrt(p) eps s_max`; measured errors reach 1.6 (float32)."""

_CLOSE = 3.0  # a retained singular value within this factor of the tolerance is a close call


def working_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 or better: the dtype in which the right singular vectors are formed and kept."""
    return torch.promote_types(dtype, torch.float32)


def default_rtol(p: int, dtype: torch.dtype) -> float:
    """`c sqrt(p) eps(dtype)`: the relative error of a computed p-row factor, with margin.

    Independent of the input size n (`max(p, n) eps`, numpy's default, declares directions
    at 1.8 % of `s_max` null at n = 150,528 in float32, and everything in bfloat16).
    """
    return RANK_SAFETY * math.sqrt(p) * torch.finfo(dtype).eps


def noise_floor(
    outputs: Tensor, cotangents: Tensor, inputs: tuple[Tensor, ...], dtype: torch.dtype
) -> Tensor:
    """`c eps(dtype) ||C|| ||f(x)|| / max(1, rms(x))` per example (batch,), float64.

    A Jacobian whose largest singular value is below it moves the output (seen through the
    metric rows `C`, whose scale is their largest row norm) by less than c rounding units of
    the output, both for a unit move of the input and for a move of one RMS feature size:
    it is rounding noise and its rank is 0. Taking the more lenient of the two scales keeps
    a real Jacobian at tiny inputs (outputs set by biases) and at huge ones (3e38) real.
    """
    scale = cotangents.double().norm(dim=2).amax(dim=1)
    size = outputs.double().reshape(outputs.shape[0], -1).norm(dim=1)
    flat = torch.cat([x.detach().double().reshape(x.shape[0], -1) for x in inputs], dim=1)
    rms = flat.square().mean(dim=1).sqrt()
    return RANK_SAFETY * torch.finfo(dtype).eps * scale * size / rms.clamp_min(1.0)


def warn_if_unresolved(singular: Tensor, tolerance: Tensor, dtype: torch.dtype) -> None:
    """Warns when a reduced-precision factor leaves a rank decision it cannot make reliably.

    In float16 or bfloat16 the rounding level `sqrt(p) eps s_max = tol / c` is about 0.3 %
    and 2.5 % of `s_max` for ten outputs: a singular value between it and 3x the tolerance
    may be a real direction the dtype cannot resolve, or rounding noise kept as one (deep
    networks in float16 reach 10x the rounding level).
    """
    if torch.finfo(dtype).eps <= torch.finfo(torch.float32).eps:
        return
    limit = tolerance.unsqueeze(1)
    grey = (singular > limit / RANK_SAFETY) & (singular < limit * _CLOSE) & (limit > 0)
    if grey.any():
        warnings.warn(
            f"The model's dtype {dtype} cannot resolve every direction of the pullback "
            "metric: a singular value lies between its rounding level (sqrt(p) eps s_max) "
            f"and {_CLOSE:g}x the rank tolerance ({RANK_SAFETY:g} sqrt(p) eps s_max), so the "
            "rank may be off there. Run the model in float32 (model.float() and float32 "
            "inputs) for a reliable rank; `spectral_gap` and `rank_margin` show how close "
            "each decision was.",
            stacklevel=3,
        )


class SaturationWarning(UserWarning):
    """The Jacobian is zero (rank 0) at an example: every score there is trivial."""


_QUIET = threading.local()  # .depth: nesting of `saturation_recorded` in this thread


@contextlib.contextmanager
def saturation_recorded() -> Iterator[None]:
    """Within it, this thread's `warn_if_saturated` stays silent: for callers that record
    the rank themselves (a walk keeps it at every point and must not warn at every step)."""
    _QUIET.depth = getattr(_QUIET, "depth", 0) + 1
    try:
        yield
    finally:
        _QUIET.depth -= 1


def warn_if_saturated(rank: Tensor, free: Tensor | None = None) -> None:
    """Warns when some example with a free coordinate has rank 0 (`J = 0` to rounding),
    unless inside `saturation_recorded`."""
    if getattr(_QUIET, "depth", 0):
        return
    saturated = rank == 0 if free is None else (rank == 0) & free.any(dim=1)
    if saturated.any():
        examples = saturated.nonzero().flatten().tolist()
        shown = f"{examples[:10]}{' ...' if len(examples) > 10 else ''}"
        warnings.warn(
            f"The Jacobian is zero (rank 0) at examples {shown}: the model is saturated "
            "there (dead ReLUs, a softmax at 0 or 1, a clamp) or its output does not "
            "depend on the inputs, so relevance is 0 and robustness 1 for every feature, "
            "and the class fills a whole neighbourhood. Prefer logits or log-probabilities "
            "to probabilities, and check the inputs' scale.",
            SaturationWarning,
            stacklevel=3,
        )
