"""Per-example randomness of a walk: one seeded `torch.Generator` per example.

Example `i` of a batch walked with `seed=s` uses its own generator seeded with `s + i`, so it
walks exactly as it would alone with `seed=s + i` (up to floating-point rounding of batched
kernels). Without a seed, the base seed is drawn from `generator` (or from torch's global
generator), and `Walk.seeds` tells how to replay each example.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["ExampleRNG"]

_SEED_RANGE = 2**62


def _is_seed(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class ExampleRNG:
    """One `torch.Generator` per example: seeded `seed + i` for example `i`, or `seed[i]`.

    Args:
        batch: number of examples.
        seed: base seed (int >= 0), or one seed per example (a sequence of ints >= 0, e.g.
            the same seed for all so that each example walks as it would alone with it);
            exclusive with `generator`.
        generator: draws the base seed when `seed` is None (torch's global generator when
            both are None).

    Raises:
        ValueError: both `seed` and `generator`, or a seed that is not as described.
        TypeError: a `generator` that is not a `torch.Generator`.
    """

    def __init__(
        self, batch: int, seed: int | Sequence[int] | None, generator: torch.Generator | None
    ) -> None:
        if seed is not None and generator is not None:
            raise ValueError("Pass either `seed` or `generator`, not both.")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"`generator` must be a torch.Generator, got {type(generator).__name__}."
            )
        if seed is None:
            seed = int(torch.randint(_SEED_RANGE, (1,), generator=generator).item())
        seeds = [seed + i for i in range(batch)] if _is_seed(seed) else seed
        if not isinstance(seeds, list | tuple) or len(seeds) != batch:
            seeds = [None]
        if not all(_is_seed(s) for s in seeds):
            raise ValueError(
                f"`seed` must be a non-negative int or a sequence of {batch} non-negative ints "
                f"(one per example), got {seed!r}."
            )
        self.seeds = list(seeds)
        self.generators = [torch.Generator().manual_seed(s) for s in self.seeds]

    def _draw(
        self, sampler: Callable[..., Tensor], rows: Tensor, size: int, like: Tensor
    ) -> Tensor:
        draws = [
            sampler(size, generator=self.generators[i], dtype=like.dtype) for i in rows.tolist()
        ]
        return torch.stack(draws).to(like.device)

    def normal(self, rows: Tensor, size: int, like: Tensor) -> Tensor:
        """Standard normal draws (len(rows), size) in `like`'s dtype and device."""
        return self._draw(torch.randn, rows, size, like)

    def uniform(self, rows: Tensor, size: int, like: Tensor) -> Tensor:
        """Uniform [0, 1) draws (len(rows), size) in `like`'s dtype and device."""
        return self._draw(torch.rand, rows, size, like)
