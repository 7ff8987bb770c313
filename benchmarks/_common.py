"""Shared helpers of the benchmarks: interleaved timing, peak-memory probes, tables, JSON.

Timing: every benchmark compares methods in the same process, taking turns (rounds of one
call each, in a seeded random order per round: a fixed rotation would always run a method
right after the same other one and hand it that one's cache state), after one warm-up call
each, and reports medians. One thread (`torch.set_num_threads(1)`) unless a
benchmark measures threading: the machine has two shared cores and other jobs run on it.
The primary clock is the process CPU time (`time.process_time`): with one thread the work of
a call runs on the calling thread (autograd runs CPU backward passes on the caller), and CPU
time does not count the time the process waits for a core while other jobs run, which
inflated wall-clock medians 2-10x when the load average was 4x the core count. Wall-clock
medians are recorded next to it (``wall_median``) in the JSON.

Peak memory: `tracemalloc` does not see torch's allocations, and torch has no peak counter on
CPU. We measure the process's resident set size instead, in a fresh subprocess per case:
before each measured call we free what can be freed (`gc.collect()`, glibc `malloc_trim(0)`)
and reset the kernel's high-water mark by writing ``5`` to ``/proc/self/clear_refs``; the
peak is then ``VmHWM - VmRSS(before)`` read from ``/proc/self/status``. It counts every byte
the call touched (activations, autograd graph, LAPACK workspaces, allocator slack), not only
live tensors, at page granularity. Where the kernel does not allow the reset, we fall back
to ``ru_maxrss`` deltas in one subprocess per measured call.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
KIB = 1024
MIB = 1024 * 1024
GIB = 1024**3


# --------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------


def setup_torch(threads: int = 1) -> None:
    """One thread for the intra-op pool (and inter-op where still settable)."""
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set, or work already started
        torch.set_num_interop_threads(threads)


def environment() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "platform": platform.platform(),
    }
    try:
        import captum

        info["captum"] = captum.__version__
    except ImportError:
        pass
    try:
        model = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
        info["cpu"] = model.group(1).strip() if model else None
    except OSError:
        info["cpu"] = None
    return info


def module_available(name: str) -> bool:
    """Whether `name` imports (a missing optional module, not a broken one, returns False)."""
    import importlib

    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


def time_once(fn: Callable[[], Any]) -> float:
    """CPU seconds of one call (see the module docstring)."""
    return _time_both(fn)[0]


def _time_both(fn: Callable[[], Any]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def interleaved(
    methods: dict[str, Callable[[], Any]],
    budget_s: float = 2.0,
    min_repeats: int = 3,
    max_repeats: int = 30,
    warmup: int = 1,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Medians of `methods` timed in turns (a seeded random order per round), after warm-up.

    The number of rounds fits `budget_s` (CPU seconds) from the warm-up times, clamped to
    [min_repeats, max_repeats]. Returns per method: median, q1, q3, min (CPU seconds),
    wall_median, repeats.
    """
    first: dict[str, float] = {}
    for name, fn in methods.items():
        runs = [time_once(fn) for _ in range(max(1, warmup))]
        first[name] = min(runs)
    per_round = sum(first.values()) or 1e-6
    rounds = int(min(max_repeats, max(min_repeats, budget_s / per_round)))
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    wall: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    shuffler = random.Random(seed)
    for _ in range(rounds):
        order = names[:]
        shuffler.shuffle(order)  # a fresh order each round: no fixed predecessor (cache state)
        for name in order:
            c, w = _time_both(methods[name])
            cpu[name].append(c)
            wall[name].append(w)
    return {name: summarise(cpu[name], wall[name]) for name in methods}


def repeat(fn: Callable[[], Any], times: int) -> dict[str, float]:
    """Median of `times` calls (no interleaving: for one-off slow baselines)."""
    pairs = [_time_both(fn) for _ in range(times)]
    return summarise([p[0] for p in pairs], [p[1] for p in pairs])


def summarise(runs: Sequence[float], wall: Sequence[float] | None = None) -> dict[str, float]:
    runs = sorted(runs)
    if len(runs) >= 4:
        q1, _, q3 = statistics.quantiles(runs, n=4)
    else:
        q1, q3 = runs[0], runs[-1]
    out = {
        "median": statistics.median(runs),
        "q1": q1,
        "q3": q3,
        "min": runs[0],
        "repeats": len(runs),
    }
    if wall:
        out["wall_median"] = statistics.median(wall)
    return out


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


# --------------------------------------------------------------------------------------------
# Peak memory (resident set size)
# --------------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) if match else -1


def _malloc_trim() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def can_reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kib("VmHWM") >= 0


def measure_peak(fn: Callable[[], Any]) -> dict[str, float]:
    """Peak extra resident memory (bytes) and wall time (s) of one call of `fn`.

    Needs `can_reset_peak()`; the result is dropped before the after-RSS is read.
    """
    gc.collect()
    _malloc_trim()
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    start = time.process_time()
    result = fn()
    elapsed = time.process_time() - start
    peak = _status_kib("VmHWM")
    del result
    return {"peak_bytes": max(0, peak - before) * KIB, "cpu_seconds": elapsed}


def run_child(script: Path, payload: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    """Runs `script --memory-child JSON` in a fresh interpreter and parses its last stdout line."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(script), "--memory-child", json.dumps(payload)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"child exited {proc.returncode}: {' | '.join(tail)}"[:400]}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": "child printed no result"}


# --------------------------------------------------------------------------------------------
# Formatting and output
# --------------------------------------------------------------------------------------------


def fmt_ms(seconds: float | None, digits: int = 2) -> str:
    if seconds is None:
        return "—"
    ms = seconds * 1e3
    if ms >= 1000:
        return f"{ms / 1e3:.2f} s"
    if ms >= 100:
        return f"{ms:.0f}"
    return f"{ms:.{digits}f}"


def fmt_time(seconds: float | None) -> str:
    """Seconds with a unit: "3.61 ms", "2.77 s"."""
    if seconds is None:
        return "—"
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1e3:.2f} ms"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    if n >= GIB:
        return f"{n / GIB:.2f} GiB"
    if n >= MIB:
        return f"{n / MIB:.1f} MiB"
    return f"{n / KIB:.0f} KiB"


def fmt_ratio(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.0f}x" if x >= 100 else f"{x:.2f}x"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for k, row in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if k == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


@dataclass
class BenchRun:
    """One benchmark run: prints its header on start and its results file on `finish`."""

    name: str
    quick: bool
    start: float
    load_start: tuple[float, float, float]

    def finish(self, data: dict[str, Any]) -> Path:
        """Prints the total wall time and writes `data` (plus timing and load) as JSON."""
        elapsed = time.perf_counter() - self.start
        load_end = load_average()
        print(f"\nTotal wall time: {elapsed:.0f} s; load average at the end {load_end[0]:.1f}")
        path = write_results(
            f"{self.name}_quick" if self.quick else self.name,
            {
                "quick": self.quick,
                **data,
                "wall_s": elapsed,
                "load_average": {"start": self.load_start, "end": load_end},
            },
        )
        print(f"Results: {path}")
        return path


def start_run(name: str, quick: bool, detail: str = "CPU-time medians") -> BenchRun:
    """Prints the run's header (torch version, threads, `detail`, load) and starts the clock."""
    import torch

    load = load_average()
    print(
        f"# {name} ({'quick' if quick else 'full'}): torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread, {detail}, load average {load[0]:.1f}",
        flush=True,
    )
    return BenchRun(name, quick, time.perf_counter(), load)


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    payload = {"benchmark": name, "timestamp": stamp, "environment": environment(), **data}
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=_json_default))
    (RESULTS_DIR / f"{name}-{stamp}.json").write_text(path.read_text())
    return path


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")
