"""What the geometry needs to know about the torch modules behind a forward function.

A forward function may be a module, a bound method of one, a plain function, or one of the
library's adapters around a module (which keep it as `.forward_func`). `module_of` finds the
module, `check_eval_mode` refuses one whose training-mode layers make `f` random or
batch-dependent, and `cudnn_for` switches cuDNN off where it refuses the backward pass.

Whatever wraps the model (a lambda, `functools.partial`, a function that calls it, a layer
adapter), `forward_pass` and `model_outputs` evaluate it the way the Jacobian paths do: with
gradients enabled and the inputs requiring them (fused inference fast paths, such as
`nn.TransformerEncoder`'s under `no_grad`, compute other outputs), the same cuDNN flags, and
a temporary global forward pre-hook that refuses any dropout or batch-norm layer the pass
runs through in training mode (`refusing_training_layers`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "adapters",
    "check_eval_mode",
    "cudnn_for",
    "forward_pass",
    "model_outputs",
    "module_of",
    "refusing_training_layers",
]

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
        isinstance(module, nn.RNNBase | nn.MultiheadAttention) and module.dropout > 0
    )


def _batch_statistics(module: nn.Module) -> bool:
    """A batch norm that normalises by the batch's statistics even in eval mode."""
    return (
        isinstance(module, nn.modules.batchnorm._BatchNorm)
        and module.running_mean is None
        and module.running_var is None
    )


# ----------------------------------------------------------------------------- the guard
_GUARD = threading.local()  # .depth: nesting of `refusing_training_layers` in this thread
_GUARD_LOCK = threading.Lock()
_GUARD_STATE: dict[str, Any] = {"threads": 0, "handle": None}


def _refuse_training_layer(module: nn.Module, args: Any) -> None:
    """The global forward pre-hook: raises before a random or batch-dependent layer runs."""
    if not getattr(_GUARD, "depth", 0):
        return  # another thread's forward pass: not ours to judge
    if module.training and _stochastic(module):
        raise ValueError(
            f"forward_func runs a {type(module).__name__} layer in training mode ({module!r}): "
            "it makes f random or batch-dependent, so every number computed from it is "
            "meaningless (and a batch norm would update its running statistics). Call "
            "model.eval() on the model inside forward_func first."
        )
    if _batch_statistics(module):
        raise ValueError(
            f"forward_func runs {module!r} without running statistics "
            "(track_running_stats=False): it normalises every example by the statistics of "
            "its batch even in eval mode, so f is batch-dependent. Use a batch norm with "
            "running statistics (or a LayerNorm / GroupNorm)."
        )


@contextlib.contextmanager
def refusing_training_layers() -> Iterator[None]:
    """While active, a forward pass of this thread through a dropout, batch-norm or
    recurrent/attention-dropout layer in training mode raises `ValueError`.

    A temporary global module hook (`register_module_forward_pre_hook`) sees every module
    that runs, so the check holds whatever wraps the model. Re-entrant; forward passes of
    other threads are not checked. TorchScript modules run no Python hooks (the static
    `check_eval_mode` covers them).
    """
    depth = getattr(_GUARD, "depth", 0)
    if depth == 0:
        with _GUARD_LOCK:
            if _GUARD_STATE["threads"] == 0:
                register = nn.modules.module.register_module_forward_pre_hook
                _GUARD_STATE["handle"] = register(_refuse_training_layer)
            _GUARD_STATE["threads"] += 1
    _GUARD.depth = depth + 1
    try:
        yield
    finally:
        _GUARD.depth = depth
        if depth == 0:
            with _GUARD_LOCK:
                _GUARD_STATE["threads"] -= 1
                if _GUARD_STATE["threads"] == 0:
                    _GUARD_STATE["handle"].remove()
                    _GUARD_STATE["handle"] = None


# ----------------------------------------------------------------------------- evaluation
def forward_pass(
    forward_func: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    additional_forward_args: tuple[Any, ...] | None = None,
) -> tuple[tuple[Tensor, ...], Any]:
    """`forward_func(*inputs, *args)` as the Jacobian paths see it: the leaves and the output.

    Gradients are enabled and the floating inputs are fresh leaves that require them (fused
    inference paths, taken under `no_grad`, compute other outputs than the differentiable
    one); cuDNN follows `cudnn_for`, and a layer in training mode raises
    (`refusing_training_layers`). The output keeps its graph to the leaves.
    """
    leaves = tuple(x.detach().requires_grad_(x.is_floating_point()) for x in inputs)
    device = inputs[0].device
    with cudnn_for(forward_func, device), refusing_training_layers(), torch.enable_grad():
        output = forward_func(*leaves, *(additional_forward_args or ()))
    return leaves, output


def model_outputs(
    forward_func: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    additional_forward_args: tuple[Any, ...] | None = None,
) -> Any:
    """The outputs of `forward_pass`, detached: what drift, class decisions and stops use,
    computed the same way as the Jacobians they are compared with."""
    _, output = forward_pass(forward_func, inputs, additional_forward_args)
    return output.detach() if isinstance(output, Tensor) else output
