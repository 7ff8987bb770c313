"""Property-based fuzzing of the public API (issue 8, section 7).

Random input shapes, dtypes (float16/32/64), batch sizes, targets (valid and not), output
metrics and scores. Every call must return finite values of the right shape, or raise a
ValueError / TypeError that names an argument; never an IndexError, an AttributeError, a
RuntimeError from deep inside, or NaN. The examples are drawn by hypothesis with the
derandomised profile of tests/conftest.py, so every run tries the same ones.

A new attribution score is fuzzed as soon as it is registered in `attr._base.SCORES` (walk
scores get `WALK_OPTIONS`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from captum_simec import (
    LayerSiMECAttribution,
    SiMECAttribution,
    explain,
    preimage,
    pullback_spectrum,
    simec,
    simexp,
)
from captum_simec.attr._base import GEOMETRIC_SCORES, SCORES, WALK_SCORES
from captum_simec.geometry import JACOBIAN_METHODS

#: the walk scores' settings: short walks keep the fuzzing fast.
WALK_OPTIONS = {"steps": 3, "step_size": 0.05}
#: argument names an error message may name (as `name`, name= or a CLI-like word).
ARGUMENTS = (
    "inputs",
    "target",
    "output_metric",
    "forward_func",
    "score",
    "signed",
    "layer",
    "mode",
    "target_class",
    "low",
    "high",
    "steps",
    "step_size",
    "domain",
    "jacobian_method",
)
SETTINGS = settings(max_examples=25, deadline=None)

pytestmark = pytest.mark.filterwarnings("ignore")  # saturation, half precision, flip budget


@dataclass
class Problem:
    model: Callable[..., torch.Tensor]
    inputs: torch.Tensor | tuple[torch.Tensor, ...]
    outputs: int
    target: Any
    metric: Any
    layer: nn.Module

    @property
    def batch(self) -> int:
        return self.first.shape[0]

    @property
    def first(self) -> torch.Tensor:
        return self.inputs[0] if isinstance(self.inputs, tuple) else self.inputs

    @property
    def features(self) -> int:
        parts = self.inputs if isinstance(self.inputs, tuple) else (self.inputs,)
        return sum(part[0].numel() for part in parts)


class TwoInputs(nn.Module):
    """The model on a tuple of two inputs (its features split in two)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([first.flatten(1), second.flatten(1)], dim=1))


def _metric(draw: Callable, outputs: int, dtype: torch.dtype) -> Any:
    kind = draw(
        st.sampled_from(["euclidean", "target", "margin", "topk", "fisher", "matrix", None])
    )
    if kind == "matrix":
        root = torch.randn(outputs, outputs, generator=torch.Generator().manual_seed(outputs))
        return (root @ root.T).to(dtype)
    if kind == "callable":
        return lambda y: torch.diag(torch.arange(1.0, y.shape[1] + 1, dtype=y.dtype))
    return kind


def _target(draw: Callable, outputs: int, batch: int) -> Any:
    kind = draw(st.sampled_from(["none", "int", "list", "tensor", "bad"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(0, outputs - 1))
    if kind == "list":
        return [draw(st.integers(0, outputs - 1)) for _ in range(batch)]
    if kind == "tensor":
        return torch.tensor([draw(st.integers(0, outputs - 1)) for _ in range(batch)])
    return draw(st.sampled_from([outputs, -outputs - 1, 1.5, "zero", [0] * (batch + 1)]))


@st.composite
def problems(draw: Callable) -> Problem:
    dtype = draw(st.sampled_from([torch.float16, torch.float32, torch.float64]))
    batch = draw(st.integers(1, 3))
    shape = draw(st.sampled_from([(1,), (4,), (2, 3), (1, 3, 3)]))
    outputs = draw(st.integers(1, 4))
    features = math.prod(shape)
    torch.manual_seed(draw(st.integers(0, 3)))
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(features, 5), nn.Tanh(), nn.Linear(5, outputs)
    ).to(dtype)
    scale = draw(st.sampled_from([0.0, 0.5, 3.0]))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 3)))
    inputs = (scale * torch.randn(batch, *shape, generator=generator)).to(dtype)
    forward, layer = model.eval(), model[2]
    kind = draw(st.sampled_from(["plain", "plain", "plain", "tuple", "nan", "int", "empty"]))
    if kind == "tuple" and features > 1:
        flat = inputs.flatten(1)
        inputs, forward = (flat[:, :1], flat[:, 1:].reshape(batch, -1, 1)), TwoInputs(forward)
    elif kind == "nan":
        inputs = inputs.clone()
        inputs.view(-1)[0] = math.nan
    elif kind == "int":
        inputs = inputs.round().long()
    elif kind == "empty":
        inputs = inputs[:0]
    target, metric = _target(draw, outputs, batch), _metric(draw, outputs, dtype)
    return Problem(forward, inputs, outputs, target, metric, layer)


def _same_structure(result: Any, inputs: Any) -> None:
    """`result` has the structure, shapes and dtypes of `inputs`, with finite values."""
    assert isinstance(result, tuple) == isinstance(inputs, tuple)
    pairs = zip(result, inputs, strict=True) if isinstance(inputs, tuple) else [(result, inputs)]
    for part, like in pairs:
        assert part.shape == like.shape and part.dtype == like.dtype
        _finite(part)


def _finite(*values: torch.Tensor) -> None:
    for value in values:
        assert torch.isfinite(value.double()).all(), value


def _call(function: Callable[[], Any]) -> Any:
    """`function()`, or None when it raised a ValueError/TypeError that names an argument."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return function()
    except (ValueError, TypeError) as error:
        message = str(error)
        assert any(name in message for name in ARGUMENTS), f"names no argument: {message}"
        return None


@SETTINGS
@given(problems(), st.sampled_from(JACOBIAN_METHODS))
def test_pullback_spectrum_and_explain(problem, method):
    spectrum = _call(
        lambda: pullback_spectrum(
            problem.model,
            problem.inputs,
            output_metric="euclidean" if problem.metric is None else problem.metric,
            target=problem.target,
            jacobian_method=method,
        )
    )
    if spectrum is not None:
        n = problem.features
        assert spectrum.relevance().shape == spectrum.robustness().shape == (problem.batch, n)
        _finite(spectrum.singular_values, spectrum.relevance(), spectrum.robustness())
        assert ((spectrum.rank >= 0) & (spectrum.rank <= min(n, problem.outputs))).all()
    explanation = _call(
        lambda: explain(problem.model, problem.inputs, problem.target, output_metric=problem.metric)
    )
    if explanation is not None:
        _same_structure(explanation.relevance, problem.inputs)
        _same_structure(explanation.robustness, problem.inputs)
        _finite(explanation.eigenvalues)


@SETTINGS
@given(problems(), st.sampled_from(SCORES), st.booleans())
def test_attribution_scores(problem, score, signed):
    options = WALK_OPTIONS if score in WALK_SCORES else {}
    attribution = _call(
        lambda: SiMECAttribution(problem.model).attribute(
            problem.inputs,
            target=problem.target,
            score=score,
            output_metric=problem.metric,
            signed=signed,
            **options,
        )
    )
    if attribution is not None:
        _same_structure(attribution, problem.inputs)


@SETTINGS
@given(problems(), st.sampled_from(GEOMETRIC_SCORES))
def test_layer_attribution(problem, score):
    layer = _call(
        lambda: LayerSiMECAttribution(problem.model, problem.layer).attribute(
            problem.inputs, target=problem.target, score=score, output_metric=problem.metric
        )
    )
    if layer is not None:
        assert layer.shape == (problem.batch, 5)
        _finite(layer)


def _check_walk(walk, problem: Problem) -> None:
    assert walk.points_flat.shape[1:] == (problem.batch, problem.features)
    _finite(walk.points_flat, walk.outputs, walk.path_length, walk.pseudolength, walk.energy)
    _finite(walk.max_drift, walk.max_abs_flat)
    taken = torch.arange(walk.rank.shape[0]).unsqueeze(1) <= walk.stopped_at.unsqueeze(0)
    assert (walk.rank[taken] >= 0).all()  # -1 only after a stop
    _finite(walk.drift[taken])


@SETTINGS
@given(
    problems(),
    st.sampled_from(["simec", "random", "directed", "leave_class", "to_class"]),
    st.sampled_from([None, (-10.0, 10.0), (0.0, 1.0)]),
)
def test_walks(problem, kind, domain):
    common = {
        "steps": 2,
        "step_size": 0.05,
        "domain": domain,
        "output_metric": "euclidean" if problem.metric is None else problem.metric,
        "target": problem.target,
        "seed": 0,
        "progress": False,
    }
    if kind == "simec":
        walk = _call(lambda: simec(problem.model, problem.inputs, **common))
    else:
        extra = {"target_class": problem.target} if kind == "to_class" else {}
        walk = _call(lambda: simexp(problem.model, problem.inputs, mode=kind, **common, **extra))
    if walk is not None:
        _check_walk(walk, problem)


@settings(max_examples=10, deadline=None)
@given(problems())
def test_preimage(problem):
    def scalar(*inputs):
        return problem.model(*inputs)[:, :1]

    found = _call(
        lambda: preimage(
            scalar, problem.inputs, -0.5, 0.5, sweeps=1, simec_steps=2, max_hop_steps=3, seed=0
        )
    )
    if found is not None:
        _finite(found.outputs)
        assert ((found.outputs >= -0.5) & (found.outputs <= 0.5)).all()
