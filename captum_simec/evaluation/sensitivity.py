"""Max-sensitivity (Yeh et al. 2019): how much a map changes under small input perturbations.

`SENS_max(x) = max_{||d||_inf <= r} ||a(x + d) - a(x)|| / ||a(x)||`, estimated by Captum's
`sensitivity_max` over uniform draws in the L-inf ball of radius `r`, clipped to the domain.
The ratio to `||a(x)||` makes maps of different scales comparable; lower is more stable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from captum.metrics import sensitivity_max
from torch import Tensor

from captum_simec.evaluation._common import InputsType, check_domain

__all__ = ["SENSITIVITY_RADIUS", "max_sensitivity"]

#: default L-inf radius, relative to the inputs' value range (or the domain's width).
SENSITIVITY_RADIUS = 0.02


def max_sensitivity(
    explanation: Callable[[Tensor, Any], InputsType],
    inputs: Tensor,
    target: Any = None,
    *,
    radius: float = SENSITIVITY_RADIUS,
    domain: tuple[float, float] | None = None,
    samples: int = 5,
    seed: int = 0,
) -> Tensor:
    """Max-sensitivity of `explanation` at each example (batch,).

    Args:
        explanation: `fn(inputs, target) -> map` (a tensor in, a tensor out).
        inputs: a batch of inputs (one tensor).
        target: passed to `explanation` (expanded per draw by Captum).
        radius: L-inf radius relative to the domain's width (or the inputs' value range
            without a domain).
        domain: `(lo, hi)`; perturbed inputs are clipped to it.
        samples: perturbations drawn per example.
        seed: seeds the perturbations.

    Returns:
        The largest relative change of the map per example, a tensor (batch,).
    """
    check_domain(domain)
    if not (isinstance(radius, float | int) and radius > 0):
        raise ValueError(f"`radius` must be a positive number, got {radius!r}.")
    generator = torch.Generator().manual_seed(seed)
    width = domain[1] - domain[0] if domain is not None else inputs.max() - inputs.min()
    scale = radius * float(width)

    def perturb(x: InputsType) -> InputsType:
        def shift(part: Tensor) -> Tensor:
            noise = torch.rand(part.shape, generator=generator).to(part)
            moved = part + scale * (2 * noise - 1)
            return moved if domain is None else moved.clamp(*domain)

        return tuple(shift(part) for part in x) if isinstance(x, tuple) else shift(x)

    def tupled(x: InputsType, target: Any = None) -> InputsType:
        # sensitivity_max passes a tuple and miscomputes norms unless it gets a tuple back
        found = explanation(x[0] if isinstance(x, tuple) else x, target)
        return (found,) if isinstance(x, tuple) and isinstance(found, Tensor) else found

    return sensitivity_max(
        tupled, inputs, perturb_func=perturb, n_perturb_samples=samples, target=target
    ).detach()
