"""Per-example robustness audit of a classifier: pullback geometry, SiMEC/SiMExp walks, attacks.

For every example `x` with prediction `t = argmax f(x)` the audit measures (method.md §3-4):

- the spectrum of the pullback metric `g = J^T G J`: rank `r`, null dimension `n - r`, the top
  singular value `s_1` and the spectral gap `s_r / s_{r+1}`, and the per-feature robustness
  map `kappa_i = ||P_N e_i||^2 = 1 - sum_{k<=r} v_ki^2`;
- the **class extent**: a seeded SiMEC walk of K steps inside the class of `x` (the output held
  fixed, drift `||f(x_k) - f(x_0)||_G` reported and optionally bounded); how far it got, as the
  end-to-end displacement (L2, L-inf) and the path length;
- the **flip distance**: a directed SiMExp walk that leaves the predicted class, stopped when
  the prediction changes (the crossing refined by bisection); its displacement in L2 and L-inf,
  its path length and the class reached, or "no flip within budget" (`inf`);
- for comparison, the smallest FGSM and PGD radius that flips the prediction (per example, in
  L2 and L-inf, from :mod:`captum_simec.audit.attacks`), and the ratios
  `flip_l2 / pgd_l2_eps` and `flip_linf / pgd_linf_eps`. Both numbers bound the true minimal
  adversarial perturbation from above; a ratio near 1 means the walk found an attack-sized
  flip, a large ratio that the walk's path is far from the shortest one.

Results are a list of flat records (one dict per example, see :data:`FIELDS`) that write to
CSV and JSON without pandas, dataset-level summaries (overall and per class), and per-example
maps (input, robustness map, flip displacement) for the report figures.

Resuming: with an output folder, every audited batch is committed to
``out/shards/<shard>/records.jsonl`` (one JSON line per example, keyed by its data-set index)
after its maps were saved to ``out/shards/<shard>/maps/``. A rerun with ``resume=True`` skips
every index already committed in any shard, so an interrupted run loses at most the batch in
flight, and no example is audited twice. The settings are stored in ``out/settings.json`` and
a resumed run must use the same ones.

Reproducibility: an example's record depends only on the settings, the seed and its data-set
index, not on the batch it was audited in (the SiMEC walk of the example at index `j` is
seeded `seed + j`, following the walks' own per-example convention; the SiMExp walk and the
attacks are deterministic), so a resumed or sharded audit gives the records of an
uninterrupted one, up to float round-off.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

from captum_simec import _compat
from captum_simec._runtime import show_progress
from captum_simec.audit.attacks import (
    AttackResult,
    deepfool,
    l2_norm,
    linf_norm,
    min_fgsm_epsilon,
    min_pgd_epsilon,
)
from captum_simec.explore import Box, simec, simexp
from captum_simec.geometry import (
    as_probabilities,
    check_eval_mode,
    pullback_spectrum,
    resolve_output_metric,
)

__all__ = [
    "ATTACKS",
    "FIELDS",
    "AuditResult",
    "RobustnessAudit",
    "ShardStore",
    "completed_indices",
    "index_batches",
    "load_audit",
    "prepare_output",
    "summarize",
]

ATTACKS = ("fgsm", "pgd", "deepfool")
ATTACK_LOSSES = ("margin", "ce", "targeted")
NORMS = ("L2", "Linf")

#: The record schema: column name -> (Python type, meaning). Floats use ``inf`` for "no flip
#: within budget" and ``nan`` for "not computed" (e.g. an attack that was not run).
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
    "extent_l2": (float, "SiMEC walk: L2 norm of the end-to-end displacement"),
    "extent_linf": (float, "SiMEC walk: largest move of any feature over the walk"),
    "extent_path": (float, "SiMEC walk: path length"),
    "extent_drift": (float, "SiMEC walk: largest output drift ||f(x_k) - f(x_0)||_G"),
    "extent_class_kept": (bool, "SiMEC walk: predicted class unchanged at the end"),
    "extent_stop": (str, "SiMEC walk: why it stopped"),
    "flip_found": (bool, "SiMExp walk: the predicted class changed within the budget"),
    "flip_class": (int, "SiMExp walk: class reached (-1 when no flip)"),
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

_MAP_KEYS = ("input", "robustness", "flip")
_RECORDS_FILE = "records.jsonl"
_SETTINGS_FILE = "settings.json"


# ----------------------------------------------------------------------------- validation


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
    return value


def _check_positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"`{name}` must be a positive number, got {value!r}.")
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite, got {value!r}.")
    return float(value)


def _check_domain(domain: Box | tuple[Any, Any] | None) -> Box | None:
    """A `Box` from None, a `Box` or `(lo, hi)`; the audit supports one input tensor."""
    if domain is None:
        return None
    if isinstance(domain, list):
        domain = tuple(domain)
    if isinstance(domain, tuple) and len(domain) == 2:
        domain = Box(*domain)
    if not isinstance(domain, Box):
        raise TypeError(
            f"`domain` must be None, a Box or a (lo, hi) pair, got {type(domain).__name__}."
        )
    if isinstance(domain.lower, tuple) or isinstance(domain.upper, tuple):
        raise ValueError(
            "`domain` holds one bound per input, but the audit takes a single input tensor: "
            "pass one (lo, hi) pair."
        )
    return domain


def _check_inputs(inputs: Tensor) -> Tensor:
    """One float, finite input tensor with a batch dimension and a feature dimension."""
    if not isinstance(inputs, Tensor):
        raise TypeError(f"`inputs` must be a tensor, got {type(inputs).__name__}.")
    (inputs,) = _compat.format_inputs(inputs)
    if inputs.dim() < 2:
        raise ValueError(
            f"`inputs` has shape {tuple(inputs.shape)}: dim 0 is the batch, so a single "
            "example needs a batch dimension (x[None]) and features need a dimension of their "
            "own (x[:, None] for scalar features)."
        )
    return inputs.detach()


def _check_labels(labels: Tensor | Sequence[int] | None, batch: int) -> Tensor | None:
    if labels is None:
        return None
    labels = torch.as_tensor(labels)
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(
            f"`labels` must hold integer class indices, got dtype {labels.dtype}; "
            "convert them with `.long()`."
        )
    if labels.dim() != 1 or labels.shape[0] != batch:
        raise ValueError(
            f"`labels` has shape {tuple(labels.shape)} but there are {batch} examples: give "
            "one class index per example, or labels=None to audit the predictions only."
        )
    return labels.long()


def _ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    """`numerator / denominator` where both are finite and the denominator positive, else nan."""
    ok = torch.isfinite(numerator) & torch.isfinite(denominator) & (denominator > 0)
    return torch.where(ok, numerator / denominator.clamp_min(1e-300), torch.nan)


# ----------------------------------------------------------------------------- data batches


class _Indexed(Dataset):
    """Yields `(index, item)` so every example of a batch keeps its data-set index."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[int, Any]:
        return index, self.dataset[index]


class _IndexedCollate:
    """Collates `(index, item)` pairs with the user's collate function (picklable)."""

    def __init__(self, collate: Callable[[list[Any]], Any]) -> None:
        self.collate = collate

    def __call__(self, batch: list[tuple[int, Any]]) -> tuple[Tensor, Any]:
        indices = torch.tensor([index for index, _ in batch], dtype=torch.long)
        return indices, self.collate([item for _, item in batch])


def _split_item(item: Any) -> tuple[Tensor, Tensor | None]:
    """`(x, y)` from a collated batch: a tensor, `(x,)`, `(x, y)` or a dict with x/y keys."""
    if isinstance(item, Mapping):
        keys = [k for k in ("x", "inputs") if k in item]
        if not keys:
            raise ValueError(
                f"a batch dict has keys {sorted(item)}; the audit needs 'x' (or 'inputs') and "
                "optionally 'y' (or 'labels')."
            )
        labels = item.get("y", item.get("labels"))
        return item[keys[0]], labels
    if isinstance(item, Tensor):
        return item, None
    if isinstance(item, list | tuple) and len(item) in (1, 2):
        return item[0], (item[1] if len(item) == 2 else None)
    raise ValueError(
        f"a data batch of type {type(item).__name__} is neither a tensor nor an (inputs, "
        "labels) pair; make the dataset return x or (x, y)."
    )


def index_batches(
    data: Tensor | Dataset | DataLoader,
    labels: Tensor | Sequence[int] | None = None,
    batch_size: int = 32,
) -> tuple[Iterable[tuple[Tensor, Tensor, Tensor | None]], int | None]:
    """Batches `(indices, inputs, labels or None)` from tensors, a Dataset or a DataLoader.

    A DataLoader keeps its sampler (e.g. a `DistributedSampler`), batch sampler, workers and
    collate function; its examples are identified by their index in `loader.dataset`, which
    must therefore be map-style.

    Returns:
        The batch iterable and the number of examples it yields (None when unknown).
    """
    if isinstance(data, Tensor):
        x = _check_inputs(data)
        y = _check_labels(labels, x.shape[0])
        batch_size = _check_positive_int(batch_size, "batch_size")

        def tensor_batches() -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
            for start in range(0, x.shape[0], batch_size):
                index = torch.arange(start, min(start + batch_size, x.shape[0]))
                yield index, x[start : start + batch_size], None if y is None else y[index]

        return tensor_batches(), x.shape[0]
    if labels is not None:
        raise ValueError(
            "`labels` is only used with tensor inputs; a Dataset or DataLoader carries its own "
            "labels as (x, y) items."
        )
    if isinstance(data, Dataset) and not isinstance(data, IterableDataset):
        data = DataLoader(data, batch_size=_check_positive_int(batch_size, "batch_size"))
    if not isinstance(data, DataLoader):
        raise TypeError(
            f"`data` must be a tensor, a map-style Dataset or a DataLoader, got "
            f"{type(data).__name__}."
        )
    if isinstance(data.dataset, IterableDataset):
        raise ValueError(
            "`data` iterates over an IterableDataset, whose examples have no index to resume "
            "or merge by: use a map-style Dataset (e.g. TensorDataset)."
        )
    if data.batch_sampler is None:
        raise ValueError("`data` is a DataLoader with batch_size=None; give it a batch_size.")
    loader = DataLoader(
        _Indexed(data.dataset),
        batch_sampler=data.batch_sampler,
        num_workers=data.num_workers,
        collate_fn=_IndexedCollate(data.collate_fn),
        pin_memory=data.pin_memory,
        worker_init_fn=data.worker_init_fn,
    )

    def loader_batches() -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
        for index, item in loader:
            x, y = _split_item(item)
            x = _check_inputs(x)
            yield index, x, _check_labels(y, x.shape[0])

    try:
        total = len(data.batch_sampler.sampler)  # type: ignore[union-attr]
    except (AttributeError, TypeError):
        total = None  # a custom batch sampler: the progress bar shows a count only
    return loader_batches(), total


# ----------------------------------------------------------------------------- results


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
        """One field over all records as a numpy array."""
        if name not in FIELDS:
            raise KeyError(f"unknown field {name!r}; the fields are {list(FIELDS)}.")
        kind = FIELDS[name][0]
        dtype = {int: np.int64, float: np.float64, bool: np.bool_, str: object}[kind]
        return np.array([record[name] for record in self.records], dtype=dtype)

    def to_numpy(self) -> np.ndarray:
        """The records as a numpy structured array (one field per column)."""
        width = max([len(r[k]) for r in self.records for k in FIELDS if FIELDS[k][0] is str] + [1])
        types = {int: np.int64, float: np.float64, bool: np.bool_, str: f"U{width}"}
        dtype = [(name, types[kind]) for name, (kind, _) in FIELDS.items()]
        rows = [tuple(record[name] for name in FIELDS) for record in self.records]
        return np.array(rows, dtype=dtype)

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


# ----------------------------------------------------------------------------- summaries

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
    "confidence",
)


def _describe(values: np.ndarray) -> dict[str, float]:
    """Median and quartiles of the finite values (nan when none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"q25": math.nan, "median": math.nan, "q75": math.nan}
    q25, median, q75 = np.quantile(finite, [0.25, 0.5, 0.75])
    return {"q25": float(q25), "median": float(median), "q75": float(q75)}


def _group_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    labelled = [r for r in records if r["label"] >= 0]
    flipped = [r["flip_found"] for r in records]
    summary: dict[str, Any] = {
        "examples": len(records),
        "accuracy": (
            float(np.mean([r["label"] == r["prediction"] for r in labelled]))
            if labelled
            else math.nan
        ),
        "flip_rate": float(np.mean(flipped)) if records else math.nan,
        "pgd_l2_flip_rate": float(np.mean([math.isfinite(r["pgd_l2_eps"]) for r in records]))
        if records
        else math.nan,
    }
    for name in _SUMMARY_FIELDS:
        values = np.array([r[name] for r in records], dtype=np.float64)
        summary[name] = _describe(values)
    return summary


def summarize(records: list[dict[str, Any]], by: str = "auto") -> dict[str, Any]:
    """Overall and per-class summaries of audit records.

    Per group: ``examples``, ``accuracy`` (over labelled examples), ``flip_rate`` (share of
    examples whose SiMExp walk flipped within the budget), ``pgd_l2_flip_rate``, and the
    quartiles (``q25``, ``median``, ``q75``) of the flip distances, attack radii, ratios, class
    extent, drift, null dimension and confidence, over their finite values (a walk without a
    flip counts in ``flip_rate``, not in the distance quartiles).

    Args:
        records: audit records (see :data:`FIELDS`).
        by: group the per-class part by ``"label"``, ``"prediction"``, or ``"auto"`` (labels
            when every record has one, else predictions).

    Returns:
        ``{"by": ..., "overall": {...}, "per_class": {class: {...}}}``.
    """
    if by not in ("auto", "label", "prediction"):
        raise ValueError(f"`by` must be 'auto', 'label' or 'prediction', got {by!r}.")
    if by == "auto":
        by = "label" if records and all(r["label"] >= 0 for r in records) else "prediction"
    classes = sorted({r[by] for r in records})
    return {
        "by": by,
        "overall": _group_summary(records),
        "per_class": {c: _group_summary([r for r in records if r[by] == c]) for c in classes},
    }


# ----------------------------------------------------------------------------- storage


class ShardStore:
    """Append-only storage of one shard of an audit: JSONL records plus per-batch map files.

    A batch is committed by appending its records to ``records.jsonl`` (one line per
    example, flushed and fsynced) after its maps were saved; a batch cut short by a crash
    leaves at most a partial last line, which :func:`load_audit` ignores.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        (self.folder / "maps").mkdir(parents=True, exist_ok=True)
        records = self.folder / _RECORDS_FILE
        if records.exists() and records.stat().st_size > 0:
            with records.open("rb+") as handle:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":  # a line cut short by a crash: close it
                    handle.write(b"\n")

    def append(self, records: list[dict[str, Any]], maps: dict[str, Tensor] | None) -> None:
        """Saves one batch: its maps (if any), then its records (the commit)."""
        if not records:
            return
        if maps:
            name = f"{records[0]['index']:09d}-{records[-1]['index']:09d}.pt"
            torch.save({k: v.detach().cpu() for k, v in maps.items()}, self.folder / "maps" / name)
        with (self.folder / _RECORDS_FILE).open("a") as handle:
            handle.write("".join(json.dumps(record) + "\n" for record in records))
            handle.flush()
            os.fsync(handle.fileno())


def _read_records(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a crash: that example is redone on resume
    return records


def completed_indices(out: str | os.PathLike) -> set[int]:
    """Data-set indices committed in any shard under ``out/shards``."""
    return {
        record["index"]
        for path in sorted(Path(out).glob(f"shards/*/{_RECORDS_FILE}"))
        for record in _read_records(path)
    }


def load_audit(out: str | os.PathLike) -> AuditResult:
    """Merges every shard under ``out/shards`` into one result, one record per index.

    Duplicates (the padding a `DistributedSampler` adds, or a batch redone after a crash)
    keep their first committed copy; records are sorted by index.
    """
    out = Path(out)
    paths = sorted(out.glob(f"shards/*/{_RECORDS_FILE}"))
    if not paths:
        raise FileNotFoundError(f"{out} holds no audit shards (no shards/*/{_RECORDS_FILE}).")
    records: dict[int, dict[str, Any]] = {}
    for path in paths:
        for record in _read_records(path):
            records.setdefault(record["index"], record)
    maps = _load_maps(out, set(records))
    settings_path = out / _SETTINGS_FILE
    settings = json.loads(settings_path.read_text()) if settings_path.exists() else {}
    return AuditResult([records[i] for i in sorted(records)], maps, settings)


def _load_maps(out: Path, wanted: set[int]) -> dict[str, Tensor]:
    chunks: dict[int, dict[str, Tensor]] = {}
    for path in sorted(out.glob("shards/*/maps/*.pt")):
        saved = torch.load(path, weights_only=True)
        for row, index in enumerate(saved["index"].tolist()):
            if index in wanted and index not in chunks:
                chunks[index] = {key: saved[key][row] for key in _MAP_KEYS}
    if not chunks:
        return {}
    order = sorted(chunks)
    maps = {key: torch.stack([chunks[i][key] for i in order]) for key in _MAP_KEYS}
    maps["index"] = torch.tensor(order, dtype=torch.long)
    return maps


def prepare_output(out: str | os.PathLike, settings: dict[str, Any], resume: bool) -> set[int]:
    """Checks and initialises an output folder; returns the indices already audited there.

    Raises:
        FileExistsError: `out` already holds audit records and ``resume`` is False.
        ValueError: resuming a folder audited with different settings.
    """
    out = Path(out)
    done = completed_indices(out) if out.exists() else set()
    settings_path = out / _SETTINGS_FILE
    if done and not resume:
        raise FileExistsError(
            f"{out} already holds {len(done)} audited examples; pass resume=True (--resume) to "
            "continue that audit, or choose an empty output folder."
        )
    if resume and settings_path.exists():
        saved = json.loads(settings_path.read_text())
        current = json.loads(json.dumps(settings))
        changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        if changed:
            raise ValueError(
                f"{out} was audited with different settings ({', '.join(changed)}); resume "
                "with the same settings, or audit into a new folder."
            )
    out.mkdir(parents=True, exist_ok=True)
    temporary = settings_path.with_suffix(f".tmp{os.getpid()}")
    temporary.write_text(json.dumps(settings, indent=1))
    os.replace(temporary, settings_path)
    return done if resume else set()


# ----------------------------------------------------------------------------- the audit


class RobustnessAudit:
    """Audits a classifier example by example: geometry, class extent, flip distance, attacks.

    Args:
        model: classifier in ``eval()`` mode returning ``(B, C)`` logits (or log-probabilities
            or probabilities), called as ``model(x)`` on one input tensor.
        domain: the box of admissible inputs, ``(lo, hi)`` (numbers or tensors broadcastable
            to one example) or a :class:`~captum_simec.explore.Box`; walks stay inside it and
            attacks are clipped to it. None: unbounded (then pass ``eps_max``).
        output_metric: the output metric `G` of the spectrum and the walks (see
            :func:`~captum_simec.geometry.pullback_spectrum`); metrics that need a target
            (``"target"``, ``"margin"``) use the predicted class.
        simec_steps: K, steps of the SiMEC (class extent) walk; 0 skips it.
        simec_step_size: length of one SiMEC step, in input units.
        max_drift: stop an example's SiMEC walk once its output drift exceeds this (None:
            never; the drift is reported either way).
        corrector: Gauss-Newton correction back onto the class after each SiMEC step.
        simexp_steps: most steps of the SiMExp (flip) walk; 0 skips it.
        simexp_step_size: length of one SiMExp step, in input units (the crossing is then
            refined by bisection, so the flip distance is not quantised by it).
        attacks: which of ``"fgsm"``, ``"pgd"`` (both in L2 and L-inf) and ``"deepfool"``
            (L2) to run; empty for none.
        pgd_steps: PGD iterations per candidate radius.
        eps_max: largest attack radius per norm, ``{"L2": ..., "Linf": ...}``; default from
            the domain: ``hi - lo`` for L-inf and ``(hi - lo) sqrt(n)`` for L2 (the box's
            diagonal). Required when ``domain`` is None and attacks run.
        attack_rtol: bisection tolerance of the attack radii, relative to ``eps_max``.
        attack_loss: what FGSM and PGD ascend: ``"margin"`` (default; best other output minus
            the predicted one, which heads for the nearest boundary), ``"ce"``
            (cross-entropy, which spreads its push over all classes and overestimates the
            radius with three or more classes) or ``"targeted"`` (one attack per other
            class, the tightest and C - 1 times the cost).
        seed: seeds every random choice (the SiMEC walk of the example at data-set index
            `j` uses ``seed + j``); a non-negative integer.
        rtol: relative rank tolerance of the spectrum (default: the geometry default).
        keep_maps: keep each example's input, robustness map and flip displacement (for the
            report figures; costs 3 n floats per example).
        progress: tqdm bars; None shows them only on a terminal.

    Raises:
        ValueError / TypeError: a model in training mode, a bad box (lo > hi), non-positive
            steps or step sizes, an unknown attack, attacks without a domain or ``eps_max``.
    """

    def __init__(
        self,
        model: Callable[..., Tensor],
        *,
        domain: Box | tuple[Any, Any] | None = None,
        output_metric: Any = "euclidean",
        simec_steps: int = 20,
        simec_step_size: float = 0.05,
        max_drift: float | None = None,
        corrector: bool = False,
        simexp_steps: int = 300,
        simexp_step_size: float = 0.05,
        attacks: Sequence[str] = ("fgsm", "pgd"),
        pgd_steps: int = 20,
        eps_max: Mapping[str, float] | None = None,
        attack_rtol: float = 2.5e-4,
        attack_loss: str = "margin",
        seed: int = 0,
        rtol: float | None = None,
        keep_maps: bool = True,
        progress: bool | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError(
                f"`model` must be a torch.nn.Module or a callable, got {type(model).__name__}."
            )
        check_eval_mode(model, strict=True)
        self.model = model
        self.domain = _check_domain(domain)
        resolve_output_metric(output_metric)  # validates early; the walks resolve it again
        self.output_metric = output_metric
        for name, value in (("simec_steps", simec_steps), ("simexp_steps", simexp_steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"`{name}` must be an integer >= 0, got {value!r}.")
        self.simec_steps, self.simexp_steps = simec_steps, simexp_steps
        self.simec_step_size = _check_positive(simec_step_size, "simec_step_size")
        self.simexp_step_size = _check_positive(simexp_step_size, "simexp_step_size")
        self.max_drift = None if max_drift is None else _check_positive(max_drift, "max_drift")
        self.corrector = bool(corrector)
        unknown = sorted(set(attacks) - set(ATTACKS))
        if isinstance(attacks, str) or unknown:
            raise ValueError(
                f"`attacks` must be a sequence drawn from {ATTACKS}, got {attacks!r}; pass () "
                "to skip the attacks."
            )
        self.attacks = tuple(a for a in ATTACKS if a in attacks)
        self.pgd_steps = _check_positive_int(pgd_steps, "pgd_steps")
        if eps_max is not None:
            if set(eps_max) != set(NORMS):
                raise ValueError(f"`eps_max` must have the keys {NORMS}, got {sorted(eps_max)}.")
            eps_max = {k: _check_positive(v, f"eps_max[{k!r}]") for k, v in eps_max.items()}
        elif self.attacks and self.domain is None:
            raise ValueError(
                "the attacks need a largest radius: pass `domain=(lo, hi)` (eps_max is then "
                "derived from the box) or `eps_max={'L2': ..., 'Linf': ...}`, or attacks=()."
            )
        self.eps_max = eps_max
        self.attack_rtol = _check_positive(attack_rtol, "attack_rtol")
        if attack_loss not in ATTACK_LOSSES:
            raise ValueError(f"`attack_loss` must be one of {ATTACK_LOSSES}, got {attack_loss!r}.")
        self.attack_loss = attack_loss
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}.")
        self.seed = seed
        self.rtol = rtol
        self.keep_maps = bool(keep_maps)
        self.progress = progress

    # ----- settings -----
    @property
    def settings(self) -> dict[str, Any]:
        """The settings that determine the records (JSON-compatible)."""

        def bound(value: Any) -> Any:
            return value.tolist() if isinstance(value, Tensor) else value

        metric = self.output_metric
        return {
            "domain": None
            if self.domain is None
            else [bound(self.domain.lower), bound(self.domain.upper), self.domain.constraint],
            "output_metric": metric if isinstance(metric, str) else repr(metric),
            "simec_steps": self.simec_steps,
            "simec_step_size": self.simec_step_size,
            "max_drift": self.max_drift,
            "corrector": self.corrector,
            "simexp_steps": self.simexp_steps,
            "simexp_step_size": self.simexp_step_size,
            "attacks": list(self.attacks),
            "pgd_steps": self.pgd_steps,
            "eps_max": self.eps_max,
            "attack_rtol": self.attack_rtol,
            "attack_loss": self.attack_loss,
            "seed": self.seed,
            "rtol": self.rtol,
        }

    def _bounds(self, x: Tensor) -> tuple[Tensor, Tensor] | None:
        """The domain's lower and upper bounds shaped like one example, or None."""
        if self.domain is None:
            return None
        bound = self.domain.bind((x.shape[1:],), x.dtype, x.device)
        return bound.lower.view(x.shape[1:]), bound.upper.view(x.shape[1:])

    def _eps_max(self, bounds: tuple[Tensor, Tensor] | None, n: int) -> dict[str, float]:
        if self.eps_max is not None:
            return dict(self.eps_max)
        assert bounds is not None  # guaranteed by __init__ when attacks run
        width = float((bounds[1] - bounds[0]).max())
        return {"Linf": width, "L2": width * math.sqrt(n)}

    def _target_for_metric(self, prediction: Tensor) -> Tensor | None:
        metric = resolve_output_metric(self.output_metric)
        return prediction if metric.requires_target else None

    # ----- one batch -----
    def audit_batch(
        self,
        inputs: Tensor,
        labels: Tensor | Sequence[int] | None = None,
        indices: Tensor | Sequence[int] | None = None,
        timings: dict[str, float] | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Tensor]]:
        """Audits one batch.

        Args:
            inputs: ``(B, ...)`` float inputs inside the domain (moved to the model's device).
            labels: ``(B,)`` true classes, or None.
            indices: ``(B,)`` data-set indices (they seed the SiMEC walks); default
                ``0..B-1``.
            timings: if given, seconds per stage are added to it.

        Returns:
            ``(records, maps)``: one record per example and the per-example maps (``index``,
            ``input``, ``robustness``, ``flip``; empty if ``keep_maps`` is False).
        """
        x = _check_inputs(inputs)
        parameter = next(iter(getattr(self.model, "parameters", list)()), None)
        if parameter is not None and parameter.device != x.device:
            x = x.to(parameter.device)  # e.g. CPU batches from a DataLoader, model on a GPU
        batch = x.shape[0]
        y = _check_labels(labels, batch)
        index = torch.arange(batch) if indices is None else torch.as_tensor(indices).long()
        if index.shape != (batch,):
            raise ValueError(f"`indices` must have shape ({batch},), got {tuple(index.shape)}.")
        if self.domain is not None:
            self.domain.bind((x.shape[1:],), x.dtype, x.device).check_inside(x.flatten(1))
        timings = {} if timings is None else timings
        clock = time.perf_counter()

        with torch.no_grad():
            outputs = self.model(x)
        if (
            not isinstance(outputs, Tensor)
            or outputs.dim() != 2
            or outputs.shape[0] != batch
            or outputs.shape[1] < 2
        ):
            shape = tuple(outputs.shape) if isinstance(outputs, Tensor) else type(outputs)
            raise ValueError(
                f"`model` returned {shape} for a batch of {batch}; the audit needs (batch, "
                "classes) scores with at least two classes: wrap the model to return logits."
            )
        prediction = outputs.argmax(dim=1)
        probabilities = as_probabilities(outputs)
        top2 = outputs.topk(min(2, outputs.shape[1]), dim=1).values
        margin = top2[:, 0] - top2[:, -1]
        spectrum = pullback_spectrum(
            self.model,
            x,
            output_metric=self.output_metric,
            target=self._target_for_metric(prediction),
            rtol=self.rtol,
        )
        robustness = spectrum.robustness()
        columns: dict[str, Any] = {
            "index": index,
            "label": torch.full((batch,), -1, dtype=torch.long) if y is None else y,
            "prediction": prediction,
            "confidence": probabilities.gather(1, prediction[:, None]).squeeze(1),
            "margin": margin,
            "rank": spectrum.rank,
            "null_dim": spectrum.null_dim,
            "top_singular_value": spectrum.singular_values[:, 0],
            "spectral_gap": spectrum.spectral_gap,
        }
        timings["spectrum"] = timings.get("spectrum", 0.0) + time.perf_counter() - clock

        clock = time.perf_counter()
        columns.update(self._class_extent(x, index, prediction))
        timings["simec"] = timings.get("simec", 0.0) + time.perf_counter() - clock

        clock = time.perf_counter()
        flip_columns, flip_map = self._flip(x, prediction)
        columns.update(flip_columns)
        timings["simexp"] = timings.get("simexp", 0.0) + time.perf_counter() - clock

        clock = time.perf_counter()
        columns.update(self._attack(x))
        timings["attacks"] = timings.get("attacks", 0.0) + time.perf_counter() - clock

        columns["ratio_l2"] = _ratio(columns["flip_l2"], columns["pgd_l2_eps"])
        columns["ratio_linf"] = _ratio(columns["flip_linf"], columns["pgd_linf_eps"])
        records = _to_records(columns, batch)
        maps: dict[str, Tensor] = {}
        if self.keep_maps:
            maps = {
                "index": index,
                "input": x.detach().cpu(),
                "robustness": robustness.reshape(x.shape).detach().cpu(),
                "flip": flip_map.reshape(x.shape).detach().cpu(),
            }
        return records, maps

    def _class_extent(self, x: Tensor, index: Tensor, prediction: Tensor) -> dict[str, Any]:
        """SiMEC walks; the example at data-set index `j` walks with seed `seed + j`.

        One batched walk with one seed per example, so the result does not depend on how
        the data were batched, sharded or resumed.
        """
        batch = x.shape[0]
        if self.simec_steps == 0:
            nan = torch.full((batch,), torch.nan, dtype=torch.float64)
            return {
                "extent_l2": nan,
                "extent_linf": nan,
                "extent_path": nan,
                "extent_drift": nan,
                "extent_class_kept": [True] * batch,
                "extent_stop": ["skipped"] * batch,
            }
        walk = simec(
            self.model,
            x,
            steps=self.simec_steps,
            step_size=self.simec_step_size,
            output_metric=self.output_metric,
            target=self._target_for_metric(prediction),
            domain=self.domain,
            corrector=self.corrector,
            max_drift=self.max_drift,
            seed=[self.seed + int(j) for j in index],
            progress=False,
        )
        return {
            "extent_l2": l2_norm(walk.displacement()).tolist(),
            "extent_linf": linf_norm(walk.max_abs_displacement()).tolist(),
            "extent_path": walk.path_length.tolist(),
            "extent_drift": walk.max_drift.tolist(),
            "extent_class_kept": (~walk.class_changed).tolist(),
            "extent_stop": list(walk.stop_reason),
        }

    def _flip(self, x: Tensor, prediction: Tensor) -> tuple[dict[str, Any], Tensor]:
        """The directed SiMExp walk out of the predicted class, batched."""
        batch = x.shape[0]
        if self.simexp_steps == 0:
            nan = torch.full((batch,), torch.nan, dtype=torch.float64)
            columns = {
                "flip_found": [False] * batch,
                "flip_class": [-1] * batch,
                "flip_l2": nan,
                "flip_linf": nan,
                "flip_path": nan,
                "flip_stop": ["skipped"] * batch,
            }
            return columns, torch.zeros_like(x)
        walk = simexp(
            self.model,
            x,
            steps=self.simexp_steps,
            step_size=self.simexp_step_size,
            mode="leave_class",
            target=prediction,
            output_metric=self.output_metric,
            domain=self.domain,
            refine_boundary=True,
            seed=self.seed,
            progress=False,
        )
        # The crossing is refined onto the decision boundary, where the start class may still
        # tie for the top output: the class reached is the best class other than the start's.
        flipped = torch.tensor([reason == "class_change" for reason in walk.stop_reason])
        final = walk.outputs[-1].detach().cpu()
        reached = final.scatter(1, prediction.cpu()[:, None], -torch.inf).argmax(dim=1)
        displacement = walk.displacement().reshape(batch, -1).detach()
        inf = torch.full((batch,), torch.inf, dtype=torch.float64)

        def when_flipped(values: Tensor) -> Tensor:
            return torch.where(flipped, values.double().cpu(), inf)

        columns = {
            "flip_found": flipped,
            "flip_class": torch.where(flipped, reached, -1),
            "flip_l2": when_flipped(l2_norm(displacement)),
            "flip_linf": when_flipped(linf_norm(displacement)),
            "flip_path": when_flipped(torch.as_tensor(walk.path_length)),
            "flip_stop": [str(reason) for reason in walk.stop_reason],
        }
        return columns, displacement

    def _attack(self, x: Tensor) -> dict[str, Tensor]:
        """Smallest flipping FGSM / PGD radii (L2 and L-inf) and DeepFool's L2 norm."""
        batch = x.shape[0]
        columns = {
            f"{attack}_{norm.lower()}_eps": torch.full((batch,), torch.nan, dtype=torch.float64)
            for attack in ("fgsm", "pgd")
            for norm in NORMS
        }
        columns["deepfool_l2_eps"] = columns["pgd_l2_eps"].clone()
        if not self.attacks:
            return columns
        domain = self._bounds(x)
        eps_max = self._eps_max(domain, x[0].numel())
        bounds = {} if domain is None else {"lower_bound": domain[0], "upper_bound": domain[1]}

        def epsilon(result: AttackResult) -> Tensor:
            return result.epsilon.double().cpu()

        for norm in NORMS:
            common = {"norm": norm, "loss": self.attack_loss, "progress": False, **bounds}
            search = {"eps_max": eps_max[norm], "tol": self.attack_rtol * eps_max[norm]}
            if "fgsm" in self.attacks:
                result = min_fgsm_epsilon(self.model, x, **common, **search)
                columns[f"fgsm_{norm.lower()}_eps"] = epsilon(result)
            if "pgd" in self.attacks:
                result = min_pgd_epsilon(
                    self.model, x, steps=self.pgd_steps, seed=self.seed, **common, **search
                )
                columns[f"pgd_{norm.lower()}_eps"] = epsilon(result)
        if "deepfool" in self.attacks:
            columns["deepfool_l2_eps"] = epsilon(deepfool(self.model, x, norm="L2", **bounds))
        return columns

    # ----- whole data sets -----
    def run(
        self,
        data: Tensor | Dataset | DataLoader,
        labels: Tensor | Sequence[int] | None = None,
        *,
        out: str | os.PathLike | None = None,
        batch_size: int = 32,
        resume: bool = False,
        limit: int | None = None,
    ) -> AuditResult:
        """Audits a data set batch by batch, committing each batch to `out` if given.

        Args:
            data: ``(N, ...)`` inputs, a map-style Dataset of ``x`` or ``(x, y)`` items, or a
                DataLoader over one (its sampler decides which examples are audited).
            labels: ``(N,)`` true classes for tensor `data` (optional).
            out: output folder for the shards (resume); None keeps everything in memory.
            batch_size: examples per batch for tensor or Dataset `data`.
            resume: skip the examples already committed under `out`.
            limit: audit at most this many new examples in this call (then stop cleanly).

        Returns:
            An :class:`AuditResult`: with `out`, every example committed there (this run's and
            earlier ones), also saved as ``records.csv``, ``records.json`` and
            ``summary.json`` in `out`; without, this run's examples.

        Raises:
            FileExistsError: `out` already holds records and ``resume`` is False.
        """
        skip = prepare_output(out, self.settings, resume) if out is not None else set()
        result = self.audit_shard(
            data, labels, out=out, batch_size=batch_size, skip=skip, limit=limit
        )
        if out is None:
            return result
        merged = load_audit(out)
        merged.timings = result.timings
        merged.save(out)
        return merged

    def audit_shard(
        self,
        data: Tensor | Dataset | DataLoader,
        labels: Tensor | Sequence[int] | None = None,
        *,
        out: str | os.PathLike | None = None,
        batch_size: int = 32,
        skip: set[int] | frozenset[int] = frozenset(),
        limit: int | None = None,
        shard: str = "rank-0",
        progress: bool | None = None,
    ) -> AuditResult:
        """Audits the examples of `data` whose index is not in `skip`: one process's share.

        Unlike :meth:`run`, the output folder is neither checked nor initialised (see
        :func:`prepare_output`), so several processes can each audit their shard of one
        folder (:mod:`captum_simec.audit.distributed`).

        Args:
            data, labels, batch_size, limit: as in :meth:`run`.
            out: folder whose ``shards/<shard>`` receives each committed batch, or None.
            skip: data-set indices not to audit (already done).
            shard: name of this process's shard folder.
            progress: override of the audit's ``progress`` setting.

        Returns:
            The records and maps audited in this call, with their timings.
        """
        from tqdm.auto import tqdm

        batches, total = index_batches(data, labels, batch_size)
        if limit is not None:
            limit = _check_positive_int(limit, "limit")
        store = None if out is None else ShardStore(Path(out) / "shards" / shard)
        show = show_progress(self.progress if progress is None else progress)
        timings: dict[str, float] = {}
        records: list[dict[str, Any]] = []
        maps: list[dict[str, Tensor]] = []
        skip = set(skip)
        flips = 0
        start = time.perf_counter()
        bar = tqdm(total=total, desc="robustness audit", unit="ex", disable=not show)
        try:
            for index, x, y in batches:
                pending = torch.tensor([int(i) not in skip for i in index], dtype=torch.bool)
                if limit is not None:
                    pending &= torch.cumsum(pending.long(), 0) <= limit - len(records)
                if bool(pending.any()):
                    batch_records, batch_maps = self.audit_batch(
                        x[pending], None if y is None else y[pending], index[pending], timings
                    )
                    if store is not None:
                        store.append(batch_records, batch_maps)
                    records += batch_records
                    maps.append(batch_maps)
                    skip.update(index[pending].tolist())
                    flips += sum(r["flip_found"] for r in batch_records)
                bar.update(len(index))
                bar.set_postfix(audited=len(records), flipped=flips)
                if limit is not None and len(records) >= limit:
                    break
        finally:
            bar.close()
        timings["total"] = time.perf_counter() - start
        timings["examples"] = float(len(records))
        return AuditResult(records, _concat_maps(maps), self.settings, timings)


def _concat_maps(chunks: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    chunks = [chunk for chunk in chunks if chunk]
    if not chunks:
        return {}
    return {key: torch.cat([chunk[key] for chunk in chunks]) for key in chunks[0]}


def _to_records(columns: dict[str, Any], batch: int) -> list[dict[str, Any]]:
    """Plain-Python records (one dict per example, keys in :data:`FIELDS` order)."""
    lists = {}
    for name, (kind, _) in FIELDS.items():
        values = columns[name]
        values = values.tolist() if isinstance(values, Tensor) else list(values)
        if len(values) != batch:
            raise RuntimeError(f"column {name!r} has {len(values)} values for {batch} examples")
        lists[name] = [kind(v) for v in values]
    return [{name: lists[name][row] for name in FIELDS} for row in range(batch)]
