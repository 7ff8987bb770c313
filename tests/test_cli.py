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
    *warnings, err = capsys.readouterr().err.strip().splitlines()
    assert err.startswith("captum-simec audit: error:")  # one line, after any warnings
    assert all(line.startswith("captum-simec audit: warning:") for line in warnings)
    assert message in err


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


# ----------------------------------------------------------------------------- issue 8, §6
@pytest.mark.parametrize("labels", [[0, 1, 2, 5, 14, 1], [0, -3, 1, 2, 0, 1]])
def test_labels_outside_the_models_classes_are_a_usage_error(files, tmp_path, capsys, labels):
    x, _ = tiny_data(6)
    torch.save({"x": x, "y": torch.tensor(labels)}, tmp_path / "bad_labels.pt")
    files["bad_labels"] = tmp_path / "bad_labels.pt"
    assert main(_audit(files, data="bad_labels")) == 2
    err = capsys.readouterr().err
    assert "--data: labels" in err and "3 outputs (classes 0 to 2)" in err
    assert not files["out"].exists()  # refused before auditing anything


def test_missing_state_dict_warns_and_torchscript_does_not(files, tmp_path, capsys):
    assert main(_audit(files, "--no-attacks")) == 0
    assert "warning: no --state-dict" in capsys.readouterr().err
    namespace: dict = {}
    exec(TINY_MODULE, namespace)
    with pytest.warns(DeprecationWarning):
        torch.jit.script(namespace["make"]()).save(str(tmp_path / "tiny.ts.pt"))
    files["out"] = tmp_path / "scripted"
    args = _audit(files, "--no-attacks")
    args[2] = str(tmp_path / "tiny.ts.pt")
    assert main(args) == 0
    assert "state-dict" not in capsys.readouterr().err  # its weights travel with it


def test_explore_names_each_example_and_its_rank(files, tmp_path, capsys):
    args = ["explore", "--model", f"{files['module']}:make", "--data", str(files["data"])]
    args += ["--box", "0", "1", "--steps", "3", "--out", str(tmp_path / "w"), "--no-progress"]
    assert main([*args, "--metric", "margin"]) == 0  # a metric that needs a target
    printed = capsys.readouterr().out
    assert "example 0: stopped after 3 steps" in printed and "example 1: stopped" in printed
    assert "rank 1 (spectral gap inf) -> 1" in printed


def test_a_library_error_is_not_disguised_as_a_usage_error(files, monkeypatch):
    def bug(*args, **kwargs):
        raise ValueError("a bug deep inside")

    monkeypatch.setattr("captum_simec.audit.robustness.RobustnessAudit.audit_batch", bug)
    with pytest.raises(ValueError, match="a bug deep inside"):
        main(_audit(files))


def test_errors_use_the_commands_words(files, capsys):
    assert main(_audit(files, "--limit", "2", "--no-attacks")) == 0
    capsys.readouterr()
    assert main(_audit(files, "--no-attacks")) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert "--out" in err and "add --resume" in err and "resume=True" not in err
    assert main(_audit(files, "--no-attacks", "--resume", "--simec-steps", "3")) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert "--resume:" in err and "simec_steps" in err and "resume with the options" in err
    args = _audit(files)
    args[args.index("--box") + 1 : args.index("--box") + 3] = ["0.5", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert "--data:" in err and "outside --box 0.5 1" in err
    assert "`inputs`" not in err and "domain" not in err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--seed", "-1", "must be >= 0"), ("--step-size", "0", "must be > 0")],
)
def test_bad_numbers_are_argument_errors(files, capsys, option, value, message):
    with pytest.raises(SystemExit) as exit_info:
        main(_audit(files, option, value))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and message in err


def test_tabular_data_gets_a_box_per_feature(tmp_path, capsys):
    (tmp_path / "tab.py").write_text(
        "import torch\nfrom torch import nn\n\n\ndef make():\n    torch.manual_seed(0)\n"
        "    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()\n"
    )
    generator = torch.Generator().manual_seed(0)
    scales = torch.tensor([1.0, 100.0, 0.01], dtype=torch.float64)  # columns in other units
    x = torch.rand(8, 3, generator=generator, dtype=torch.float64) * scales
    torch.save({"x": x}, tmp_path / "tab.pt")
    out = tmp_path / "out"
    args = ["audit", "--model", f"{tmp_path / 'tab.py'}:make", "--data", str(tmp_path / "tab.pt")]
    assert main([*args, "--out", str(out), "--no-attacks", *FAST]) == 0
    assert "the data's range per feature (3 features" in capsys.readouterr().out
    low, high, _ = json.loads((out / "settings.json").read_text())["domain"]
    torch.testing.assert_close(torch.tensor(low, dtype=torch.float64), x.amin(dim=0))
    torch.testing.assert_close(torch.tensor(high, dtype=torch.float64), x.amax(dim=0))
