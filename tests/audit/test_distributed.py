"""The audit under torchrun: two gloo processes on CPU, merged by rank 0.

The merged table must equal a single-process audit of the same data (the records of an
example depend only on its index), and the padding a DistributedSampler adds (11 examples on 2
ranks: index 0 again on rank 1) must be merged away.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from captum_simec.audit import RobustnessAudit, audit_distributed, load_audit
from captum_simec.audit.distributed import _distributed_loader
from captum_simec.cli import main
from tests.test_cli import FAST, TINY_MODULE

from .helpers import assert_same_records, tiny_data, tiny_mlp


def _records(path: Path) -> list[dict]:
    return json.loads(path.read_text())["records"]


def test_two_gloo_processes_equal_one(tmp_path):
    (tmp_path / "tiny.py").write_text(TINY_MODULE)
    x, y = tiny_data(11)
    torch.save({"x": x, "y": y}, tmp_path / "data.pt")
    common = ["--model", f"{tmp_path / 'tiny.py'}:make", "--data", str(tmp_path / "data.pt")]
    common += ["--box", "0", "1", "--batch-size", "3", *FAST]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launch += ["--nproc_per_node", "2", "-m", "captum_simec.cli", "audit"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*launch, *common, "--out", str(tmp_path / "two")],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("report:") == 1  # only rank 0 reports
    assert main(["audit", *common, "--out", str(tmp_path / "one")]) == 0

    shards = tmp_path / "two" / "shards"
    ranks = {
        p.name: [json.loads(line)["index"] for line in p.joinpath("records.jsonl").open()]
        for p in shards.iterdir()
    }
    assert sorted(ranks) == ["rank-0", "rank-1"]
    assert sorted(ranks["rank-0"]) == [0, 2, 4, 6, 8, 10]
    assert sorted(ranks["rank-1"]) == [0, 1, 3, 5, 7, 9]  # index 0: the sampler's padding
    two = _records(tmp_path / "two" / "records.json")
    one = _records(tmp_path / "one" / "records.json")
    assert len(two) == 11
    assert_same_records(two, one)
    assert (tmp_path / "two" / "report.html").is_file()


def test_single_process_fallback_and_loader(tmp_path):
    x, y = tiny_data(5)
    audit = RobustnessAudit(
        tiny_mlp(), domain=(0.0, 1.0), simec_steps=0, simexp_steps=0, attacks=(), progress=False
    )
    result = audit_distributed(audit, x, tmp_path, labels=y, batch_size=2)
    assert len(result) == 5 and (tmp_path / "records.csv").is_file()
    assert len(load_audit(tmp_path)) == 5
    loader = _distributed_loader(x, y, batch_size=2, rank=1, world_size=2)
    assert list(loader.sampler) == [1, 3, 0]
    assert _distributed_loader(loader, None, batch_size=9, rank=0, world_size=2) is loader
