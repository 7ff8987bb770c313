"""The trained fixtures do not depend on the CPU: checked by running another CPU's kernels.

Two fresh interpreters build the digits data and train the paper's CNN in float64 (as every
trained fixture is: `train_classifier(..., float64=True)`), one with this machine's kernels
and one forced onto other code paths (ATEN_CPU_CAPABILITY=default: no AVX kernels;
MKL_ENABLE_INSTRUCTIONS=SSE4_2; ONEDNN_MAX_CPU_ISA=SSE41), as a CI machine of another kind
would run them. The data must be identical and the weights equal to 1e-9 (rounding
differences of float64, ~1e-16, grow about 1e4-fold over training; measured 3e-16 here). The
float32 training of the same network is printed for comparison: its weights already differ
by 2e-7 after these three short epochs, and by 40-60 % after the five epochs of the MNIST
recipe, which is why no test asserts numbers of a network trained in float32.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys, torch
    from captum_simec.zoo import load_digits
    from captum_simec.zoo import PaperMNISTCNN, float64_model, train_classifier
    torch.set_num_threads(1)
    split = load_digits(seed=0)
    x, y = split.x_train[:512], split.y_train[:512]
    recipe = {"epochs": 3, "lr": 0.05, "momentum": 0.9, "seed": 0}
    exact = float64_model(lambda: PaperMNISTCNN(seed=0))
    train_classifier(exact, x, y, float64=True, **recipe)  # as the fixtures are trained
    rough = train_classifier(PaperMNISTCNN(seed=0), x, y, **recipe)
    weights = {
        name: torch.cat([p.detach().double().flatten() for p in model.parameters()])
        for name, model in (("float64", exact), ("float32", rough))
    }
    torch.save(weights, sys.argv[1])
    digest = hashlib.sha256(split.x_train.numpy().tobytes()).hexdigest()
    print(json.dumps({"digits_sha256": digest}))
    """
)
OTHER_CPU = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
}


def _run(out: Path, **environment: str) -> tuple[str, dict[str, torch.Tensor]]:
    env = {k: v for k, v in os.environ.items() if k not in OTHER_CPU}
    env.update(environment, OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out)], capture_output=True, text=True, env=env,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    digest = json.loads(done.stdout.strip().splitlines()[-1])["digits_sha256"]
    return digest, torch.load(out)


@pytest.mark.slow
def test_digits_and_float64_training_are_the_same_with_another_cpus_kernels(tmp_path):
    here_digest, here = _run(tmp_path / "here.pt")
    other_digest, other = _run(tmp_path / "other.pt", **OTHER_CPU)
    difference = {
        name: ((here[name] - other[name]).abs().max() / here[name].abs().max()).item()
        for name in here
    }
    print(f"\n[CPU] relative weight difference between kernels: {difference}")
    assert here_digest == other_digest  # the data, bit for bit
    assert difference["float64"] < 1e-9
