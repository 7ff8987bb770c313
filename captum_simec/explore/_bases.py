"""Explicit orthonormal bases for the "eigenvector" direction and the papers' parity mode.

The default walks never build a basis: they project Gaussian draws (O(n r) per step). The
"eigenvector" direction (a random vector of an explicit null basis) and the parity mode (the
eigenvectors of the dense n x n metric, as the authors' code) need one, O(n^2) memory and
O(n^3) time, so they are limited to n <= `MAX_BASIS_FEATURES` input features.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec.explore.constraints import Box, as_box
from captum_simec.geometry.spectrum import PullbackSpectrum

__all__ = [
    "MAX_BASIS_FEATURES",
    "check_basis_size",
    "dense_eigenbasis",
    "null_basis",
    "parity_domain",
    "pick",
    "signed",
]

#: most input features per example for which an explicit n x n basis is built.
MAX_BASIS_FEATURES = 4096


def check_basis_size(inputs: Tensor | tuple[Tensor, ...], what: str) -> int:
    """The flat input size n, or ValueError if an explicit basis of that size is too large."""
    n = sum(t[0].numel() for t in _compat.format_inputs(inputs))
    if n > MAX_BASIS_FEATURES:
        raise ValueError(
            f"{what} builds an explicit basis of the null space, O(n^2) memory and O(n^3) "
            f"time, and is limited to n <= {MAX_BASIS_FEATURES} input features; these inputs "
            f"have n = {n}: use direction='isotropic' (no basis needed)."
        )
    return n


def null_basis(spectrum: PullbackSpectrum, example: int) -> Tensor:
    """An orthonormal basis (n, d) of one example's null space (of its free coordinates).

    The full SVD of the retained right singular vectors `V_r` (n x r) completes them to an
    orthonormal basis; its last columns span the null space. Which basis of it one gets is
    arbitrary (that is the "eigenvector" mode's known dependence on the solver).
    """
    n = spectrum.num_features
    free = (
        torch.ones(n, dtype=torch.bool, device=spectrum.factor.device)
        if spectrum.free is None
        else spectrum.free[example]
    )
    rank = int(spectrum.rank[example])
    retained = spectrum.right_vectors[example, :, :rank][free].double()
    complement = torch.linalg.svd(retained, full_matrices=True).U[:, rank:]
    basis = complement.new_zeros(n, complement.shape[1])
    basis[free] = complement
    return basis.to(spectrum.factor.dtype)


def dense_eigenbasis(
    spectrum: PullbackSpectrum, example: int, split: int | None
) -> tuple[Tensor, int]:
    """Eigenvectors of the dense metric `g = A^T A` (n, n) by ascending eigenvalue (parity).

    This is the papers' O(n^3) construction, kept to reproduce their walks: the first
    `split` eigenvectors count as null (the authors' MNIST code uses 774 of 784), or the
    first `n - rank` when `split` is None.

    Returns:
        The eigenvectors as columns, and the number of them treated as null.
    """
    factor = spectrum.factor[example].double()
    _, vectors = torch.linalg.eigh(factor.T @ factor)
    count = spectrum.num_features - int(spectrum.rank[example]) if split is None else split
    return vectors.to(spectrum.factor.dtype), count


def pick(draw: Tensor, count: int) -> int:
    """An index in [0, count) from a uniform draw in [0, 1)."""
    return min(int(draw.item() * count), count - 1)


def signed(draw: Tensor) -> float:
    """+1 or -1 from a uniform draw in [0, 1)."""
    return 1.0 if draw.item() < 0.5 else -1.0


def parity_domain(
    inputs: Tensor | tuple[Tensor, ...],
    domain: Box | tuple[Any, Any] | None,
    parity: bool,
    parity_split: int | None,
) -> Box | None:
    """Checks the parity options and returns the box the walk stays in.

    The papers' walks (`parity=True`) build the dense n x n metric, so n is bounded, and they
    clip to the box: its constraint becomes "clamp".

    Raises:
        TypeError: a non-bool `parity`.
        ValueError: `parity_split` without parity or outside [0, n], parity with n > 4096.
    """
    if not isinstance(parity, bool):
        raise TypeError(f"`parity` must be a bool, got {type(parity).__name__}.")
    if parity_split is not None and not parity:
        raise ValueError("`parity_split` only applies with parity=True.")
    box = as_box(domain)
    if not parity:
        return box
    n = check_basis_size(inputs, "parity=True")
    if parity_split is not None and (
        isinstance(parity_split, bool)
        or not isinstance(parity_split, int)
        or not 0 <= parity_split <= n
    ):
        raise ValueError(
            f"`parity_split` must be an int in [0, n] = [0, {n}] (the number of eigenvectors "
            f"treated as null), got {parity_split!r}."
        )
    return None if box is None else Box(box.lower, box.upper, constraint="clamp")
