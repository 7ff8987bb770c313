"""Captum attribution classes built on the pullback metric, a one-call `explain`, and
`boundary_path` (the path, maps and delta behind ``score="boundary"``)."""

from captum_simec.attr.boundary import BoundaryPath, boundary_path
from captum_simec.attr.layer import LayerSiMECAttribution
from captum_simec.attr.simec_attribution import (
    SCORES,
    Explanation,
    SiMECAttribution,
    default_output_metric,
    explain,
)

__all__ = [
    "SCORES",
    "BoundaryPath",
    "Explanation",
    "LayerSiMECAttribution",
    "SiMECAttribution",
    "boundary_path",
    "default_output_metric",
    "explain",
]
