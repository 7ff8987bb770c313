"""Records, their schema, CSV/JSON/numpy output and the dataset-level summaries."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from captum_simec.audit.records import FIELDS, summarize

from .helpers import tiny_mlp


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
