"""A one-output model read as a binary classifier, so that class-changing walks apply to it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["BinaryLogit"]


class BinaryLogit:
    """Outputs `[0, f]` for a model with one output `f`: class 1 iff `f > 0`, margin `f`."""

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        self.forward_func = forward_func

    def __call__(self, *args: Any) -> Tensor:
        logit = self.forward_func(*args).reshape(-1, 1)
        return torch.cat([torch.zeros_like(logit), logit], dim=1)
