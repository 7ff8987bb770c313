"""The walk figures build without error on image and 2-D walks (Agg, no pyplot)."""

import io

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from captum_simec.explore import simec, simexp
from captum_simec.viz import plot_class_scatter, plot_image_strip, plot_traces
from tests.explore.helpers import bowl


def _image_model(channels):
    torch.manual_seed(0)
    return (
        nn.Sequential(
            nn.Conv2d(channels, 2, 3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * 6 * 6, 3),
            nn.LogSoftmax(dim=1),
        )
        .double()
        .eval()
    )


def test_image_strip_single_channel_and_rgb():
    for channels in (1, 3):
        images = torch.rand(2, channels, 8, 8, dtype=torch.float64) * 255  # any value range
        walk = simec(_image_model(channels), images, steps=6, step_size=1.0, seed=0)
        figure = plot_image_strip(walk, example=1, max_images=4, class_names=["a", "b", "c"])
        assert isinstance(figure, Figure)
        assert len(figure.axes) == 4
        assert "p=" in figure.axes[0].get_title()
        figure.savefig(io.BytesIO(), format="png")


def test_scatter_and_traces_on_a_two_dimensional_walk():
    walk = simec(
        bowl,
        torch.tensor([[0.25, 0.25], [0.5, 0.0]], dtype=torch.float64),
        steps=50,
        step_size=0.05,
        corrector=True,
        seed=0,
    )
    figure = plot_class_scatter(walk, level_set=lambda x, y: np.exp(x**2 + y**2 - 2))
    assert isinstance(figure, Figure)
    assert isinstance(plot_traces(walk), Figure)
    three = simexp(
        lambda x: x.square().sum(1, keepdim=True), torch.rand(2, 3), steps=5, step_size=0.1, seed=0
    )
    assert isinstance(plot_class_scatter(three, dims=(0, 1, 2)), Figure)
    with pytest.raises(ValueError, match="not a square image"):
        plot_image_strip(three, example=0)
    with pytest.raises(ValueError, match="`example`"):
        plot_traces(three, examples=[5])
    with pytest.raises(ValueError, match="`dims`"):
        plot_class_scatter(three, dims=(0, 7))


def test_flat_square_inputs_and_probabilities():
    model = nn.Sequential(nn.Linear(16, 3), nn.Softmax(dim=1)).double().eval()
    walk = simec(model, torch.rand(1, 16, dtype=torch.float64), steps=3, step_size=0.1, seed=0)
    probabilities = walk.probabilities()
    assert torch.equal(probabilities, walk.outputs)  # already probabilities: unchanged
    assert isinstance(plot_image_strip(walk), Figure)
    logits = simec(
        nn.Linear(16, 3).double(),
        torch.rand(1, 16, dtype=torch.float64),
        steps=3,
        step_size=0.1,
        seed=0,
    )
    assert torch.allclose(logits.probabilities().sum(-1), torch.ones(4, 1, dtype=torch.float64))
