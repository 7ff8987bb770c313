"""Gauss-Newton corrector: pulls a SiMEC point back onto its class after a predictor step.

A first-order null step leaves the level set by O(step^2). With the walk's metric rows `C`
(so that `A = C J`) the residual measured in the metric is `r = C (f(x) - f(x_0))`, and the
Gauss-Newton update is

    x <- x - A^+ r,    A^+ = V S^{-1} U^T = V S^{-2} V^T A^T,

taken from the thin SVD that the walk computes anyway, restricted to the free coordinates
(those not on a bound of the domain). Each update costs one more Jacobian, at the corrected
point; that Jacobian is then reused by the next predictor step, so a step whose residual is
already below the tolerance costs nothing extra.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from captum_simec.geometry.spectrum import PullbackSpectrum

__all__ = ["Corrector", "as_corrector", "correct", "gauss_newton_step"]


@dataclass(frozen=True)
class Corrector:
    """Settings of the Gauss-Newton corrector.

    Args:
        max_iterations: most updates per step (1 to 3 usually suffice: the convergence is
            quadratic).
        tolerance: stop once `||C (f(x) - f(x_0))||` is at most this; None means
            `100 * eps(dtype) * max(1, ||C f(x_0)||)` per example.
    """

    max_iterations: int = 3
    tolerance: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_iterations, bool) or not isinstance(self.max_iterations, int):
            raise TypeError("Corrector `max_iterations` must be an int.")
        if self.max_iterations < 1:
            raise ValueError("Corrector `max_iterations` must be >= 1.")
        if self.tolerance is not None and not self.tolerance >= 0:
            raise ValueError("Corrector `tolerance` must be >= 0 (or None for the default).")

    def tolerances(self, start_level: Tensor, dtype: torch.dtype) -> Tensor:
        """Residual tolerance per example, from `||C f(x_0)||` (batch,)."""
        if self.tolerance is not None:
            return torch.full_like(start_level, self.tolerance, dtype=torch.float64)
        return 100 * torch.finfo(dtype).eps * start_level.double().clamp_min(1.0)


def as_corrector(corrector: bool | Corrector) -> Corrector | None:
    """`True` gives the default `Corrector()`, `False` none; a `Corrector` passes through."""
    if isinstance(corrector, Corrector):
        return corrector
    if isinstance(corrector, bool):
        return Corrector() if corrector else None
    raise TypeError(f"`corrector` must be a bool or a Corrector, got {type(corrector).__name__}.")


def gauss_newton_step(spectrum: PullbackSpectrum, residual: Tensor) -> Tensor:
    """`-A^+ r` (batch, n) for residuals `r` (batch, p) in the metric's coordinates.

    Uses only the retained singular triplets (`A^+ = V_r S_r^{-2} V_r^T A^T`), so the update
    lies in the range space of the (possibly restricted) factor.
    """
    factor = spectrum.factor.double()
    right = spectrum.right_vectors.double()
    singular = spectrum.singular_values
    kept = torch.arange(singular.shape[1], device=singular.device) < spectrum.rank.unsqueeze(1)
    tiny = torch.finfo(torch.float64).tiny
    inverse = torch.where(kept, 1.0 / singular.square().clamp_min(tiny), 0.0)
    pulled = (factor.transpose(1, 2) @ residual.double().unsqueeze(2)).squeeze(2)
    coefficients = (right.transpose(1, 2) @ pulled.unsqueeze(2)).squeeze(2) * inverse
    return -(right @ coefficients.unsqueeze(2)).squeeze(2).to(spectrum.factor.dtype)


def correct(
    x: Tensor,
    spectrum: PullbackSpectrum,
    settings: Corrector,
    tolerance: Tensor,
    residual: Callable[[PullbackSpectrum], Tensor],
    evaluate: Callable[[Tensor], PullbackSpectrum],
    restrict: Callable[[PullbackSpectrum, Tensor], PullbackSpectrum],
    advance: Callable[[Tensor, Tensor], Tensor],
) -> tuple[Tensor, PullbackSpectrum, Tensor]:
    """Gauss-Newton iterations from `x` until the residual is below `tolerance`.

    Args:
        x: points (batch, n) after the predictor step.
        spectrum: the spectrum at `x` (its outputs give the residual).
        settings: the corrector's settings.
        tolerance: residual tolerance per example (batch,).
        residual: `C (f(x) - f(x_0))` (batch, p) from a spectrum.
        evaluate: the spectrum at new points (one Jacobian).
        restrict: the spectrum restricted to the coordinates the update may move.
        advance: applies an update inside the domain.

    Returns:
        The corrected points, the spectrum there, and the updates applied per example.
    """
    iterations = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    for _ in range(settings.max_iterations):
        current = residual(spectrum)
        todo = current.double().norm(dim=1) > tolerance
        if not todo.any():
            break
        update = gauss_newton_step(restrict(spectrum, x), current) * todo.unsqueeze(1)
        x = advance(x, update)
        spectrum = evaluate(x)
        iterations += todo
    return x, spectrum, iterations
