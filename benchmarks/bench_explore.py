"""Exploration benchmark: SiMEC walk steps vs the Jacobian floor vs the authors' dense style.

1. Cost of one SiMEC step (batch 1) on the paper's MNIST CNN (trained on the digits data),
   a GRU sequence classifier, and a ResNet-18-like network on 3x224x224 (10 outputs): the
   step cost is the slope of walk time against steps (walks of K1 and K2 steps, timed in
   turns), so the start-up work (first forward, first spectrum, result assembly) is not
   counted. Compared with one Jacobian by the fastest library path (the floor), with one
   step of the authors' style (m backwards, dense float64 `eigh` of the n x n metric,
   clamping) and with the library's own parity mode (``simec(parity=True)``, also dense).
2. Throughput (points x steps per second) for 1, 8 and 64 start points walked together on a
   784-input MLP and the MNIST CNN.
3. Drift after 1,000 steps (δ = 0.05) on the digits CNN: without and with the Gauss-Newton
   corrector, and with the box [0, 1] enforced by clamping (the papers) or by freezing the
   coordinates at a bound (the library's default).

Run: ``.venv/bin/python benchmarks/bench_explore.py [--quick]``. Prints markdown tables and
writes ``benchmarks/results/bench_explore.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from _baselines import authors_step, raw_batched_grad
from _common import (
    can_reset_peak,
    fmt_bytes,
    fmt_ms,
    fmt_ratio,
    fmt_time,
    interleaved,
    markdown_table,
    measure_peak,
    repeat,
    setup_torch,
    start_run,
    verdict,
)
from torch import nn

from captum_simec.explore import Box, simec
from captum_simec.geometry import jacobian, pullback_spectrum

STEP = 0.05
M = 10


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def digits_cnn() -> tuple[nn.Module, Any]:
    from captum_simec.zoo import fit_digits_cnn

    model, split = fit_digits_cnn(seed=0, progress=False)
    return model.eval(), split


def gru_model() -> tuple[nn.Module, torch.Tensor]:
    from captum_simec.zoo import SequenceGRU

    model = SequenceGRU(8, hidden_size=32, num_classes=M, head="log_softmax", seed=0).eval()
    generator = torch.Generator().manual_seed(3)
    return model, torch.randn(1, 64, 8, generator=generator)


def resnet_model() -> tuple[nn.Module, torch.Tensor]:
    from captum_simec.zoo import ResNet18Like

    model = ResNet18Like(num_classes=M, head="log_softmax", seed=0).eval()
    generator = torch.Generator().manual_seed(4)
    return model, torch.rand(1, 3, 224, 224, generator=generator)


def mlp_model() -> nn.Module:
    from captum_simec.zoo import MLP

    return MLP(784, hidden=(256, 256), out_features=M, head="log_softmax", seed=0).eval()


# --------------------------------------------------------------------------------------------
# Step cost
# --------------------------------------------------------------------------------------------


def walker(model: nn.Module, x: torch.Tensor, steps: int, **options: Any) -> Callable[[], Any]:
    options = {"step_size": STEP, "seed": 0, "progress": False, **options}
    return lambda: simec(model, x, steps=steps, **options)


def slope(timings: dict[str, dict[str, float]], short: str, long: str, extra: int) -> float:
    """Per-step seconds from the medians of a short and a long walk."""
    return (timings[long]["median"] - timings[short]["median"]) / extra


def floor_methods(model: nn.Module, x: torch.Tensor, paths: tuple[str, ...]) -> dict:
    methods: dict[str, Callable[[], Any]] = {
        f"jac:{p}": (lambda p=p: jacobian(model, (x,), method=p)) for p in paths
    }
    methods["raw:batched_grad"] = lambda: raw_batched_grad(model, x, M)
    methods["spectrum"] = lambda: pullback_spectrum(model, x)
    return methods


def bench_step(
    label: str,
    model: nn.Module,
    x: torch.Tensor,
    args: argparse.Namespace,
    k1: int,
    k2: int,
    paths: tuple[str, ...] = ("replicate", "batched_grad", "vmap"),
    authors: bool = True,
    parity: bool = True,
    variants: dict[str, dict[str, Any]] | None = None,
    box: tuple[float, float] | None = None,
) -> dict[str, Any]:
    n = x[0].numel()
    methods = floor_methods(model, x, paths)
    variants = {
        "simec": {},
        "simec@batched_grad": {"jacobian_method": "batched_grad"},
        "simec@replicate": {"jacobian_method": "replicate"},
    } | (variants or {})
    for name, options in variants.items():
        methods[f"{name}:{k1}"] = walker(model, x, k1, **options)
        methods[f"{name}:{k2}"] = walker(model, x, k2, **options)
    generator = torch.Generator().manual_seed(0)
    lower, upper = box if box is not None else (None, None)
    if authors:
        methods["authors_step"] = lambda: authors_step(model, x, STEP, generator, lower, upper)
    if parity and n <= 4096:
        methods[f"parity:{k1}"] = walker(model, x, k1, parity=True, domain=box)
        methods[f"parity:{k2}"] = walker(model, x, k2, parity=True, domain=box)
    timings = interleaved(
        methods, budget_s=args.step_budget, min_repeats=args.min_repeats, max_repeats=15
    )
    med = {k: v["median"] for k, v in timings.items()}
    jac = {k.split(":")[1]: v for k, v in med.items() if k.startswith("jac:")}
    floor_path = min(jac, key=jac.get)
    record: dict[str, Any] = {
        "label": label,
        "n": n,
        "batch": x.shape[0],
        "k1": k1,
        "k2": k2,
        "timings": timings,
        "floor_path": floor_path,
        "floor_s": jac[floor_path],
        "raw_floor_s": med["raw:batched_grad"],
        "spectrum_s": med["spectrum"],
        "steps": {
            name: slope(timings, f"{name}:{k1}", f"{name}:{k2}", k2 - k1) for name in variants
        },
        "authors_step_s": med.get("authors_step"),
        "parity_step_s": (
            slope(timings, f"parity:{k1}", f"parity:{k2}", k2 - k1)
            if parity and n <= 4096
            else None
        ),
        "authors_dense_bytes": n * n * 8,
    }
    step = record["steps"]["simec"]
    record["simec_over_floor"] = step / record["floor_s"]
    # the walker's own cost: a step minus one spectrum (the Jacobian and its factorisation)
    record["walker_overhead_s"] = step - record["spectrum_s"]
    allowed = 1.3 * record["floor_s"] + 0.5e-3
    record["target"] = None if n < 784 else bool(step <= allowed)
    record["target_batched_grad"] = (
        None if n < 784 else bool(record["steps"]["simec@batched_grad"] <= allowed)
    )
    if record["authors_step_s"] is not None:
        record["authors_over_simec"] = record["authors_step_s"] / step
    return record


def bench_resnet(args: argparse.Namespace) -> dict[str, Any]:
    model, x = resnet_model()
    n = x[0].numel()
    methods = {
        "jac:replicate": lambda: jacobian(model, (x,), method="replicate"),
        "jac:batched_grad": lambda: jacobian(model, (x,), method="batched_grad"),
        "spectrum": lambda: pullback_spectrum(model, x),
        "simec:1": walker(model, x, 1),
        "simec:2": walker(model, x, 2),
        "simec@batched_grad:1": walker(model, x, 1, jacobian_method="batched_grad"),
        "simec@batched_grad:2": walker(model, x, 2, jacobian_method="batched_grad"),
    }
    timings = interleaved(methods, budget_s=0.0, min_repeats=args.resnet_repeats)
    med = {k: v["median"] for k, v in timings.items()}
    floor_path = min(("replicate", "batched_grad"), key=lambda p: med[f"jac:{p}"])
    record: dict[str, Any] = {
        "label": "ResNet18Like 3x224x224",
        "n": n,
        "batch": 1,
        "timings": timings,
        "floor_path": floor_path,
        "floor_s": med[f"jac:{floor_path}"],
        "spectrum_s": med["spectrum"],
        "steps": {
            "simec": med["simec:2"] - med["simec:1"],
            "simec@batched_grad": med["simec@batched_grad:2"] - med["simec@batched_grad:1"],
        },
        "walk_2_steps_s": med["simec:2"],
        "authors_step_s": None,
        "parity_step_s": None,
        "authors_dense_bytes": n * n * 8,
    }
    step = record["steps"]["simec"]
    record["simec_over_floor"] = step / record["floor_s"]
    record["walker_overhead_s"] = step - record["spectrum_s"]
    allowed = 1.3 * record["floor_s"] + 0.5e-3
    record["target"] = bool(step <= allowed)
    record["target_batched_grad"] = bool(record["steps"]["simec@batched_grad"] <= allowed)
    if args.peak_reset:
        record["peak_walk_2_steps"] = measure_peak(methods["simec:2"])["peak_bytes"]
        record["peak_walk_2_steps_bg"] = measure_peak(methods["simec@batched_grad:2"])["peak_bytes"]
        record["peak_floor"] = measure_peak(methods[f"jac:{floor_path}"])["peak_bytes"]
    return record


# --------------------------------------------------------------------------------------------
# Throughput
# --------------------------------------------------------------------------------------------


def bench_throughput(
    label: str, model: nn.Module, pool: torch.Tensor, args: argparse.Namespace
) -> dict[str, Any]:
    methods: dict[str, Callable[[], Any]] = {}
    plan = {}
    for batch in args.batches:
        x = pool[:batch]
        probe = repeat(walker(model, x, 2), 1)["median"]  # warm-up and scale
        extra = max(2, min(40, round(args.throughput_call_s / max(probe / 2, 1e-4))))
        plan[batch] = (1, 1 + extra)
        methods[f"{batch}:short"] = walker(model, x, 1)
        methods[f"{batch}:long"] = walker(model, x, 1 + extra)
    timings = interleaved(methods, budget_s=args.throughput_budget, min_repeats=args.min_repeats)
    rows = {}
    for batch, (k1, k2) in plan.items():
        per_step = slope(timings, f"{batch}:short", f"{batch}:long", k2 - k1)
        rows[batch] = {
            "steps": [k1, k2],
            "per_step_s": per_step,
            "points_steps_per_s": batch / per_step,
        }
    base = rows[args.batches[0]]["points_steps_per_s"]
    for row in rows.values():
        row["speedup_vs_batch1"] = row["points_steps_per_s"] / base
    return {"label": label, "n": pool[0].numel(), "rows": rows, "timings": timings}


# --------------------------------------------------------------------------------------------
# Drift
# --------------------------------------------------------------------------------------------


def bench_drift(model: nn.Module, x: torch.Tensor, args: argparse.Namespace) -> list[dict]:
    configs = [
        ("no box", None, False),
        ("no box", None, True),
        ("clamp to [0, 1] (papers)", "clamp", False),
        ("clamp to [0, 1] (papers)", "clamp", True),
        ("freeze at bounds (library default)", "freeze", False),
        ("freeze at bounds (library default)", "freeze", True),
    ]
    rows = []
    with torch.no_grad():
        start_logits = model.logits(x)
    for label, constraint, corrector in configs:
        domain = None if constraint is None else Box(0.0, 1.0, constraint=constraint)
        cpu = time.process_time()
        walk = simec(
            model,
            x,
            steps=args.drift_steps,
            step_size=STEP,
            domain=domain,
            corrector=corrector,
            seed=0,
            progress=False,
        )
        cpu = time.process_time() - cpu
        points = walk.points_flat  # (saves, batch, n); save_every=1 keeps every point
        with torch.no_grad():
            logits = torch.stack(
                [model.logits(p.reshape(x.shape)) for p in points]
            )  # (saves, batch, m)
        logit_drift = (logits - start_logits).abs().amax(dim=2).amax(dim=0)  # L-inf, max over k
        final_logit_drift = (logits[-1] - start_logits).abs().amax(dim=1)
        records = walk.to_records()
        steps_taken = walk.stopped_at.double()
        rows.append(
            {
                "domain": label,
                "corrector": corrector,
                "median_max_logit_drift": logit_drift.median().item(),
                "max_max_logit_drift": logit_drift.max().item(),
                "median_final_logit_drift": final_logit_drift.median().item(),
                "median_max_output_drift": walk.drift_euclidean.nan_to_num(nan=0.0)
                .amax(dim=0)
                .median()
                .item(),
                "median_path_length": walk.path_length.median().item(),
                "median_displacement_l2": statistics.median(r["displacement_l2"] for r in records),
                "class_changed": int(walk.class_changed.sum()),
                "outside_box": int(((points < 0) | (points > 1)).any(dim=2).any(dim=0).sum()),
                "jacobians_per_step": (
                    walk.jacobian_evaluations.double() / steps_taken.clamp_min(1)
                )
                .mean()
                .item(),
                "shortened_steps_median": walk.shortened_steps.double().median().item(),
                "stop_reasons": sorted(set(walk.stop_reason)),
                "cpu_s": cpu,
            }
        )
        print(
            f"  drift {label}, corrector={corrector}: {cpu:.1f} s CPU",
            file=sys.stderr,
            flush=True,
        )
    return rows


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def report(steps: list[dict], throughput: list[dict], drift: list[dict], args) -> str:
    out = ["### One SiMEC step, batch 1 (ms; slope of walk time over steps, CPU-time medians)\n"]
    rows = []
    for r in steps:
        variants = r["steps"]
        rows.append(
            [
                r["label"],
                r["n"],
                fmt_ms(variants["simec"]),
                f"{fmt_ms(r['floor_s'])} ({r['floor_path']})",
                fmt_ms(r["spectrum_s"]),
                fmt_ms(r["walker_overhead_s"]),
                fmt_ratio(r["simec_over_floor"]),
                fmt_ms(variants.get("simec@replicate")),
                fmt_ms(variants.get("simec@batched_grad")),
                fmt_ms(variants.get("simec+freeze box")),
                fmt_ms(variants.get("simec+corrector")),
                fmt_ms(r["authors_step_s"])
                if r["authors_step_s"] is not None
                else f"cannot run: n*n*8 = {r['authors_dense_bytes'] / 1e9:.0f} GB",
                fmt_ratio(r.get("authors_over_simec")),
                fmt_ms(r["parity_step_s"]),
            ]
        )
    out.append(
        markdown_table(
            [
                "model",
                "n",
                "simec step",
                "Jacobian floor (path)",
                "spectrum",
                "step - spectrum",
                "step/floor",
                "step, replicate",
                "step, batched_grad",
                "step, freeze box",
                "step, corrector",
                "authors' step",
                "authors/simec",
                "library parity step (dense)",
            ],
            rows,
        )
    )
    for r in steps:
        if "peak_walk_2_steps" in r:
            out.append(
                f"\n{r['label']}: a 2-step walk took {fmt_time(r['walk_2_steps_s'])} CPU in all; "
                f"peak extra RSS {fmt_bytes(r['peak_walk_2_steps'])} (with "
                f"jacobian_method='batched_grad': {fmt_bytes(r['peak_walk_2_steps_bg'])}; one "
                f"Jacobian alone on the floor path: {fmt_bytes(r['peak_floor'])}); the authors' "
                f"dense metric would need n*n*8 = {r['authors_dense_bytes'] / 1e9:.0f} GB "
                f"({fmt_bytes(r['authors_dense_bytes'])}) per point."
            )

    out.append(
        "\n### Throughput (points x steps per second, batch of start points walked together)\n"
    )
    rows = []
    for t in throughput:
        for batch, row in t["rows"].items():
            rows.append(
                [
                    t["label"],
                    batch,
                    fmt_ms(row["per_step_s"]),
                    f"{row['points_steps_per_s']:.0f}",
                    fmt_ratio(row["speedup_vs_batch1"]),
                ]
            )
    out.append(
        markdown_table(["model", "batch", "step (ms)", "points x steps / s", "vs batch 1"], rows)
    )

    out.append(
        f"\n### Drift after {args.drift_steps} steps of δ = {STEP} on the digits CNN "
        f"({args.drift_batch} test images; logits L-inf, max over steps, median over images)\n"
    )
    rows = [
        [
            d["domain"],
            "yes" if d["corrector"] else "no",
            f"{d['median_max_logit_drift']:.2e}",
            f"{d['max_max_logit_drift']:.2e}",
            f"{d['median_max_output_drift']:.2e}",
            f"{d['median_path_length']:.2f}",
            f"{d['median_displacement_l2']:.2f}",
            d["class_changed"],
            d["outside_box"],
            f"{d['jacobians_per_step']:.2f}",
            f"{d['shortened_steps_median']:.0f}",
            f"{d['cpu_s']:.1f}",
        ]
        for d in drift
    ]
    out.append(
        markdown_table(
            [
                "domain",
                "corrector",
                "median max logit drift",
                "worst max logit drift",
                "median max log-prob drift (L2)",
                "median path length",
                "median displacement (L2)",
                "class changed",
                "left [0,1]",
                "Jacobians/step",
                "shortened steps (median)",
                "CPU s",
            ],
            rows,
        )
    )

    nominal = args.drift_steps * STEP
    for d in drift:
        if d["median_path_length"] < 0.1 * nominal:
            out.append(
                f"\nNote: with {d['domain']} (corrector={d['corrector']}) the median walk "
                f"covered a path of {d['median_path_length']:.3g} of the nominal {nominal:g} "
                f"({d['shortened_steps_median']:.0f} of {args.drift_steps} steps shortened): its "
                "small drift says little, the walk hardly moved."
            )

    out.append("\n### Targets\n")
    rows = []
    for r in steps:
        if r["target"] is not None:
            rows.append(
                [
                    "SiMEC step <= 1.3 x Jacobian floor + 0.5 ms (n >= 784)",
                    r["label"],
                    f"{fmt_ms(r['steps']['simec'])} vs {fmt_ms(1.3 * r['floor_s'] + 5e-4)}",
                    verdict(r["target"]),
                    f"{verdict(r['target_batched_grad'])} "
                    f"({fmt_ms(r['steps']['simec@batched_grad'])})",
                ]
            )
    for r in steps:
        if r["target"] is None or r["authors_step_s"] is None:
            continue
        rows.append(
            [
                "walker's own cost: step - spectrum <= 0.5 ms (batch 1)",
                r["label"],
                fmt_ms(r["walker_overhead_s"]),
                verdict(r["walker_overhead_s"] <= 0.5e-3),
                "",
            ]
        )
        rows.append(
            [
                "authors' step / SiMEC step >= 25x (batch 1)",
                r["label"],
                fmt_ratio(r["authors_over_simec"]),
                verdict(r["authors_over_simec"] >= 25),
                "",
            ]
        )
    goals = {"MLP n=784": 5.0, "PaperMNISTCNN (digits)": 2.0}
    for t in throughput:
        goal = goals.get(t["label"])
        if goal is None:
            continue
        top = t["rows"][max(t["rows"])]
        rows.append(
            [
                f"batch-{max(t['rows'])} throughput >= {goal:g}x batch-1",
                t["label"],
                fmt_ratio(top["speedup_vs_batch1"]),
                verdict(top["speedup_vs_batch1"] >= goal),
                "",
            ]
        )
    out.append(
        markdown_table(
            ["target", "case", "measured", "default call", "jacobian_method='batched_grad'"],
            rows,
        )
    )
    text = "\n".join(out)
    print(text, flush=True)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run")
    args = parser.parse_args(argv)
    setup_torch(1)
    args.min_repeats = 3 if args.quick else 5
    args.step_budget = 1.5 if args.quick else 4.0
    args.resnet_repeats = 1 if args.quick else 3
    args.batches = (1, 8, 64)
    args.throughput_call_s = 0.15 if args.quick else 0.4
    args.throughput_budget = 2.0 if args.quick else 6.0
    args.drift_steps = 200 if args.quick else 1000
    args.drift_batch = 4 if args.quick else 8
    args.peak_reset = can_reset_peak()
    run = start_run("bench_explore", args.quick)

    def stage(name: str, t0: float) -> None:
        print(f"  {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    cnn, split = digits_cnn()
    stage("fit digits CNN", t0)
    x_digit = split.x_test[:1]
    steps = []
    t0 = time.perf_counter()
    steps.append(
        bench_step(
            "PaperMNISTCNN (digits)",
            cnn,
            x_digit,
            args,
            k1=2,
            k2=12,
            variants={
                "simec+freeze box": {"domain": Box(0.0, 1.0)},
                "simec+corrector": {"corrector": True},
            },
            box=(0.0, 1.0),
        )
    )
    stage("CNN step", t0)
    t0 = time.perf_counter()
    gru, x_seq = gru_model()
    steps.append(bench_step("SequenceGRU T=64, d=8", gru, x_seq, args, k1=2, k2=12))
    stage("GRU step", t0)
    t0 = time.perf_counter()
    steps.append(bench_resnet(args))
    stage("ResNet step", t0)

    t0 = time.perf_counter()
    generator = torch.Generator().manual_seed(5)
    throughput = [
        bench_throughput("MLP n=784", mlp_model(), torch.rand(64, 784, generator=generator), args),
        bench_throughput("PaperMNISTCNN (digits)", cnn, split.x_test[:64], args),
    ]
    stage("throughput", t0)
    t0 = time.perf_counter()
    drift = bench_drift(cnn, split.x_test[: args.drift_batch], args)
    stage("drift", t0)

    text = report(steps, throughput, drift, args)
    run.finish({"steps": steps, "throughput": throughput, "drift": drift, "tables_markdown": text})
    return 0


if __name__ == "__main__":
    sys.exit(main())
