"""Audit benchmark: `RobustnessAudit` throughput, time split, flip distance vs PGD epsilon.

On the paper's MNIST CNN trained on the digits data (box [0, 1], the audit's defaults:
SiMEC class-extent walk of 20 steps, SiMExp flip walk of up to 300 steps with the crossing
bisected, FGSM and PGD radius searches in L2 and L-inf):

- throughput (examples per CPU second) auditing one example per call (batch 1) and 64 per
  call (batch 64), taking turns: a batch-64 call, then a few batch-1 calls, and so on;
- the time split between the spectrum, SiMEC, SiMExp and the attacks, from the audit's own
  per-stage timers (wall clock, `audit_batch(timings=...)`);
- the median ratio of the SiMExp flip distance to the smallest flipping PGD radius (L2 and
  L-inf) over 200 digits test images (the flip distance is an upper bound on the minimal
  perturbation along one path; PGD searches a ball).

Run: ``.venv/bin/python benchmarks/bench_audit.py [--quick]``. Prints markdown tables and
writes ``benchmarks/results/bench_audit.json``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from typing import Any

import torch
from _common import markdown_table, setup_torch, start_run

STAGES = ("spectrum", "simec", "simexp", "attacks")


def finite(values: list[float]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run")
    args = parser.parse_args(argv)
    setup_torch(1)
    from captum_simec.audit import RobustnessAudit
    from captum_simec.zoo import fit_digits_cnn

    images = 64 if args.quick else 200
    singles_per_batch = 2 if args.quick else 4
    run = start_run("bench_audit", args.quick, detail="wall and CPU time")
    model, split = fit_digits_cnn(seed=0, progress=False)
    x, y = split.x_test[:images], split.y_test[:images]
    audit = RobustnessAudit(model, domain=(0.0, 1.0), progress=False, keep_maps=False)
    audit.audit_batch(x[:2], y[:2])  # warm-up

    records: list[dict[str, Any]] = []
    stage_wall = {64: dict.fromkeys(STAGES, 0.0), 1: dict.fromkeys(STAGES, 0.0)}
    cpu = {64: [], 1: []}  # (examples, CPU seconds) per call
    wall = {64: [], 1: []}
    single = 0
    for first in range(0, images, 64):
        chunk = slice(first, min(first + 64, images))
        count = chunk.stop - chunk.start
        c0, w0 = time.process_time(), time.perf_counter()
        batch_records, _ = audit.audit_batch(
            x[chunk],
            y[chunk],
            indices=torch.arange(chunk.start, chunk.stop),
            timings=stage_wall[64] if count == 64 else None,
        )
        if count == 64:
            cpu[64].append(time.process_time() - c0)
            wall[64].append(time.perf_counter() - w0)
        records.extend(batch_records)
        for _ in range(singles_per_batch):
            i = single % images
            c0, w0 = time.process_time(), time.perf_counter()
            audit.audit_batch(
                x[i : i + 1], y[i : i + 1], indices=torch.tensor([i]), timings=stage_wall[1]
            )
            cpu[1].append(time.process_time() - c0)
            wall[1].append(time.perf_counter() - w0)
            single += 1
        print(f"  audited {chunk.stop} images", file=sys.stderr, flush=True)

    throughput = {
        b: {
            "calls": len(cpu[b]),
            "examples": len(cpu[b]) * b,
            "cpu_s": sum(cpu[b]),
            "wall_s": sum(wall[b]),
            "examples_per_cpu_s": len(cpu[b]) * b / sum(cpu[b]),
            "examples_per_wall_s": len(cpu[b]) * b / sum(wall[b]),
        }
        for b in (1, 64)
    }
    ratio_l2 = finite([r["ratio_l2"] for r in records])
    ratio_linf = finite([r["ratio_linf"] for r in records])
    flips = sum(bool(r["flip_found"]) for r in records)
    pgd_found = sum(math.isfinite(r["pgd_l2_eps"]) for r in records)
    summary = {
        "images": len(records),
        "flip_found": flips,
        "pgd_l2_found": pgd_found,
        "median_ratio_l2": statistics.median(ratio_l2) if ratio_l2 else None,
        "median_ratio_linf": statistics.median(ratio_linf) if ratio_linf else None,
        "q1_q3_ratio_l2": statistics.quantiles(ratio_l2, n=4)[::2] if len(ratio_l2) > 3 else None,
        "q1_q3_ratio_linf": statistics.quantiles(ratio_linf, n=4)[::2]
        if len(ratio_linf) > 3
        else None,
        "median_flip_l2": statistics.median(finite([r["flip_l2"] for r in records]) or [math.nan]),
        "median_pgd_l2_eps": statistics.median(
            finite([r["pgd_l2_eps"] for r in records]) or [math.nan]
        ),
        "median_flip_linf": statistics.median(
            finite([r["flip_linf"] for r in records]) or [math.nan]
        ),
        "median_pgd_linf_eps": statistics.median(
            finite([r["pgd_linf_eps"] for r in records]) or [math.nan]
        ),
        "ratio_below_1_l2": sum(v < 1 for v in ratio_l2),
    }

    out = ["### Audit throughput (digits CNN, box [0, 1], audit defaults)\n"]
    rows = [
        [
            b,
            throughput[b]["examples"],
            f"{throughput[b]['examples_per_cpu_s']:.2f}",
            f"{throughput[b]['examples_per_wall_s']:.2f}",
            f"{throughput[b]['cpu_s'] / throughput[b]['examples']:.2f}",
        ]
        for b in (1, 64)
    ]
    out.append(
        markdown_table(
            ["batch", "examples timed", "examples / CPU s", "examples / wall s", "CPU s / example"],
            rows,
        )
    )
    speedup = throughput[64]["examples_per_cpu_s"] / throughput[1]["examples_per_cpu_s"]
    out.append(f"\nBatch 64 vs batch 1: {speedup:.1f}x the examples per CPU second.")
    out.append("\n### Time split (share of the audit's own per-stage wall-clock timers)\n")
    rows = []
    for b in (1, 64):
        total = sum(stage_wall[b].values()) or 1.0
        rows.append([b] + [f"{100 * stage_wall[b][s] / total:.1f}%" for s in STAGES])
    out.append(markdown_table(["batch", *STAGES], rows))
    out.append(f"\n### Flip distance vs PGD epsilon ({summary['images']} digits test images)\n")
    rows = [
        [
            "L2",
            f"{summary['median_flip_l2']:.3f}",
            f"{summary['median_pgd_l2_eps']:.3f}",
            f"{summary['median_ratio_l2']:.2f}" if summary["median_ratio_l2"] else "—",
            summary["q1_q3_ratio_l2"] and " – ".join(f"{v:.2f}" for v in summary["q1_q3_ratio_l2"]),
            len(ratio_l2),
        ],
        [
            "L-inf",
            f"{summary['median_flip_linf']:.3f}",
            f"{summary['median_pgd_linf_eps']:.3f}",
            f"{summary['median_ratio_linf']:.2f}" if summary["median_ratio_linf"] else "—",
            summary["q1_q3_ratio_linf"]
            and " – ".join(f"{v:.2f}" for v in summary["q1_q3_ratio_linf"]),
            len(ratio_linf),
        ],
    ]
    out.append(
        markdown_table(
            [
                "norm",
                "median flip distance",
                "median PGD epsilon",
                "median ratio flip/PGD",
                "ratio q1 – q3",
                "images with both",
            ],
            rows,
        )
    )
    out.append(
        f"\nSiMExp flipped {flips} of {summary['images']} images; PGD (L2) found a flipping "
        f"radius for {pgd_found}; the flip distance was below the PGD radius (ratio < 1) for "
        f"{summary['ratio_below_1_l2']} images in L2."
    )
    text = "\n".join(out)
    print(text, flush=True)
    run.finish(
        {
            "settings": audit.settings,
            "throughput": throughput,
            "stage_wall_s": stage_wall,
            "summary": summary,
            "records": records,
            "tables_markdown": text,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
