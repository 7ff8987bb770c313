"""What the geometry needs to know about the torch modules behind a forward function.

A forward function may be a module, a bound method of one, a plain function, or one of the
library's adapters around a module (which keep it as `.forward_func`). `module_of` finds the
module, `check_eval_mode` refuses one whose training-mode layers make `f` random or
batch-dependent, and `cudnn_for` switches cuDNN off where it refuses the backward pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["adapters", "check_eval_mode", "cudnn_for", "module_of"]

_RANDOM_IN_TRAINING = (
    nn.modules.dropout._DropoutNd,
    nn.modules.batchnorm._BatchNorm,
)


def adapters(forward_func: Callable[..., Any]) -> tuple[list[type], Callable[..., Any]]:
    """The types of the adapters around `forward_func`, outermost first, and what they wrap."""
    chain = []
    while not isinstance(forward_func, nn.Module) and hasattr(forward_func, "forward_func"):
        chain.append(type(forward_func))
        forward_func = forward_func.forward_func
    return chain, forward_func


def module_of(forward_func: Callable[..., Any]) -> nn.Module | None:
    """The module behind `forward_func`, if any: itself, the owner of a bound method, or the
    module wrapped by one of our adapters."""
    _, inner = adapters(forward_func)
    if isinstance(inner, nn.Module):
        return inner
    owner = getattr(inner, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


def cudnn_for(forward_func: Callable[..., Any], device: torch.device) -> Any:
    """cuDNN off for recurrent modules on CUDA (it refuses RNN backward in eval mode)."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    module = module_of(forward_func)
    if module is not None and any(isinstance(m, nn.RNNBase) for m in module.modules()):
        return torch.backends.cudnn.flags(enabled=False)
    return contextlib.nullcontext()


def check_eval_mode(forward_func: Callable[..., Any], strict: bool = False) -> None:
    """Refuses a module in training mode whose layers make `f` random or batch-dependent.

    Args:
        forward_func: a module, a bound method of one, or another callable (not checked).
        strict: refuse a module in training mode whatever its layers (the audit and the
            attacks, whose numbers describe the model as deployed).

    Raises:
        ValueError: a dropout, batch-norm or recurrent-dropout layer is in training mode, or
            with `strict`, the module is.
    """
    module = module_of(forward_func)
    if module is None:
        return
    if strict and module.training:
        raise ValueError(
            "The model is in training mode (dropout and batch-norm make f random or "
            "batch-dependent, so every number computed from it would be meaningless): call "
            "model.eval() first."
        )
    if any(sub.training and _stochastic(sub) for sub in module.modules()):  # walks call often
        name, sub = next((n, m) for n, m in module.named_modules() if m.training and _stochastic(m))
        raise ValueError(
            f"The model is in training mode and its layer {name or type(sub).__name__!r} "
            f"({type(sub).__name__}) makes f random or batch-dependent, so its Jacobian "
            "is meaningless: call model.eval() first."
        )


def _stochastic(module: nn.Module) -> bool:
    """Whether `module` makes `f` random or batch-dependent in training mode."""
    return isinstance(module, _RANDOM_IN_TRAINING) or (
        isinstance(module, nn.RNNBase) and module.dropout > 0
    )
