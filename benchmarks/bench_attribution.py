"""Attribution benchmark: SiMECAttribution vs Captum IntegratedGradients (50 steps) and Saliency.

1. Time per example on the paper's MNIST CNN trained on the digits data and the same
   architecture trained on real MNIST (one epoch of the paper's recipe on 8,000 images of
   the shared MNIST test split; untrained weights on random MNIST-shaped inputs when the data
   folder is absent), at batch 1 and 64, target = the predicted class. SiMEC scores:
   relevance with the default metric (``"target"`` when a target is given: equals
   `Saliency(abs=True)`), class-agnostic relevance and robustness (``"euclidean"``, 10 rows),
   and the flip displacement (a SiMExp walk until the class changes).
2. Deletion AUC (black baseline, 20 steps, softmax score of the predicted class; lower is
   better) on the digits test images (359: the bundled digits data has 1,797 images, so 500
   are not available), with `captum_simec.evaluation.perturbation_curve`.

Run: ``.venv/bin/python benchmarks/bench_attribution.py [--quick]``. Prints markdown tables
and writes ``benchmarks/results/bench_attribution.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from _common import (
    fmt_ms,
    fmt_ratio,
    interleaved,
    markdown_table,
    setup_torch,
    start_run,
    verdict,
)
from captum.attr import IntegratedGradients, Saliency
from torch import nn

from captum_simec.attr import SiMECAttribution

warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")


def models_and_data() -> list[tuple[str, nn.Module, torch.Tensor, str]]:
    from captum_simec.zoo import PaperMNISTCNN, fit_digits_cnn, mnist_split, train_classifier

    digits_model, split = fit_digits_cnn(seed=0, progress=False)
    out = [("PaperMNISTCNN on digits", digits_model.eval(), split.x_test, "digits test")]
    try:
        mnist = mnist_split(train_size=8000, seed=0)
        model = PaperMNISTCNN(head="log_softmax", seed=0)
        train_classifier(model, mnist.x_train, mnist.y_train, epochs=1, progress=False)
        out.append(("PaperMNISTCNN on MNIST", model.eval(), mnist.x_test, "MNIST test"))
    except (FileNotFoundError, OSError) as error:
        generator = torch.Generator().manual_seed(0)
        note = f"random inputs ({type(error).__name__})"
        model = PaperMNISTCNN(head="log_softmax", seed=0).eval()
        out.append(
            (
                "PaperMNISTCNN (MNIST-shaped)",
                model,
                torch.rand(64, 1, 28, 28, generator=generator),
                note,
            )
        )
    return out


def attribution_methods(model: nn.Module, flip_steps: int) -> dict[str, Callable]:
    """name -> function(x, target) returning attributions shaped like x."""
    simec = SiMECAttribution(model)
    saliency = Saliency(model)
    ig = IntegratedGradients(model)

    def flip(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # examples that do not flip within the steps
            return simec.attribute(x, target=target, score="flip", steps=flip_steps)

    return {
        "SiMEC relevance (target)": lambda x, t: simec.attribute(x, target=t),
        "SiMEC relevance (euclidean)": lambda x, t: simec.attribute(
            x, target=t, output_metric="euclidean"
        ),
        "SiMEC robustness (euclidean)": lambda x, t: simec.attribute(
            x, target=t, score="robustness", output_metric="euclidean"
        ),
        "SiMEC flip": flip,
        "Saliency (abs)": lambda x, t: saliency.attribute(x, target=t, abs=True),
        "IntegratedGradients (50)": lambda x, t: ig.attribute(x, target=t, n_steps=50),
    }


def bench_times(args: argparse.Namespace) -> list[dict[str, Any]]:
    records = []
    for label, model, pool, data in models_and_data():
        methods = attribution_methods(model, args.flip_steps)
        for batch in (1, 64):
            x = pool[:batch]
            with torch.no_grad():
                target = model(x).argmax(dim=1)
            calls = {n: (lambda f=f, x=x, t=target: f(x, t)) for n, f in methods.items()}
            timings = interleaved(calls, budget_s=args.budget, min_repeats=args.min_repeats)
            per_example = {k: v["median"] / batch for k, v in timings.items()}
            ig = per_example["IntegratedGradients (50)"]
            records.append(
                {
                    "model": label,
                    "data": data,
                    "batch": batch,
                    "timings": timings,
                    "per_example_s": per_example,
                    "vs_ig": {k: v / ig for k, v in per_example.items()},
                }
            )
            print(f"  timed {label} B={batch}", file=sys.stderr, flush=True)
    return records


def bench_deletion(args: argparse.Namespace) -> dict[str, Any]:
    from captum_simec.evaluation import perturbation_curve
    from captum_simec.zoo import fit_digits_cnn

    model, split = fit_digits_cnn(seed=0, progress=False)
    x = split.x_test[: args.deletion_images]
    with torch.no_grad():
        target = model(x).argmax(dim=1)
    methods = attribution_methods(model, args.flip_steps)
    methods["SiMEC leverage 1 - robustness (euclidean)"] = lambda x, t: (
        1 - methods["SiMEC robustness (euclidean)"](x, t)
    )
    ig_signed = methods.pop("IntegratedGradients (50)")
    methods["IntegratedGradients (50), signed"] = ig_signed
    methods["IntegratedGradients (50), |.|"] = lambda x, t: ig_signed(x, t).abs()
    generator = torch.Generator().manual_seed(0)
    methods["random"] = lambda x, t: torch.rand(x.shape, generator=generator)
    rows = {}
    for name, fn in methods.items():
        start = time.process_time()
        maps = torch.cat([fn(x[i : i + 64], target[i : i + 64]) for i in range(0, len(x), 64)])
        attr_s = time.process_time() - start
        curve = perturbation_curve(
            model, x, maps, target, mode="deletion", baseline="black", domain=(0.0, 1.0)
        )
        auc = curve.auc
        rows[name] = {
            "deletion_auc_mean": auc.mean().item(),
            "deletion_auc_sem": (auc.std() / len(auc) ** 0.5).item(),
            "attribution_cpu_s": attr_s,
        }
    return {"images": len(x), "rows": rows}


def report(times: list[dict[str, Any]], deletion: dict[str, Any] | None) -> str:
    out = ["### Time per example (ms, CPU-time median of the batch call / batch)\n"]
    names = list(times[0]["per_example_s"])
    rows = [
        [r["model"], r["batch"]]
        + [f"{fmt_ms(r['per_example_s'][n], 3)} ({fmt_ratio(r['vs_ig'][n])})" for n in names]
        for r in times
    ]
    out.append(markdown_table(["model", "B", *names], rows))
    out.append("\n(ratio to IntegratedGradients with 50 steps in parentheses; < 1 is faster)")
    if deletion is not None:
        out.append(
            f"\n### Deletion AUC on {deletion['images']} digits test images "
            "(black baseline, 20 steps, softmax of the predicted class; lower is better)\n"
        )
        rows = [
            [
                name,
                f"{row['deletion_auc_mean']:.3f} ± {row['deletion_auc_sem']:.3f}",
                f"{row['attribution_cpu_s']:.2f}",
            ]
            for name, row in sorted(
                deletion["rows"].items(), key=lambda kv: kv[1]["deletion_auc_mean"]
            )
        ]
        headers = ["method (ranked by value)", "deletion AUC (mean ± s.e.)", "CPU s"]
        out.append(markdown_table(headers, rows))
    out.append("\n### Targets\n")
    rows = []
    for r in times:
        for name in ("SiMEC relevance (target)", "SiMEC relevance (euclidean)"):
            ratio = r["vs_ig"][name]
            rows.append(
                [
                    "SiMEC relevance faster than IG-50",
                    f"{r['model']}, B={r['batch']}, {name}",
                    f"{fmt_ratio(ratio)} of IG time",
                    verdict(ratio < 1),
                ]
            )
    out.append(markdown_table(["target", "case", "measured", "verdict"], rows))
    text = "\n".join(out)
    print(text, flush=True)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run")
    args = parser.parse_args(argv)
    setup_torch(1)
    args.budget = 1.0 if args.quick else 4.0
    args.min_repeats = 3 if args.quick else 5
    args.flip_steps = 200 if args.quick else 500
    args.deletion_images = 64 if args.quick else 500
    run = start_run("bench_attribution", args.quick)
    times = bench_times(args)
    deletion = bench_deletion(args)
    text = report(times, deletion)
    run.finish({"times": times, "deletion": deletion, "tables_markdown": text})
    return 0


if __name__ == "__main__":
    sys.exit(main())
