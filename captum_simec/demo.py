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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from captum_simec._runtime import show_progress, torch_threads
from captum_simec.audit import AuditResult, RobustnessAudit
from captum_simec.evaluation import compare_attributions
from captum_simec.explore import simec, simexp
from captum_simec.report import Report, ReportFiles, add_audit_sections
from captum_simec.viz import plot_image_strip, plot_traces
from captum_simec.zoo import accuracy, count_parameters, fit_digits_cnn

__all__ = ["DemoResult", "DemoSettings", "run_demo"]


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo's stages (see :meth:`full` and :meth:`quick`)."""

    epochs: int
    compare_images: int
    compare_metrics: tuple[str, ...]
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
            compare_images=4,
            compare_metrics=("deletion", "insertion", "sanity", "correlation"),
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
            compare_metrics=("deletion", "correlation"),
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
    report = Report("captum-simec demo: the paper's CNN on scikit-learn digits")
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
        report.heading("Model and data")
        report.table(
            [
                {
                    "model": "PaperMNISTCNN (log-softmax head)",
                    "parameters": count_parameters(model),
                    "train images": len(split.y_train),
                    "test images": len(split.y_test),
                    "epochs": settings.epochs,
                    "test accuracy": numbers["accuracy"],
                }
            ]
        )
        domain = split.domain

        with stages.stage("compare", "comparing SiMEC with Integrated Gradients and others"):
            images = split.x_test[: settings.compare_images]
            with warnings.catch_warnings():
                # Captum's benign notes on requires_grad, and flip walks of the random-logit
                # check that stop short of a random class (the report says so)
                warnings.filterwarnings("ignore", "Input Tensor .* did not already require")
                warnings.filterwarnings("ignore", "score='flip': some examples stopped")
                comparison = compare_attributions(
                    model,
                    images,
                    domain=domain,
                    metrics=settings.compare_metrics,
                    seed=seed,
                    progress=show,
                )
        _compare_section(report, comparison, echo)

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
        _walk_section(report, inside, across, echo)

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
            f"{numbers['median_null_dim']:.0f} (rank {numbers['median_rank']:.0f}); flip rate "
            f"{numbers['flip_rate']:.2f}; median flip distance L2 {numbers['median_flip_l2']:.3g} "
            f"vs PGD eps {numbers['median_pgd_l2']:.3g} (ratio {numbers['median_ratio_l2']:.3g}); "
            f"L-inf ratio {numbers['median_ratio_linf']:.3g}"
        )

        with stages.stage("report", "writing the report"):
            add_audit_sections(report, result)
            stages.seconds["total"] = time.perf_counter() - start
            report.heading("Timings")
            report.table([{"stage": k, "seconds": v} for k, v in stages.seconds.items()])
            files = report.write(out)
    seconds = dict(stages.seconds, total=time.perf_counter() - start)
    echo(f"demo finished in {seconds['total']:.1f} s; report: {files.html.resolve()}")
    return DemoResult(out, numbers["accuracy"], seconds, result, files, numbers)


def _compare_section(report: Report, comparison: Any, echo: Callable[[str], None]) -> None:
    report.heading("SiMEC attributions next to Captum's")
    report.paragraph(
        "Maps of every method on the same test images (each panel scaled by its largest "
        "absolute value), and their scores: deletion AUC (lower is better), insertion AUC "
        "(higher is better), sanity correlations (lower is better). For the random-logit "
        "check, a flip walk towards a random class may stop within its step budget; its "
        "displacement so far is used."
    )
    records = comparison.to_records()
    report.table(records)
    report.figure(comparison.plot(), "comparison", "Attribution maps per method.")
    for record in records:
        scores = ", ".join(
            f"{k} {v:.3f}"
            for k, v in record.items()
            if isinstance(v, float) and ("black" in k or k.startswith("random"))
        )
        echo(f"      {record['method']}: {record['seconds']:.2f} s; {scores}")


def _walk_section(report: Report, inside: Any, across: Any, echo: Callable[[str], None]) -> None:
    report.heading("Walks inside and across the class")
    report.paragraph(
        "SiMEC steps along the null space of the pullback metric: the prediction and the "
        "probabilities stay put. SiMExp (leave_class) steps down the margin of the predicted "
        "class until the prediction changes."
    )
    rows = []
    for name, walk in (("SiMEC", inside), ("SiMExp leave_class", across)):
        record = walk.to_records()[0]
        rows.append({"walk": name, **record})
        echo(
            f"      {name}: {record['stopped_at']} steps ({record['stop_reason']}), path length "
            f"{record['path_length']:.3g}, displacement L2 {record['displacement_l2']:.3g}, "
            f"max drift {record['max_drift']:.3g}, class {int(walk.start_class[0])} -> "
            f"{int(walk.final_class[0])}"
        )
        report.figure(plot_image_strip(walk, 0), f"{name}-strip", f"{name}: saved points.")
        report.figure(plot_traces(walk), f"{name}-traces", f"{name}: drift and rank per step.")
    columns = ["walk", "stop_reason", "stopped_at", "path_length", "displacement_l2"]
    columns += ["displacement_linf", "max_drift", "start_class", "final_class", "shortened_steps"]
    report.table(rows, columns)


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
    }
