"""The comparison report: a `Comparison`'s scores in narrow tables, its maps, its notes.

`add_comparison_sections` appends one table per family of metrics (deletion AUC per removal
baseline, insertion AUC, ROAD, sanity checks, ...), each at most `MAX_COLUMNS` wide, with the
best value of every column in bold, then the maps (`captum_simec.viz.plot_comparison`) and
the comparison's notes. `COMPARISON_TERMS` defines the columns, for a report's definitions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from captum_simec.report.document import Report
from captum_simec.viz.comparison import plot_comparison
from captum_simec.viz.labels import format_value

if TYPE_CHECKING:
    from captum_simec.evaluation import Comparison

__all__ = [
    "COMPARISON_TERMS",
    "MAX_COLUMNS",
    "add_comparison_sections",
    "figure_examples",
    "metric_families",
]

#: the widest table the comparison sections write (the method column included).
MAX_COLUMNS = 6

#: what the comparison's columns mean.
COMPARISON_TERMS = {
    "deletion AUC": "area under the target's softmax probability as the features a map ranks "
    "highest are replaced first by the removal baseline (20 steps); lower is better: the "
    "map found what the prediction needs.",
    "insertion AUC": "the same area as the top-ranked features are restored first, from the "
    "removal baseline towards the input; higher is better.",
    "removal baselines": "what a removed feature becomes: black (the domain's lower bound), "
    "uniform (uniform noise in the domain), mean (the image's mean value), blur (a 3x3 box "
    "blur of the image). A method integrating from one of them (IG from black) has an edge on "
    "that baseline.",
    "randomisation_top / _all / _mean": "Adebayo et al.'s cascading randomisation: Spearman "
    "correlation of |map| with the map after re-drawing the top layer / every layer / mean "
    "over the cascade; lower passes (the map depends on the learnt weights).",
    "random_logit": "Spearman correlation of |map| for the target with the map for a random "
    "other class; lower passes (the map is specific to the class). Class-agnostic maps score 1 "
    "by construction.",
    "class-agnostic": "a map that does not depend on the target (its output metric weighs "
    "several outputs alike).",
    "invariance AUC": "share of unchanged predictions as the features a map ranks lowest are "
    "replaced by uniform noise, over the fraction replaced; higher is better.",
    "ROAD MoRF / LeRF AUC": "ROAD (noisy linear imputation instead of a fixed baseline), most / "
    "least relevant first; lower MoRF, higher LeRF is better.",
    "seconds": "wall time of one method's maps for the whole batch.",
}

#: (table title, metric prefix) per family, in the order the tables appear.
_FAMILIES = (
    ("Deletion AUC per removal baseline (lower is better)", "deletion_auc/"),
    ("Insertion AUC per removal baseline (higher is better)", "insertion_auc/"),
    ("ROAD (lower MoRF, higher LeRF is better)", "road_"),
    ("Sanity checks (lower passes)", "randomisation_"),
    ("Sanity checks (lower passes)", "random_logit"),
    ("Invariance AUC (higher is better)", "invariance_auc"),
    ("Infidelity and max-sensitivity (lower is better)", "infidelity"),
    ("Infidelity and max-sensitivity (lower is better)", "sensitivity"),
)


def metric_families(metrics: list[str]) -> dict[str, list[str]]:
    """Table title -> the metrics it shows, each table at most `MAX_COLUMNS - 1` metrics."""
    families: dict[str, list[str]] = {}
    for metric in metrics:
        title = next((t for t, prefix in _FAMILIES if metric.startswith(prefix)), "Other")
        families.setdefault(title, []).append(metric)
    tables = {}
    width = MAX_COLUMNS - 1
    for title, names in families.items():
        for start in range(0, len(names), width):
            suffix = f" ({start // width + 1})" if len(names) > width else ""
            tables[title + suffix] = names[start : start + width]
    return tables


def _column_name(metric: str) -> str:
    """``deletion_auc/black`` -> ``black``: the table's title names the family."""
    return metric.split("/", 1)[1] if "/" in metric else metric


def _table_rows(
    comparison: Comparison, metrics: list[str], digits: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of one table: the method, then each metric's mean (the best in bold)."""
    summary, winners = comparison.summary(), comparison.winners()
    columns = ["method"] + [_column_name(m) for m in metrics]
    rows = []
    for name in comparison.methods:
        row: dict[str, Any] = {"method": name}
        for metric, column in zip(metrics, columns[1:], strict=True):
            text = format_value(summary[name].get(metric), digits)
            row[column] = f"**{text}**" if name in winners.get(metric, ()) else text
        rows.append(row)
    return rows, columns


def figure_examples(comparison: Comparison, count: int) -> list[int]:
    """Up to `count` examples to draw: the misclassified ones first (the ones to look at),
    then the others, each group in batch order."""
    batch = comparison.target.shape[0]
    wrong = []
    if comparison.labels is not None and comparison.predicted is not None:
        wrong = (comparison.labels != comparison.predicted).nonzero().flatten().tolist()
    rest = [i for i in range(batch) if i not in wrong]
    return sorted((wrong + rest)[:count])


def add_comparison_sections(
    report: Report, comparison: Comparison, examples: int = 4, digits: int = 3
) -> Report:
    """Appends the comparison's tables, maps and notes to `report`.

    Args:
        report: the report.
        comparison: a `Comparison`.
        examples: how many examples the figure shows (misclassified ones first).
        digits: significant digits in the tables.
    """
    report.heading("SiMEC attributions next to Captum's")
    report.paragraph(
        f"{len(comparison.methods)} methods on {comparison.target.shape[0]} test images; the "
        "best value of every column is in bold. Definitions of the columns are at the end of "
        "the report."
    )
    summary = comparison.summary()
    report.table(
        [
            {
                "method": name,
                "seconds": summary[name]["seconds"],
                "class-agnostic": comparison.class_agnostic.get(name, False),
            }
            for name in comparison.methods
        ],
        digits=digits,
    )
    metrics = list(dict.fromkeys(m for row in summary.values() for m in row if m != "seconds"))
    for title, chosen in metric_families(metrics).items():
        report.heading(title, 3)
        rows, columns = _table_rows(comparison, chosen, digits)
        report.table(rows, columns)
    same = comparison.identical_maps()
    notes = [
        f"{name} and {earlier} give bit-for-bit identical maps (with a target, SiMEC "
        "relevance is |df_t/dx| = Saliency(abs=True)); the figure draws them in one row."
        for name, earlier in same.items()
    ]
    report.figure(
        plot_comparison(comparison, examples=figure_examples(comparison, examples)),
        "comparison",
        "Maps per method (each panel scaled by its largest |value|); titles: example, true "
        "class, predicted class (and the target where it differs).",
    )
    if notes or comparison.notes:
        report.bullets(notes + comparison.notes)
    return report
