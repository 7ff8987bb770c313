"""The spectrum of the pullback metric `g = A^T A` from the thin factor `A = L^T J` (p x n).

With the thin SVD `A = U S V^T`, the eigenvalues of `g` are `s_k^2` on the right singular
vectors `v_k` and 0 on their orthogonal complement. Rank, range and null projections then
cost O(n r) per vector: the n x n matrix is never formed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec.geometry.tolerance import (
    default_rtol,
    warn_if_unresolved,
    working_dtype,
)

__all__ = ["PullbackSpectrum", "factorise", "unit"]

SOLVERS = ("auto", "gram", "svd")
#: most new draws for a null direction whose draw lay almost in the range space.
_REDRAWS = 64
# fields that `PullbackSpectrum.from_factor` computes or takes as arguments
_FACTORISATION_FIELDS = (
    "factor",
    "singular_values",
    "right_vectors",
    "rank",
    "tolerance",
    "free",
    "rtol",
    "atol",
    "solver",
)


def factorise(
    factor: Tensor,
    rtol: float | None = None,
    atol: float = 0.0,
    solver: str = "auto",
    noise_floor: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Singular values, right singular vectors, rank and tolerance of `A` (batch, p, n).

    The rank counts singular values above `max(rtol s_max, atol)`; `rtol=None` takes
    `default_rtol(p, dtype)` = `10 sqrt(p) eps(dtype)`, the error of the computed factor
    (see `captum_simec.geometry.tolerance`), and warns when a float16/bfloat16 factor leaves
    a decision within 3x of it. Where `s_max <= noise_floor` (batch,) the whole factor is
    rounding noise and the rank is 0.

    ``"gram"`` takes `eigh` of the p x p Gram matrix `A A^T` in float64 and `V = A^T U S^{-1}`;
    it resolves singular values down to about `sqrt(eps64) s_max`, so ``"auto"`` uses it for
    float32 and lower precision models and a float64 SVD for float64 ones.

    Returns:
        (singular values (batch, p) float64 descending, right vectors (batch, n, p) in float32
        or better with the columns beyond the rank set to zero, rank (batch,), tolerance
        (batch,)).
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver={solver!r}; choose one of {SOLVERS}.")
    if (rtol is not None and rtol < 0) or atol < 0:
        raise ValueError("`rtol` and `atol` must be non-negative.")
    default = rtol is None
    rtol = default_rtol(factor.shape[1], factor.dtype) if default else rtol
    work = factor.double()
    if solver == "auto":
        solver = "svd" if factor.dtype == torch.float64 else "gram"
    if solver == "gram":
        values, left = torch.linalg.eigh(work @ work.transpose(1, 2))
        singular = values.flip(-1).clamp_min(0).sqrt()
    else:
        _, singular, right_t = torch.linalg.svd(work, full_matrices=False)
    tolerance = torch.clamp(rtol * singular[:, 0], min=atol)
    if noise_floor is not None:
        tolerance = torch.where(singular[:, 0] <= noise_floor, noise_floor, tolerance)
    kept = singular > tolerance.unsqueeze(1)
    if default:
        warn_if_unresolved(singular, tolerance, factor.dtype)
    dtype = working_dtype(factor.dtype)
    if solver == "gram":
        inverse = torch.where(kept, 1.0 / singular.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
        # V^T = (U S^+)^T A: one (p x p)(p x n) product in float32 or better
        scaled = (left.flip(-1) * inverse.unsqueeze(1)).to(dtype)
        right = (scaled.transpose(1, 2) @ factor.to(dtype)).transpose(1, 2)
    else:
        right = (right_t.transpose(1, 2) * kept.unsqueeze(1)).to(dtype)
    return singular, right, kept.sum(dim=1), tolerance


@dataclass
class PullbackSpectrum:
    """Spectrum of `g = J^T G J` for a batch, with O(n r) projectors and per-feature scores.

    Vectors are accepted and returned either flat (batch, n) or in the input structure (a
    tensor or a tuple of tensors shaped like the inputs).

    Attributes:
        outputs: model outputs at the inputs (batch, *output_shape), detached.
        factor: `A = L^T J` (batch, p, n) in the model's dtype.
        singular_values: `s_k` (batch, p), float64, descending; `g`'s eigenvalues are `s_k^2`.
        right_vectors: `v_k` (batch, n, p), formed in float32 or better and stored in the
            model's dtype; columns beyond the rank are zero.
        rank: `r` per example (batch,); the null dimension is `n - r`. Read it with
            `spectral_gap` and `rank_margin`, which say how clear each decision was.
        tolerance: the singular value threshold used per example (batch,).
        input_shapes: per-example shape of each input.
        is_inputs_tuple: whether the inputs were given as a tuple.
        target: flat target index per example, or None.
        jacobian_method: the Jacobian path that ran.
        fallback_reason: why that path replaced the one asked for (``"auto"`` included:
            e.g. the vmap-based path failed on this model), or None.
        free: bool mask (batch, n) of coordinates allowed to move, or None (all free).
        rtol, atol, solver: the rank tolerance and solver used (kept for `restrict`).
    """

    outputs: Tensor
    factor: Tensor
    singular_values: Tensor
    right_vectors: Tensor
    rank: Tensor
    tolerance: Tensor
    input_shapes: tuple[torch.Size, ...]
    is_inputs_tuple: bool
    target: Tensor | None = None
    jacobian_method: str = "auto"
    fallback_reason: str | None = None
    free: Tensor | None = None
    rtol: float | None = None
    atol: float = 0.0
    solver: str = "auto"

    @classmethod
    def from_factor(
        cls,
        factor: Tensor,
        rtol: float | None = None,
        atol: float = 0.0,
        solver: str = "auto",
        free: Tensor | None = None,
        noise_floor: Tensor | None = None,
        **fields: Any,
    ) -> PullbackSpectrum:
        """Factorises `A` (batch, p, n), zeroing the columns of coordinates not `free`.

        `noise_floor` (batch,): where `s_max` is below it the rank is 0 (see `factorise`).
        """
        if free is not None:
            factor = factor * free.unsqueeze(1)
        singular, right, rank, tolerance = factorise(factor, rtol, atol, solver, noise_floor)
        if free is not None:
            right = right * free.unsqueeze(2)  # exact zeros on frozen coordinates
        return cls(
            factor=factor,
            singular_values=singular,
            right_vectors=right.to(factor.dtype),
            rank=rank,
            tolerance=tolerance,
            free=free,
            rtol=rtol,
            atol=atol,
            solver=solver,
            **fields,
        )

    def restrict(self, free: Tensor) -> PullbackSpectrum:
        """The spectrum of `J` restricted to the `free` coordinates (batch, n): no new Jacobian.

        The null space becomes that of `J` on the free coordinates, so every projected vector
        leaves the frozen coordinates unchanged. An example of rank 0 keeps rank 0 (freezing
        coordinates cannot turn rounding noise into a direction).
        """
        if self.free is not None:
            free = free & self.free
        fields = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in _FACTORISATION_FIELDS
        }
        floor = torch.where(self.rank == 0, self.tolerance, 0.0)
        return PullbackSpectrum.from_factor(
            self.factor, self.rtol, self.atol, self.solver, free, floor, **fields
        )

    @property
    def batch_size(self) -> int:
        return self.factor.shape[0]

    @property
    def num_features(self) -> int:
        """n, the flattened input dimension per example."""
        return self.factor.shape[2]

    @property
    def null_dim(self) -> Tensor:
        """Dimension of the null space (of the free coordinates) per example."""
        free = self.num_features if self.free is None else self.free.sum(dim=1)
        return free - self.rank

    @property
    def eigenvalues(self) -> Tensor:
        """The p largest eigenvalues of `g` (batch, p), float64, descending."""
        return self.singular_values.square()

    def full_eigenvalues(self) -> Tensor:
        """All n eigenvalues of `g` (batch, n), descending, zeros included (small n only)."""
        n, p = self.num_features, self.singular_values.shape[1]
        if n > 100_000:
            raise ValueError(
                f"full_eigenvalues() would hold {n} values per example; use `eigenvalues`."
            )
        values = self.eigenvalues[:, : min(p, n)]
        pad = values.new_zeros(self.batch_size, n - values.shape[1])
        return torch.cat([values, pad], dim=1)

    @property
    def smallest_retained(self) -> Tensor:
        """Smallest singular value counted in the rank (0 where the rank is 0)."""
        index = (self.rank - 1).clamp_min(0).unsqueeze(1)
        value = self.singular_values.gather(1, index).squeeze(1)
        return torch.where(self.rank > 0, value, torch.zeros_like(value))

    @property
    def largest_discarded(self) -> Tensor:
        """Largest singular value below the tolerance (0 where none was computed)."""
        p = self.singular_values.shape[1]
        index = self.rank.clamp_max(p - 1).unsqueeze(1)
        value = self.singular_values.gather(1, index).squeeze(1)
        return torch.where(self.rank < p, value, torch.zeros_like(value))

    @property
    def spectral_gap(self) -> Tensor:
        """`s_r / s_{r+1}` (inf when nothing was discarded, 0 when the rank is 0)."""
        smallest, largest = self.smallest_retained, self.largest_discarded
        ratio = smallest / largest.clamp_min(torch.finfo(largest.dtype).tiny)
        gap = torch.where(largest > 0, ratio, torch.inf)
        return torch.where(self.rank > 0, gap, torch.zeros_like(gap))

    @property
    def rank_margin(self) -> Tensor:
        """`min(s_r / tol, tol / s_{r+1})` (batch,), float64, >= 1: how far the tolerance
        would have to move to change the rank (inf when no singular value constrains it).

        A margin of 10 means a tolerance 10x higher or lower gives the same rank; near 1 the
        rank is a close call that another dtype, CPU or tolerance may decide differently.
        """
        tiny = torch.finfo(torch.float64).tiny
        tolerance = self.tolerance.clamp_min(tiny)
        above = torch.where(self.rank > 0, self.smallest_retained / tolerance, torch.inf)
        below = torch.where(
            self.largest_discarded > 0,
            tolerance / self.largest_discarded.clamp_min(tiny),
            torch.inf,
        )
        return torch.minimum(above, below)

    def summary(self) -> str:
        """Rank, null dimension, spectral gap and rank margin per example, in one line each."""
        lines = []
        for i in range(self.batch_size):
            lines.append(
                f"example {i}: rank {int(self.rank[i])}, null dimension "
                f"{int(self.null_dim[i])}, spectral gap {float(self.spectral_gap[i]):.3g}, "
                f"rank margin {float(self.rank_margin[i]):.3g}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"PullbackSpectrum(batch={self.batch_size}, p={self.factor.shape[1]}, "
            f"n={self.num_features}, rank={self.rank.tolist()}, "
            f"spectral_gap={[float(f'{g:.3g}') for g in self.spectral_gap.tolist()]}, "
            f"dtype={self.factor.dtype})"
        )

    # ----- structure -----
    def flatten(self, vectors: Tensor | tuple[Tensor, ...]) -> Tensor:
        """Flattens input-structured vectors to (batch, n); a (batch, n) tensor passes through."""
        if isinstance(vectors, Tensor) and vectors.shape == (self.batch_size, self.num_features):
            return vectors
        parts = _compat.format_inputs(vectors, name="vectors")
        if tuple(part.shape[1:] for part in parts) != self.input_shapes:
            raise ValueError(
                f"`vectors` of shapes {[tuple(p.shape) for p in parts]} match neither (batch, n) "
                f"= {(self.batch_size, self.num_features)} nor the inputs' per-example shapes "
                f"{[tuple(s) for s in self.input_shapes]}."
            )
        return _compat.flatten_features(parts)

    def unflatten(self, flat: Tensor) -> Tensor | tuple[Tensor, ...]:
        """Reshapes (batch, n) to the input structure (a tensor, or a tuple for tuple inputs)."""
        shaped = _compat.unflatten_features(flat, self.input_shapes)
        return _compat.format_output(self.is_inputs_tuple, shaped)

    # ----- projections -----
    def _restrict(self, flat: Tensor) -> Tensor:
        return flat if self.free is None else flat * self.free

    def _range_coordinates(self, flat: Tensor) -> Tensor:
        """`V_r^T z` (batch, p), computed in float32 or better."""
        dtype = working_dtype(flat.dtype)
        vectors = self.right_vectors.to(dtype)
        return (vectors.transpose(1, 2) @ flat.to(dtype).unsqueeze(2)).squeeze(2)

    def project_range(self, vectors: Tensor | tuple[Tensor, ...]) -> Tensor:
        """`P_R z = V_r V_r^T z` (batch, n): the part of z that moves the output."""
        flat = self.flatten(vectors)
        coords = self._range_coordinates(flat)
        range_part = self.right_vectors.to(coords.dtype) @ coords.unsqueeze(2)
        return range_part.squeeze(2).to(flat.dtype)

    def project_null(self, vectors: Tensor | tuple[Tensor, ...]) -> Tensor:
        """`P_N z = z - P_R z` (batch, n), restricted to the free coordinates if any."""
        flat = self._restrict(self.flatten(vectors))
        return flat - self.project_range(flat)

    def null_direction(
        self, noise: Tensor, redraw: Callable[[Tensor], Tensor] | None = None
    ) -> Tensor:
        """Unit null directions `P_N z / ||P_N z||` (batch, n) from draws `z` (batch, n).

        Gaussian `z` gives directions uniform on the null sphere. Examples whose null space
        is trivial get the zero vector. A draw that lies almost in the range space, with
        `||P_N z|| <= sqrt(eps) ||z||`, has a null part made of the projection's rounding
        errors, whose direction is not in the null space: `redraw(mask)` returns new draws
        for the examples in the bool `mask` (batch,), written into `noise` (up to
        `_REDRAWS` times); without `redraw` (or if every redraw fails) they get zero.
        """
        null = self.project_null(noise)
        weak = self._null_is_rounding(noise, null)
        for _ in range(_REDRAWS if redraw is not None else 0):
            if not weak.any():
                break
            noise[weak] = redraw(weak).to(noise.dtype)
            null = self.project_null(noise)
            weak = self._null_is_rounding(noise, null)
        return _normalise(null, (self.null_dim > 0) & ~weak)

    def _null_is_rounding(self, noise: Tensor, null: Tensor) -> Tensor:
        """Draws whose null part `null` is below `sqrt(eps) ||z||` (batch,): rounding noise."""
        size = self._restrict(self.flatten(noise)).norm(dim=1)
        eps = torch.finfo(self.right_vectors.dtype).eps
        return (self.null_dim > 0) & (null.norm(dim=1) <= math.sqrt(eps) * size)

    def range_direction(self, coefficients: Tensor, weighted: bool = False) -> Tensor:
        """Unit range directions `V c / ||V c||` (batch, n) from coefficients `c` (batch, p).

        With `weighted`, `c_k` is scaled by `s_k` first (favouring fast directions). Examples
        of rank 0 get the zero vector.
        """
        if weighted:
            coefficients = coefficients * self.singular_values.to(coefficients.dtype)
        vectors = self.right_vectors.to(coefficients.dtype)
        return _normalise((vectors @ coefficients.unsqueeze(2)).squeeze(2), self.rank > 0)

    def _gaussian(self, generator: torch.Generator | None, size: int) -> Tensor:
        return torch.randn(
            self.batch_size,
            size,
            generator=generator,
            dtype=self.factor.dtype,
            device=self.factor.device,
        )

    def sample_null(self, generator: torch.Generator | None = None) -> Tensor:
        """Unit vectors uniform on the null sphere (batch, n) (see `null_direction`)."""
        n = self.num_features
        return self.null_direction(
            self._gaussian(generator, n), lambda rows: self._gaussian(generator, n)[rows]
        )

    def sample_range(
        self, generator: torch.Generator | None = None, weighted: bool = False
    ) -> Tensor:
        """Unit vectors in the range space (batch, n), isotropic or weighted by `s_k`.

        Examples of rank 0 get the zero vector (see `range_direction`).
        """
        coefficients = self._gaussian(generator, self.right_vectors.shape[2])
        return self.range_direction(coefficients, weighted)

    # ----- per-feature scores (method.md section 4) -----
    def relevance(self) -> Tensor:
        """`rho_i = sqrt(g_ii) = ||A e_i||` (batch, n): output motion per unit move of feature i."""
        return self.factor.double().square().sum(dim=1).sqrt().to(self.factor.dtype)

    def robustness(self) -> Tensor:
        """`kappa_i = ||P_N e_i||^2 = 1 - sum_{k<=r} v_ki^2` in [0, 1] (batch, n).

        The share of a move along feature i that the equivalence class absorbs; frozen
        coordinates (see `free`) score 0. `sum_i (1 - kappa_i) = r`.
        """
        leverage = self.right_vectors.square().sum(dim=2)
        score = (1.0 - leverage).clamp(0.0, 1.0)
        score = score if self.free is None else score * self.free
        return score.to(self.factor.dtype)


def unit(vectors: Tensor) -> Tensor:
    """Rows scaled to unit norm; zero rows stay zero."""
    norm = vectors.norm(dim=1, keepdim=True)
    return torch.where(norm > 0, vectors / norm.clamp_min(torch.finfo(vectors.dtype).tiny), 0.0)


def _normalise(direction: Tensor, valid: Tensor) -> Tensor:
    """Unit rows where `valid` (batch,), zero rows elsewhere."""
    return torch.where(valid.unsqueeze(1), unit(direction), 0.0)
