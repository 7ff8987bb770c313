"""Robustness auditing: per-example invariance, flip distances and minimal attacks.

Side-by-side comparisons of attributions (`compare_attributions`) live in
`captum_simec.evaluation`, the layer above.
"""

from captum_simec.audit.attacks import AttackResult, deepfool, min_fgsm_epsilon, min_pgd_epsilon
from captum_simec.audit.distributed import audit_distributed
from captum_simec.audit.records import AuditResult
from captum_simec.audit.robustness import RobustnessAudit
from captum_simec.audit.settings import AuditSettings
from captum_simec.audit.store import ChangedSettingsError, ExistingAuditError, load_audit

__all__ = [
    "AttackResult",
    "AuditResult",
    "AuditSettings",
    "ChangedSettingsError",
    "ExistingAuditError",
    "RobustnessAudit",
    "audit_distributed",
    "deepfool",
    "load_audit",
    "min_fgsm_epsilon",
    "min_pgd_epsilon",
]
