"""Batched Jacobians and pulled-back factors `A = C J` of any PyTorch forward function.

`J(x) = df/dx` is taken per example with respect to all inputs, flattened to length n and
concatenated in input order. Several paths compute it; which is fastest depends on the model
and the batch size, so ``"auto"`` times the two general ones on its first call per model and
call signature and keeps the faster:

- ``"backward"``: one backward of the batch through the forward graph (only when p = 1 row).
- ``"batched_grad"``: one forward, then `torch.autograd.grad(..., is_grads_batched=True)`
  over the rows (vmap over the backward); often the fastest for batches of several examples.
- ``"replicate"``: each example is replicated once per row of `C` and one backward with the
  rows as `grad_outputs` gives every vector-Jacobian product; always works (the fallback),
  chunks by `internal_batch_size`, and is often the fastest for one example.
- ``"vmap"``: `torch.func.vmap(jacrev)` per example; ``"jacfwd"``: forward mode.

Examples never interact: every path assumes `f` treats the examples of a batch
independently (true in eval mode).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_simec._compat import index_additional_forward_args
from captum_simec._outputs import check_output
from captum_simec.geometry._calibration import (
    cached_path,
    cached_reason,
    calibrate,
    time_paths,
)
from captum_simec.geometry._modules import (
    adapters,
    check_eval_mode,
    cudnn_for,
    forward_pass,
    module_of,
)
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
#: the paths that differentiate through the first forward's graph.
_GRAPH_METHODS = ("auto", "backward", "batched_grad")


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


def _flat_outputs(output: Any, batch: int) -> Tensor:
    return check_output(output, batch).reshape(batch, -1)


_NO_PATH = (
    "forward_func's output does not depend on the inputs (no gradient path), so the "
    "pullback metric is zero everywhere; check that the model uses its inputs. Inputs cast "
    "to integers inside the model (token ids for an embedding lookup) have no gradient: "
    "attribute to the embedding layer (LayerSiMECAttribution(model, embedding)) or walk in "
    "embedding space (captum_simec.text) instead."
)


def _require_graph(flat: Tensor) -> None:
    if flat.grad_fn is None:
        raise ValueError(_NO_PATH)


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
    if all(g is None for g in grads):  # the output's graph runs through parameters only
        raise ValueError(_NO_PATH)
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
    """VJPs of every (example, row) pair by replicating examples along the batch.

    Example `b` is repeated once per row `k` of its metric; one backward with the rows as
    `grad_outputs` gives the (b, k) vector-Jacobian products, `chunk` pairs per pass.
    """
    batch, p, m = rows.shape
    pairs = batch * p
    example = torch.arange(batch, device=rows.device).repeat_interleave(p)
    flat_rows = rows.reshape(pairs, m)
    step = pairs if chunk is None else max(1, chunk)
    if step >= pairs:  # one pass, no index bookkeeping
        factor = _replicated_pass(forward_func, inputs, args, example, flat_rows)
    else:
        n = sum(x[0].numel() for x in inputs)
        factor = torch.empty(pairs, n, dtype=inputs[0].dtype, device=inputs[0].device)
        for start in range(0, pairs, step):
            pair = slice(start, start + step)
            factor[pair] = _replicated_pass(
                forward_func, inputs, args, example[pair], flat_rows[pair]
            )
    return factor.reshape(batch, p, -1)


def _replicated_pass(
    forward_func: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    args: tuple[Any, ...] | None,
    example: Tensor,
    rows: Tensor,
) -> Tensor:
    """The VJPs (pairs, n) of `rows[j]` (pairs, m) at example `example[j]`, one backward."""
    batch = inputs[0].shape[0]
    replicated = tuple(x.detach().index_select(0, example).requires_grad_(True) for x in inputs)
    output = forward_func(*replicated, *index_additional_forward_args(args, example, batch))
    flat = _flat_outputs(output, example.shape[0])
    _require_graph(flat)
    return _grads(flat, replicated, rows.to(flat.dtype))


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
        method: one of `JACOBIAN_METHODS`. ``"auto"`` takes ``"backward"`` for p = 1 and
            ``"jacfwd"`` when n < p; otherwise, on its first call for a model and a call
            signature (per-example input shapes, dtypes, device, and the batch size rounded
            up to a power of two), it times ``"replicate"`` against ``"batched_grad"`` (see
            `captum_simec.geometry._calibration`) and caches the faster for the later calls.
            A path that fails or warns on this model is left out.
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
    with cudnn_for(forward_func, inputs[0].device):
        return _pullback_factor(
            forward_func,
            inputs,
            metric or EuclideanMetric(),
            target,
            additional_forward_args,
            method,
            internal_batch_size,
        )


@dataclass
class _Job:
    """One factor to compute: the model, the point, the metric's rows and the first forward.

    `leaves` and `flat` carry the first forward's graph when it was kept (for the paths that
    differentiate through it); `chunk` bounds the (example, row) pairs per backward pass.
    """

    forward_func: Callable[..., Any]
    inputs: tuple[Tensor, ...]
    args: tuple[Any, ...] | None
    rows: Tensor
    chunk: int | None
    leaves: tuple[Tensor, ...]
    flat: Tensor

    def factor(self, path: str, retain_graph: bool = False) -> Tensor:
        """`A` (batch, p, n) by `path`; `retain_graph` keeps the first forward's graph."""
        if path == "backward":
            row = self.rows[:, 0]
            return _grads(self.flat, self.leaves, row, retain_graph=retain_graph).unsqueeze(1)
        if path == "batched_grad":
            batched = _grads(
                self.flat,
                self.leaves,
                self.rows.transpose(0, 1),
                is_grads_batched=True,
                retain_graph=retain_graph,
            )
            return batched.transpose(0, 1).contiguous()
        with torch.enable_grad():  # callers such as NoiseTunnel run under no_grad
            if path == "replicate":
                return _replicate(self.forward_func, self.inputs, self.args, self.rows, self.chunk)
            jac = _torch_func_jacobian(self.forward_func, self.inputs, self.args, path)
        return self.rows.to(jac.dtype) @ jac


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
    key = _owner_and_signature(forward_func, inputs)
    cached = cached_path(*key) if method == "auto" else None  # "auto": not calibrated yet
    started = time.perf_counter()
    leaves, output = forward_pass(forward_func, inputs, additional_forward_args)
    with torch.enable_grad():  # the flattening view is part of the graph
        flat = _flat_outputs(output, batch)
    forward_seconds = time.perf_counter() - started
    _check_finite_outputs(flat.detach())
    target_index = target(output.shape) if callable(target) else target
    rows = metric.for_output(tuple(output.shape[1:])).cotangents(flat.detach(), target_index)
    p, n = rows.shape[1], sum(x[0].numel() for x in inputs)
    # keep the first forward's graph only for the paths that differentiate through it
    use_graph = (
        method in _GRAPH_METHODS
        and (cached != "replicate" or p == 1)
        and (internal_batch_size is None or batch <= internal_batch_size)
    )
    if use_graph:
        _require_graph(flat)
    else:  # the path runs forward passes of its own: drop this one's graph
        output, flat = output.detach(), flat.detach()
    warn_if_costly(p, n, batch, inputs[0].dtype, forward_seconds)
    job = _Job(
        forward_func, inputs, additional_forward_args, rows, internal_batch_size, leaves, flat
    )
    chosen, fallback = _choose_path(method, cached, job, use_graph)
    if chosen == "auto":
        chosen, factor = calibrate(
            lambda path: job.factor(path, retain_graph=True),
            *key,
            fallback=lambda: job.factor("replicate"),
        )
        fallback = cached_reason(*key) if chosen == "replicate" else None
    else:
        if fallback is None and method == "auto" and cached == chosen == "replicate":
            fallback = cached_reason(*key)  # calibrated where the other path failed
        chosen, factor, fallback = _run_path(job, chosen, method, fallback)
    if method == "auto":
        _warn_if_replicating(job, chosen, fallback)
    return PulledBackFactor(
        outputs=output.detach(),
        factor=factor.detach(),
        cotangents=rows,
        target=target_index,
        method=chosen,
        fallback_reason=fallback,
    )


def _choose_path(
    method: str, cached: str | None, job: _Job, use_graph: bool
) -> tuple[str, str | None]:
    """The path to run (``"auto"``: calibrate now) and why a requested one was replaced.

    `cached` is `auto`'s choice for this model and signature (``"auto"`` before the first
    calibration); a path that needs the first forward's graph runs by ``"replicate"`` where
    the graph was not kept.

    Raises:
        ValueError: ``"backward"`` asked for a metric with more than one row.
    """
    batch, p = job.rows.shape[:2]
    n = sum(x[0].numel() for x in job.inputs)
    chosen = method
    if method == "auto":
        chosen = "backward" if p == 1 else ("jacfwd" if n < p else cached)
    if chosen == "backward" and p != 1:
        raise ValueError(
            f"jacobian_method='backward' needs a one-row metric; this one has {p} rows: "
            "use 'replicate' or 'auto'."
        )
    bounded = job.chunk is not None and batch * p > job.chunk
    if chosen in _GRAPH_METHODS and (bounded or not use_graph):
        reason = f"internal_batch_size={job.chunk} bounds the rows per pass" if bounded else None
        return "replicate", reason
    return chosen, None


def _run_path(
    job: _Job, path: str, method: str, fallback: str | None
) -> tuple[str, Tensor, str | None]:
    """The factor by `path`, or by ``"replicate"`` where a vmap-based path cannot run."""
    try:
        return path, job.factor(path), fallback
    except Exception as error:  # vmap-based paths cannot trace every model
        if path == "replicate":
            raise
        reason = f"{path} failed ({type(error).__name__}: {error})"[:300]
        if method != "auto":
            warnings.warn(
                f"jacobian_method={path!r} failed on this model; using 'replicate'. "
                f"Reason: {reason}",
                stacklevel=4,
            )
        return "replicate", job.factor("replicate"), reason


def _warn_if_replicating(job: _Job, chosen: str, reason: str | None) -> None:
    """Warns when ``"auto"`` fell back to ``"replicate"`` unbounded: p copies of the batch.

    Not when `internal_batch_size` bounds the pairs per pass (the user bounded the memory)
    or when ``"replicate"`` was chosen for its speed (no `reason`).
    """
    p = job.rows.shape[1]
    if chosen != "replicate" or reason is None or job.chunk is not None or p == 1:
        return
    warnings.warn(
        f"jacobian_method='auto' computes this factor by 'replicate' because {reason}. "
        f"It runs the model on {p} copies of every example at once (about {p}x the "
        "activation memory of one forward pass): pass internal_batch_size to bound the "
        "(example, row) pairs per pass, or jacobian_method='replicate' to choose it yourself. "
        "The reason is also in the result's `fallback_reason`.",
        stacklevel=5,
    )


def _owner_and_signature(
    forward_func: Callable[..., Any], inputs: tuple[Tensor, ...]
) -> tuple[Any, tuple]:
    """The object to cache `auto`'s choice on, and what else the choice depends on.

    The owner is the module behind `forward_func` (or the function itself); the signature
    holds the chain of adapters around it, the per-example input shapes and dtypes, the
    device, and the batch size rounded up to a power of two (a walk whose examples stop one
    by one calibrates a few times, not once per batch size).
    """
    chain, func = adapters(forward_func)
    chain.append(getattr(func, "__func__", type(func)))
    shapes = tuple((tuple(x.shape[1:]), x.dtype) for x in inputs)
    module = module_of(forward_func)
    owner = func if module is None else module
    return owner, (tuple(chain), (inputs[0].shape[0] - 1).bit_length(), shapes, inputs[0].device)


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
        The fastest method's name and each path's shortest time over `repeats` warm runs
        (after a warm-up run each, taking turns); paths that fail or warn are left out.
    """
    probe = pullback_factor(
        forward_func, inputs, metric, target, additional_forward_args, "replicate"
    )
    _, p, n = probe.factor.shape
    candidates = ["replicate", "batched_grad", "vmap"]
    candidates += ["jacfwd"] if n < p else []
    candidates += ["backward"] if p == 1 else []
    timed = time_paths(
        lambda method: pullback_factor(
            forward_func, inputs, metric, target, additional_forward_args, method
        ),
        candidates,
        repeats,
    )
    if not timed:
        raise RuntimeError("No Jacobian path ran on this model.")
    timings = {method: seconds for method, (seconds, _) in timed.items()}
    return min(timings, key=timings.get), timings
