"""The shard store: committing batches, resuming an interrupted audit, merging shards."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from captum_simec.audit import RobustnessAudit, load_audit
from captum_simec.audit.records import FIELDS
from captum_simec.audit.store import _ShardStore

from .helpers import AUDIT_SETTINGS, assert_same_records, tiny_data, tiny_mlp


def test_interrupted_run_resumes_without_redoing_examples(reference, tmp_path, monkeypatch):
    x, y, expected = reference
    audited: list[int] = []

    def crash_on_third_batch(audit: RobustnessAudit) -> None:
        original = audit.audit_batch

        def wrapped(inputs, labels=None, indices=None, timings=None):
            if len(audited) >= 8:
                raise KeyboardInterrupt  # the third batch of four
            audited.extend(int(i) for i in indices)
            return original(inputs, labels, indices, timings)

        monkeypatch.setattr(audit, "audit_batch", wrapped)

    first = RobustnessAudit(tiny_mlp(), **AUDIT_SETTINGS)
    crash_on_third_batch(first)
    with pytest.raises(KeyboardInterrupt):
        first.run(x, y, out=tmp_path, batch_size=4)
    assert len(load_audit(tmp_path)) == 8  # what was written is kept

    with pytest.raises(FileExistsError, match="resume"):
        RobustnessAudit(tiny_mlp(), **AUDIT_SETTINGS).run(x, y, out=tmp_path, batch_size=4)

    second = RobustnessAudit(tiny_mlp(), **AUDIT_SETTINGS)
    redone: list[int] = []
    original = second.audit_batch

    def record_indices(inputs, labels=None, indices=None, timings=None):
        redone.extend(int(i) for i in indices)
        return original(inputs, labels, indices, timings)

    monkeypatch.setattr(second, "audit_batch", record_indices)
    result = second.run(x, y, out=tmp_path, batch_size=4, resume=True)
    assert redone == list(range(8, 12))  # each example audited exactly once overall
    assert_same_records(result.records, expected.records)
    torch.testing.assert_close(result.maps["robustness"], expected.maps["robustness"])
    assert (tmp_path / "records.csv").exists() and (tmp_path / "summary.json").exists()


def test_limit_then_resume_equals_one_run_with_a_dataloader(reference, tmp_path):
    x, y, expected = reference
    loader = DataLoader(TensorDataset(x, y), batch_size=3)
    audit = RobustnessAudit(tiny_mlp(), **AUDIT_SETTINGS)
    partial = audit.run(loader, out=tmp_path, limit=5)
    assert [r["index"] for r in partial.records] == [0, 1, 2, 3, 4]
    result = audit.run(loader, out=tmp_path, resume=True)
    assert result.timings["examples"] == 7
    assert_same_records(result.records, expected.records)


def test_resume_with_other_settings_is_refused(tmp_path):
    x, y = tiny_data(4)
    RobustnessAudit(tiny_mlp(), **AUDIT_SETTINGS).run(x, y, out=tmp_path, limit=2)
    other = RobustnessAudit(tiny_mlp(), **{**AUDIT_SETTINGS, "simexp_steps": 41})
    with pytest.raises(ValueError, match="simexp_steps"):
        other.run(x, y, out=tmp_path, resume=True)


def test_a_line_cut_short_by_a_crash_is_redone(reference, tmp_path):
    x, y, expected = reference
    audit = RobustnessAudit(tiny_mlp(), **AUDIT_SETTINGS)
    audit.run(x, y, out=tmp_path, batch_size=6, limit=6)
    shard = tmp_path / "shards" / "rank-0" / "records.jsonl"
    lines = shard.read_text().splitlines(keepends=True)
    shard.write_text("".join(lines[:5]) + lines[5][:20])  # the last record half written
    assert len(load_audit(tmp_path)) == 5
    result = audit.run(x, y, out=tmp_path, batch_size=6, resume=True)
    assert_same_records(result.records, expected.records)


def test_merge_keeps_one_record_per_index(tmp_path):
    def record(index: int, value: float) -> dict:
        row = {name: (0 if kind is int else 0.0) for name, (kind, _) in FIELDS.items()}
        row.update(index=index, flip_l2=value)
        return row

    _ShardStore(tmp_path / "shards" / "rank-0").append([record(0, 1.0), record(2, 3.0)], None)
    _ShardStore(tmp_path / "shards" / "rank-1").append([record(1, 2.0), record(0, 9.0)], None)
    merged = load_audit(tmp_path)
    assert [r["index"] for r in merged.records] == [0, 1, 2]
    assert [r["flip_l2"] for r in merged.records] == [1.0, 2.0, 3.0]
    with pytest.raises(FileNotFoundError, match="no audit shards"):
        load_audit(tmp_path / "elsewhere")
