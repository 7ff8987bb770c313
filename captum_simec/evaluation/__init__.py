"""Faithfulness, robustness and sanity measures of attribution maps, one family per module.

- `perturbation`: deletion / insertion curves and their removal baselines (black, uniform,
  mean, blur, or any tensor);
- `road`: ROAD (Rong et al. 2022), removal with noisy linear imputation;
- `invariance`: the invariance curve of a robustness map;
- `sensitivity`: max-sensitivity (Yeh et al. 2019);
- `randomisation`: Adebayo et al.'s sanity checks (cascading model randomisation, random
  logit);
- `ranks`: Spearman rank correlation;
- `compare`: `compare_attributions`, every method and metric side by side (`Comparison`).

Inputs may be a tensor or a tuple of tensors (batch first); features are the elements of all
inputs of an example, flattened and concatenated.
"""

from captum_simec.evaluation._common import (
    AttributionFunction,
    InputsType,
    mean_finite,
    target_indices,
)
from captum_simec.evaluation.compare import METRICS, compare_attributions
from captum_simec.evaluation.comparison import Comparison
from captum_simec.evaluation.invariance import InvarianceCurve, invariance_curve
from captum_simec.evaluation.methods import boundary_integrated_gradients
from captum_simec.evaluation.perturbation import (
    BASELINE_KINDS,
    PerturbationCurve,
    blur,
    feature_order,
    perturbation_curve,
    removal_baseline,
)
from captum_simec.evaluation.randomisation import (
    model_randomisation_check,
    random_logit_check,
    random_other_class,
    randomised_copies,
)
from captum_simec.evaluation.ranks import average_ranks, spearman
from captum_simec.evaluation.road import GaussianImputer, linear_imputation, road_curve
from captum_simec.evaluation.sensitivity import max_sensitivity

__all__ = [
    "BASELINE_KINDS",
    "METRICS",
    "AttributionFunction",
    "Comparison",
    "GaussianImputer",
    "InputsType",
    "InvarianceCurve",
    "PerturbationCurve",
    "average_ranks",
    "blur",
    "boundary_integrated_gradients",
    "compare_attributions",
    "feature_order",
    "invariance_curve",
    "linear_imputation",
    "max_sensitivity",
    "mean_finite",
    "model_randomisation_check",
    "perturbation_curve",
    "random_logit_check",
    "random_other_class",
    "randomised_copies",
    "removal_baseline",
    "road_curve",
    "spearman",
    "target_indices",
]
