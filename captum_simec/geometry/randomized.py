"""Randomised estimates of the pullback metric for models with many outputs.

The exact factor `A = C J` (p x n) costs p vector-Jacobian products (VJPs) per example: 1000
backward passes for an ImageNet classifier with the Euclidean metric. Two estimators need a
few dozen:

- `hutchinson_relevance`: the relevance `rho_i = sqrt(g_ii)`, `g_ii = ||A e_i||^2`, from
  Hutchinson's identity `g_ii = E[(A^T z)_i^2]` for Rademacher probes `z` in {-1, 1}^p (one
  VJP each, cotangent `z^T C`), with standard errors. Optionally Hutch++-style: a rank-k basis
  `Q` of A's leading left singular subspace (`randomized_range`'s sketch) takes the part of
  `g_ii` it carries exactly (`||Q^T A e_i||^2`, k VJPs) and the probes, projected off `Q`,
  only estimate the rest: far less variance when the spectrum decays.
- `randomized_range`: the randomised range finder (Halko, Martinsson & Tropp 2011) for the
  leading singular values and right singular vectors of `A` (the top range directions).

The range finder sketches `A G` for Gaussian `G` (n x l) with Jacobian-vector products,
computed by differentiating a VJP (the double-backward trick, which any model autograd can
differentiate twice supports), and `Q^T A` with VJPs. All random draws come from a seeded
generator; the VJPs are batched over examples and probes and chunked by
`internal_batch_size` like every factor of `captum_simec.geometry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec.geometry._modules import model_outputs
from captum_simec.geometry.jacobian import check_eval_mode, pullback_factor
from captum_simec.geometry.metrics import FixedMetric, OutputMetric, resolve_output_metric

__all__ = ["LeadingDirections", "RelevanceEstimate", "hutchinson_relevance", "randomized_range"]


@dataclass
class RelevanceEstimate:
    """Hutchinson estimate of the relevance `rho_i = sqrt(g_ii)`, per example and feature.

    Attributes:
        relevance: `rho_i` shaped like the inputs (a tensor, or a tuple for tuple inputs).
        standard_error: the standard error of each `rho_i` (delta method), same structure.
        metric_diagonal: `g_ii` estimates (batch, n), float64.
        diagonal_standard_error: their standard errors (batch, n), float64.
        exact_share: per example (batch,), the share of `sum_i g_ii` carried exactly by the
            deflation basis (0 without deflation).
        probes: number of Rademacher probes; rank: size of the deflation basis.
        vjps: vector-Jacobian products per example (probes + rank + power iterations).
        jvps: Jacobian-vector products per example (rank x (1 + power iterations)).
    """

    relevance: Tensor | tuple[Tensor, ...]
    standard_error: Tensor | tuple[Tensor, ...]
    metric_diagonal: Tensor
    diagonal_standard_error: Tensor
    exact_share: Tensor
    probes: int
    rank: int
    vjps: int
    jvps: int


@dataclass
class LeadingDirections:
    """The leading singular values and right singular vectors of `A`, from a sketch.

    Attributes:
        singular_values: (batch, k) float64, descending; estimates of `s_1 .. s_k` (from
            below: they are those of `Q^T A`).
        right_vectors: (batch, n, k), orthonormal columns, estimates of `v_1 .. v_k`.
        input_shapes, is_inputs_tuple: the inputs' structure, for `directions`.
        vjps, jvps: products per example.
    """

    singular_values: Tensor
    right_vectors: Tensor
    input_shapes: tuple[torch.Size, ...]
    is_inputs_tuple: bool
    vjps: int
    jvps: int

    def directions(self, k: int = 0) -> Tensor | tuple[Tensor, ...]:
        """The k-th right singular vector of each example, shaped like the inputs."""
        shaped = _compat.unflatten_features(self.right_vectors[:, :, k], self.input_shapes)
        return _compat.format_output(self.is_inputs_tuple, shaped)


@dataclass
class _Problem:
    """The model, its formatted inputs and the metric rows `C` at the inputs."""

    forward_func: Callable[..., Any]
    inputs: tuple[Tensor, ...]
    args: tuple[Any, ...] | None
    rows: Tensor  # (batch, p, m)
    is_tuple: bool
    jacobian_method: str
    internal_batch_size: int | None
    rng: torch.Generator  # every random draw

    @property
    def batch(self) -> int:
        return self.rows.shape[0]

    @property
    def num_features(self) -> int:
        return sum(x[0].numel() for x in self.inputs)

    def vjps(self, mixing: Tensor) -> Tensor:
        """`M A` (batch, s, n) for cotangent mixtures `M` (batch, s, p): s VJPs per example."""
        metric = FixedMetric(mixing.to(self.rows.dtype) @ self.rows, name="sketch")
        return pullback_factor(
            self.forward_func,
            self.inputs,
            metric,
            None,
            self.args,
            self.jacobian_method,
            self.internal_batch_size,
        ).factor

    def jvps(self, tangents: Tensor) -> Tensor:
        """`A G` (batch, p, l) for tangents `G` (batch, n, l), by differentiating a VJP."""
        columns = []
        step = tangents.shape[2]
        if self.internal_batch_size is not None:
            step = max(1, self.internal_batch_size // self.batch)
        for start in range(0, tangents.shape[2], step):
            block = tangents[:, :, start : start + step]
            columns.append(self.rows @ _jacobian_vector_products(self, block))
        return torch.cat(columns, dim=2)


def _jacobian_vector_products(problem: _Problem, tangents: Tensor) -> Tensor:
    """`J G` (batch, m, l): `J v = d/du <J^T u, v>`, one double backward for all l tangents."""
    with torch.enable_grad():
        leaves = tuple(x.detach().requires_grad_(True) for x in problem.inputs)
        output = problem.forward_func(*leaves, *(problem.args or ()))
        flat = output.reshape(problem.batch, -1)
        dummy = torch.zeros_like(flat, requires_grad=True)
        grads = torch.autograd.grad(
            flat, leaves, grad_outputs=dummy, create_graph=True, allow_unused=True
        )
        pairs = [(g, x) for g, x in zip(grads, leaves, strict=True) if g is not None]
        if not pairs or not any(g.requires_grad for g, _ in pairs):  # J does not depend on u
            return tangents.new_zeros(problem.batch, flat.shape[1], tangents.shape[2])
        shapes = [x.shape[1:] for x in problem.inputs]
        parts = _compat.unflatten_features(tangents.permute(2, 0, 1).flatten(0, 1), shapes)
        used = [i for i, g in enumerate(grads) if g is not None]
        (products,) = torch.autograd.grad(
            [grads[i] for i in used],
            dummy,
            grad_outputs=[
                parts[i].reshape(tangents.shape[2], *problem.inputs[i].shape).to(flat.dtype)
                for i in used
            ],
            is_grads_batched=True,
            allow_unused=True,
        )
    if products is None:
        return tangents.new_zeros(problem.batch, flat.shape[1], tangents.shape[2])
    return products.detach().permute(1, 2, 0)


def _problem(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    output_metric: str | OutputMetric | Tensor | Callable[[Tensor], Tensor],
    target: _compat.TargetType,
    additional_forward_args: Any,
    jacobian_method: str,
    internal_batch_size: int | None,
    rng: torch.Generator,
) -> _Problem:
    is_tuple = _compat.is_tuple(inputs)
    formatted = _compat.format_inputs(inputs)
    args = _compat.format_additional_forward_args(additional_forward_args)
    metric = resolve_output_metric(output_metric)
    check_eval_mode(forward_func)
    output = model_outputs(forward_func, formatted, args)
    if not isinstance(output, Tensor) or output.dim() == 0:
        raise TypeError("forward_func must return a tensor with the batch as dim 0.")
    flat = output.reshape(output.shape[0], -1)
    index = _compat.target_to_flat_indices(target, output.shape, flat.device)
    rows = metric.cotangents(flat, index)
    return _Problem(
        forward_func, formatted, args, rows, is_tuple, jacobian_method, internal_batch_size, rng
    )


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"`{name}` must be an int, got {type(value).__name__}.")
        if value < 0:
            raise ValueError(f"`{name}` must be >= 0, got {value}.")


def _generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator:
    if generator is not None and seed is not None:
        raise ValueError("Pass `seed` or `generator`, not both.")
    if generator is not None:
        return generator
    made = torch.Generator()
    made.manual_seed(0 if seed is None else seed)
    return made


def _left_basis(problem: _Problem, size: int, power_iterations: int) -> Tensor:
    """Orthonormal `Q` (batch, p, l) float64: `orth(A G)`, refined by `Q <- orth(A A^T Q)`."""
    shape = (problem.batch, problem.num_features, size)
    tangents = torch.randn(*shape, generator=problem.rng)  # drawn on the CPU: any device
    tangents = tangents.to(device=problem.rows.device, dtype=problem.rows.dtype)
    basis = torch.linalg.qr(problem.jvps(tangents).double()).Q
    for _ in range(power_iterations):
        back = problem.vjps(basis.transpose(1, 2)).transpose(1, 2)  # A^T Q (batch, n, l)
        basis = torch.linalg.qr(problem.jvps(back).double()).Q
    return basis


def hutchinson_relevance(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    *,
    output_metric: str | OutputMetric | Tensor | Callable[[Tensor], Tensor] = "euclidean",
    target: _compat.TargetType = None,
    additional_forward_args: Any = None,
    probes: int = 100,
    rank: int = 0,
    power_iterations: int = 0,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    jacobian_method: str = "auto",
    internal_batch_size: int | None = None,
) -> RelevanceEstimate:
    """Relevance `rho_i = sqrt(g_ii)` from `probes` VJPs instead of p, with standard errors.

    `g_ii = ||Q^T A e_i||^2 + E[((I - Q Q^T) z)^T A e_i)^2]` for Rademacher `z`: the first
    term exactly (k = `rank` VJPs on a basis `Q` of A's leading left singular subspace,
    found from k Jacobian-vector products), the second averaged over the probes. Without
    deflation (`rank=0`) the relative standard error of `rho_i` is at most about
    `1 / sqrt(2 probes)` (7 % for the default 100 probes: a median error near 4.8 %),
    whatever p; with it, smaller by the share of `g_ii` the basis carries, so a decaying
    spectrum (trained networks) needs fewer probes. On 1000 outputs the default costs a
    tenth of the exact factor (`benchmarks/bench_randomized.py`).

    Args:
        forward_func, inputs, output_metric, target, additional_forward_args: as in
            `pullback_spectrum`.
        probes: Rademacher probes per example (one VJP each).
        rank: size of the deflation basis (0: plain Hutchinson). When it reaches p the
            result is exact.
        power_iterations: refinements of the basis (k VJPs and k JVPs each).
        seed, generator: the source of every random draw (seed 0 when neither is given).
        jacobian_method, internal_batch_size: as in `pullback_spectrum` (chunking bound).

    Returns:
        A `RelevanceEstimate`.
    """
    _check_counts(probes=probes, rank=rank, power_iterations=power_iterations)
    if probes == 0 and rank == 0:
        raise ValueError("Pass `probes` > 0 or `rank` > 0: nothing would be estimated.")
    problem = _problem(
        forward_func, inputs, output_metric, target, additional_forward_args,
        jacobian_method, internal_batch_size, _generator(seed, generator),
    )  # fmt: skip
    batch, p, n = problem.batch, problem.rows.shape[1], problem.num_features
    rank = min(rank, p)
    exact = torch.zeros(batch, n, dtype=torch.float64, device=problem.rows.device)
    basis = None
    if rank > 0:
        basis = _left_basis(problem, rank, power_iterations)
        exact = problem.vjps(basis.transpose(1, 2)).double().square().sum(dim=1)
    estimate, variance = exact, torch.zeros_like(exact)
    probes = probes if rank < p else 0  # a full basis is exact
    if probes > 0:
        signs = torch.randint(0, 2, (batch, probes, p), generator=problem.rng) * 2.0 - 1
        signs = signs.to(device=exact.device, dtype=torch.float64)
        if basis is not None:
            signs = signs - (signs @ basis) @ basis.transpose(1, 2)
        samples = problem.vjps(signs).double().square()  # (batch, probes, n)
        estimate = exact + samples.mean(dim=1)
        spread = samples.var(dim=1) if probes > 1 else samples.squeeze(1)
        variance = spread / probes
    relevance = estimate.clamp_min(0).sqrt()
    error = variance.sqrt()
    rho_error = torch.where(relevance > 0, error / (2 * relevance), error.sqrt())
    share = exact.sum(dim=1) / estimate.sum(dim=1).clamp_min(torch.finfo(torch.float64).tiny)
    return RelevanceEstimate(
        relevance=_shaped(problem, relevance),
        standard_error=_shaped(problem, rho_error),
        metric_diagonal=estimate,
        diagonal_standard_error=error,
        exact_share=share,
        probes=probes,
        rank=rank,
        vjps=probes + rank * (1 + power_iterations),
        jvps=rank * (1 + power_iterations),
    )


def _shaped(problem: _Problem, flat: Tensor) -> Tensor | tuple[Tensor, ...]:
    dtype = problem.inputs[0].dtype
    parts = _compat.unflatten_features(flat.to(dtype), _compat.feature_shapes(problem.inputs))
    return _compat.format_output(problem.is_tuple, parts)


def randomized_range(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    *,
    k: int = 10,
    oversample: int = 10,
    power_iterations: int = 1,
    output_metric: str | OutputMetric | Tensor | Callable[[Tensor], Tensor] = "euclidean",
    target: _compat.TargetType = None,
    additional_forward_args: Any = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    jacobian_method: str = "auto",
    internal_batch_size: int | None = None,
) -> LeadingDirections:
    """The top-k singular values and right singular vectors of `A = C J`, from a sketch.

    Range finder on `l = k + oversample` columns: `Q = orth(A G)` (l JVPs, Gaussian `G`),
    `power_iterations` refinements `Q <- orth(A A^T Q)`, then the thin SVD of `Q^T A` (l
    VJPs): `A ~ Q Q^T A`, accurate when `s_{l+1}` is small next to `s_k` (each power
    iteration squares that ratio's effect).

    Returns:
        `LeadingDirections` with k columns.
    """
    _check_counts(k=k, oversample=oversample, power_iterations=power_iterations)
    if k == 0:
        raise ValueError("`k` must be >= 1.")
    problem = _problem(
        forward_func, inputs, output_metric, target, additional_forward_args,
        jacobian_method, internal_batch_size, _generator(seed, generator),
    )  # fmt: skip
    size = min(k + oversample, problem.rows.shape[1])
    basis = _left_basis(problem, size, power_iterations)
    projected = problem.vjps(basis.transpose(1, 2)).double()  # Q^T A (batch, l, n)
    _, singular, right_t = torch.linalg.svd(projected, full_matrices=False)
    keep = min(k, size)
    return LeadingDirections(
        singular_values=singular[:, :keep],
        right_vectors=right_t[:, :keep].transpose(1, 2).to(problem.inputs[0].dtype),
        input_shapes=_compat.feature_shapes(problem.inputs),
        is_inputs_tuple=problem.is_tuple,
        vjps=size * (1 + power_iterations),
        jvps=size * (1 + power_iterations),
    )
