"""SiMEC: random walks inside the equivalence class of an input (method.md §3).

Each step moves by `step_size` along a unit vector of the null space `N(x)` of the pullback
metric, so the output stays fixed to first order; the optional Gauss-Newton corrector removes
the second-order drift. Also home to the explicit null bases that the "eigenvector" direction
and the papers' parity mode need (small inputs only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec.explore.constraints import Box, as_box
from captum_simec.explore.corrector import Corrector
from captum_simec.explore.walk import (
    DirectionPolicy,
    ExampleRNG,
    StepView,
    Walk,
    WalkContext,
    run_walk,
)
from captum_simec.geometry.metrics import OutputMetric
from captum_simec.geometry.spectrum import PullbackSpectrum, unit

__all__ = [
    "DIRECTIONS",
    "MAX_BASIS_FEATURES",
    "check_basis_size",
    "dense_eigenbasis",
    "null_basis",
    "parity_domain",
    "pick",
    "simec",
]

DIRECTIONS = ("isotropic", "eigenvector")
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


def _signed(draw: Tensor) -> float:
    return 1.0 if draw.item() < 0.5 else -1.0


class NullPolicy(DirectionPolicy):
    """Unit steps in the null space: isotropic, a random null eigenvector, or parity.

    When the null space is one-dimensional the sign is kept continuous (`u . u_prev >= 0`)
    so that the walk traces the curve instead of jittering on it.
    """

    def __init__(self, direction: str, parity: bool, parity_split: int | None) -> None:
        self.direction = direction
        self.parity = parity
        self.parity_split = parity_split
        self.kind = "simec/parity" if parity else f"simec/{direction}"

    def noise(
        self, rng: ExampleRNG, rows: Tensor, spectrum: PullbackSpectrum, context: WalkContext
    ) -> Tensor:
        if self.direction == "isotropic" and not self.parity:
            return rng.normal(rows, spectrum.num_features, spectrum.factor)
        return rng.uniform(rows, 2, spectrum.factor)

    def _eigenvectors(self, spectrum: PullbackSpectrum, draws: Tensor) -> tuple[Tensor, Tensor]:
        directions = torch.zeros_like(spectrum.factor[:, 0, :])
        counts = torch.zeros(spectrum.batch_size, dtype=torch.long)
        for i in range(spectrum.batch_size):
            if self.parity:
                vectors, count = dense_eigenbasis(spectrum, i, self.parity_split)
                basis = vectors[:, :count]
            else:
                basis = null_basis(spectrum, i)
            counts[i] = basis.shape[1]
            if basis.shape[1] > 0:
                directions[i] = _signed(draws[i, 1]) * basis[:, pick(draws[i, 0], basis.shape[1])]
        return directions, counts

    def propose(self, spectrum: PullbackSpectrum, view: StepView, context: WalkContext) -> Tensor:
        if self.direction == "isotropic" and not self.parity:
            counts = spectrum.null_dim
            directions = unit(spectrum.project_null(view.noise)) * (counts > 0).unsqueeze(1)
        else:
            directions, counts = self._eigenvectors(spectrum, view.noise)
        backwards = (counts.to(directions.device) == 1) & (
            (directions * view.previous).sum(dim=1) < 0
        )
        directions = torch.where(backwards.unsqueeze(1), -directions, directions)
        return directions * context.step_size


def simec(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    *,
    steps: int = 1000,
    step_size: float = 0.05,
    output_metric: str | OutputMetric | Tensor | Callable[[Tensor], Tensor] = "euclidean",
    target: _compat.TargetType = None,
    additional_forward_args: Any = None,
    direction: str = "isotropic",
    domain: Box | tuple[Any, Any] | None = None,
    corrector: bool | Corrector = False,
    on_rank_change: str = "continue",
    max_drift: float | None = None,
    save_every: int = 1,
    seed: int | Sequence[int] | None = None,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
    jacobian_method: str = "auto",
    internal_batch_size: int | None = None,
    rtol: float | None = None,
    atol: float = 0.0,
    parity: bool = False,
    parity_split: int | None = None,
) -> Walk:
    """Random walk inside the equivalence class of each input (SiMEC).

    At each step the pullback metric `g = A^T A`, `A = C J`, is factorised at `x` (one
    batched Jacobian), a unit direction `u` of its null space `N(x)` is drawn and
    `x <- x + step_size * u`. The output metric's rows `C` are frozen at the start point, so
    the class walked is the level set of `C f` through `x_0` (for ``"euclidean"``: of `f`).

    Args:
        forward_func: the model (in eval mode) or a function of the inputs.
        inputs: start points, a tensor or tuple of tensors, batch first.
        steps: most steps per example.
        step_size: step length `delta` in input units.
        output_metric: "euclidean", "target", "margin", "topk", "fisher", an (m, m) PSD
            matrix, a callable or an `OutputMetric` (see `pullback_spectrum`).
        target: Captum target, for the metrics that need one.
        additional_forward_args: extra model arguments, as in Captum.
        direction: "isotropic" (a Gaussian vector projected onto `N`, normalised: uniform on
            the null sphere) or "eigenvector" (a random vector of an explicit orthonormal null
            basis with a random sign: the papers' choice; n <= 4096 only).
        domain: a `Box` (or a `(lower, upper)` pair) the walk must stay in; see
            `captum_simec.explore.constraints` for "freeze" versus "clamp".
        corrector: True or a `Corrector`: Gauss-Newton projection back onto the class after
            each step (one extra Jacobian per update, counted in `Walk.jacobian_evaluations`).
        on_rank_change: "continue", "warn" (`RankChangeWarning`) or "stop" (reason
            "rank_change") when the rank of the metric changes between two points.
        max_drift: stop an example once `||C (f(x) - f(x_0))||` exceeds this.
        save_every: keep every this-many points (start and end always kept).
        seed: base seed, example `i` using `seed + i` (and walking as it would alone with
            it), or one seed per example.
        generator: draws the base seed when `seed` is None.
        progress: tqdm bar over steps; None shows it only when stderr is a terminal.
        jacobian_method: Jacobian path (see `captum_simec.geometry.jacobian`).
        internal_batch_size: most (example, metric row) pairs per backward pass.
        rtol: relative rank tolerance; atol: absolute floor (see `pullback_spectrum`).
        parity: reproduce the papers' walk instead (not recommended): eigenvectors of the
            dense n x n metric by ascending eigenvalue, null ones chosen at random with a
            random sign, the box enforced by clamping, no corrector.
        parity_split: with `parity`, treat the first `parity_split` eigenvectors as null
            (the authors' MNIST code: 774 of 784) instead of splitting at the rank.

    Returns:
        A `Walk`; stop reasons "steps", "rank_change", "max_drift", "no_direction" (trivial
        null space) or "domain".

    Raises:
        ValueError: unknown `direction`, non-positive `steps` or `step_size`, a start point
            outside `domain`, "eigenvector" or parity with n > 4096, parity with a corrector.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r}; choose one of {DIRECTIONS}.")
    box = parity_domain(inputs, domain, parity, parity_split)
    if parity and corrector is not False:
        raise ValueError(
            "parity=True reproduces the papers' walk, which has no corrector: pass "
            "corrector=False (or drop parity to use the corrector)."
        )
    if direction == "eigenvector" and not parity:
        check_basis_size(inputs, "direction='eigenvector'")
    return run_walk(
        forward_func,
        inputs,
        NullPolicy(direction, parity, parity_split),
        steps=steps,
        step_size=step_size,
        output_metric=output_metric,
        target=target,
        additional_forward_args=additional_forward_args,
        domain=box,
        corrector=corrector,
        on_rank_change=on_rank_change,
        max_drift=max_drift,
        drift_reason="max_drift",
        save_every=save_every,
        seed=seed,
        generator=generator,
        progress=progress,
        jacobian_method=jacobian_method,
        internal_batch_size=internal_batch_size,
        rtol=rtol,
        atol=atol,
    )


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
