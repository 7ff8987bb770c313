"""captum_simec.viz's figures of a `Comparison`: true labels in titles, identical maps merged."""

import io

import pytest
import torch

from captum_simec import viz
from captum_simec.evaluation import Comparison


def _comparison(labels=True) -> Comparison:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.rand(3, 1, 4, 4, generator=generator)
    shared = torch.rand(3, 1, 4, 4, generator=generator)
    return Comparison(
        inputs=inputs,
        target=torch.tensor([7, 2, 5]),
        maps={
            "SiMEC relevance": shared,
            "other": torch.rand(3, 1, 4, 4, generator=generator),
            "Saliency": shared.clone(),
        },
        seconds={"SiMEC relevance": 0.1, "other": 0.2, "Saliency": 0.1},
        predicted=torch.tensor([7, 2, 3]),
        labels=torch.tensor([1, 2, 3]) if labels else None,
    )


def test_titles_carry_the_true_the_predicted_and_a_differing_target():
    comparison = _comparison()
    assert viz.example_title(comparison, 0) == "#0 true 1, pred 7"  # a 1 predicted as 7
    assert viz.example_title(comparison, 2) == "#2 true 3, pred 3\ntarget 5"
    assert viz.example_title(_comparison(labels=False), 1) == "#1 pred 2"
    figure = viz.plot_comparison(comparison)
    titles = [ax.get_title() for ax in figure.axes[:3]]
    assert titles == [viz.example_title(comparison, i) for i in range(3)]


def test_identical_maps_share_one_row_unless_asked_not_to():
    comparison = _comparison()
    assert comparison.identical_maps() == {"Saliency": "SiMEC relevance"}
    merged = viz.plot_comparison(comparison)
    rows = [ax.get_ylabel() for ax in merged.axes[:-1] if ax.get_ylabel()]  # not the colour bar
    assert rows == ["input", "SiMEC relevance\n= Saliency", "other"]
    separate = viz.plot_comparison(comparison, merge_identical=False)
    assert [ax.get_ylabel() for ax in separate.axes[:-1] if ax.get_ylabel()][1:] == [
        "SiMEC relevance",
        "other",
        "Saliency",
    ]
    merged.savefig(io.BytesIO(), format="png")


def test_curves_and_invariance_need_their_metrics():
    comparison = _comparison()
    with pytest.raises(ValueError, match="No 'deletion/black' curves"):
        viz.plot_comparison_curves(comparison)
    with pytest.raises(ValueError, match="add 'invariance'"):
        viz.plot_invariance(comparison)
