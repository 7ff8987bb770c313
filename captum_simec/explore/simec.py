"""SiMEC: random walks inside the equivalence class of an input (method.md §3).

Each step moves by `step_size` along a unit vector of the null space `N(x)` of the pullback
metric, so the output stays fixed to first order; the optional Gauss-Newton corrector removes
the second-order drift. The steps come from `NullPolicy` (`captum_simec.explore._directions`),
the loop from `captum_simec.explore._walker`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec._outputs import OutputSpec, select_output
from captum_simec.explore._bases import check_basis_size, parity_domain
from captum_simec.explore._directions import NullPolicy
from captum_simec.explore._walker import run_walk
from captum_simec.explore.constraints import Box
from captum_simec.explore.corrector import Corrector
from captum_simec.explore.options import DEFAULTS, WalkOptions
from captum_simec.explore.walk import Walk
from captum_simec.geometry.metrics import MetricSpec

__all__ = ["simec"]


def simec(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    *,
    steps: int = DEFAULTS.steps,
    step_size: float = DEFAULTS.step_size,
    output_metric: MetricSpec = DEFAULTS.output_metric,
    target: _compat.TargetType = DEFAULTS.target,
    additional_forward_args: Any = DEFAULTS.additional_forward_args,
    direction: str = "isotropic",
    domain: Box | tuple[Any, Any] | None = DEFAULTS.domain,
    corrector: bool | Corrector = DEFAULTS.corrector,
    on_rank_change: str = DEFAULTS.on_rank_change,
    max_drift: float | None = DEFAULTS.max_drift,
    save_every: int = DEFAULTS.save_every,
    seed: int | Sequence[int] | None = DEFAULTS.seed,
    generator: torch.Generator | None = DEFAULTS.generator,
    progress: bool | None = DEFAULTS.progress,
    jacobian_method: str = DEFAULTS.jacobian_method,
    internal_batch_size: int | None = DEFAULTS.internal_batch_size,
    rtol: float | None = DEFAULTS.rtol,
    atol: float = DEFAULTS.atol,
    free: Tensor | tuple[Tensor, ...] | None = DEFAULTS.free,
    output: OutputSpec = None,
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
        free: which coordinates may move (the others stay fixed, e.g. padded tokens): a bool
            tensor broadcastable to the inputs, such as (batch, T, 1) for whole positions of
            (batch, T, H) embeddings, or flat (batch, n). None: all.
        output: the tensor to explain when the model returns a ModelOutput, dict or tuple:
            a key or attribute (``"logits"``), a position, or a callable of the output.
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
    policy = NullPolicy(direction, parity, parity_split)
    box = parity_domain(inputs, domain, parity, parity_split)
    if parity and (corrector is not False or free is not None):
        raise ValueError(
            "parity=True reproduces the papers' walk, which has no corrector and moves every "
            "coordinate: pass corrector=False and free=None (or drop parity)."
        )
    if direction == "eigenvector" and not parity:
        check_basis_size(inputs, "direction='eigenvector'")
    options = WalkOptions.collect(locals(), domain=box)
    return run_walk(select_output(forward_func, output), inputs, policy, options)
