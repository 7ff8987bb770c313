"""Robustness auditing and attribution comparison: per-example invariance, flip distances,
minimal attacks, and side-by-side comparisons with Captum's attributions."""

from captum_simec.audit.attacks import AttackResult, deepfool, min_fgsm_epsilon, min_pgd_epsilon
from captum_simec.audit.compare import Comparison, compare_attributions
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
    "Comparison",
    "ExistingAuditError",
    "RobustnessAudit",
    "audit_distributed",
    "compare_attributions",
    "deepfool",
    "load_audit",
    "min_fgsm_epsilon",
    "min_pgd_epsilon",
]
