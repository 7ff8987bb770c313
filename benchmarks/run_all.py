"""Runs every available benchmark, each in its own interpreter, one after the other.

A benchmark whose library module does not exist yet is skipped with a message. Each one
prints its markdown tables and writes ``benchmarks/results/<name>.json``; this script also
collects all tables into ``benchmarks/results/summary.md``.

Usage: ``.venv/bin/python benchmarks/run_all.py [--quick] [--only geometry explore ...]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from _common import RESULTS_DIR, module_available

HERE = Path(__file__).resolve().parent

#: name -> (script, places (module, attribute) where what it needs may live: any one will do)
BENCHMARKS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "geometry": ("bench_geometry.py", (("captum_simec.geometry", "pullback_spectrum"),)),
    "tolerance": ("bench_tolerance.py", (("captum_simec.geometry.tolerance", "RANK_SAFETY"),)),
    "randomized": ("bench_randomized.py", (("captum_simec.geometry", "hutchinson_relevance"),)),
    "explore": ("bench_explore.py", (("captum_simec.explore", "simec"),)),
    "attribution": ("bench_attribution.py", (("captum_simec.attr", "SiMECAttribution"),)),
    "text": ("bench_text.py", (("captum_simec.text", "read_tokens"),)),
    "evaluation": (
        "bench_evaluation.py",
        (("captum_simec.evaluation", "compare_attributions"),),
    ),
    "audit": (
        "bench_audit.py",
        (
            ("captum_simec.audit", "RobustnessAudit"),
            ("captum_simec.audit.robustness", "RobustnessAudit"),
        ),
    ),
}


def missing(places: tuple[tuple[str, str], ...]) -> str | None:
    """None when one of `places` provides its attribute, else why the benchmark can't run."""
    import importlib

    for module, attribute in places:
        if module_available(module) and hasattr(importlib.import_module(module), attribute):
            return None
    wanted = " or ".join(f"{module}.{attribute}" for module, attribute in places)
    return f"{wanted} does not exist yet"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    outputs: list[str] = []
    failed = []
    for name in names:
        script, requirements = BENCHMARKS[name]
        reason = missing(requirements)
        if reason is not None:
            message = f"## {name}: skipped ({reason})"
            print(message, flush=True)
            outputs.append(message)
            continue
        print(f"## {name}: {script}{' --quick' if args.quick else ''}", flush=True)
        start = time.perf_counter()
        command = [sys.executable, str(HERE / script)] + (["--quick"] if args.quick else [])
        proc = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        print(proc.stdout, flush=True)
        elapsed = time.perf_counter() - start
        status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
        if proc.returncode != 0:
            failed.append(name)
        outputs.append(f"## {name} ({status}, {elapsed:.0f} s)\n\n{proc.stdout}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    summary = RESULTS_DIR / ("summary_quick.md" if args.quick else "summary.md")
    summary.write_text("\n\n".join(outputs) + "\n")
    print(f"Tables collected in {summary}")
    if failed:
        print(f"Failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
