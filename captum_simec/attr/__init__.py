"""Captum attribution classes built on the pullback metric, and a one-call `explain`."""

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
    "Explanation",
    "LayerSiMECAttribution",
    "SiMECAttribution",
    "default_output_metric",
    "explain",
]
