"""Geometry core: batched Jacobians, output metrics, the pullback-metric spectrum and its
randomised estimates for many outputs."""

from captum_simec.geometry._modules import model_outputs
from captum_simec.geometry.jacobian import (
    JACOBIAN_METHODS,
    PulledBackFactor,
    check_eval_mode,
    fastest_jacobian_method,
    jacobian,
    pullback_factor,
)
from captum_simec.geometry.layer import layer_function, layer_representation
from captum_simec.geometry.metrics import (
    CallableMetric,
    EuclideanMetric,
    FisherMetric,
    FixedMetric,
    MarginMetric,
    MatrixMetric,
    OutputMetric,
    TargetMetric,
    TopKMetric,
    as_probabilities,
    resolve_output_metric,
)
from captum_simec.geometry.pullback import pullback_spectrum
from captum_simec.geometry.randomized import (
    LeadingDirections,
    RelevanceEstimate,
    hutchinson_relevance,
    randomized_range,
)
from captum_simec.geometry.spectrum import PullbackSpectrum, factorise

__all__ = [
    "JACOBIAN_METHODS",
    "CallableMetric",
    "EuclideanMetric",
    "FisherMetric",
    "FixedMetric",
    "LeadingDirections",
    "MarginMetric",
    "MatrixMetric",
    "OutputMetric",
    "PulledBackFactor",
    "PullbackSpectrum",
    "RelevanceEstimate",
    "TargetMetric",
    "TopKMetric",
    "as_probabilities",
    "check_eval_mode",
    "factorise",
    "fastest_jacobian_method",
    "hutchinson_relevance",
    "jacobian",
    "layer_function",
    "layer_representation",
    "model_outputs",
    "pullback_factor",
    "pullback_spectrum",
    "randomized_range",
    "resolve_output_metric",
]
