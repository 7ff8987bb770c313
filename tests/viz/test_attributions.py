"""captum_simec.viz: grids on a shared colour scale, safe where Captum's visualisers are not."""

import io

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from captum_simec import evaluation, viz
from captum_simec.attr import explain
from tests.attr.helpers import mlp


def _panel_arrays(figure: Figure) -> list[np.ndarray]:
    return [np.asarray(image.get_array()) for ax in figure.axes for image in ax.images]


def test_all_zero_maps_and_channels_first_rgb_images():
    inputs = torch.rand(2, 3, 5, 4)
    maps = {"zero": torch.zeros(2, 3, 5, 4), "signed": torch.randn(2, 3, 5, 4)}
    figure = viz.plot_attributions(maps, inputs)
    assert len(figure.axes) == 3 * 2 + 1
    arrays = _panel_arrays(figure)
    assert all(np.isfinite(a).all() for a in arrays)
    assert arrays[0].shape == (5, 4, 3)  # the RGB input, channels last for imshow
    assert np.all(arrays[2] == 0)  # the all-zero map stays zero
    assert arrays[4].shape == (5, 4) and np.abs(arrays[4]).max() == pytest.approx(1.0)
    figure.savefig(io.BytesIO(), format="png")


def test_panel_and_method_scaling():
    maps = {"m": torch.stack([torch.ones(1, 3, 3), 4 * torch.ones(1, 3, 3)])}
    per_panel = _panel_arrays(viz.plot_attributions(maps, scale="panel"))
    per_method = _panel_arrays(viz.plot_attributions(maps, scale="method"))
    assert [a.max() for a in per_panel] == [1.0, 1.0]
    assert [a.max() for a in per_method] == [0.25, 1.0]


def test_grey_images_without_a_channel_need_kind_image():
    maps = {"a": torch.rand(3, 6, 6)}
    assert viz.infer_kind((6, 6)) == "timeseries"
    figure = viz.plot_attributions(maps, torch.rand(3, 6, 6), kind="image", examples=[0, 2])
    assert len(figure.axes) == 2 * 2 + 1


def test_time_series_and_tabular_plots():
    series = viz.plot_attributions({"a": torch.randn(2, 7, 3)}, torch.randn(2, 7, 3))
    assert len(series.axes[0].lines) == 3  # one line per input feature over time
    assert _panel_arrays(series)[0].shape == (3, 7)  # features x time heat map
    table = viz.plot_attributions(
        {"a": torch.randn(2, 4), "b": torch.zeros(2, 4)}, torch.randn(2, 4)
    )
    assert len(table.axes[2].patches) == 4  # one bar per feature


def test_tuple_maps_pick_one_input():
    maps = {"a": (torch.rand(2, 1, 4, 4), torch.rand(2, 5))}
    figure = viz.plot_attributions(maps, (torch.rand(2, 1, 4, 4), torch.rand(2, 5)), input_index=1)
    assert len(figure.axes[1].patches) == 5


def test_plot_curves_and_explanation():
    model, x = mlp(n=6, m=3), torch.randn(3, 6)
    curve = evaluation.perturbation_curve(model, x, x.abs(), steps=5)
    figure = viz.plot_curves({"abs input": curve})
    assert "AUC" in figure.axes[0].get_legend().get_texts()[0].get_text()
    panels = viz.plot_explanation(explain(model, x), examples=2)
    assert len(panels.axes) == 8


def test_viz_errors():
    maps = {"a": torch.rand(2, 4)}
    with pytest.raises(ValueError, match="empty"):
        viz.plot_attributions({})
    with pytest.raises(ValueError, match="kind='heatmap'"):
        viz.plot_attributions(maps, kind="heatmap")
    with pytest.raises(ValueError, match="channel_reduce"):
        viz.plot_attributions(maps, channel_reduce="median")
    with pytest.raises(ValueError, match="scale"):
        viz.plot_attributions(maps, scale="global")
    with pytest.raises(ValueError, match="out of range"):
        viz.plot_attributions(maps, examples=[5])
    with pytest.raises(ValueError, match="per-example shape"):
        viz.plot_attributions({"a": torch.rand(2, 1, 2, 2, 2)})
    with pytest.raises(ValueError, match="example_titles"):
        viz.plot_attributions(maps, example_titles=["only one"])
    with pytest.raises(ValueError, match="input_index"):
        viz.plot_attributions({"a": (torch.rand(2, 3),)}, input_index=2)
