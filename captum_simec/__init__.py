"""captum_simec: singular pullback-metric geometry for PyTorch models, in Captum terms.

- `pullback_spectrum`: rank, null and range spaces of `g = J^T G J` without forming it.
- `SiMECAttribution`, `LayerSiMECAttribution`, `explain`: Captum attributions from `g`.
- `simec`, `simexp`, `preimage`, `boundary_path`: walks inside and across equivalence classes.
- `RobustnessAudit`: robustness audits; `compare_attributions`: side-by-side comparisons
  with faithfulness metrics (`captum_simec.evaluation`).
- `token_scores`, `embedding_simec`, `embedding_simexp`, `read_tokens`: text models (token
  ids through an embedding, walks in embedding space read back as tokens).
- `select_output`: a model returning a ModelOutput, dict or tuple, made to return one tensor
  (every entry point also takes ``output=``).

Each name is imported from its layer on first use (docs/architecture.md), so that
`import captum_simec.geometry` does not load the attribution and audit layers.
"""

from __future__ import annotations

from captum_simec._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "captum_simec._outputs": ("select_output",),
    "captum_simec.attr": ("Explanation", "LayerSiMECAttribution", "SiMECAttribution", "explain"),
    "captum_simec.audit": ("AuditResult", "RobustnessAudit", "load_audit"),
    "captum_simec.evaluation": ("Comparison", "compare_attributions"),
    "captum_simec.explore": (
        "Box",
        "Corrector",
        "Walk",
        "boundary_path",
        "preimage",
        "simec",
        "simexp",
    ),
    "captum_simec.geometry": (
        "OutputMetric",
        "PullbackSpectrum",
        "jacobian",
        "pullback_spectrum",
        "resolve_output_metric",
    ),
    "captum_simec.text": ("embedding_simec", "embedding_simexp", "read_tokens", "token_scores"),
}

__all__ = sorted(["__version__", *(name for names in _EXPORTS.values() for name in names)])

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
