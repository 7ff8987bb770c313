"""How long-running calls use the terminal and the CPU: progress bars and torch threads."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["show_progress", "torch_threads"]


def show_progress(progress: bool | None) -> bool:
    """Whether to draw a progress bar: as asked, or (None) only when stderr is a terminal."""
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(progress)


@contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Temporarily sets torch's intra-op thread count (None leaves it alone)."""
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        if num_threads is not None:
            torch.set_num_threads(previous)
