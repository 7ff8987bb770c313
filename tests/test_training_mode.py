"""A model whose dropout or batch norm is in training mode is refused at every public entry
point, whatever wraps it (issue 8, section 2).

The static check finds the module only when the forward function is the module (or a bound
method of it); a lambda, `functools.partial`, a function that calls the model or a layer
attribution hides it. The forward passes themselves now check every module they run.
"""

from __future__ import annotations

import functools
import threading

import pytest
import torch
from torch import nn

from captum_simec import (
    LayerSiMECAttribution,
    RobustnessAudit,
    SiMECAttribution,
    explain,
    preimage,
    pullback_spectrum,
    simec,
    simexp,
)
from captum_simec.audit import deepfool, min_fgsm_epsilon, min_pgd_epsilon
from captum_simec.geometry import (
    fastest_jacobian_method,
    hutchinson_relevance,
    model_outputs,
    randomized_range,
)


def _net(layer: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), layer, nn.Tanh(), nn.Linear(8, 3))


def _dropout_net() -> nn.Sequential:
    return _net(nn.Dropout(0.5)).train()  # the default mode of a freshly built module


def _wrappers(model: nn.Module) -> dict:
    def calls_the_model(x):
        return model(x) * 1.0

    return {
        "lambda": lambda x: model(x),
        "partial": functools.partial(model.__call__),
        "function": calls_the_model,
    }


X = torch.rand(2, 4)

pytestmark = pytest.mark.filterwarnings("ignore:score=.flip.:UserWarning")


def _scalar(f):
    return lambda x: f(x)[:, :1]


ENTRY_POINTS = {
    "pullback_spectrum": lambda f: pullback_spectrum(f, X),
    "pullback_spectrum/replicate": lambda f: pullback_spectrum(f, X, jacobian_method="replicate"),
    "explain": lambda f: explain(f, X, target=0),
    "relevance": lambda f: SiMECAttribution(f).attribute(X, target=0),
    "robustness": lambda f: SiMECAttribution(f).attribute(X, target=0, score="robustness"),
    "flip": lambda f: SiMECAttribution(f).attribute(X, target=0, score="flip", steps=3),
    "class_extent": lambda f: SiMECAttribution(f).attribute(X, score="class_extent", steps=3),
    "simec": lambda f: simec(f, X, steps=2, seed=0, progress=False),
    "simexp": lambda f: simexp(f, X, steps=2, progress=False),
    "preimage": lambda f: preimage(_scalar(f), X, -1.0, 1.0, sweeps=1, simec_steps=2),
    "hutchinson_relevance": lambda f: hutchinson_relevance(f, X, probes=4, seed=0),
    "randomized_range": lambda f: randomized_range(f, X, k=2, oversample=1, seed=0),
    "fastest_jacobian_method": lambda f: fastest_jacobian_method(f, (X,), repeats=1),
    "audit": lambda f: RobustnessAudit(
        f, domain=(-1.0, 2.0), simec_steps=2, simexp_steps=2
    ).audit_batch(X),
    "fgsm": lambda f: min_fgsm_epsilon(f, X, eps_max=1.0),
    "pgd": lambda f: min_pgd_epsilon(f, X, eps_max=1.0, steps=2),
    "deepfool": lambda f: deepfool(f, X, max_iter=2),
    "model_outputs": lambda f: model_outputs(f, (X,)),
}


@pytest.mark.parametrize("wrapper", ["lambda", "partial", "function"])
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_entry_point_refuses_a_wrapped_model_with_dropout_in_training_mode(entry, wrapper):
    model = _dropout_net()
    with pytest.raises(ValueError, match=r"Dropout layer in training mode.*model\.eval\(\)"):
        ENTRY_POINTS[entry](_wrappers(model)[wrapper])
    assert not nn.modules.module._global_forward_pre_hooks  # the guard is gone after an error
    ENTRY_POINTS[entry](_wrappers(model.eval())[wrapper])  # and the same call works in eval


def test_layer_attribution_refuses_a_wrapped_model_in_training_mode():
    model = _dropout_net()
    attribution = LayerSiMECAttribution(lambda x: model(x), model[0])
    with pytest.raises(ValueError, match="Dropout layer in training mode"):
        attribution.attribute(X, target=0)
    model.eval()
    assert attribution.attribute(X, target=0).shape == (2, 8)


def test_batch_norm_in_training_mode_is_refused_before_it_updates_its_statistics():
    model = _net(nn.BatchNorm1d(8)).train()
    running = model[1].running_mean.clone()
    with pytest.raises(ValueError, match="BatchNorm1d layer in training mode"):
        pullback_spectrum(lambda x: model(x), X)
    assert torch.equal(model[1].running_mean, running)


def test_batch_norm_without_running_statistics_is_batch_dependent_even_in_eval_mode():
    model = _net(nn.BatchNorm1d(8, track_running_stats=False)).eval()
    with pytest.raises(ValueError, match="track_running_stats=False"):
        simec(lambda x: model(x), X, steps=1, seed=0, progress=False)


def test_attention_dropout_in_training_mode_is_refused():
    attention = nn.MultiheadAttention(4, 2, dropout=0.1, batch_first=True).train()

    def f(x):
        return attention(x, x, x, need_weights=False)[0].flatten(1)

    with pytest.raises(ValueError, match="MultiheadAttention layer in training mode"):
        pullback_spectrum(f, torch.rand(2, 3, 4))


def test_the_guard_leaves_other_threads_alone():
    """A model trained in another thread while a spectrum is computed is not refused."""
    trained = _dropout_net()
    errors: list[BaseException] = []
    started, release = threading.Event(), threading.Event()

    def slow_model(x):
        started.set()
        release.wait(timeout=10)
        return _net(nn.Identity())(x)

    def spectrum():
        try:
            pullback_spectrum(slow_model, X, jacobian_method="replicate")
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    worker = threading.Thread(target=spectrum)
    worker.start()
    assert started.wait(timeout=10)
    trained(X)  # a training-mode forward pass in this thread while the guard is installed
    release.set()
    worker.join(timeout=30)
    assert not errors
    assert not nn.modules.module._global_forward_pre_hooks
