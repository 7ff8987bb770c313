"""Captum attribution classes built on the pullback metric, and a one-call `explain`.

`simec_attribution` and `layer` hold the two Captum classes; `base` what they share (score
names, checks, baselines); `spectrum_scores` and `walk_scores` the score implementations;
`explanation` the one-call `explain`.
"""

from captum_simec.attr.base import SCORES, default_output_metric
from captum_simec.attr.explanation import Explanation, explain
from captum_simec.attr.layer import LayerSiMECAttribution
from captum_simec.attr.simec_attribution import SiMECAttribution

__all__ = [
    "SCORES",
    "Explanation",
    "LayerSiMECAttribution",
    "SiMECAttribution",
    "default_output_metric",
    "explain",
]
