"""captum_simec: singular pullback-metric geometry for PyTorch models, in Captum terms."""

from captum_simec.geometry import (
    OutputMetric,
    PullbackSpectrum,
    jacobian,
    pullback_spectrum,
    resolve_output_metric,
)

__version__ = "0.1.0"

__all__ = [
    "OutputMetric",
    "PullbackSpectrum",
    "__version__",
    "jacobian",
    "pullback_spectrum",
    "resolve_output_metric",
]
