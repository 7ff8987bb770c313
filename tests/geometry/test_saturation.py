"""A saturated point (J = 0) warns where it makes every score trivial (issue 8, section 5)."""

import warnings

import pytest
import torch
from torch import nn

from captum_simec import SiMECAttribution, explain, pullback_spectrum, simec
from captum_simec.geometry.tolerance import SaturationWarning


def _relu_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 2)).eval()


@pytest.fixture
def saturated():
    net = _relu_net()
    for seed in range(50):  # an input where every unit is dead, and one where some live
        point = torch.randn(3, generator=torch.Generator().manual_seed(seed))
        if (net[0](point) < 0).all():
            alive = -point
            return net, torch.stack([alive, point])
    pytest.fail("no input kills every unit")


@pytest.mark.parametrize(
    "call",
    [
        lambda net, x: pullback_spectrum(net, x),
        lambda net, x: explain(net, x),
        lambda net, x: SiMECAttribution(net).attribute(x, target=0),
        lambda net, x: SiMECAttribution(net).attribute(x, target=0, score="robustness"),
    ],
    ids=["pullback_spectrum", "explain", "relevance", "robustness"],
)
def test_a_zero_jacobian_warns(saturated, call):
    net, x = saturated
    with pytest.warns(SaturationWarning, match=r"zero \(rank 0\) at examples \[1\]"):
        call(net, x)


def test_live_points_and_walks_do_not_warn(saturated):
    net, x = saturated
    with warnings.catch_warnings():
        warnings.simplefilter("error", SaturationWarning)
        assert pullback_spectrum(net, x[:1]).rank.item() > 0
        walk = simec(net, x, steps=2, seed=0, progress=False)  # the rank trace says it
    assert walk.rank[0].tolist()[1] == 0
