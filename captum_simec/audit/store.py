"""The shard store: every audited batch is committed to disk, so an audit resumes and merges.

With an output folder, every audited batch is committed to
``out/shards/<shard>/records.jsonl`` (one JSON line per example, keyed by its data-set index)
after its maps were saved to ``out/shards/<shard>/maps/``. A rerun with ``resume=True`` skips
every index already committed in any shard, so an interrupted run loses at most the batch in
flight, and no example is audited twice. The settings are stored in ``out/settings.json`` and
a resumed run must use the same ones. :func:`load_audit` merges the shards of one folder (one
per process of a distributed audit) into one result.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from captum_simec.audit.records import AuditResult

__all__ = ["ChangedSettingsError", "ExistingAuditError", "load_audit"]

_MAP_KEYS = ("input", "robustness", "flip")
_RECORDS_FILE = "records.jsonl"
_SETTINGS_FILE = "settings.json"


class ExistingAuditError(FileExistsError):
    """The output folder already holds audited examples and the audit does not resume."""

    def __init__(self, folder: str | os.PathLike, count: int) -> None:
        self.folder, self.count = str(folder), count
        super().__init__(
            f"{folder} already holds {count} audited examples; pass resume=True (--resume) to "
            "continue that audit, or choose an empty output folder."
        )

    def __reduce__(self) -> tuple[Any, ...]:  # pickled to the other ranks as it is
        return type(self), (self.folder, self.count)


class ChangedSettingsError(ValueError):
    """A resumed audit's settings differ from those stored in its output folder."""

    def __init__(self, folder: str | os.PathLike, changed: list[str]) -> None:
        self.folder, self.changed = str(folder), list(changed)
        super().__init__(
            f"{folder} was audited with different settings ({', '.join(changed)}); resume "
            "with the same settings, or audit into a new folder."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.folder, self.changed)


class _ShardStore:
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
    """The records committed to one shard's JSONL file, in commit order."""
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a crash: that example is redone on resume
    return records


def _completed_indices(out: str | os.PathLike) -> set[int]:
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
    """The maps of the `wanted` indices from every shard, stacked in index order (first copy)."""
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


def _prepare_output(out: str | os.PathLike, settings: dict[str, Any], resume: bool) -> set[int]:
    """Checks and initialises an output folder; returns the indices already audited there.

    Raises:
        ExistingAuditError: `out` already holds audit records and ``resume`` is False (a
            `FileExistsError`).
        ChangedSettingsError: resuming a folder audited with different settings (a
            `ValueError`).
    """
    out = Path(out)
    done = _completed_indices(out) if out.exists() else set()
    settings_path = out / _SETTINGS_FILE
    if done and not resume:
        raise ExistingAuditError(out, len(done))
    if resume and settings_path.exists():
        saved = json.loads(settings_path.read_text())
        current = json.loads(json.dumps(settings))
        changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        if changed:
            raise ChangedSettingsError(out, changed)
    out.mkdir(parents=True, exist_ok=True)
    temporary = settings_path.with_suffix(f".tmp{os.getpid()}")
    temporary.write_text(json.dumps(settings, indent=1))
    os.replace(temporary, settings_path)
    return done if resume else set()
