"""The presentation layer's figures: result objects in, matplotlib `Figure` out.

Every function builds a `matplotlib.figure.Figure` without pyplot (any backend, no window);
save it with `fig.savefig(path)`. The result classes import nothing from here: their
`.plot()` methods, where they have one, call these functions.

- `attributions`: maps of several methods over examples (`plot_attributions`), perturbation
  curves (`plot_curves`), an `Explanation` (`plot_explanation`);
- `comparison`: a `Comparison`'s maps with true / predicted / target classes, its curves and
  invariance curves;
- `walks`: a `Walk`'s image strip, class scatter, drift and rank traces;
- `audit`: an `AuditResult`'s histograms, flip distance against PGD, example strips;
- `text`: token maps of several methods, a walk in embedding space read back as tokens;
- `labels`: numbers as titles and tables show them.
"""

from captum_simec.viz.attributions import (
    KINDS,
    infer_kind,
    plot_attributions,
    plot_curves,
    plot_explanation,
    select_examples,
)
from captum_simec.viz.audit import audit_figures
from captum_simec.viz.comparison import (
    example_title,
    plot_comparison,
    plot_comparison_curves,
    plot_invariance,
)
from captum_simec.viz.labels import format_value
from captum_simec.viz.text import plot_token_scores, plot_token_walk
from captum_simec.viz.walks import plot_class_scatter, plot_image_strip, plot_traces

__all__ = [
    "KINDS",
    "audit_figures",
    "example_title",
    "format_value",
    "infer_kind",
    "plot_attributions",
    "plot_class_scatter",
    "plot_comparison",
    "plot_comparison_curves",
    "plot_curves",
    "plot_explanation",
    "plot_image_strip",
    "plot_token_scores",
    "plot_token_walk",
    "plot_invariance",
    "plot_traces",
    "select_examples",
]
