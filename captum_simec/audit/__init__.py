"""Robustness auditing and attribution comparison: per-example invariance, flip distances,
minimal attacks, and side-by-side comparisons with Captum's attributions."""

from captum_simec.audit.attacks import AttackResult, deepfool, min_fgsm_epsilon, min_pgd_epsilon
from captum_simec.audit.distributed import audit_distributed
from captum_simec.audit.robustness import AuditResult, RobustnessAudit, load_audit
from captum_simec.evaluation import Comparison, compare_attributions

__all__ = [
    "AttackResult",
    "AuditResult",
    "Comparison",
    "RobustnessAudit",
    "audit_distributed",
    "compare_attributions",
    "deepfool",
    "load_audit",
    "min_fgsm_epsilon",
    "min_pgd_epsilon",
]
