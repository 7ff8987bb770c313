"""The ``captum-simec`` command line: audit end to end, help, and the error paths."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from captum_simec.cli import main
from tests.audit.helpers import tiny_data

TINY_MODULE = """
import torch
from torch import nn


def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3)).double()


NOT_CALLABLE = 3


def broken():
    raise RuntimeError("boom")
"""

FAST = ["--simec-steps", "2", "--simexp-steps", "30", "--pgd-steps", "4", "--no-progress"]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A model module, data files (good and bad) and an output folder."""
    (tmp_path / "tiny.py").write_text(TINY_MODULE)
    x, y = tiny_data(6)
    paths = {"module": tmp_path / "tiny.py", "out": tmp_path / "out"}
    contents = {
        "data": {"x": x, "y": y},
        "inputs_only": {"inputs": x},
        "bad_keys": {"pixels": x},
        "no_batch": {"x": x[0, 0, 0]},
        "ints": {"x": (x * 10).long()},
        "wrong_shape": {"x": torch.rand(6, 7, dtype=torch.float64)},
        "label_mismatch": {"x": x, "y": y[:4]},
    }
    for name, content in contents.items():
        paths[name] = tmp_path / f"{name}.pt"
        torch.save(content, paths[name])
    paths["npz"] = tmp_path / "data.npz"
    np.savez(paths["npz"], x=x.numpy(), y=y.numpy())
    return paths


def _audit(files: dict[str, Path], *extra: str, data: str = "data") -> list[str]:
    return [
        "audit",
        "--model",
        f"{files['module']}:make",
        "--data",
        str(files[data]),
        "--box",
        "0",
        "1",
        "--out",
        str(files["out"]),
        *FAST,
        *extra,
    ]


def test_audit_writes_records_and_report(files, capsys):
    assert main(_audit(files, "--batch-size", "4")) == 0
    printed = capsys.readouterr().out
    assert "examples/s" in printed and "report:" in printed
    out = files["out"]
    for name in ("records.csv", "records.json", "summary.json", "report.md", "report.html"):
        assert (out / name).is_file(), name
    with (out / "records.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["index"]) for r in rows] == list(range(6))
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') >= 4
    assert "figures/flip_vs_pgd.png" in (out / "report.md").read_text()


def test_audit_resume_and_limit(files, capsys):
    assert main(_audit(files, "--limit", "3")) == 0
    assert main(_audit(files)) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(_audit(files, "--resume")) == 0
    records = json.loads((files["out"] / "records.json").read_text())["records"]
    assert [r["index"] for r in records] == list(range(6))


def test_audit_reads_npz_and_inputs_without_labels(files):
    assert main(_audit(files, "--no-attacks", data="npz")) == 0
    files["out"] = files["out"].with_name("out2")
    assert main(_audit(files, "--no-attacks", data="inputs_only")) == 0
    records = json.loads((files["out"] / "records.json").read_text())["records"]
    assert {r["label"] for r in records} == {-1}


@pytest.mark.parametrize(
    ("model", "data", "message"),
    [
        ("missing.py:make", "data", "does not exist"),
        ("no_such_module_xyz:make", "data", "module 'no_such_module_xyz' not found"),
        ("{module}:absent", "data", "has no attribute 'absent'"),
        ("{module}:NOT_CALLABLE", "data", "not a callable factory"),
        ("{module}:broken", "data", "boom"),
        ("{module}", "data", "expected MODULE:FACTORY"),
        ("{module}:make", "bad_keys", "keys ['pixels']"),
        ("{module}:make", "no_batch", "no batch dimension"),
        ("{module}:make", "ints", "dtype torch.int64"),
        ("{module}:make", "wrong_shape", "rejects inputs of shape (7,)"),
        ("{module}:make", "label_mismatch", "6 inputs but 4 labels"),
    ],
)
def test_errors_exit_2_with_one_line(files, capsys, model, data, message):
    args = _audit(files, data=data)
    args[2] = model.format(module=files["module"])
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("captum-simec audit: error:") and "\n" not in err
    assert message in err
    assert "Traceback" not in err


def test_box_lo_above_hi(files, capsys):
    args = _audit(files)
    args[args.index("--box") + 1 : args.index("--box") + 3] = ["1", "0"]
    assert main(args) == 2
    assert "LO must be smaller than HI" in capsys.readouterr().err


def test_state_dict_that_does_not_fit(files, tmp_path, capsys):
    torch.save({"weight": torch.zeros(2, 2)}, tmp_path / "weights.pt")
    assert main(_audit(files, "--state-dict", str(tmp_path / "weights.pt"))) == 2
    assert "does not fit the model" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torchscript_model_and_state_dict(files, tmp_path):
    namespace: dict = {}
    exec(TINY_MODULE, namespace)
    model = namespace["make"]()
    torch.jit.script(model).save(str(tmp_path / "tiny.ts.pt"))
    torch.save({"state_dict": model.state_dict()}, tmp_path / "weights.pt")
    args = _audit(files, "--no-attacks", "--state-dict", str(tmp_path / "weights.pt"))
    assert main(args) == 0
    files["out"] = tmp_path / "scripted"
    args = _audit(files, "--no-attacks")
    args[2] = str(tmp_path / "tiny.ts.pt")
    assert main(args) == 0


@pytest.mark.parametrize("command", [[], ["audit"], ["demo"], ["explore"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "usage: captum-simec" in text
    if command == ["audit"]:
        for option in ("--model", "--data", "--box", "--resume", "--no-attacks", "torchrun"):
            assert option in text


def test_explore_writes_a_walk_report(files, tmp_path):
    out = tmp_path / "walks"
    args = [
        "explore",
        "--model",
        f"{files['module']}:make",
        "--data",
        str(files["data"]),
        "--box",
        "0",
        "1",
        "--walk",
        "simexp",
        "--steps",
        "20",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(args) == 0
    assert len(json.loads((out / "walk.json").read_text())) == 2
    assert (out / "report.html").is_file() and (out / "figures" / "traces.png").is_file()
