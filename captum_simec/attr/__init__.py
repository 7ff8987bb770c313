"""Captum attribution classes built on the pullback metric, and a one-call `explain`.

`simec_attribution` and `layer` hold the two Captum classes, `explanation` the one-call
`explain`; internal: `_base` (what the classes share: score names, checks, baselines),
`_spectrum_scores`, `_walk_scores` and `_path_scores` (the score implementations),
`_robustness` (the robustness default metric and the box-aware score) and `_binary` (a
one-output model read as a binary classifier).
"""

from captum_simec.attr._base import SCORES, default_output_metric
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
