"""How `jacobian_method="auto"` chooses between two Jacobian paths: by timing them once.

Which of ``"replicate"`` and ``"batched_grad"`` is faster depends on the model and the batch
(on the paper's MNIST CNN at batch 1 replicating is faster, at batch 64 the batched backward
is). `calibrate` times both on the first call for a model and a call signature and caches
the faster; `cached_path` returns the cached choice on later calls. A calibration costs a
warm-up and three timed runs of each path (a warm-up each on models whose Jacobian takes
more than a quarter of a second). The choice can differ between machines and processes, the
results only by rounding (pass an explicit `jacobian_method` for bit-for-bit reproducibility).
"""

from __future__ import annotations

import math
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

__all__ = ["CALIBRATED", "cached_path", "cached_reason", "calibrate", "time_paths"]

#: the paths `auto` times against each other when neither one row nor forward mode decides.
CALIBRATED = ("replicate", "batched_grad")
#: timed runs per path when calibrating (after a warm-up run each), taking turns.
_ROUNDS = 3
#: warm-up runs all longer than this (seconds) decide alone: timing more runs would cost more
#: than a wrong choice between two paths of about the same cost on such large models.
_BUDGET_S = 0.25
#: the choice per model (weakly referenced, so it goes with the model) and call signature.
_CHOICES: weakref.WeakKeyDictionary[Any, dict[tuple, str]] = weakref.WeakKeyDictionary()
#: why the calibrated path is "replicate" where the other path failed (same keys).
_REASONS: weakref.WeakKeyDictionary[Any, dict[tuple, str]] = weakref.WeakKeyDictionary()


def cached_path(owner: Any, signature: tuple) -> str:
    """The cached path for `owner` and `signature`, or ``"auto"`` when not calibrated yet.

    An owner that cannot be weakly referenced is never calibrated: it gets
    ``"batched_grad"`` (which falls back to ``"replicate"`` where vmap cannot run).
    """
    try:
        return _CHOICES.get(owner, {}).get(signature, "auto")
    except TypeError:
        return "batched_grad"


def cached_reason(owner: Any, signature: tuple) -> str | None:
    """Why the cached path for `owner` and `signature` is ``"replicate"``: the error of the
    path that failed when it was calibrated (None when it was merely faster)."""
    try:
        return _REASONS.get(owner, {}).get(signature)
    except TypeError:
        return None


def calibrate(
    run: Callable[[str], Tensor], owner: Any, signature: tuple, fallback: Callable[[], Tensor]
) -> tuple[str, Tensor]:
    """Times `run(path)` for each of `CALIBRATED`, caches the fastest, returns it and its result.

    Where no path runs cleanly, `fallback()` runs (so that the model's own error surfaces)
    and nothing is cached. Where a path failed, `cached_reason` says why.
    """
    failures: dict[str, str] = {}
    timed = time_paths(run, CALIBRATED, _ROUNDS, _BUDGET_S, failures)
    if not timed:
        return "replicate", fallback()
    best = min(timed, key=lambda path: timed[path][0])
    _CHOICES.setdefault(owner, {})[signature] = best
    if failures:
        reason = "; ".join(f"{path} failed ({error})" for path, error in failures.items())
        _REASONS.setdefault(owner, {})[signature] = reason[:300]
    return best, timed[best][1]


def time_paths(
    run: Callable[[str], Any],
    paths: Sequence[str],
    repeats: int,
    budget: float = math.inf,
    failures: dict[str, str] | None = None,
) -> dict[str, tuple[float, Any]]:
    """Per path, the shortest CPU time of `repeats` warm runs of `run(path)`, and a result.

    Every path first runs once to warm up; a path that raises or warns (e.g. vmap's slow
    fallback) is left out, with its error in `failures` (if given). The timed runs then take
    turns, so that a change in the load of the machine hits every path alike, and the
    shortest run is the least disturbed one. When every warm-up run takes longer than
    `budget` seconds, the warm-up times decide.
    """
    timings: dict[str, list[float]] = {}
    results: dict[str, Any] = {}
    for path in paths:
        try:
            seconds, results[path] = _timed(run, path)
        except Exception as error:  # the path does not apply to this model or metric
            if failures is not None:
                failures[path] = f"{type(error).__name__}: {error}"
            continue
        timings[path] = [seconds]
    if timings and min(min(t) for t in timings.values()) <= budget:
        timings = {path: [] for path in timings}
        for _ in range(repeats):
            for path, runs in timings.items():
                seconds, results[path] = _timed(run, path)
                runs.append(seconds)
    return {path: (min(runs), results[path]) for path, runs in timings.items()}


def _timed(run: Callable[[str], Any], path: str) -> tuple[float, Any]:
    """CPU seconds and result of `run(path)`, with warnings raised as errors.

    CPU time of the process, not wall time: other processes on a busy machine delay a run
    without changing its CPU time (with several torch threads it measures work, not latency).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        start = time.process_time()
        result = run(path)
        return time.process_time() - start, result
