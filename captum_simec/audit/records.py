"""The audit's records: their schema, the result type, and dataset-level summaries.

Results are a list of flat records (one dict per example, see :data:`FIELDS`) that write to
CSV and JSON without pandas, dataset-level summaries (overall and per class), and per-example
maps (input, robustness map, flip displacement) for the report figures.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captum_simec._validation import check_choice

__all__ = ["FIELDS", "AuditResult", "summarize"]

#: The record schema: column name -> (Python type, meaning). Floats use ``inf`` for "no flip
#: within budget" and ``nan`` for "not computed" (e.g. an attack that was not run); the
#: booleans and classes of a skipped walk are None ("not computed"), never a made-up value.
FIELDS: dict[str, tuple[type, str]] = {
    "index": (int, "position of the example in the data set"),
    "label": (int, "true class (-1 when no labels were given)"),
    "prediction": (int, "predicted class t = argmax f(x)"),
    "confidence": (float, "probability of the predicted class"),
    "margin": (float, "top output minus the runner-up output"),
    "rank": (int, "rank r of the pullback metric g = J^T G J"),
    "null_dim": (int, "null dimension n - r (dimension of the equivalence class)"),
    "top_singular_value": (float, "largest singular value s_1 of A = C J"),
    "spectral_gap": (float, "s_r / s_{r+1} (inf when nothing was discarded)"),
    "rank_margin": (float, "how far the rank tolerance may move without changing the rank"),
    "extent_l2": (float, "SiMEC walk: L2 norm of the end-to-end displacement"),
    "extent_linf": (float, "SiMEC walk: largest move of any feature over the walk"),
    "extent_path": (float, "SiMEC walk: path length"),
    "extent_drift": (float, "SiMEC walk: largest output drift ||f(x_k) - f(x_0)||_G"),
    "extent_class_kept": (bool, "SiMEC walk: predicted class unchanged (None: not run)"),
    "extent_stop": (str, "SiMEC walk: why it stopped"),
    "flip_found": (bool, "SiMExp walk: the class changed within the budget (None: not run)"),
    "flip_class": (int, "SiMExp walk: class reached (-1 when no flip, None: not run)"),
    "flip_l2": (float, "SiMExp walk: L2 norm of the displacement to the flip (inf: no flip)"),
    "flip_linf": (float, "SiMExp walk: L-inf norm of the displacement (inf: no flip)"),
    "flip_path": (float, "SiMExp walk: path length to the flip (inf: no flip)"),
    "flip_stop": (str, "SiMExp walk: why it stopped"),
    "fgsm_l2_eps": (float, "smallest flipping L2 fast-gradient radius"),
    "fgsm_linf_eps": (float, "smallest flipping L-inf FGSM radius"),
    "pgd_l2_eps": (float, "smallest flipping L2 PGD radius"),
    "pgd_linf_eps": (float, "smallest flipping L-inf PGD radius"),
    "deepfool_l2_eps": (float, "L2 norm of the DeepFool perturbation"),
    "ratio_l2": (float, "flip_l2 / pgd_l2_eps"),
    "ratio_linf": (float, "flip_linf / pgd_linf_eps"),
}


@dataclass
class AuditResult:
    """Records, per-example maps and timings of an audit.

    Attributes:
        records: one dict per example (keys: :data:`FIELDS`), sorted by ``index``.
        maps: ``index`` (N,) and, per example, ``input``, ``robustness`` (the map `kappa`)
            and ``flip`` (the SiMExp displacement), each (N, *input_shape); empty when the
            maps were not kept.
        settings: the audit settings (JSON-compatible).
        timings: seconds spent per stage in this run (``spectrum``, ``simec``, ``simexp``,
            ``attacks``, ``total``) and ``examples`` audited in this run.
    """

    records: list[dict[str, Any]]
    maps: dict[str, Tensor] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    def column(self, name: str) -> np.ndarray:
        """One field over all records as a numpy array.

        A boolean or integer field with values not computed (None) comes as float64, with
        NaN for them.
        """
        if name not in FIELDS:
            raise KeyError(f"unknown field {name!r}; the fields are {list(FIELDS)}.")
        kind = FIELDS[name][0]
        values = [record[name] for record in self.records]
        if kind in (int, bool) and any(value is None for value in values):
            return np.array([math.nan if v is None else v for v in values], dtype=np.float64)
        dtype = {int: np.int64, float: np.float64, bool: np.bool_, str: object}[kind]
        return np.array(values, dtype=dtype)

    def to_numpy(self) -> np.ndarray:
        """The records as a numpy structured array (one field per column, as `column`)."""
        columns = {name: self.column(name) for name in FIELDS}
        width = max([len(r[k]) for r in self.records for k in FIELDS if FIELDS[k][0] is str] + [1])
        dtype = [
            (name, f"U{width}" if FIELDS[name][0] is str else values.dtype)
            for name, values in columns.items()
        ]
        array = np.empty(len(self.records), dtype=dtype)
        for name, values in columns.items():
            array[name] = values
        return array

    def summary(self, by: str = "auto") -> dict[str, Any]:
        """Dataset-level summaries; see :func:`summarize`."""
        return summarize(self.records, by=by)

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Writes one row per example (``inf``/``nan`` as Python prints them)."""
        path = Path(path)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(FIELDS))
            writer.writeheader()
            writer.writerows(self.records)
        return path

    def to_json(self, path: str | os.PathLike) -> Path:
        """Writes strict JSON: records, summary, settings, timings (``inf``/``nan`` as null)."""
        path = Path(path)
        document = {
            "settings": self.settings,
            "timings": self.timings,
            "summary": self.summary(),
            "records": self.records,
        }
        path.write_text(json.dumps(_strict(document), indent=1))
        return path

    def save(self, out: str | os.PathLike) -> dict[str, Path]:
        """Writes ``records.csv``, ``records.json`` and ``summary.json`` into `out`."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        summary = out / "summary.json"
        summary.write_text(json.dumps(_strict(self.summary()), indent=1))
        return {
            "csv": self.to_csv(out / "records.csv"),
            "json": self.to_json(out / "records.json"),
            "summary": summary,
        }


def _strict(value: Any) -> Any:
    """Replaces non-finite floats by None, recursively, for strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


_SUMMARY_FIELDS = (
    "flip_l2",
    "flip_linf",
    "pgd_l2_eps",
    "pgd_linf_eps",
    "ratio_l2",
    "ratio_linf",
    "extent_l2",
    "extent_drift",
    "null_dim",
    "spectral_gap",
    "rank_margin",
    "confidence",
)


def _describe(values: np.ndarray) -> dict[str, float]:
    """Median and quartiles of the finite values (nan when none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"q25": math.nan, "median": math.nan, "q75": math.nan}
    q25, median, q75 = np.quantile(finite, [0.25, 0.5, 0.75])
    return {"q25": float(q25), "median": float(median), "q75": float(q75)}


def _rate(outcomes: list[bool | None]) -> float:
    """The share of True among the outcomes computed (not None); NaN when none was."""
    computed = [bool(outcome) for outcome in outcomes if outcome is not None]
    return float(np.mean(computed)) if computed else math.nan


def _group_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    labelled = [r for r in records if r["label"] >= 0]
    summary: dict[str, Any] = {
        "examples": len(records),
        "accuracy": _rate([r["label"] == r["prediction"] for r in labelled]),
        "flip_rate": _rate([r["flip_found"] for r in records]),
        "pgd_l2_flip_rate": _rate(
            [
                None if math.isnan(r["pgd_l2_eps"]) else math.isfinite(r["pgd_l2_eps"])
                for r in records
            ]
        ),
        "class_kept_rate": _rate([r["extent_class_kept"] for r in records]),
    }
    for name in _SUMMARY_FIELDS:
        values = np.array([r[name] for r in records], dtype=np.float64)
        summary[name] = _describe(values)
    return summary


def summarize(records: list[dict[str, Any]], by: str = "auto") -> dict[str, Any]:
    """Overall and per-class summaries of audit records.

    Per group: ``examples``, ``accuracy`` (over labelled examples), ``flip_rate`` (share of
    examples whose SiMExp walk flipped within the budget), ``pgd_l2_flip_rate``,
    ``class_kept_rate`` (share of SiMEC walks that kept the class); a rate over a stage
    that did not run is NaN ("not computed"), never 0. Then the
    quartiles (``q25``, ``median``, ``q75``) of the flip distances, attack radii, ratios, class
    extent, drift, null dimension, spectral gap, rank margin and confidence, over their finite
    values (a walk without a flip counts in ``flip_rate``, not in the distance quartiles).

    Args:
        records: audit records (see :data:`FIELDS`).
        by: group the per-class part by ``"label"``, ``"prediction"``, or ``"auto"`` (labels
            when every record has one, else predictions).

    Returns:
        ``{"by": ..., "overall": {...}, "per_class": {class: {...}}}``.
    """
    by = check_choice(by, "by", ("auto", "label", "prediction"))
    if by == "auto":
        by = "label" if records and all(r["label"] >= 0 for r in records) else "prediction"
    classes = sorted({r[by] for r in records})
    return {
        "by": by,
        "overall": _group_summary(records),
        "per_class": {c: _group_summary([r for r in records if r[by] == c]) for c in classes},
    }


def _concat_maps(chunks: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """The per-batch maps joined along the batch (empty chunks skipped)."""
    chunks = [chunk for chunk in chunks if chunk]
    if not chunks:
        return {}
    return {key: torch.cat([chunk[key] for chunk in chunks]) for key in chunks[0]}


def _records_from_columns(columns: dict[str, Any], batch: int) -> list[dict[str, Any]]:
    """Plain-Python records (one dict per example, keys in :data:`FIELDS` order)."""
    lists = {}
    for name, (kind, _) in FIELDS.items():
        values = columns[name]
        values = values.tolist() if isinstance(values, Tensor) else list(values)
        if len(values) != batch:
            raise RuntimeError(f"column {name!r} has {len(values)} values for {batch} examples")
        lists[name] = [None if v is None else kind(v) for v in values]
    return [{name: lists[name][row] for name in FIELDS} for row in range(batch)]
