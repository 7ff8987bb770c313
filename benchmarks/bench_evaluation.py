"""Evaluation benchmark: SiMEC boundary/relevance/flip next to Saliency, IG, GradientShap and
boundary-based IG, on faithfulness, robustness and sanity metrics, on three models.

Models (`_eval_models.py`, trained here with seed 0): a 64-64-10 tanh MLP on scikit-learn's
8x8 digits, the paper's MNIST CNN on the shared MNIST images (skipped without ../shared),
and a 30-32-32-2 tanh MLP on breast-cancer data scaled to [0, 1]. The first test images
(64; 16 with --quick), target = the predicted class, the data's box as the domain.

1. `compare_attributions` per model: deletion and insertion AUC (20 steps, softmax of the
   target) with black / uniform / training-mean / 3x3-blur baselines (blur on images only),
   ROAD MoRF and LeRF (noisy linear imputation for images, Gaussian conditional imputation
   from the training inputs for the tabular model), invariance AUC (least relevant first),
   max-sensitivity, random-logit and cascading-randomisation rank correlation.
2. Robustness maps on the invariance curve (20 noise draws): the robustness default, the
   box-aware score, other metrics, inverse |Saliency| and |IG|, random.
3. Time per example on the paper's CNN trained on the digits (28x28), batch 64: boundary vs
   IntegratedGradients (50 steps) and Saliency (CPU-time medians, taking turns).
4. The issue's targets, PASS/FAIL.

Run: ``.venv/bin/python benchmarks/bench_evaluation.py [--quick]``. Prints markdown tables
and writes ``benchmarks/results/bench_evaluation.json``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

import _eval_models
import torch
from _common import fmt_ms, fmt_ratio, interleaved, markdown_table, setup_torch, start_run, verdict
from captum.attr import IntegratedGradients, Saliency

from captum_simec.attr import SiMECAttribution
from captum_simec.evaluation import GaussianImputer, compare_attributions, invariance_curve

warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
warnings.filterwarnings("ignore", message="score='(flip|boundary)'")

DROPPED = ("SiMEC leverage (1-robustness)", "InputXGradient")
METRICS = ("deletion", "insertion", "road", "invariance", "sensitivity", "sanity")
PEERS = ("Saliency", "IntegratedGradients")
OURS = "SiMEC boundary"
COLUMNS = (
    [f"deletion_auc/{b}" for b in ("black", "uniform", "mean", "blur")]
    + [f"insertion_auc/{b}" for b in ("black", "uniform", "mean", "blur")]
    + ["road_morf_auc", "road_lerf_auc", "invariance_auc", "sensitivity"]
    + ["random_logit", "randomisation_mean"]
)
HEADERS = (
    ["del black", "del uniform", "del mean", "del blur"]
    + ["ins black", "ins uniform", "ins mean", "ins blur"]
    + ["ROAD MoRF", "ROAD LeRF", "invariance", "max-sens."]
    + ["random logit", "cascade"]
)
LOWER = ("deletion", "road_morf", "sensitivity", "random_logit", "randomisation")


def cases(args: argparse.Namespace) -> list[_eval_models.Case]:
    found = [_eval_models.digits_mlp(), _eval_models.mnist_cnn(), _eval_models.breast_cancer_mlp()]
    return [case for case in found if case is not None]


def _inputs(case: _eval_models.Case, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = case.x_test[:count]
    with torch.no_grad():
        return x, case.model(x).argmax(dim=1)


def compare(case: _eval_models.Case, args: argparse.Namespace) -> dict[str, Any]:
    """Every method and metric on one model; means per method and metric."""
    x, target = _inputs(case, args.images)
    image = x.dim() == 4
    baselines = {"black": "black", "uniform": "uniform", "mean": case.x_train.mean(dim=0)}
    if image:
        baselines["blur"] = "blur"
    result = compare_attributions(
        case.model,
        x,
        target,
        methods=dict.fromkeys(DROPPED),
        baselines=baselines,
        metrics=METRICS,
        domain=case.domain,
        road_imputer=None if image else GaussianImputer(case.x_train),
        progress=False,
    )
    summary = result.summary()
    return {
        "model": case.name,
        "accuracy": case.accuracy,
        "images": len(x),
        "means": summary,
        "seconds_per_example": {k: v / len(x) for k, v in result.seconds.items()},
        "notes": result.notes,
    }


def robustness_maps(case: _eval_models.Case, args: argparse.Namespace) -> dict[str, float]:
    """Invariance AUC of robustness maps (robust features first); relevance maps inverted."""
    x, target = _inputs(case, args.images)
    model, lo = case.model, case.domain[0]
    simec = SiMECAttribution(model)
    robust = {
        "robustness (default)": simec.attribute(x, target=target, score="robustness"),
        "robustness, box-aware (domain)": simec.attribute(
            x, target=target, score="robustness", domain=case.domain
        ),
        "robustness, target metric": simec.attribute(
            x, target=target, score="robustness", output_metric="target"
        ),
        "robustness, euclidean metric": simec.attribute(
            x, target=target, score="robustness", output_metric="euclidean"
        ),
        "random": torch.rand(x.shape, generator=torch.Generator().manual_seed(0)),
    }
    relevance = {
        "inverse |Saliency|": Saliency(model).attribute(x, target=target),
        "inverse |IG|": IntegratedGradients(model).attribute(
            x, baselines=torch.full_like(x, lo), target=target, n_steps=50
        ),
    }
    scores = {}
    for name, value in robust.items():
        curve = invariance_curve(model, x, value, domain=case.domain, draws=args.draws)
        scores[name] = float(curve.auc.mean())
    for name, value in relevance.items():
        curve = invariance_curve(
            model, x, value, domain=case.domain, robust_first=False, draws=args.draws
        )
        scores[name] = float(curve.auc.mean())
    return scores


def timing(args: argparse.Namespace) -> dict[str, Any]:
    """Per-example CPU time on the digits CNN at batch 64 (medians, taking turns)."""
    case = _eval_models.digits_cnn()
    x, target = _inputs(case, 64)
    simec, ig, saliency = SiMECAttribution(case.model), IntegratedGradients(case.model), None
    saliency = Saliency(case.model)
    calls = {
        "SiMEC boundary": lambda: simec.attribute(
            x, target=target, score="boundary", domain=case.domain
        ),
        "IntegratedGradients (50)": lambda: ig.attribute(x, target=target, n_steps=50),
        "Saliency": lambda: saliency.attribute(x, target=target),
    }
    timings = interleaved(calls, budget_s=args.budget, min_repeats=args.min_repeats)
    per_example = {k: v["median"] / len(x) for k, v in timings.items()}
    return {"model": case.name, "batch": len(x), "timings": timings, "per_example_s": per_example}


def _cell(value: float | None) -> str:
    return "—" if value is None or value != value else f"{value:.3f}"


def comparison_table(record: dict[str, Any]) -> str:
    means = record["means"]
    rows = [
        [name]
        + [_cell(row.get(column)) for column in COLUMNS]
        + [fmt_ms(record["seconds_per_example"][name], 3)]
        for name, row in means.items()
    ]
    return markdown_table(["method", *HEADERS, "ms/example"], rows)


def _better(metric: str, ours: float, theirs: float) -> bool:
    return ours < theirs if metric.startswith(LOWER) else ours > theirs


def _beats_peers(means: dict[str, dict[str, float]], metric: str) -> bool | None:
    if metric not in means[OURS]:
        return None
    return all(_better(metric, means[OURS][metric], means[peer][metric]) for peer in PEERS)


def model_targets(record: dict[str, Any]) -> list[list[str]]:
    means, name = record["means"], record["model"]
    rows = []
    for metric in ("road_morf_auc", "road_lerf_auc") + tuple(
        f"{mode}_auc/{b}" for mode in ("deletion", "insertion") for b in ("uniform", "mean")
    ):
        ok = _beats_peers(means, metric)
        shown = " / ".join(f"{means[m].get(metric, float('nan')):.3f}" for m in (OURS, *PEERS))
        rows.append([f"boundary beats Saliency and IG: {metric}", name, shown, verdict(ok)])
    for mode in ("deletion", "insertion"):
        won = [
            b
            for b in ("black", "uniform", "mean", "blur")
            if _beats_peers(means, f"{mode}_auc/{b}")
        ]
        counted = sum(
            1 for b in ("black", "uniform", "mean", "blur") if f"{mode}_auc/{b}" in means[OURS]
        )
        rows.append(
            [
                f"goal: >= 3 of 4 baselines ({mode})",
                name,
                f"{len(won)} of {counted}: {', '.join(won)}",
                verdict(len(won) >= 3) if counted == 4 else "n/a",
            ]
        )
    ours = means[OURS]
    rows.append(
        [
            "random-logit similarity < 0.5",
            name,
            f"{ours['random_logit']:.3f}",
            verdict(ours["random_logit"] < 0.5),
        ]
    )
    rows.append(
        [
            "cascading randomisation mean rank corr. < 0.7",
            name,
            f"{ours['randomisation_mean']:.3f}",
            verdict(ours["randomisation_mean"] < 0.7),
        ]
    )
    ratio = ours["sensitivity"] / means["Saliency"]["sensitivity"]
    rows.append(["max-sensitivity <= 2x Saliency's", name, fmt_ratio(ratio), verdict(ratio <= 2)])
    return rows


def robustness_targets(name: str, scores: dict[str, float]) -> list[list[str]]:
    default = scores["robustness (default)"]
    peers = max(scores["inverse |Saliency|"], scores["inverse |IG|"])
    box = scores["robustness, box-aware (domain)"]
    return [
        [
            "robustness default beats inverse |Saliency| and |IG| (invariance AUC)",
            name,
            f"{default:.3f} vs {peers:.3f}",
            verdict(default > peers),
        ],
        [
            "box-aware robustness beats them",
            name,
            f"{box:.3f} vs {peers:.3f}",
            verdict(box > peers),
        ],
    ]


def report(
    records: list[dict[str, Any]], robust: dict[str, dict[str, float]], times: dict[str, Any]
) -> str:
    out = []
    for record in records:
        title = f"{record['model']} (test accuracy {record['accuracy']:.3f}"
        out.append(f"\n### {title}, {record['images']} images)\n")
        out.append(comparison_table(record))
    out.append(
        "\nLower is better for deletion, ROAD MoRF, max-sensitivity, random-logit and cascade "
        "(mean Spearman over the cascading randomisation); higher is better for insertion, ROAD "
        "LeRF and invariance (least relevant features noised first). ms/example: wall time of "
        "the batch call divided by the batch, on a shared machine."
    )
    out.append("\n### Invariance AUC of robustness maps (higher is better)\n")
    names = list(next(iter(robust.values())))
    rows = [[name] + [f"{robust[model][name]:.3f}" for model in robust] for name in names]
    out.append(markdown_table(["map", *robust], rows))
    per = times["per_example_s"]
    ig = per["IntegratedGradients (50)"]
    out.append(
        f"\n### Time per example, {times['model']}, batch {times['batch']} (CPU-time medians)\n"
    )
    out.append(
        markdown_table(
            ["method", "ms/example", "vs IG-50"],
            [[k, fmt_ms(v, 3), fmt_ratio(v / ig)] for k, v in per.items()],
        )
    )
    rows = [row for record in records for row in model_targets(record)]
    rows += [row for model, scores in robust.items() for row in robustness_targets(model, scores)]
    ratio = per["SiMEC boundary"] / ig
    rows.append(
        [
            "boundary time per example <= 2x IG-50",
            times["model"],
            fmt_ratio(ratio),
            verdict(ratio <= 2),
        ]
    )
    out.append("\n### Targets\n")
    out.append(
        markdown_table(["target", "model", "measured (boundary / Saliency / IG)", "verdict"], rows)
    )
    text = "\n".join(out)
    print(text, flush=True)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 images, fewer noise draws")
    args = parser.parse_args(argv)
    setup_torch(1)
    args.images = 16 if args.quick else 64
    args.draws = 10 if args.quick else 20
    args.budget = 1.0 if args.quick else 4.0
    args.min_repeats = 3 if args.quick else 5
    run = start_run("bench_evaluation", args.quick)
    records, robust = [], {}
    for case in cases(args):
        records.append(compare(case, args))
        robust[case.name] = robustness_maps(case, args)
        print(f"  evaluated {case.name}", file=sys.stderr, flush=True)
    times = timing(args)
    text = report(records, robust, times)
    run.finish(
        {"comparisons": records, "robustness": robust, "timing": times, "tables_markdown": text}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
