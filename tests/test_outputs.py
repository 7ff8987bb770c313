"""`output=`: the tensor to explain from a dict, tuple, ModelOutput or Future, everywhere."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from captum_simec import (
    LayerSiMECAttribution,
    SiMECAttribution,
    explain,
    preimage,
    pullback_spectrum,
    select_output,
    simec,
    simexp,
)
from captum_simec._outputs import SelectOutput, check_output


class Outputs(OrderedDict):
    """A stand-in for Hugging Face's ModelOutput: a dict with attributes and positions."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as error:
            raise AttributeError(name) from error

    def to_tuple(self):
        return tuple(self.values())


class Classifier(nn.Module):
    """Logits (batch, 3) of a tanh layer, returned in the form `kind` names."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.hidden = nn.Linear(4, 6, dtype=torch.float64)
        self.head = nn.Linear(6, 3, dtype=torch.float64)
        self.kind = kind

    def forward(self, x):
        hidden = torch.tanh(self.hidden(x))
        logits = self.head(hidden)
        if self.kind == "dict":
            return {"hidden": hidden, "logits": logits}
        if self.kind == "model_output":
            return Outputs(logits=logits, hidden_states=hidden)
        if self.kind == "tuple":
            return logits, hidden
        if self.kind == "future":
            future = torch.futures.Future()
            future.set_result(logits)
            return future
        if self.kind == "scalar":
            return logits.sum()
        return logits


X = torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
WALK = {"steps": 3, "step_size": 0.01}


def _entry_points(model, output=None):
    """Every public entry point that runs the model, called once."""
    return {
        "relevance": lambda: SiMECAttribution(model, output=output).attribute(X, target=0),
        "robustness": lambda: SiMECAttribution(model, output=output).attribute(
            X, target=0, score="robustness"
        ),
        "flip": lambda: SiMECAttribution(model, output=output).attribute(
            X, target=0, score="flip", **WALK
        ),
        "class_extent": lambda: SiMECAttribution(model, output=output).attribute(
            X, target=0, score="class_extent", **WALK
        ),
        "layer": lambda: LayerSiMECAttribution(model, model.hidden, output=output).attribute(
            X, target=0
        ),
        "layer_flip": lambda: LayerSiMECAttribution(model, model.hidden, output=output).attribute(
            X, target=0, score="flip", **WALK
        ),
        "explain": lambda: explain(model, X, target=0, output=output),
        "pullback_spectrum": lambda: pullback_spectrum(model, X, output=output),
        "simec": lambda: simec(model, X, output=output, seed=0, **WALK),
        "simexp": lambda: simexp(model, X, mode="leave_class", output=output, **WALK),
    }


@pytest.mark.parametrize("entry", sorted(_entry_points(Classifier("tensor"))))
@pytest.mark.parametrize("kind", ["dict", "model_output", "tuple", "future"])
def test_every_entry_point_gives_the_same_clear_error_without_output(entry, kind):
    with pytest.raises(TypeError, match=r"forward_func returned a .*, not a tensor.*`output=`"):
        _entry_points(Classifier(kind))[entry]()


@pytest.mark.parametrize("entry", sorted(_entry_points(Classifier("tensor"))))
def test_a_scalar_output_gets_the_batch_error_everywhere(entry):
    with pytest.raises(ValueError, match=r"returned shape \(\) for a batch of 2"):
        _entry_points(Classifier("scalar"))[entry]()


@pytest.mark.filterwarnings("ignore:score='flip'")
@pytest.mark.parametrize(
    ("kind", "output"),
    [
        ("dict", "logits"),
        ("model_output", "logits"),
        ("model_output", 0),
        ("tuple", 0),
        ("tuple", -2),
        ("future", lambda future: future.wait()),
    ],
)
def test_output_picks_the_same_tensor_as_a_plain_model(kind, output):
    reference = _entry_points(Classifier("tensor"))
    picked = _entry_points(Classifier(kind), output)
    for entry in ("relevance", "robustness", "flip", "layer"):
        torch.testing.assert_close(picked[entry](), reference[entry]())
    walk, plain = picked["simec"](), reference["simec"]()
    torch.testing.assert_close(walk.points_flat, plain.points_flat)


@pytest.mark.parametrize(
    ("kind", "output", "match"),
    [
        ("dict", "logit", r"output='logit' is not in .* a dict with keys \['hidden', 'logits'\]"),
        ("model_output", "scores", r"output='scores' is not in .*keys \['logits'"),
        ("tuple", 2, r"output=2 is not in .* a tuple of 2 \(tensor\(2, 3\), tensor\(2, 6\)\)"),
        ("dict", 0, "output=0 is not in"),
    ],
)
def test_an_output_that_does_not_exist_is_named_with_what_exists(kind, output, match):
    for entry in ("relevance", "flip", "simec"):
        with pytest.raises(ValueError, match=match):
            _entry_points(Classifier(kind), output)[entry]()


def test_select_output_is_an_adapter_for_any_method():
    from captum.attr import Saliency

    model = Classifier("model_output").eval()
    wrapped = select_output(model, "logits")
    assert isinstance(wrapped, SelectOutput) and wrapped.forward_func is model
    assert select_output(model, None) is model
    saliency = Saliency(wrapped).attribute(X.clone(), target=1, abs=True)
    ours = SiMECAttribution(model, output="logits").attribute(X, target=1)
    torch.testing.assert_close(ours, saliency)
    with pytest.raises(TypeError, match="`output` must be a key"):
        select_output(model, 1.5)
    with pytest.raises(TypeError, match="`output` must be a key"):
        select_output(model, True)


def test_an_adapter_keeps_the_eval_mode_check():
    model = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5)).train()
    with pytest.raises(ValueError, match="training mode"):
        SiMECAttribution(model, output=lambda y: y).attribute(X.float(), target=0)


def test_preimage_takes_output_too():
    model = Classifier("dict")
    with pytest.raises(TypeError, match="`output=`"):
        preimage(model, X, -1.0, 1.0)
    covered = preimage(
        model, X, -5.0, 5.0, output=lambda out: out["logits"][:, 0], sweeps=1, simec_steps=2
    )
    assert covered.outputs.numel() > 0


def test_check_output_refuses_integers_and_lost_batches():
    with pytest.raises(TypeError, match="must return floats"):
        check_output(torch.zeros(2, 3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="batch of 4"):
        check_output(torch.zeros(2, 3), 4)
    assert check_output(torch.zeros(2, 3), 2).shape == (2, 3)
