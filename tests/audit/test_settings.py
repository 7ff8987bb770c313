"""The audit's settings: one place for their defaults and checks, read by the command line."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from captum_simec.audit import AuditSettings, RobustnessAudit
from captum_simec.cli import build_parser

from .helpers import tiny_mlp

AUDIT_ARGS = ["audit", "--model", "m.py:make", "--data", "d.pt"]


def test_defaults_are_class_attributes():
    audit = RobustnessAudit(tiny_mlp(), domain=(0.0, 1.0))  # the attacks need a box
    for setting in dataclasses.fields(AuditSettings):
        if setting.name != "domain":
            assert getattr(audit, setting.name) == getattr(RobustnessAudit, setting.name)
    assert RobustnessAudit.simec_steps == AuditSettings.simec_steps == 20


def test_command_line_reads_the_defaults_from_the_class(monkeypatch):
    args = build_parser().parse_args(AUDIT_ARGS)
    assert args.simec_steps == RobustnessAudit.simec_steps
    assert args.simexp_steps == RobustnessAudit.simexp_steps
    assert args.pgd_steps == RobustnessAudit.pgd_steps
    assert args.attacks == list(RobustnessAudit.attacks)
    # one --step-size sets both walks: their defaults must agree
    assert args.step_size == RobustnessAudit.simec_step_size == RobustnessAudit.simexp_step_size
    monkeypatch.setattr(RobustnessAudit, "simexp_steps", 77)
    assert build_parser().parse_args(AUDIT_ARGS).simexp_steps == 77


def test_settings_are_normalised_and_stored_as_json():
    audit = RobustnessAudit(
        tiny_mlp(),
        domain=[torch.zeros(1, 4, 4), 1.0],
        attacks=["pgd", "fgsm"],
        eps_max={"L2": 2, "Linf": 1},
        simec_step_size=1,
    )
    assert audit.attacks == ("fgsm", "pgd")  # a tuple in the canonical order
    assert audit.eps_max == {"L2": 2.0, "Linf": 1.0} and audit.simec_step_size == 1.0
    settings = json.loads(json.dumps(audit.settings))
    assert settings == audit.settings
    assert [f.name for f in dataclasses.fields(AuditSettings)] == list(settings)
    assert "model" not in repr(audit) and "simexp_steps=300" in repr(audit)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"simec_steps": 2.5}, TypeError, "`simec_steps` must be an int"),
        ({"simexp_steps": -1}, ValueError, "`simexp_steps` must be an int >= 0"),
        ({"simec_step_size": "0.1"}, TypeError, "`simec_step_size`"),
        ({"max_drift": 0.0}, ValueError, "`max_drift`"),
        ({"attacks": "pgd"}, TypeError, "`attacks` must be a sequence"),
        ({"attacks": ("pgd", "cw")}, ValueError, r"`attacks` must be drawn from.*\['cw'\]"),
        ({"eps_max": 1.0}, TypeError, "`eps_max` must be a mapping"),
        ({"eps_max": {"L2": 1.0}}, ValueError, "`eps_max` must have the keys"),
        ({"eps_max": {"L2": 1.0, "Linf": -1.0}}, ValueError, r"`eps_max\['Linf'\]`"),
        ({"pgd_steps": 0}, ValueError, "`pgd_steps`"),
        ({"attack_rtol": 0.0}, ValueError, "`attack_rtol`"),
        ({"attack_loss": "hinge"}, ValueError, "`attack_loss` must be one of"),
        ({"seed": -3}, ValueError, "`seed` must be an int >= 0"),
        ({"seed": "3"}, TypeError, "`seed` must be an int"),
    ],
)
def test_each_setting_is_checked(options, error, match):
    with pytest.raises(error, match=match):
        RobustnessAudit(tiny_mlp(), domain=(0.0, 1.0), **options)
    with pytest.raises(error, match=match):
        AuditSettings(**{"domain": (0.0, 1.0), **options})


def test_domain_that_is_not_a_box():
    with pytest.raises(TypeError, match="`domain` must be None, a Box or a"):
        RobustnessAudit(tiny_mlp(), domain=1.0)


def test_model_that_cannot_be_called():
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module or another callable"):
        RobustnessAudit("model.pt", domain=(0.0, 1.0))


def test_audits_compare_by_identity():
    first = RobustnessAudit(tiny_mlp(0), domain=(0.0, 1.0))
    second = RobustnessAudit(tiny_mlp(1), domain=(0.0, 1.0))
    assert first != second and first == first  # same settings, other model
    assert len({first, second}) == 2
