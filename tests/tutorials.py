"""Runs a tutorial script the way a reader would: a fresh process, figures to a folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"


def run_tutorial(name: str, out: Path, timeout: int = 300, **environment: str) -> str:
    """Executes `tutorials/<name>` with its figures going to `out`; returns what it printed.

    Fails the calling test with the end of the tutorial's stderr if it exits non-zero.
    """
    env = {**os.environ, "CAPTUM_SIMEC_TUTORIAL_OUT": str(out), "MPLBACKEND": "Agg"}
    env.update(environment)
    done = subprocess.run(
        [sys.executable, str(TUTORIALS / name)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=out,
    )
    print(done.stdout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
