"""captum_simec: singular pullback-metric geometry for PyTorch models, in Captum terms.

- `pullback_spectrum`: rank, null and range spaces of `g = J^T G J` without forming it.
- `SiMECAttribution`, `LayerSiMECAttribution`, `explain`: Captum attributions from `g`.
- `simec`, `simexp`, `preimage`: walks inside and across equivalence classes.
- `RobustnessAudit`, `compare_attributions`: audits and side-by-side comparisons.
"""

from captum_simec.attr import Explanation, LayerSiMECAttribution, SiMECAttribution, explain
from captum_simec.audit import (
    AuditResult,
    Comparison,
    RobustnessAudit,
    compare_attributions,
    load_audit,
)
from captum_simec.explore import Box, Corrector, Walk, preimage, simec, simexp
from captum_simec.geometry import (
    OutputMetric,
    PullbackSpectrum,
    jacobian,
    pullback_spectrum,
    resolve_output_metric,
)

__version__ = "0.1.0"

__all__ = [
    "AuditResult",
    "Box",
    "Comparison",
    "Corrector",
    "Explanation",
    "LayerSiMECAttribution",
    "OutputMetric",
    "PullbackSpectrum",
    "RobustnessAudit",
    "SiMECAttribution",
    "Walk",
    "__version__",
    "compare_attributions",
    "explain",
    "jacobian",
    "load_audit",
    "preimage",
    "pullback_spectrum",
    "resolve_output_metric",
    "simec",
    "simexp",
]
