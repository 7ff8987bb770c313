"""Batched Jacobians and pulled-back factors `A = C J` of any PyTorch forward function.

`J(x) = df/dx` is taken per example with respect to all inputs, flattened to length n and
concatenated in input order. Several paths compute it; which is fastest depends on the model
(see design.md, measured pitfalls):

- ``"backward"``: one backward of the batch through the forward graph (only when p = 1 row).
- ``"batched_grad"``: one forward, then `torch.autograd.grad(..., is_grads_batched=True)`
  over the rows (vmap over the backward); the fastest path in our benchmarks.
- ``"replicate"``: each example is replicated once per row of `C` and one backward with the
  rows as `grad_outputs` gives every vector-Jacobian product; always works (the fallback),
  and chunks by `internal_batch_size`.
- ``"vmap"``: `torch.func.vmap(jacrev)` per example; ``"jacfwd"``: forward mode.

Examples never interact: every path assumes `f` treats the examples of a batch
independently (true in eval mode).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from captum_simec._compat import index_additional_forward_args
from captum_simec.geometry.cost import warn_if_costly
from captum_simec.geometry.metrics import EuclideanMetric, OutputMetric

__all__ = [
    "JACOBIAN_METHODS",
    "PulledBackFactor",
    "check_eval_mode",
    "fastest_jacobian_method",
    "jacobian",
    "pullback_factor",
]

JACOBIAN_METHODS = ("auto", "backward", "replicate", "batched_grad", "vmap", "jacfwd")
_TORCH_FUNC_METHODS = ("vmap", "jacfwd")
_RANDOM_IN_TRAINING = (
    nn.modules.dropout._DropoutNd,
    nn.modules.batchnorm._BatchNorm,
)


@dataclass
class PulledBackFactor:
    """Outputs at the point and the factor `A = C J` of the pullback metric `g = A^T A`.

    Attributes:
        outputs: model outputs at the inputs, detached, shape (batch, *output_shape).
        factor: `A`, shape (batch, p, n).
        cotangents: the metric's rows `C`, shape (batch, p, m).
        target: flat target index per example, or None.
        method: the Jacobian path that ran.
        fallback_reason: why a requested path was replaced by ``"replicate"`` (or None).
    """

    outputs: Tensor
    factor: Tensor
    cotangents: Tensor
    target: Tensor | None
    method: str
    fallback_reason: str | None = None


def _module_of(forward_func: Callable[..., Any]) -> nn.Module | None:
    """The module behind `forward_func`, if any: itself, the owner of a bound method, or the
    module wrapped by one of our adapters (which keep it as `.forward_func`)."""
    while not isinstance(forward_func, nn.Module) and hasattr(forward_func, "forward_func"):
        forward_func = forward_func.forward_func
    if isinstance(forward_func, nn.Module):
        return forward_func
    owner = getattr(forward_func, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


def _cudnn_for(forward_func: Callable[..., Any], device: torch.device) -> Any:
    """cuDNN off for recurrent modules on CUDA (it refuses RNN backward in eval mode)."""
    module = _module_of(forward_func)
    recurrent = module is not None and any(isinstance(m, nn.RNNBase) for m in module.modules())
    if recurrent and device.type == "cuda":
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
    module = _module_of(forward_func)
    if module is None:
        return
    if strict and module.training:
        raise ValueError(
            "The model is in training mode (dropout and batch-norm make f random or "
            "batch-dependent, so every number computed from it would be meaningless): call "
            "model.eval() first."
        )
    for name, sub in module.named_modules():
        stochastic = isinstance(sub, _RANDOM_IN_TRAINING) or (
            isinstance(sub, nn.RNNBase) and sub.dropout > 0
        )
        if sub.training and stochastic:
            raise ValueError(
                f"The model is in training mode and its layer {name or type(sub).__name__!r} "
                f"({type(sub).__name__}) makes f random or batch-dependent, so its Jacobian "
                "is meaningless: call model.eval() first."
            )


def _flat_outputs(output: Any, batch: int) -> Tensor:
    if not isinstance(output, Tensor):
        raise TypeError(
            f"forward_func must return a tensor, got {type(output).__name__}; wrap the model "
            "so that it returns one tensor with the batch as dim 0."
        )
    if output.dim() == 0 or output.shape[0] != batch:
        raise ValueError(
            f"forward_func returned shape {tuple(output.shape)} for a batch of {batch}; the "
            "output must keep the batch as dim 0 (one output per example)."
        )
    if not output.is_floating_point():
        raise TypeError(f"forward_func returned dtype {output.dtype}; it must return floats.")
    return output.reshape(batch, -1)


def _require_graph(flat: Tensor) -> None:
    if flat.grad_fn is None:
        raise ValueError(
            "forward_func's output does not depend on the inputs (no gradient path), so "
            "the pullback metric is zero everywhere; check that the model uses its inputs."
        )


def _check_finite_outputs(flat: Tensor) -> None:
    bad = ~torch.isfinite(flat).all(dim=1)
    if bad.any():
        examples = bad.nonzero().flatten().tolist()[:10]
        raise ValueError(
            f"forward_func returned NaN or inf for examples {examples}; the pullback metric is "
            "undefined there (check the inputs' scale or the model's numerical stability)."
        )


def _grads(outputs: Tensor, inputs: tuple[Tensor, ...], grad_outputs: Tensor, **kw) -> Tensor:
    grads = torch.autograd.grad(outputs, inputs, grad_outputs=grad_outputs, allow_unused=True, **kw)
    leading = grad_outputs.shape[:-1] if kw.get("is_grads_batched") else grad_outputs.shape[:1]
    flat = [
        torch.zeros(*leading, x[0].numel(), dtype=x.dtype, device=x.device)
        if g is None
        else g.reshape(*leading, -1)
        for g, x in zip(grads, inputs, strict=True)
    ]
    return torch.cat(flat, dim=-1)


def _replicate(
    forward_func: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    args: tuple[Any, ...] | None,
    rows: Tensor,
    chunk: int | None,
) -> Tensor:
    """VJPs of every (example, row) pair by replicating examples along the batch."""
    batch, p, _ = rows.shape
    n = sum(x[0].numel() for x in inputs)
    factor = torch.empty(batch, p, n, dtype=inputs[0].dtype, device=inputs[0].device)
    example = torch.arange(batch, device=rows.device).repeat_interleave(p)
    row = torch.arange(p, device=rows.device).repeat(batch)
    step = len(example) if chunk is None else max(1, chunk)
    for start in range(0, len(example), step):
        b, k = example[start : start + step], row[start : start + step]
        replicated = tuple(x[b].detach().requires_grad_(True) for x in inputs)
        output = forward_func(*replicated, *index_additional_forward_args(args, b, batch))
        flat = _flat_outputs(output, len(b))
        _require_graph(flat)
        factor[b, k] = _grads(flat, replicated, rows[b, k].to(flat.dtype))
    return factor


def _torch_func_jacobian(
    forward_func: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    args: tuple[Any, ...] | None,
    mode: str,
) -> Tensor:
    """Per-example full Jacobian (batch, m, n) with torch.func (vmap over the batch)."""
    batch = inputs[0].shape[0]
    args = args or ()
    batched = [isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == batch for a in args]

    def single(*flat_args: Any) -> Tensor:
        xs = tuple(x.unsqueeze(0) for x in flat_args[: len(inputs)])
        extra = tuple(
            a.unsqueeze(0) if is_batched else a
            for a, is_batched in zip(flat_args[len(inputs) :], batched, strict=True)
        )
        return forward_func(*xs, *extra).reshape(-1)

    differentiate = torch.func.jacrev if mode == "vmap" else torch.func.jacfwd
    argnums = tuple(range(len(inputs)))
    in_dims = (0,) * len(inputs) + tuple(0 if b else None for b in batched)
    jac = torch.func.vmap(differentiate(single, argnums=argnums), in_dims=in_dims)(
        *(x.detach() for x in inputs), *args
    )
    return torch.cat([j.reshape(batch, j.shape[1], -1) for j in jac], dim=-1)


def pullback_factor(
    forward_func: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    metric: OutputMetric | None = None,
    target: Callable[[torch.Size], Tensor | None] | Tensor | None = None,
    additional_forward_args: tuple[Any, ...] | None = None,
    method: str = "auto",
    internal_batch_size: int | None = None,
) -> PulledBackFactor:
    """Computes the outputs and `A = C J` for a batch, never forming `J^T G J`.

    Args:
        forward_func: the model, called as `forward_func(*inputs, *additional_forward_args)`.
        inputs: tuple of float tensors, batch first (already validated).
        metric: output metric giving the rows `C`; Euclidean (`A = J`) when None.
        target: flat target indices (batch,), or a function of the output shape returning
            them (so that Captum's target forms can be resolved once the output is known).
        additional_forward_args: extra arguments; tensors with the batch size are indexed
            with the examples.
        method: one of `JACOBIAN_METHODS`; ``"auto"`` picks ``"backward"`` for p = 1,
            ``"jacfwd"`` when n < p, else ``"batched_grad"`` (fastest in `benchmarks/`),
            falling back to ``"replicate"`` where vmap cannot run the backward.
        internal_batch_size: most (example, row) pairs per backward pass (memory bound).

    On CUDA, cuDNN is switched off for the call when the model has recurrent layers.

    Returns:
        A `PulledBackFactor`.
    """
    if method not in JACOBIAN_METHODS:
        raise ValueError(f"jacobian_method={method!r}; choose one of {JACOBIAN_METHODS}.")
    if internal_batch_size is not None and internal_batch_size < 1:
        raise ValueError("`internal_batch_size` must be a positive int (or None).")
    check_eval_mode(forward_func)
    with _cudnn_for(forward_func, inputs[0].device):
        return _pullback_factor(
            forward_func,
            inputs,
            metric or EuclideanMetric(),
            target,
            additional_forward_args,
            method,
            internal_batch_size,
        )


def _pullback_factor(
    forward_func: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    metric: OutputMetric,
    target: Callable[[torch.Size], Tensor | None] | Tensor | None,
    additional_forward_args: tuple[Any, ...] | None,
    method: str,
    internal_batch_size: int | None,
) -> PulledBackFactor:
    batch = inputs[0].shape[0]
    # keep the first forward's graph only for the paths that differentiate through it
    use_graph = method in ("auto", "backward", "batched_grad") and (
        internal_batch_size is None or batch <= internal_batch_size
    )
    started = time.perf_counter()
    with torch.enable_grad() if use_graph else torch.no_grad():
        leaves = tuple(x.detach().requires_grad_(use_graph) for x in inputs)
        output = forward_func(*leaves, *(additional_forward_args or ()))
        flat = _flat_outputs(output, batch)
    forward_seconds = time.perf_counter() - started
    if use_graph:
        _require_graph(flat)
    _check_finite_outputs(flat.detach())
    target_index = target(output.shape) if callable(target) else target
    rows = metric.cotangents(flat.detach(), target_index)
    p, n = rows.shape[1], sum(x[0].numel() for x in inputs)
    warn_if_costly(p, n, batch, inputs[0].dtype, forward_seconds)
    chosen = method
    if method == "auto":
        chosen = "backward" if p == 1 else ("jacfwd" if n < p else "batched_grad")
    if chosen == "backward" and p != 1:
        raise ValueError(
            f"jacobian_method='backward' needs a one-row metric; this one has {p} rows: "
            "use 'replicate' or 'auto'."
        )
    fallback = None
    if chosen in ("backward", "batched_grad") and (
        not use_graph or (internal_batch_size is not None and batch * p > internal_batch_size)
    ):
        fallback = f"internal_batch_size={internal_batch_size} bounds the rows per pass"
        chosen = "replicate"
    try:
        if chosen == "backward":
            factor = _grads(flat, leaves, rows[:, 0]).unsqueeze(1)
        elif chosen == "batched_grad":
            batched = _grads(flat, leaves, rows.transpose(0, 1), is_grads_batched=True)
            factor = batched.transpose(0, 1).contiguous()
        elif chosen in _TORCH_FUNC_METHODS:
            with torch.enable_grad():
                jac = _torch_func_jacobian(forward_func, inputs, additional_forward_args, chosen)
            factor = rows.to(jac.dtype) @ jac
    except Exception as error:  # vmap-based paths cannot trace every model
        fallback = f"{chosen} failed ({type(error).__name__}: {error})"[:300]
        if method != "auto":
            warnings.warn(
                f"jacobian_method={chosen!r} failed on this model; using 'replicate'. "
                f"Reason: {fallback}",
                stacklevel=2,
            )
        chosen = "replicate"
    output, flat = output.detach(), None  # free the first graph
    if chosen == "replicate":
        with torch.enable_grad():  # callers such as NoiseTunnel run under no_grad
            factor = _replicate(
                forward_func, inputs, additional_forward_args, rows, internal_batch_size
            )
    return PulledBackFactor(
        outputs=output,
        factor=factor.detach(),
        cotangents=rows,
        target=target_index,
        method=chosen,
        fallback_reason=fallback,
    )


def jacobian(
    forward_func: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    additional_forward_args: tuple[Any, ...] | None = None,
    method: str = "auto",
    internal_batch_size: int | None = None,
) -> PulledBackFactor:
    """The full Jacobian `J` (batch, m, n): the factor of the Euclidean metric (`A = J`)."""
    return pullback_factor(
        forward_func,
        inputs,
        EuclideanMetric(),
        None,
        additional_forward_args,
        method,
        internal_batch_size,
    )


def fastest_jacobian_method(
    forward_func: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    metric: OutputMetric | None = None,
    target: Tensor | None = None,
    additional_forward_args: tuple[Any, ...] | None = None,
    repeats: int = 3,
) -> tuple[str, dict[str, float]]:
    """Times every applicable Jacobian path once-off on these inputs and returns the fastest.

    ``"backward"`` applies to one-row metrics only, and ``"jacfwd"`` is tried only when the
    inputs have fewer features than the metric has rows (forward mode over n tangents holds
    about n copies of the activations).

    Returns:
        The fastest method's name and the median seconds of each path that ran (paths that
        fail on this model are left out).
    """
    probe = pullback_factor(
        forward_func, inputs, metric, target, additional_forward_args, "replicate"
    )
    _, p, n = probe.factor.shape
    candidates = ["replicate", "batched_grad", "vmap"]
    candidates += ["jacfwd"] if n < p else []
    candidates += ["backward"] if p == 1 else []
    timings: dict[str, float] = {}
    for method in candidates:
        runs = []
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                for _ in range(repeats):
                    start = time.perf_counter()
                    pullback_factor(
                        forward_func, inputs, metric, target, additional_forward_args, method
                    )
                    runs.append(time.perf_counter() - start)
        except Exception:  # the path does not apply to this model or metric
            continue
        timings[method] = sorted(runs)[len(runs) // 2]
    if not timings:
        raise RuntimeError("No Jacobian path ran on this model.")
    return min(timings, key=timings.get), timings
