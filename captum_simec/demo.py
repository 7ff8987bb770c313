"""The ``captum-simec demo`` job: train, compare, walk and audit on scikit-learn's digits.

Five stages, each printed with its real numbers and timing:

1. train the paper's MNIST CNN (:class:`~captum_simec.zoo.PaperMNISTCNN`) on the 8x8
   digits upsampled to 28x28 (:func:`~captum_simec.zoo.fit_digits_cnn`);
2. compare SiMEC attributions with Integrated Gradients, Saliency and others on a few test
   images (:func:`~captum_simec.compare_attributions`);
3. walk inside the class of a test image (SiMEC: the prediction and probabilities stay put)
   and out of it (SiMExp, ``leave_class``: until the predicted class changes);
4. audit a few dozen test images (:class:`~captum_simec.RobustnessAudit`):
   rank, null dimension, robustness maps, class extent, flip distance against PGD;
5. write ``report.md`` and a self-contained ``report.html``, the figures (PNG) and the audit
   records (``records.csv``, ``records.json``, ``summary.json``) to the output folder.

The full run takes a few minutes on two CPU cores, ``quick=True`` well under one.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from captum_simec._runtime import show_progress, torch_threads
from captum_simec.audit import AuditResult, RobustnessAudit
from captum_simec.evaluation import Comparison, compare_attributions
from captum_simec.explore import Walk, simec, simexp
from captum_simec.report import (
    COMPARISON_TERMS,
    Report,
    ReportFiles,
    add_audit_sections,
    add_comparison_sections,
    format_value,
)
from captum_simec.report.audit import AUDIT_TERMS
from captum_simec.viz import plot_image_strip, plot_traces
from captum_simec.zoo import accuracy, count_parameters, fit_digits_cnn

__all__ = ["DemoResult", "DemoSettings", "faithfulness_ranks", "run_demo"]

#: the method the takeaway reports on, and the metrics it ranks the maps' faithfulness by.
BOUNDARY_METHOD = "SiMEC boundary"
_FAITHFULNESS = ("deletion_auc/", "insertion_auc/")
#: the demo's removal baselines (a 3x3 blur barely changes the upsampled 8x8 digits).
_BASELINES = ("black", "uniform", "mean")


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo's stages (see :meth:`full` and :meth:`quick`)."""

    epochs: int
    compare_images: int
    compare_metrics: tuple[str, ...]
    compare_baselines: tuple[str, ...]
    simec_steps: int
    simexp_steps: int
    audit_images: int
    audit_simec_steps: int
    audit_simexp_steps: int
    pgd_steps: int
    step_size: float = 0.05

    @classmethod
    def full(cls) -> DemoSettings:
        """The default demo (a few minutes on two cores)."""
        return cls(
            epochs=12,
            compare_images=8,
            compare_metrics=("deletion", "insertion", "invariance", "sanity"),
            compare_baselines=_BASELINES,
            simec_steps=300,
            simexp_steps=200,
            audit_images=32,
            audit_simec_steps=20,
            audit_simexp_steps=300,
            pgd_steps=20,
        )

    @classmethod
    def quick(cls) -> DemoSettings:
        """A smoke-test-sized demo (well under a minute)."""
        return cls(
            epochs=5,
            compare_images=2,
            compare_metrics=("deletion", "insertion"),
            compare_baselines=_BASELINES,
            simec_steps=30,
            simexp_steps=80,
            audit_images=6,
            audit_simec_steps=5,
            audit_simexp_steps=150,
            pgd_steps=8,
        )


@dataclass
class DemoResult:
    """What the demo produced.

    Attributes:
        out: the output folder.
        accuracy: test accuracy of the trained CNN.
        seconds: wall time per stage and in total.
        audit: the audit of the test images.
        report: paths of ``report.md``, ``report.html`` and the figures.
        numbers: headline numbers printed by the demo.
    """

    out: Path
    accuracy: float
    seconds: dict[str, float]
    audit: AuditResult
    report: ReportFiles
    numbers: dict[str, Any] = field(default_factory=dict)


class _Stages:
    """Prints numbered stage headings and records the wall time of each stage."""

    def __init__(self, total: int, echo: Callable[[str], None]) -> None:
        self.total, self.echo = total, echo
        self.done = 0
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, text: str) -> Iterator[None]:
        self.done += 1
        self.echo(f"[{self.done}/{self.total}] {text} ...")
        start = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - start
        self.echo(f"      done in {self.seconds[name]:.1f} s")


def run_demo(
    out: str | os.PathLike = "demo_output",
    *,
    quick: bool = False,
    seed: int = 0,
    progress: bool | None = None,
    threads: int = 1,
    echo: Callable[[str], None] = print,
) -> DemoResult:
    """Runs the demo and writes its report, figures and records into `out`.

    Args:
        out: output folder (created; files in it are overwritten).
        quick: the small configuration (:meth:`DemoSettings.quick`).
        seed: seeds the data split, the training, the walks and the audit.
        progress: tqdm bars; None shows them only on a terminal.
        threads: torch CPU threads during the demo (the models are small: one thread is
            fastest on a shared two-core machine); restored afterwards.
        echo: where the stage headings and numbers go.

    Returns:
        A :class:`DemoResult`.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}.")
    settings = DemoSettings.quick() if quick else DemoSettings.full()
    show = show_progress(progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stages = _Stages(5, echo)
    numbers: dict[str, Any] = {}
    start = time.perf_counter()
    with torch_threads(threads):
        with stages.stage("train", f"training the paper's CNN ({settings.epochs} epochs)"):
            model, split = fit_digits_cnn(seed=seed, epochs=settings.epochs, progress=show)
            numbers["accuracy"] = accuracy(model, split.x_test, split.y_test)
        echo(
            f"      test accuracy {numbers['accuracy']:.3f} on {len(split.y_test)} images, "
            f"{count_parameters(model)} parameters"
        )
        domain = split.domain

        with stages.stage("compare", "comparing SiMEC with Integrated Gradients and others"):
            count = settings.compare_images
            with warnings.catch_warnings():  # Captum's benign notes on requires_grad
                warnings.filterwarnings("ignore", "Input Tensor .* did not already require")
                comparison = compare_attributions(
                    model,
                    split.x_test[:count],
                    labels=split.y_test[:count],
                    baselines=settings.compare_baselines,
                    domain=domain,
                    metrics=settings.compare_metrics,
                    seed=seed,
                    progress=show,
                )
        _echo_comparison(comparison, echo)

        with stages.stage("walk", "walking SiMEC inside and SiMExp out of a class"):
            start_image = split.x_test[:1]
            inside = simec(
                model,
                start_image,
                steps=settings.simec_steps,
                step_size=settings.step_size,
                domain=domain,
                seed=seed,
                progress=show,
            )
            across = simexp(
                model,
                start_image,
                steps=settings.simexp_steps,
                step_size=settings.step_size,
                mode="leave_class",
                domain=domain,
                seed=seed,
                progress=show,
            )
        walks = {"SiMEC": inside, "SiMExp leave_class": across}
        _echo_walks(walks, echo)

        with stages.stage("audit", f"auditing {settings.audit_images} test images"):
            audit = RobustnessAudit(
                model,
                domain=domain,
                simec_steps=settings.audit_simec_steps,
                simec_step_size=settings.step_size,
                simexp_steps=settings.audit_simexp_steps,
                simexp_step_size=settings.step_size,
                pgd_steps=settings.pgd_steps,
                seed=seed,
                progress=show,
            )
            count = settings.audit_images
            result = audit.run(split.x_test[:count], split.y_test[:count])
            result.save(out)
        numbers.update(_audit_numbers(result))
        echo(
            f"      {numbers['audit_examples_per_s']:.2f} examples/s; null dimension "
            f"{numbers['median_null_dim']:.0f} (rank {numbers['median_rank']:.0f}, smallest "
            f"spectral gap {numbers['min_spectral_gap']:.3g}); flip rate "
            f"{numbers['flip_rate']:.2f}; median flip distance L2 {numbers['median_flip_l2']:.3g} "
            f"vs PGD eps {numbers['median_pgd_l2']:.3g} (ratio {numbers['median_ratio_l2']:.3g}); "
            f"L-inf ratio {numbers['median_ratio_linf']:.3g}"
        )

        with stages.stage("report", "writing the report"):
            report = Report("captum-simec demo: the paper's CNN on scikit-learn digits")
            report.heading("Takeaway")
            for paragraph in _takeaway(comparison, numbers):
                report.paragraph(paragraph, emphasis=True)
            _model_section(report, model, split, settings, numbers)
            add_comparison_sections(report, comparison)
            _walk_section(report, walks)
            add_audit_sections(report, result)
            stages.seconds["total"] = time.perf_counter() - start
            report.heading("Timings")
            report.table([{"stage": k, "seconds": v} for k, v in stages.seconds.items()])
            report.heading("Definitions")
            report.definitions({**COMPARISON_TERMS, **AUDIT_TERMS, **WALK_TERMS})
            files = report.write(out)
    seconds = dict(stages.seconds, total=time.perf_counter() - start)
    echo(f"demo finished in {seconds['total']:.1f} s; report: {files.html.resolve()}")
    return DemoResult(out, numbers["accuracy"], seconds, result, files, numbers)


def _takeaway(comparison: Comparison, numbers: Mapping[str, float]) -> list[str]:
    """The report's lead: the measured winner, then what the audit and the geometry say."""
    ranks = faithfulness_ranks(comparison)
    order = sorted(ranks, key=ranks.get)
    leader = order[0]
    also = [name for name, earlier in comparison.identical_maps().items() if earlier == leader]
    scored = [m for m in comparison.summary()[leader] if m.startswith(_FAITHFULNESS)]
    baselines = sorted({metric.split("/")[-1] for metric in scored})
    lead = (
        f"**Measured winner: {' = '.join([leader, *also])}**, with the best mean rank "
        f"({ranks[leader]:.1f}) over the {len(scored)} deletion and insertion AUCs of this run "
        f"({comparison.target.shape[0]} test images; removal baselines {', '.join(baselines)}). "
        f"{BOUNDARY_METHOD} (`score='boundary'`) ranks {order.index(BOUNDARY_METHOD) + 1} of "
        f"{len(order)} (mean rank {ranks[BOUNDARY_METHOD]:.1f})."
    )
    invariance = comparison.winners().get("invariance_auc")
    if invariance:
        value = comparison.summary()[invariance[0]]["invariance_auc"]
        lead += (
            f" Best invariance map (which pixels the prediction ignores): {invariance[0]} "
            f"(invariance AUC {value:.3f})."
        )
    return [
        lead,
        "For context, on 64 test images per model (`benchmarks/bench_evaluation.py`: a digits "
        "MLP, the paper's CNN on MNIST, a breast-cancer MLP) SiMEC boundary is the most "
        "faithful SiMEC map: it beats Saliency and IG from black on deletion and insertion "
        "with uniform-noise and training-mean baselines on all three; GradientShap, which "
        "averages over noise baselines, ranks above it on two of them, and IG from black wins "
        "the black baseline it integrates from. For invariance, box-aware SiMEC robustness "
        "(`score='robustness', domain=(lo, hi)`) is the best robustness map on all three.",
        f"Robustness: the SiMExp walk changed the prediction of "
        f"{format_value(numbers['flip_rate'] * 100, 3)} % of {numbers['audit_examples']} "
        f"audited images, at a median distance {format_value(numbers['median_ratio_l2'], 3)} "
        "times the smallest flipping PGD radius (L2). Geometry: null dimension "
        f"{numbers['median_null_dim']:.0f} of 784 (rank {numbers['median_rank']:.0f}, "
        f"smallest spectral gap {format_value(numbers['min_spectral_gap'], 3)}). SiMEC "
        "relevance with a target is Saliency, bit for bit.",
    ]


def faithfulness_ranks(comparison: Comparison) -> dict[str, float]:
    """Method -> its mean rank over the comparison's deletion and insertion AUCs (1 = best)."""
    metrics = [m for m in comparison.winners() if m.startswith(_FAITHFULNESS)]
    return comparison.mean_ranks(metrics)


def _model_section(
    report: Report, model: Any, split: Any, settings: DemoSettings, numbers: Mapping[str, Any]
) -> None:
    report.heading("Model and data")
    report.table(
        [
            {
                "model": "PaperMNISTCNN (log-softmax head)",
                "parameters": count_parameters(model),
                "train / test images": f"{len(split.y_train)} / {len(split.y_test)}",
                "epochs": settings.epochs,
                "test accuracy": numbers["accuracy"],
            }
        ]
    )


def _echo_comparison(comparison: Comparison, echo: Callable[[str], None]) -> None:
    for record in comparison.to_records():
        scores = ", ".join(
            f"{k} {v:.3f}"
            for k, v in record.items()
            if isinstance(v, float) and ("black" in k or k.startswith("random"))
        )
        echo(f"      {record['method']}: {record['seconds']:.2f} s; {scores}")
    ranks = faithfulness_ranks(comparison)
    leader = min(ranks, key=ranks.get)
    echo(f"      best mean rank over deletion/insertion AUCs: {leader} ({ranks[leader]:.1f})")


#: what the walk table's rows mean.
WALK_TERMS = {
    "stop_reason": "why the walk stopped: steps (its budget), class_change (the prediction "
    "changed; the crossing step is bisected), domain (blocked by the pixel box).",
    "path_length / displacement": "length of the path walked / of the straight line from the "
    "start to the end (L2; L-inf: the largest change of any pixel).",
    "max_drift": "the largest output drift along the walk (see drift): near zero for SiMEC, "
    "large for SiMExp, which leaves the class on purpose.",
    "shortened_steps": "steps the pixel box cut short.",
}
_WALK_ROWS = (
    "stop_reason",
    "stopped_at",
    "path_length",
    "displacement_l2",
    "displacement_linf",
    "max_drift",
    "start_class",
    "final_class",
    "shortened_steps",
)


def _echo_walks(walks: Mapping[str, Walk], echo: Callable[[str], None]) -> None:
    for name, walk in walks.items():
        record = walk.to_records()[0]
        echo(
            f"      {name}: {record['stopped_at']} steps ({record['stop_reason']}), path length "
            f"{record['path_length']:.3g}, displacement L2 {record['displacement_l2']:.3g}, "
            f"max drift {record['max_drift']:.3g}, class {int(walk.start_class[0])} -> "
            f"{int(walk.final_class[0])}"
        )


def _walk_section(report: Report, walks: Mapping[str, Walk]) -> None:
    report.heading("Walks inside and across the class")
    report.paragraph(
        "SiMEC steps along the null space of the pullback metric: the prediction and the "
        "probabilities stay put. SiMExp (leave_class) steps down the margin of the predicted "
        "class until the prediction changes."
    )
    records = {name: walk.to_records()[0] for name, walk in walks.items()}
    rows = [
        {"": row, **{name: record[row] for name, record in records.items()}} for row in _WALK_ROWS
    ]
    report.table(rows)
    for name, walk in walks.items():
        report.figure(plot_image_strip(walk, 0), f"{name}-strip", f"{name}: saved points.")
        report.figure(plot_traces(walk), f"{name}-traces", f"{name}: drift and rank per step.")


def _audit_numbers(result: AuditResult) -> dict[str, float]:
    overall = result.summary()["overall"]
    seconds = result.timings.get("total", float("nan"))
    return {
        "audit_examples": len(result),
        "audit_examples_per_s": len(result) / seconds if seconds > 0 else float("nan"),
        "median_null_dim": overall["null_dim"]["median"],
        "median_rank": float(np.median(result.column("rank"))),
        "flip_rate": overall["flip_rate"],
        "median_flip_l2": overall["flip_l2"]["median"],
        "median_pgd_l2": overall["pgd_l2_eps"]["median"],
        "median_ratio_l2": overall["ratio_l2"]["median"],
        "median_ratio_linf": overall["ratio_linf"]["median"],
        "min_spectral_gap": float(np.nanmin(result.column("spectral_gap"))),
    }
