"""Geometry benchmark: one pullback spectrum vs the Jacobian floor vs the authors' dense eigh.

For MLPs (n = 64, 784, 3072, 12288; hidden 256-256, 10 outputs, log-softmax head), the
paper's MNIST CNN (1x28x28) and a residual CNN (3x32x32), at batch 1 and 16:

- `pullback_spectrum` (Euclidean metric) as a user calls it (``jacobian_method="auto"``), and
  with each reverse-mode path forced;
- one Jacobian by each path of `captum_simec.geometry.jacobian` (replicate, batched_grad,
  vmap, jacfwd; ``backward`` applies only to one-row metrics); the floor is the fastest.
  `jacfwd` is never run on the convnets at batch 16 (n > p: forward mode over n tangents risks
  running out of memory) and is skipped where its batch-1 time predicts a slow call; the
  table says so in its cell;
- a hand-written minimal Jacobian ("raw": one forward of the replicated batch + one backward,
  or one `is_grads_batched` backward) to show the library's own overhead;
- the authors' style: one backward per output to build J, the dense n x n metric J^T J in
  float64 and `torch.linalg.eigh` of it, example by example (skipped, with its memory need,
  where it would take more than 60 s);
- peak extra resident memory of each (see `_common` for the method), in a subprocess;
- the "gram" and "svd" solvers of `factorise` at n = 784 and n = 150,528 (3x224x224).

Run: ``.venv/bin/python benchmarks/bench_geometry.py [--quick]``. Prints markdown tables and
writes ``benchmarks/results/bench_geometry.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _baselines import authors_style, raw_batched_grad, raw_replicate
from _common import (
    can_reset_peak,
    fmt_bytes,
    fmt_ms,
    fmt_ratio,
    interleaved,
    markdown_table,
    measure_peak,
    repeat,
    run_child,
    setup_torch,
    start_run,
    time_once,
    verdict,
)
from torch import nn

from captum_simec.geometry import factorise, jacobian, pullback_spectrum

HERE = Path(__file__).resolve()
M = 10  # outputs of every model here
REVERSE_PATHS = ("replicate", "batched_grad", "vmap")
AUTHORS_LIMIT_S = 60.0


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def build_model(kind: str, n: int | None = None) -> tuple[nn.Module, tuple[int, ...]]:
    """The benchmark's models, seeded, in eval mode, with their per-example input shape."""
    from captum_simec import zoo

    if kind == "mlp":
        model = zoo.MLP(n, hidden=(256, 256), out_features=M, head="log_softmax", seed=0)
        return model.eval(), (n,)
    if kind == "cnn":
        return zoo.PaperMNISTCNN(head="log_softmax", seed=0).eval(), (1, 28, 28)
    if kind == "rescnn":
        model = zoo.ResidualCNN(3, M, width=16, head="log_softmax", seed=0)
        return model.eval(), (3, 32, 32)
    raise ValueError(kind)


def case_list(quick: bool) -> list[dict[str, Any]]:
    sizes = (64, 784, 3072) if quick else (64, 784, 3072, 12288)
    cases = [{"label": f"MLP n={n}", "kind": "mlp", "n": n} for n in sizes]
    cases.append({"label": "PaperMNISTCNN 1x28x28", "kind": "cnn", "n": None})
    cases.append({"label": "ResidualCNN 3x32x32", "kind": "rescnn", "n": None})
    return cases


def make_inputs(shape: tuple[int, ...], batch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(batch, *shape, generator=generator)


# --------------------------------------------------------------------------------------------
# The methods
# --------------------------------------------------------------------------------------------


def method_table(model: nn.Module, x: torch.Tensor) -> dict[str, Callable[[], Any]]:
    """All methods of one case by name (authors' and jacfwd are run separately)."""
    methods: dict[str, Callable[[], Any]] = {
        "spectrum": lambda: pullback_spectrum(model, x),
    }
    for path in REVERSE_PATHS:
        methods[f"spectrum@{path}"] = lambda p=path: pullback_spectrum(model, x, jacobian_method=p)
    for path in REVERSE_PATHS:
        methods[f"jac:{path}"] = lambda p=path: jacobian(model, (x,), method=p)
    methods["raw:replicate"] = lambda: raw_replicate(model, x, M)
    methods["raw:batched_grad"] = lambda: raw_batched_grad(model, x, M)
    methods["jac:jacfwd"] = lambda: jacobian(model, (x,), method="jacfwd")
    methods["authors"] = lambda: authors_style(model, x)
    return methods


# --------------------------------------------------------------------------------------------
# Cost estimates for the slow baselines
# --------------------------------------------------------------------------------------------


def calibrate_eigh() -> float:
    """Seconds per n^3 of float64 eigh, measured at n = 784 (median of 3)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(784, 784, dtype=torch.float64, generator=generator)
    g = a @ a.T
    torch.linalg.eigh(g)
    runs = [time_once(lambda: torch.linalg.eigh(g)) for _ in range(3)]
    return sorted(runs)[1] / 784**3


def authors_estimate(n: int, batch: int, per_n3: float) -> float:
    """Predicted seconds of the authors' style (eigh dominates; cache effects beyond 2k)."""
    penalty = 1.5 if n > 2048 else 1.0
    return batch * per_n3 * n**3 * penalty


# --------------------------------------------------------------------------------------------
# Memory child
# --------------------------------------------------------------------------------------------


def memory_child(payload: dict[str, Any]) -> None:
    """Measures each job's methods in turn, resetting the RSS high-water mark before each."""
    setup_torch(1)
    model, shape = build_model(payload["kind"], payload["n"])
    out: dict[str, Any] = {}
    for job in payload["jobs"]:
        x = make_inputs(shape, job["batch"])
        methods = method_table(model, x)
        with torch.no_grad():
            model(x)  # allocate lazily initialised buffers before any measurement
        result = out.setdefault(str(job["batch"]), {})
        for name in job["methods"]:
            if job["warm"].get(name, True):
                methods[name]()
            result[name] = measure_peak(methods[name])
        del methods, x
    print(json.dumps(out))


def memory_isolated(payload: dict[str, Any]) -> dict[str, Any]:
    """Fallback without a resettable high-water mark: one child per method, ru_maxrss delta."""
    import resource

    setup_torch(1)
    model, shape = build_model(payload["kind"], payload["n"])
    job = payload["jobs"][0]
    x = make_inputs(shape, job["batch"])
    name = job["methods"][0]
    fn = method_table(model, x)[name]
    with torch.no_grad():
        model(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.process_time()
    fn()
    elapsed = time.process_time() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = {"peak_bytes": (after - before) * 1024, "cpu_seconds": elapsed}
    return {str(job["batch"]): {name: peak}}


def measure_memory(records: list[dict[str, Any]], peak_reset: bool) -> None:
    """Fills `record["memory"]`: one subprocess per model (per method without RSS reset)."""
    by_model: dict[tuple[str, int | None], list[dict[str, Any]]] = {}
    for record in records:
        by_model.setdefault((record["kind"], record["n_arg"]), []).append(record)
    for (kind, n), group in by_model.items():
        jobs = [r["memory_plan"] for r in group]
        if peak_reset:
            result = run_child(HERE, {"kind": kind, "n": n, "jobs": jobs})
        else:
            result = {}
            for job in jobs:
                for name in job["methods"]:
                    single = dict(job, methods=[name])
                    part = run_child(HERE, {"kind": kind, "n": n, "jobs": [single], "isolated": 1})
                    if "error" in part:
                        result.setdefault(str(job["batch"]), {}).update(part)
                        continue
                    for batch, values in part.items():
                        result.setdefault(batch, {}).update(values)
        for record in group:
            if "error" in result:
                record["memory"] = {"error": result["error"]}
            else:
                record["memory"] = result.get(str(record["batch"]), {})


# --------------------------------------------------------------------------------------------
# Main benchmark
# --------------------------------------------------------------------------------------------


def bench_case(
    case: dict[str, Any], batch: int, args: argparse.Namespace, per_n3: float
) -> dict[str, Any]:
    model, shape = build_model(case["kind"], case["n"])
    n = int(torch.tensor(shape).prod())
    x = make_inputs(shape, batch)
    methods = method_table(model, x)
    auto_path = pullback_spectrum(model, x).jacobian_method
    record: dict[str, Any] = {
        "label": case["label"],
        "kind": case["kind"],
        "n_arg": case["n"],
        "batch": batch,
        "n": n,
        "m": M,
        "auto_path": auto_path,
        "jacobian_bytes": batch * M * n * 4,
        "authors_dense_bytes": n * n * 8,
        "notes": [],
    }

    # Authors' style: interleave when cheap, one-off runs when slow, skip beyond 60 s.
    estimate = authors_estimate(n, batch, per_n3)
    record["authors_estimate_s"] = estimate
    authors_mode = "interleaved" if estimate < 0.6 else "oneoff"
    if estimate > args.authors_limit:
        authors_mode = "skipped"
        record["notes"].append(
            f"authors' style skipped: est. {estimate:.0f} s > {args.authors_limit:.0f} s; "
            f"dense metric n*n*8 = {fmt_bytes(n * n * 8)} per example "
            "(eigh with eigenvectors and workspace needs about 3-4x that)"
        )
    fast = {k: v for k, v in methods.items() if k not in ("jac:jacfwd", "authors")}
    if authors_mode == "interleaved":
        fast["authors"] = methods["authors"]
    timings = interleaved(fast, budget_s=args.budget, min_repeats=args.min_repeats)

    # jacfwd: forward mode over n tangents, very slow on convolutions and memory-hungry.
    skip = jacfwd_skip(case, batch, n, args)
    record["jacfwd_skipped"] = skip[0] if skip else None
    if skip:
        record["notes"].append(skip[1])
    else:
        timings["jac:jacfwd"] = oneoff(methods["jac:jacfwd"], cheap_s=0.3)
        if batch == 1:
            args.jacfwd_b1[case["label"]] = timings["jac:jacfwd"]["median"]
    if authors_mode == "oneoff":
        timings["authors"] = oneoff(methods["authors"], cheap_s=3.0)
    record["timings"] = timings
    record["authors_mode"] = authors_mode

    med = {k: v["median"] for k, v in timings.items()}
    jac_paths = {k.split(":")[1]: v for k, v in med.items() if k.startswith("jac:")}
    floor_path = min(jac_paths, key=jac_paths.get)
    record["floor_path"] = floor_path
    record["floor_s"] = jac_paths[floor_path]
    record["raw_floor_s"] = min(med["raw:replicate"], med["raw:batched_grad"])
    record["spectrum_s"] = med["spectrum"]
    record["spectrum_over_floor"] = med["spectrum"] / jac_paths[floor_path]
    record["spectrum_overhead_by_path"] = {
        p: med[f"spectrum@{p}"] / med[f"jac:{p}"] for p in REVERSE_PATHS
    }
    best_spec = min(REVERSE_PATHS, key=lambda p: med[f"spectrum@{p}"])
    record["best_spectrum_path"] = best_spec
    record["best_spectrum_s"] = med[f"spectrum@{best_spec}"]
    record["authors_s"] = med.get("authors")
    if record["authors_s"] is not None:
        record["authors_over_spectrum"] = record["authors_s"] / med["spectrum"]
    allowed = 1.3 * record["floor_s"] + 0.5e-3
    record["target_floor"] = None if n < 784 else bool(med["spectrum"] <= allowed)
    record["target_floor_best_path"] = (
        None if n < 784 else bool(record["best_spectrum_s"] <= allowed)
    )
    has_authors = n == 784 and record["authors_s"] is not None
    record["target_authors"] = bool(record["authors_over_spectrum"] > 25) if has_authors else None
    record["target_authors_best_path"] = (
        bool(record["authors_s"] / record["best_spectrum_s"] > 25) if has_authors else None
    )

    # Peak memory is measured later, one subprocess per model (see `measure_memory`).
    mem_methods = ["spectrum", f"spectrum@{best_spec}", f"jac:{floor_path}", "raw:replicate"]
    if "jac:jacfwd" in timings and timings["jac:jacfwd"]["median"] < 1.0:
        mem_methods.append("jac:jacfwd")
    warm = {name: True for name in mem_methods}
    if authors_mode != "skipped" and estimate <= args.authors_memory_limit:
        mem_methods.append("authors")
        warm["authors"] = estimate < 0.5
    record["memory_plan"] = {"batch": batch, "methods": mem_methods, "warm": warm}
    return record


def jacfwd_skip(
    case: dict[str, Any], batch: int, n: int, args: argparse.Namespace
) -> tuple[str, str] | None:
    """(table cell, note) when `jac:jacfwd` must not run on this case, else None.

    Forward mode pushes n tangents through the model (`vmap` over them, per example): its
    activations are n times those of one forward. On the convnets at batch 16, with n > p,
    that risks running out of memory (and reverse mode is the right path there anyway), so it
    is never run; elsewhere it is skipped when its batch-1 time predicts a slow call.
    """
    conv = case["kind"] != "mlp"
    if conv and batch >= 16 and n > M:
        return (
            "skipped (OOM risk)",
            f"jacfwd not run: forward mode over n = {n} > p = {M} tangents on a convnet at "
            f"batch {batch} holds about n x the activations of one forward and risks running "
            "out of memory (reverse-mode paths need only p = 10 rows)",
        )
    if args.quick and conv:
        return "skipped (--quick)", "jacfwd skipped in --quick (seconds per call on convolutions)"
    estimate = args.jacfwd_b1.get(case["label"])
    if estimate is not None and batch > 1:
        estimate *= batch
    if estimate is not None and estimate > args.jacfwd_limit:
        return (
            f"skipped (est. {estimate:.1f} s)",
            f"jacfwd skipped: est. {estimate:.1f} s from batch 1 (and O(n) x activation "
            "memory: vmap over n tangents)",
        )
    return None


def oneoff(fn: Callable[[], Any], cheap_s: float) -> dict[str, float]:
    """One run of a slow method; three more (median) when the first is under `cheap_s`."""
    first = repeat(fn, 1)
    return first if first["median"] >= cheap_s else repeat(fn, 3)


def warm_up_paths() -> None:
    """Pays the one-time costs (torch.func, forward AD, LAPACK) on a tiny model."""
    from captum_simec import zoo

    model = zoo.MLP(8, hidden=(4,), out_features=M, head="log_softmax", seed=0).eval()
    x = torch.rand(2, 8)
    for path in ("replicate", "batched_grad", "vmap", "jacfwd"):
        jacobian(model, (x,), method=path)
        pullback_spectrum(model, x, jacobian_method=path)
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 36, M)).eval()
    for path in ("replicate", "batched_grad", "vmap", "jacfwd"):
        jacobian(conv, (torch.rand(2, 1, 8, 8),), method=path)
    authors_style(model, x)


def bench_solvers(args: argparse.Namespace) -> list[dict[str, Any]]:
    """`factorise` gram vs svd on a real J (n = 784) and a random 10 x 150,528 factor."""
    rows = []
    model, shape = build_model("mlp", 784)
    generator = torch.Generator().manual_seed(2)
    inputs = {
        "MLP n=784 J, batch 1": jacobian(model, (make_inputs(shape, 1),)).factor,
        "MLP n=784 J, batch 16": jacobian(model, (make_inputs(shape, 16),)).factor,
        "random 10 x 150,528 (3x224x224), batch 1": torch.randn(1, M, 150_528, generator=generator),
    }
    for label, factor in inputs.items():
        timings = interleaved(
            {
                "gram": lambda f=factor: factorise(f, solver="gram"),
                "svd": lambda f=factor: factorise(f, solver="svd"),
            },
            budget_s=args.budget,
            min_repeats=args.min_repeats,
        )
        s_gram, v_gram, rank_gram, _ = factorise(factor, solver="gram")
        s_svd, v_svd, rank_svd, _ = factorise(factor, solver="svd")
        r = int(rank_svd.min())
        sv_err = ((s_gram[:, :r] - s_svd[:, :r]).abs() / s_svd[:, :1]).max().item()
        proj_gram = (
            v_gram[:, :, :r] @ v_gram[:, :, :r].transpose(1, 2) if factor.shape[2] < 5000 else None
        )
        subspace_err = None
        if proj_gram is not None:
            proj_svd = v_svd[:, :, :r] @ v_svd[:, :, :r].transpose(1, 2)
            subspace_err = (proj_gram - proj_svd).abs().max().item()
        rows.append(
            {
                "label": label,
                "shape": list(factor.shape),
                "timings": timings,
                "gram_s": timings["gram"]["median"],
                "svd_s": timings["svd"]["median"],
                "svd_over_gram": timings["svd"]["median"] / timings["gram"]["median"],
                "rank_gram": rank_gram.tolist(),
                "rank_svd": rank_svd.tolist(),
                "max_rel_singular_value_diff": sv_err,
                "max_projector_diff": subspace_err,
            }
        )
    return rows


def print_tables(records: list[dict[str, Any]], solvers: list[dict[str, Any]]) -> str:
    out = []
    rows = []
    for r in records:
        t = {k: v["median"] for k, v in r["timings"].items()}
        rows.append(
            [
                r["label"],
                r["batch"],
                r["n"],
                f"{fmt_ms(r['spectrum_s'])} ({r['auto_path']})",
                f"{fmt_ms(r['floor_s'])} ({r['floor_path']})",
                fmt_ms(t.get("jac:replicate")),
                fmt_ms(t.get("jac:batched_grad")),
                fmt_ms(t.get("jac:vmap")),
                r["jacfwd_skipped"]
                or fmt_ms(t.get("jac:jacfwd")) + ("*" if "jac:jacfwd" in t else ""),
                fmt_ms(r["raw_floor_s"]),
                fmt_ms(r["authors_s"]) + ("*" if r["authors_mode"] == "oneoff" else ""),
                fmt_ratio(r["spectrum_over_floor"]),
                f"{fmt_ratio(r['best_spectrum_s'] / r['floor_s'])} ({r['best_spectrum_path']})",
                fmt_ratio(r.get("authors_over_spectrum")),
            ]
        )
    out.append("### Time per call (ms, median; whole batch)\n")
    out.append(
        markdown_table(
            [
                "model",
                "B",
                "n",
                "spectrum (auto path)",
                "Jacobian floor (path)",
                "replicate",
                "batched_grad",
                "vmap",
                "jacfwd",
                "raw floor",
                "authors",
                "spectrum/floor",
                "best spectrum/floor",
                "authors/spectrum",
            ],
            rows,
        )
    )
    out.append(
        "\n`*` one-off runs (1 run, or median of 3 when under 0.3 s / 3 s). `raw floor`: "
        "hand-written minimal Jacobian (one forward + one backward), not a library path. "
        "`best spectrum`: `pullback_spectrum` with the fastest forced `jacobian_method`. "
        "`jacfwd` `skipped (...)`: not run, for the reason given (see Notes)."
    )
    overhead_rows = [
        [r["label"], r["batch"]]
        + [fmt_ratio(r["spectrum_overhead_by_path"][p]) for p in REVERSE_PATHS]
        for r in records
    ]
    out.append("\n### Spectrum cost over its own Jacobian path (spectrum@path / jacobian@path)\n")
    out.append(markdown_table(["model", "B", *REVERSE_PATHS], overhead_rows))

    mem_rows = []
    for r in records:
        mem = r.get("memory", {})
        if "error" in mem:
            mem_rows.append([r["label"], r["batch"], mem["error"], "", "", "", "", ""])
            continue

        def peak(name: str, mem: dict[str, Any] = mem) -> str:
            return fmt_bytes(mem[name]["peak_bytes"]) if name in mem else "—"

        mem_rows.append(
            [
                r["label"],
                r["batch"],
                fmt_bytes(r["jacobian_bytes"]),
                peak("spectrum"),
                f"{peak('jac:' + r['floor_path'])} ({r['floor_path']})",
                peak("raw:replicate"),
                "skipped" if r["jacfwd_skipped"] else peak("jac:jacfwd"),
                peak("authors"),
                fmt_bytes(r["authors_dense_bytes"]),
            ]
        )
    out.append("\n### Peak extra resident memory per call (RSS high-water mark, subprocess)\n")
    out.append(
        markdown_table(
            [
                "model",
                "B",
                "J (B*m*n*4)",
                "spectrum",
                "Jacobian floor path",
                "raw replicate",
                "jacfwd",
                "authors",
                "authors' dense g (n*n*8)",
            ],
            mem_rows,
        )
    )

    solver_rows = [
        [
            s["label"],
            fmt_ms(s["gram_s"], 3),
            fmt_ms(s["svd_s"], 3),
            fmt_ratio(s["svd_over_gram"]),
            f"{s['max_rel_singular_value_diff']:.1e}",
            "—" if s["max_projector_diff"] is None else f"{s['max_projector_diff']:.1e}",
        ]
        for s in solvers
    ]
    out.append("\n### `factorise` solvers (ms, median)\n")
    out.append(
        markdown_table(
            [
                "factor",
                "gram",
                "svd",
                "svd/gram",
                "max rel. s diff gram/svd",
                "max projector diff",
            ],
            solver_rows,
        )
    )

    target_rows = []
    for r in records:
        if r["target_floor"] is not None:
            target_rows.append(
                [
                    "spectrum <= 1.3 x floor + 0.5 ms (n >= 784)",
                    f"{r['label']}, B={r['batch']}",
                    f"{fmt_ms(r['spectrum_s'])} vs {fmt_ms(1.3 * r['floor_s'] + 5e-4)} allowed",
                    verdict(r["target_floor"]),
                    verdict(r["target_floor_best_path"]),
                ]
            )
    for r in records:
        if r["n"] == 784:
            best_ratio = fmt_ratio(
                r["authors_s"] / r["best_spectrum_s"] if r["authors_s"] else None
            )
            target_rows.append(
                [
                    "> 25x faster than authors' style (n = 784)",
                    f"{r['label']}, B={r['batch']}",
                    f"{fmt_ratio(r.get('authors_over_spectrum'))} (best path {best_ratio})",
                    verdict(r["target_authors"]),
                    verdict(r["target_authors_best_path"]),
                ]
            )
    out.append("\n### Targets\n")
    out.append(
        markdown_table(
            ["target", "case", "measured", "default call", "best forced path"],
            target_rows,
        )
    )
    notes = [f"- {r['label']}, B={r['batch']}: {note}" for r in records for note in r["notes"]]
    if notes:
        out.append("\n### Notes\n")
        out.extend(notes)
    text = "\n".join(out)
    print(text, flush=True)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run (about a minute)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--budget", type=float, default=None, help="seconds of timing per case")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        payload = json.loads(args.memory_child)
        if payload.get("isolated"):
            print(json.dumps(memory_isolated(payload)))
        else:
            memory_child(payload)
        return 0

    setup_torch(1)
    args.budget = args.budget or (0.4 if args.quick else 1.2)
    args.min_repeats = 3 if args.quick else 5
    args.authors_limit = 5.0 if args.quick else AUTHORS_LIMIT_S
    args.authors_memory_limit = 1.0 if args.quick else 20.0
    args.jacfwd_limit = 0.5 if args.quick else 2.0
    args.jacfwd_b1 = {}
    args.peak_reset = can_reset_peak()
    warm_up_paths()
    per_n3 = calibrate_eigh()
    run = start_run(
        "bench_geometry",
        args.quick,
        detail=f"CPU-time medians, eigh(784) = {per_n3 * 784**3 * 1e3:.0f} ms, peak-RSS reset: "
        f"{args.peak_reset}, {os.cpu_count()} cores",
    )
    records = []
    for case in case_list(args.quick):
        for batch in (1, 16):
            t0 = time.perf_counter()
            record = bench_case(case, batch, args, per_n3)
            record["wall_s"] = time.perf_counter() - t0
            records.append(record)
            print(
                f"  {case['label']} B={batch}: spectrum {fmt_ms(record['spectrum_s'])} ms, floor "
                f"{fmt_ms(record['floor_s'])} ms ({record['floor_path']}), "
                f"{record['wall_s']:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    t0 = time.perf_counter()
    if not args.no_memory:
        measure_memory(records, args.peak_reset)
    print(f"  memory: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    solvers = bench_solvers(args)
    print(f"  solvers: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    text = print_tables(records, solvers)
    run.finish(
        {"budget_s": args.budget, "cases": records, "solvers": solvers, "tables_markdown": text}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
