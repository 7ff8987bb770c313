"""The audit tells the truth (issue 8, section 6): stages that did not run are "not
computed", a callable metric resumes, NCCL picks the local GPU, labels are checked, and
inputs a rounding step outside the box are accepted as the walks accept them."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from captum_simec.audit import (
    ChangedSettingsError,
    RobustnessAudit,
    deepfool,
    load_audit,
    min_fgsm_epsilon,
    min_pgd_epsilon,
)
from captum_simec.audit import distributed as distributed_module
from captum_simec.audit.settings import AuditSettings, fingerprint
from captum_simec.report import write_audit_report

from .helpers import tiny_data, tiny_mlp

QUICK = {"domain": (0.0, 1.0), "simec_steps": 2, "simexp_steps": 20, "pgd_steps": 3}


# ----------------------------------------------------------------------------- skipped stages
def test_skipped_stages_are_not_computed_in_records_summary_and_report(tmp_path):
    x, y = tiny_data(4)
    audit = RobustnessAudit(
        tiny_mlp(), domain=(0.0, 1.0), simec_steps=0, simexp_steps=0, attacks=(), progress=False
    )
    result = audit.run(x, y, out=tmp_path)
    for record in result.records:
        assert record["extent_class_kept"] is None and record["extent_stop"] == "skipped"
        assert record["flip_found"] is None and record["flip_class"] is None
        assert math.isnan(record["flip_l2"]) and math.isnan(record["pgd_l2_eps"])
    overall = result.summary()["overall"]
    for rate in ("flip_rate", "pgd_l2_flip_rate", "class_kept_rate"):
        assert math.isnan(overall[rate]), rate  # main reported 0.0 (and "class kept")
    assert 0.0 <= overall["accuracy"] <= 1.0
    saved = json.loads((tmp_path / "summary.json").read_text())["overall"]
    assert saved["flip_rate"] is None and saved["pgd_l2_flip_rate"] is None
    reloaded = load_audit(tmp_path)  # the JSONL store keeps None
    assert [r["flip_found"] for r in reloaded.records] == [None] * 4
    assert np.isnan(reloaded.column("flip_found")).all()
    assert reloaded.to_numpy()["flip_class"].dtype.kind == "f"
    page = write_audit_report(result, tmp_path).markdown.read_text()
    assert "SiMExp flips: not computed" in page and "PGD radii: not computed" in page
    assert "| not computed |" in page and "0 %" not in page


def test_a_run_stage_keeps_its_rates(tmp_path):
    x, y = tiny_data(4)
    result = RobustnessAudit(tiny_mlp(), attacks=(), progress=False, **QUICK).run(x, y)
    overall = result.summary()["overall"]
    assert 0.0 <= overall["flip_rate"] <= 1.0 and 0.0 <= overall["class_kept_rate"] <= 1.0
    assert math.isnan(overall["pgd_l2_flip_rate"])  # the attacks did not run
    assert all(isinstance(r["flip_found"], bool) for r in result.records)


# ----------------------------------------------------------------------------- resume
def _identity_metric(outputs):
    return torch.eye(outputs.shape[1], dtype=outputs.dtype)


def _make_metric(scale):
    return lambda outputs: scale * torch.eye(outputs.shape[1], dtype=outputs.dtype)


def test_a_callable_metric_has_a_stable_fingerprint():
    first, second = _make_metric(2.0), _make_metric(2.0)  # two objects, one definition
    assert first is not second and repr(first) != repr(second)
    assert fingerprint(first) == fingerprint(second)
    assert fingerprint(first) != fingerprint(_make_metric(3.0))  # another closure value
    assert fingerprint(first) != fingerprint(_identity_metric)
    matrix = torch.eye(3)
    assert fingerprint(matrix) == fingerprint(matrix.clone()) != fingerprint(2 * matrix)
    settings = AuditSettings(output_metric=_identity_metric, attacks=()).settings
    assert "0x" not in json.dumps(settings)


def test_the_fingerprint_is_the_same_in_another_process():
    code = (
        "import json; from captum_simec.audit.settings import AuditSettings; "
        "from tests.audit.test_truth import _identity_metric; "
        "print(json.dumps(AuditSettings(output_metric=_identity_metric, attacks=()).settings))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    here = AuditSettings(output_metric=_identity_metric, attacks=()).settings
    assert json.loads(done.stdout) == json.loads(json.dumps(here))


def test_resume_works_with_a_callable_metric(tmp_path):
    x, y = tiny_data(6)
    settings = {**QUICK, "attacks": (), "progress": False}
    first = RobustnessAudit(tiny_mlp(), output_metric=_make_metric(1.0), **settings)
    first.run(x, y, out=tmp_path, limit=3)
    again = RobustnessAudit(tiny_mlp(), output_metric=_make_metric(1.0), **settings)
    assert len(again.run(x, y, out=tmp_path, resume=True)) == 6
    other = RobustnessAudit(tiny_mlp(), output_metric=_make_metric(2.0), **settings)
    with pytest.raises(ChangedSettingsError, match="output_metric"):
        other.run(x, y, out=tmp_path, resume=True)


# ----------------------------------------------------------------------------- NCCL
@pytest.mark.parametrize(("backend", "expected"), [("nccl", [3]), ("gloo", [])])
def test_nccl_selects_the_local_rank_gpu_before_joining(monkeypatch, backend, expected):
    calls: list = []
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(distributed_module.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(device))

    def init(backend, timeout):
        calls.append(f"init {backend}")

    monkeypatch.setattr(distributed_module.dist, "init_process_group", init)
    monkeypatch.setattr(distributed_module.dist, "get_rank", lambda: 3)
    monkeypatch.setattr(distributed_module.dist, "get_world_size", lambda: 4)
    assert distributed_module._init_distributed(backend) == (3, 4, True)
    assert calls == [*expected, f"init {backend}"]


# ----------------------------------------------------------------------------- labels
def test_labels_outside_the_models_classes_are_refused():
    x, _ = tiny_data(3)
    audit = RobustnessAudit(tiny_mlp(), attacks=(), progress=False, **QUICK)
    for labels in ([0, 1, 5], [0, -3, 1]):
        with pytest.raises(ValueError, match=r"`labels` must lie in \[0, 3\)"):
            audit.audit_batch(x, labels)


# ----------------------------------------------------------------------------- the box
def _rounding_outside(x: torch.Tensor) -> torch.Tensor:
    """The inputs with one pixel at 1 + 2 ulps and one at -1 ulp: normalisation rounding."""
    nudged = x.clone()
    nudged[0, 0, 0, 0] = 1.0 + 2 * torch.finfo(x.dtype).eps
    nudged[1, 0, 0, 1] = -torch.finfo(x.dtype).eps
    return nudged


def test_the_audit_accepts_inputs_a_rounding_step_outside_the_box():
    x, y = tiny_data(3)
    audit = RobustnessAudit(tiny_mlp(), progress=False, **QUICK)
    records, maps = audit.audit_batch(_rounding_outside(x), y)
    assert maps["input"].min() >= 0 and maps["input"].max() <= 1  # clipped onto the box
    assert all(math.isfinite(r["pgd_l2_eps"]) or r["pgd_l2_eps"] == math.inf for r in records)
    far = x.clone()
    far[0, 0, 0, 0] = 1.01
    with pytest.raises(ValueError, match="outside the `domain` box"):
        audit.audit_batch(far, y)


@pytest.mark.parametrize(
    "attack",
    [
        lambda model, x: min_fgsm_epsilon(model, x, eps_max=1.0, lower_bound=0, upper_bound=1),
        lambda model, x: min_pgd_epsilon(
            model, x, eps_max=1.0, steps=2, lower_bound=0, upper_bound=1
        ),
        lambda model, x: deepfool(model, x, max_iter=2, lower_bound=0, upper_bound=1),
    ],
    ids=["fgsm", "pgd", "deepfool"],
)
def test_the_attacks_accept_inputs_a_rounding_step_outside_the_box(attack):
    x, _ = tiny_data(3)
    result = attack(tiny_mlp(), _rounding_outside(x))
    assert result.adversarial.min() >= 0 and result.adversarial.max() <= 1
    far = x.clone()
    far[0, 0, 0, 0] = -0.01
    with pytest.raises(ValueError, match=r"outside \[lower_bound, upper_bound\]"):
        attack(tiny_mlp(), far)
