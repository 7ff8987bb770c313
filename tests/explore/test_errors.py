"""Bad arguments raise errors that name the argument and the fix."""

import pytest
import torch
from torch import nn

from captum_simec.explore import Box, simec, simexp
from tests.explore.helpers import tanh_mlp

X = torch.rand(2, 6, dtype=torch.float64)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"direction": "random"}, ValueError, "direction="),
        ({"on_rank_change": "ignore"}, ValueError, "on_rank_change="),
        ({"steps": 0}, ValueError, "`steps` must be a positive"),
        ({"steps": -3}, ValueError, "`steps`"),
        ({"steps": 2.5}, TypeError, "`steps` must be an int"),
        ({"step_size": 0.0}, ValueError, "`step_size` must be a positive"),
        ({"step_size": -0.1}, ValueError, "`step_size`"),
        ({"step_size": float("inf")}, ValueError, "`step_size`"),
        ({"save_every": 0}, ValueError, "`save_every`"),
        ({"max_drift": 0.0}, ValueError, "`max_drift`"),
        ({"seed": -1}, ValueError, "`seed`"),
        ({"seed": 1, "generator": torch.Generator()}, ValueError, "either `seed` or"),
        ({"generator": 3}, TypeError, "`generator`"),
        ({"progress": "yes"}, TypeError, "`progress`"),
        ({"corrector": "gn"}, TypeError, "`corrector`"),
        ({"parity": True, "corrector": True}, ValueError, "no corrector"),
        ({"parity_split": 3}, ValueError, "parity=True"),
        ({"parity": True, "parity_split": 99}, ValueError, "parity_split"),
        ({"domain": Box(0.0, 1.0), "steps": 2}, None, None),
        ({"domain": (2.0, 3.0)}, ValueError, "outside the `domain`"),
        ({"domain": [0.0, 1.0]}, TypeError, "`domain`"),
        ({"output_metric": "target"}, ValueError, "target"),
    ],
)
def test_simec_argument_errors(kwargs, error, match):
    model = tanh_mlp()
    if error is None:
        simec(model, X, **kwargs)
        return
    with pytest.raises(error, match=match):
        simec(model, X, **kwargs)


def test_domain_lower_above_upper():
    with pytest.raises(ValueError, match="`domain` has lower > upper"):
        simec(tanh_mlp(), X, domain=Box(torch.ones(6), torch.zeros(6)))


def test_eigenvector_mode_refuses_large_inputs():
    big = torch.rand(1, 4097)
    with pytest.raises(ValueError, match="n <= 4096.*direction='isotropic'"):
        simec(lambda x: x.sum(dim=1, keepdim=True), big, direction="eigenvector")
    with pytest.raises(ValueError, match="n <= 4096"):
        simec(lambda x: x.sum(dim=1, keepdim=True), big, parity=True)
    with pytest.raises(ValueError, match="n <= 4096"):
        simexp(lambda x: x.sum(dim=1, keepdim=True), big, parity=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "sideways"}, "mode="),
        ({"on_rank_change": "maybe"}, "on_rank_change="),
        ({"steps": 0}, "`steps`"),
        ({"step_size": 0}, "`step_size`"),
        ({"max_output_change": -1.0}, "`max_output_change`"),
        ({"boundary_tol": 0.0}, "`boundary_tol`"),
        ({"parity": True, "mode": "directed"}, "mode='random'"),
    ],
)
def test_simexp_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simexp(tanh_mlp(), X, **kwargs)


def test_models_in_training_mode_and_bad_inputs_are_refused():
    model = nn.Sequential(nn.Linear(6, 4), nn.Dropout(0.5), nn.Linear(4, 2)).double()
    with pytest.raises(ValueError, match="eval()"):
        simec(model, X, steps=2)
    with pytest.raises(TypeError, match="floating point"):
        simec(tanh_mlp(), torch.ones(2, 6, dtype=torch.long), steps=2)
    with pytest.raises(TypeError, match="mix dtypes"):
        simec(lambda a, b: a + b.sum(1, keepdim=True), (torch.rand(2, 1), X), steps=2)
