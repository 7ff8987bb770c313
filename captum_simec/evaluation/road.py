"""ROAD: RemOve And Debias (Rong et al. 2022), with noisy linear imputation.

Deletion curves that set removed features to a constant let the shape of the removed set
leak class information, and the model sees images unlike its training data. ROAD replaces
the removed features by an imputation from the features that remain, plus a little noise:

- images (Rong et al.'s noisy linear imputation): every removed pixel is the weighted mean
  of its 8 neighbours (weight 1/6 for the 4 direct ones, 1/12 for the diagonal ones, the
  weights of neighbours outside the image dropped), removed or not. On the removed set `R`
  this is the linear system `s_i y_i - sum_{j in R} w_ij y_j = sum_{j not in R} w_ij x_j`
  (`s_i` = the weights of pixel i's neighbours), a graph Laplacian restricted to `R`:
  symmetric positive definite wherever a plane keeps a pixel, solved by batched conjugate
  gradients (matrix-free, one 3x3 convolution per iteration). A plane with no pixel left is
  filled with zeros;
- tabular data (`GaussianImputer`): the conditional mean of the removed features given the
  others under a Gaussian fitted to reference data, `mu_R + S_RK S_KK^-1 (x_K - mu_K)`.

Gaussian noise of standard deviation `noise_std` is added to the imputed values, which are
then clipped to the domain. MoRF removes the most relevant features first (a faithful map
drops the target score fast: lower AUC is better), LeRF the least relevant first (higher is
better).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_simec import _compat
from captum_simec.evaluation._common import (
    InputsType,
    check_domain,
    check_output_transform,
    curve_scores,
)
from captum_simec.evaluation.perturbation import (
    PerturbationCurve,
    feature_order,
    flat_pair,
    rank_positions,
)
from captum_simec.explore.constraints import Box

__all__ = [
    "NEIGHBOUR_WEIGHTS",
    "ROAD_FRACTIONS",
    "ROAD_ORDERS",
    "GaussianImputer",
    "default_imputer",
    "linear_imputation",
    "road_curve",
]

ROAD_ORDERS = ("morf", "lerf")
ROAD_FRACTIONS = tuple(k / 10 for k in range(10))
#: Rong et al.'s neighbour weights: 1/6 for direct neighbours, 1/12 for diagonal ones.
NEIGHBOUR_WEIGHTS = torch.tensor(
    [[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]], dtype=torch.float64
)

Imputer = Callable[[Tensor, Tensor], Tensor]


def _neighbour_sum(planes: Tensor) -> Tensor:
    """`sum_j w_ij v_j` over the in-image neighbours of every pixel of planes (P, 1, H, W)."""
    kernel = NEIGHBOUR_WEIGHTS.to(planes).reshape(1, 1, 3, 3)
    return F.conv2d(planes, kernel, padding=1)


def _conjugate_gradients(
    operator: Callable[[Tensor], Tensor], right: Tensor, tolerance: float, iterations: int
) -> Tensor:
    """Solves `operator(y) = right` for a batch of SPD systems (P, ...), each on its own."""
    dims = tuple(range(1, right.dim()))
    solution = torch.zeros_like(right)
    residual = right.clone()
    direction = residual.clone()
    norm = residual.square().sum(dim=dims, keepdim=True)
    goal = tolerance**2 * norm.clamp_min(torch.finfo(right.dtype).tiny)
    for _ in range(iterations):
        if bool((norm <= goal).all()):
            break
        image = operator(direction)
        curvature = (direction * image).sum(dim=dims, keepdim=True)
        step = torch.where(curvature > 0, norm / curvature.clamp_min(1e-300), 0.0)
        solution = solution + step * direction
        residual = residual - step * image
        new_norm = residual.square().sum(dim=dims, keepdim=True)
        direction = residual + torch.where(norm > 0, new_norm / norm.clamp_min(1e-300), 0.0) * (
            direction
        )
        norm = new_norm
    return solution


def linear_imputation(x: Tensor, removed: Tensor, tolerance: float = 1e-10) -> Tensor:
    """Rong et al.'s linear imputation of the `removed` pixels of images (module docstring).

    Args:
        x: images (P, H, W) or (P, C, H, W); each channel is imputed on its own.
        removed: bool mask of the same shape.
        tolerance: relative residual at which conjugate gradients stop.

    Returns:
        `x` with its removed pixels replaced by the imputation (same shape and dtype).
    """
    if x.dim() < 3:
        raise ValueError(
            f"Linear (neighbour) imputation needs images (batch, [channels,] height, width); got "
            f"shape {tuple(x.shape)}. For tabular data pass imputer=GaussianImputer(train_x)."
        )
    height, width = x.shape[-2:]
    planes = x.reshape(-1, 1, height, width).double()
    mask = removed.reshape(planes.shape).double()
    weights = _neighbour_sum(torch.ones_like(planes[:1]))

    def operator(y: Tensor) -> Tensor:
        return mask * (weights * y - _neighbour_sum(mask * y))

    right = mask * _neighbour_sum((1 - mask) * planes)
    filled = _conjugate_gradients(operator, right, tolerance, height * width)
    empty = (mask.flatten(1) == 1).all(dim=1).reshape(-1, 1, 1, 1)
    filled = torch.where(empty, 0.0, filled)
    imputed = torch.where(mask.bool(), filled, planes)
    return imputed.reshape(x.shape).to(x.dtype)


class GaussianImputer:
    """Conditional-mean imputation of tabular features under a Gaussian fitted to `reference`.

    For removed features `R` and kept ones `K`: `x_R = mu_R + S_RK S_KK^-1 (x_K - mu_K)`,
    with the mean `mu` and covariance `S` of the reference rows (a ridge of `ridge * tr S / d`
    keeps `S_KK` invertible). Removing everything gives `mu`.

    Args:
        reference: reference data (N, *feature_shape), e.g. the training inputs.
        ridge: relative ridge added to the covariance's diagonal.
    """

    def __init__(self, reference: Tensor, ridge: float = 1e-6) -> None:
        if not isinstance(reference, Tensor) or reference.shape[0] < 2:
            raise ValueError("`reference` must be a tensor of at least two rows (N, ...).")
        flat = reference.detach().reshape(reference.shape[0], -1).double()
        self.mean = flat.mean(dim=0)
        centred = flat - self.mean
        covariance = centred.T @ centred / (flat.shape[0] - 1)
        jitter = ridge * covariance.diagonal().mean().clamp_min(1e-12)
        self.covariance = covariance + jitter * torch.eye(flat.shape[1], dtype=torch.float64)

    def __call__(self, x: Tensor, removed: Tensor) -> Tensor:
        """`x` (P, *feature_shape) with its `removed` features imputed."""
        flat = x.reshape(x.shape[0], -1).double()
        if flat.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"GaussianImputer was fitted on {self.mean.shape[0]} features, got {flat.shape[1]}."
            )
        gone = removed.reshape(flat.shape)
        kept = (~gone).double()
        mean, covariance = self.mean.to(flat.device), self.covariance.to(flat.device)
        # S_KK on the kept block, identity on the removed one: one batched solve for all rows
        system = covariance * (kept.unsqueeze(2) * kept.unsqueeze(1)) + torch.diag_embed(
            gone.double()
        )
        weights = torch.linalg.solve(system, ((flat - mean) * kept).unsqueeze(2)).squeeze(2)
        conditional = mean + (covariance @ (weights * kept).unsqueeze(2)).squeeze(2)
        return torch.where(gone, conditional, flat).reshape(x.shape).to(x.dtype)


def default_imputer(parts: tuple[Tensor, ...]) -> Imputer | None:
    """`linear_imputation` for (batch, channels, height, width) images, else None."""
    return linear_imputation if all(x.dim() == 4 for x in parts) else None


def _check_road(order: str, fractions: Sequence[float], noise_std: float, transform: Any) -> None:
    if order not in ROAD_ORDERS:
        raise ValueError(f"order={order!r}; choose one of {ROAD_ORDERS}.")
    values = list(fractions)
    if not values or any(not 0 <= f < 1 for f in values) or values != sorted(values):
        raise ValueError(
            f"`fractions` must be ascending values in [0, 1), got {fractions!r} (removing "
            "every feature leaves nothing to impute from)."
        )
    if not (isinstance(noise_std, float | int) and noise_std >= 0):
        raise ValueError(f"`noise_std` must be a non-negative number, got {noise_std!r}.")
    check_output_transform(transform)


def _impute(
    parts: tuple[Tensor, ...],
    points: Tensor,
    removed: Tensor,
    imputer: Imputer,
    noise: tuple[float, torch.Generator],
    domain: tuple[Any, Any] | None,
) -> Tensor:
    """Imputed flat points (k, n): each input imputed on its own, noise added, clipped."""
    shapes = _compat.feature_shapes(parts)
    pieces = zip(
        _compat.unflatten_features(points, shapes),
        _compat.unflatten_features(removed, shapes),
        strict=True,
    )
    imputed = _compat.flatten_features(tuple(imputer(p, r) for p, r in pieces))
    std, generator = noise
    jitter = std * torch.randn(imputed.shape, generator=generator, dtype=imputed.dtype)
    imputed = torch.where(removed, imputed + jitter.to(imputed.device), imputed)
    if domain is not None:
        imputed = Box(*domain).bind(shapes, imputed.dtype, imputed.device).clamp(imputed)
    return imputed


def road_curve(
    forward_func: Callable[..., Tensor],
    inputs: InputsType,
    attributions: InputsType,
    target: _compat.TargetType = None,
    *,
    order: str = "morf",
    fractions: Sequence[float] = ROAD_FRACTIONS,
    imputer: Imputer | None = None,
    noise_std: float = 0.01,
    domain: tuple[Any, Any] | None = None,
    additional_forward_args: Any = None,
    output_transform: str | Callable[[Tensor], Tensor] = "softmax",
    seed: int = 0,
    batch_size: int = 512,
) -> PerturbationCurve:
    """ROAD curve of `attributions`: the target score as features are removed and imputed.

    At each fraction `q`, the first `round(q n)` features of `feature_order(attributions)`
    (MoRF) or of its reverse (LeRF) are removed and imputed (module docstring).

    Args:
        forward_func: the model.
        inputs: a tensor or tuple of tensors, batch first.
        attributions: maps in the structure of `inputs` (larger = more relevant).
        target: Captum target; None uses the model's predicted class at `inputs`.
        order: ``"morf"`` (most relevant first; lower AUC is better) or ``"lerf"`` (least
            relevant first; higher is better).
        fractions: ascending removal fractions in [0, 1).
        imputer: `fn(x, removed) -> x` per input; default `linear_imputation` for
            (batch, channels, height, width) images.
        noise_std: standard deviation of the noise added to imputed values (input units).
        domain: `(lo, hi)`; imputed values are clipped to it.
        additional_forward_args, output_transform, seed, batch_size: as in
            `perturbation_curve`.

    Returns:
        A `PerturbationCurve` with mode ``"road_morf"`` or ``"road_lerf"`` and baseline
        ``"road"``; its `auc` is the mean score over `fractions`.
    """
    _check_road(order, fractions, noise_std, output_transform)
    check_domain(domain)
    parts = _compat.format_inputs(inputs)
    imputer = default_imputer(parts) if imputer is None else imputer
    if imputer is None:
        raise ValueError(
            "ROAD's default neighbour imputation needs (batch, channels, height, width) images; "
            "for tabular or sequence inputs pass imputer=GaussianImputer(reference_inputs) "
            "(images of another layout: imputer=linear_imputation)."
        )
    args = _compat.format_additional_forward_args(additional_forward_args) or ()
    generator = torch.Generator().manual_seed(seed)
    x, flat_attributions = flat_pair(parts, attributions)
    signed = flat_attributions if order == "morf" else -flat_attributions
    position = rank_positions(feature_order(signed, generator))
    batch, n = x.shape
    counts = [round(q * n) for q in fractions]
    removed = torch.stack([position < c for c in counts], dim=1).reshape(-1, n)
    points = x.repeat_interleave(len(counts), dim=0)
    imputed = _impute(parts, points, removed, imputer, (float(noise_std), generator), domain)
    points = imputed.reshape(batch, len(counts), n)
    scores = curve_scores(forward_func, parts, args, target, points, output_transform, batch_size)
    return PerturbationCurve(
        fractions=(torch.tensor(counts, dtype=torch.float64) / n).to(x.device),
        scores=scores,
        mode=f"road_{order}",
        baseline="road",
    )
