"""Records, summaries, CSV/JSON output, shard storage and resuming an interrupted audit."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from captum_simec.audit.robustness import (
    FIELDS,
    RobustnessAudit,
    ShardStore,
    load_audit,
    summarize,
)

from .helpers import assert_same_records, tiny_data, tiny_mlp

SETTINGS = {
    "domain": (0.0, 1.0),
    "simec_steps": 3,
    "simexp_steps": 40,
    "simexp_step_size": 0.05,
    "pgd_steps": 5,
    "progress": False,
}


@pytest.fixture(scope="module")
def reference():
    """An uninterrupted in-memory audit of 12 examples."""
    x, y = tiny_data(12)
    audit = RobustnessAudit(tiny_mlp(), **SETTINGS)
    return x, y, audit.run(x, y, batch_size=5)


def test_records_follow_the_schema(reference):
    x, y, result = reference
    assert len(result) == 12
    assert [r["index"] for r in result.records] == list(range(12))
    for record in result.records:
        assert list(record) == list(FIELDS)
        for name, (kind, _) in FIELDS.items():
            assert type(record[name]) is kind, name
    assert result.column("label").tolist() == y.tolist()
    with torch.no_grad():
        assert result.column("prediction").tolist() == tiny_mlp()(x).argmax(1).tolist()
    assert result.maps["input"].shape == x.shape
    torch.testing.assert_close(result.maps["input"], x)
    assert result.maps["robustness"].shape == x.shape
    assert set(result.timings) >= {"spectrum", "simec", "simexp", "attacks", "total"}


def test_csv_json_and_numpy_round_trip(reference, tmp_path):
    _, _, result = reference
    paths = result.save(tmp_path)
    with paths["csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and list(rows[0]) == list(FIELDS)
    for row, record in zip(rows, result.records, strict=True):
        assert float(row["flip_l2"]) == pytest.approx(record["flip_l2"]) or (
            math.isnan(float(row["flip_l2"])) and math.isnan(record["flip_l2"])
        )
        assert int(row["prediction"]) == record["prediction"]
    document = json.loads(paths["json"].read_text())  # strict JSON: no Infinity / NaN tokens
    assert len(document["records"]) == 12
    assert document["summary"]["overall"]["examples"] == 12
    assert "NaN" not in paths["json"].read_text() and "Infinity" not in paths["json"].read_text()
    table = result.to_numpy()
    assert table.dtype.names == tuple(FIELDS) and table.shape == (12,)
    np.testing.assert_array_equal(table["null_dim"], result.column("null_dim"))


def test_summary_medians_quantiles_and_flip_rate():
    records = []
    for i, (label, flip) in enumerate([(0, 1.0), (0, 3.0), (1, math.inf), (1, 2.0)]):
        record = {name: (0 if kind is int else 0.0) for name, (kind, _) in FIELDS.items()}
        record.update(index=i, label=label, prediction=label, flip_l2=flip)
        record["flip_found"] = math.isfinite(flip)
        records.append(record)
    summary = summarize(records)
    assert summary["by"] == "label"
    overall = summary["overall"]
    assert overall["examples"] == 4 and overall["accuracy"] == 1.0
    assert overall["flip_rate"] == 0.75
    assert overall["flip_l2"]["median"] == 2.0  # over the finite flips only
    assert overall["flip_l2"]["q25"] == 1.5 and overall["flip_l2"]["q75"] == 2.5
    assert summary["per_class"][0]["flip_l2"]["median"] == 2.0
    assert summary["per_class"][1]["flip_rate"] == 0.5
    assert summarize(records, by="prediction")["by"] == "prediction"
    with pytest.raises(ValueError, match="`by`"):
        summarize(records, by="colour")


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

    first = RobustnessAudit(tiny_mlp(), **SETTINGS)
    crash_on_third_batch(first)
    with pytest.raises(KeyboardInterrupt):
        first.run(x, y, out=tmp_path, batch_size=4)
    assert len(load_audit(tmp_path)) == 8  # what was written is kept

    with pytest.raises(FileExistsError, match="resume"):
        RobustnessAudit(tiny_mlp(), **SETTINGS).run(x, y, out=tmp_path, batch_size=4)

    second = RobustnessAudit(tiny_mlp(), **SETTINGS)
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
    audit = RobustnessAudit(tiny_mlp(), **SETTINGS)
    partial = audit.run(loader, out=tmp_path, limit=5)
    assert [r["index"] for r in partial.records] == [0, 1, 2, 3, 4]
    result = audit.run(loader, out=tmp_path, resume=True)
    assert result.timings["examples"] == 7
    assert_same_records(result.records, expected.records)


def test_resume_with_other_settings_is_refused(tmp_path):
    x, y = tiny_data(4)
    RobustnessAudit(tiny_mlp(), **SETTINGS).run(x, y, out=tmp_path, limit=2)
    other = RobustnessAudit(tiny_mlp(), **{**SETTINGS, "simexp_steps": 41})
    with pytest.raises(ValueError, match="simexp_steps"):
        other.run(x, y, out=tmp_path, resume=True)


def test_a_line_cut_short_by_a_crash_is_redone(reference, tmp_path):
    x, y, expected = reference
    audit = RobustnessAudit(tiny_mlp(), **SETTINGS)
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

    ShardStore(tmp_path / "shards" / "rank-0").append([record(0, 1.0), record(2, 3.0)], None)
    ShardStore(tmp_path / "shards" / "rank-1").append([record(1, 2.0), record(0, 9.0)], None)
    merged = load_audit(tmp_path)
    assert [r["index"] for r in merged.records] == [0, 1, 2]
    assert [r["flip_l2"] for r in merged.records] == [1.0, 2.0, 3.0]
    with pytest.raises(FileNotFoundError, match="no audit shards"):
        load_audit(tmp_path / "elsewhere")
