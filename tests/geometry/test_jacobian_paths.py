"""Every Jacobian path gives the same factor; chunking, tuples, args and layers behave."""

import warnings

import pytest
import torch
from torch import nn

from captum_simec import pullback_spectrum
from captum_simec.geometry import (
    TopKMetric,
    fastest_jacobian_method,
    jacobian,
    layer_representation,
    pullback_factor,
    resolve_output_metric,
)
from tests.geometry.models import TinyMLP, model_zoo

ZOO = model_zoo()


@pytest.mark.parametrize("name,model,x", ZOO, ids=[c[0] for c in ZOO])
def test_all_paths_agree(name, model, x):
    reference = jacobian(model, (x,), method="replicate").factor
    for method in ("batched_grad", "vmap", "jacfwd"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.func may fall back on recurrent nets
            result = jacobian(model, (x,), method=method)
        assert torch.allclose(result.factor, reference, atol=1e-12), method
        assert result.method in (method, "replicate")
    chunked = jacobian(model, (x,), method="replicate", internal_batch_size=2).factor
    assert torch.allclose(chunked, reference, atol=1e-14)


def test_gru_vmap_falls_back_and_says_so():
    gru = dict((c[0], c) for c in ZOO)["gru"]
    _, model, x = gru
    with pytest.warns(UserWarning, match="using 'replicate'"):
        result = jacobian(model, (x,), method="vmap")
    assert result.method == "replicate"
    assert "vmap failed" in result.fallback_reason


def test_one_row_metric_uses_a_single_backward_and_chunks():
    model = TinyMLP(n=6, m=4).double().eval()
    x = torch.randn(5, 6, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 3, 0])
    one = pullback_factor(model, (x,), resolve_output_metric("target"), target)
    assert one.method == "backward"
    chunked = pullback_factor(
        model, (x,), resolve_output_metric("target"), target, internal_batch_size=2
    )
    assert torch.allclose(one.factor, chunked.factor, atol=1e-14)
    full = jacobian(model, (x,)).factor
    assert torch.allclose(one.factor[:, 0], full[torch.arange(5), target], atol=1e-14)


def test_auto_uses_forward_mode_when_inputs_are_few():
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 12)).double().eval()
    result = jacobian(model, (torch.randn(3, 2, dtype=torch.float64),))
    assert result.method == "jacfwd"
    assert result.factor.shape == (3, 12, 2)


def test_tuple_inputs_and_additional_args_are_indexed_per_example():
    torch.manual_seed(0)
    lin = nn.Linear(3, 2).double().eval()

    def model(a, b, scale, offset):
        return lin(a * scale) + b.sum(1, keepdim=True) * offset

    a, b = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    scale = torch.arange(1.0, 5.0, dtype=torch.float64).unsqueeze(1)
    result = jacobian(model, (a, b), additional_forward_args=(scale, 2.0), method="replicate")
    expected_a = lin.weight.unsqueeze(0) * scale.unsqueeze(2)
    assert torch.allclose(result.factor[:, :, :3], expected_a)
    assert torch.allclose(result.factor[:, :, 3:], torch.full((4, 2, 2), 2.0, dtype=torch.float64))
    vmapped = jacobian(model, (a, b), additional_forward_args=(scale, 2.0), method="vmap")
    assert torch.allclose(vmapped.factor, result.factor)


def test_one_dimensional_inputs_are_a_batch_of_scalars():
    spec = pullback_spectrum(torch.sin, torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64))
    assert spec.relevance().shape == (3, 1)
    assert torch.allclose(
        spec.relevance()[:, 0], torch.cos(torch.tensor([0.0, 1.0, 2.0])).abs().double()
    )
    assert spec.unflatten(spec.relevance()).shape == (3,)


def test_multidimensional_output_with_tuple_target():
    model = nn.Sequential(nn.Linear(4, 6), nn.Unflatten(1, (2, 3))).double().eval()
    x = torch.randn(2, 4, dtype=torch.float64)
    spec = pullback_spectrum(model, x, output_metric="target", target=(1, 2))
    assert torch.allclose(spec.factor[:, 0], model[0].weight[5].expand(2, 4))
    spec = pullback_spectrum(model, x, output_metric="target", target=[(0, 0), (1, 1)])
    assert torch.allclose(spec.factor[1, 0], model[0].weight[4])


def test_layer_pullback_equals_the_tail_of_a_sequential():
    torch.manual_seed(1)
    model = (
        nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 6), nn.Tanh(), nn.Linear(6, 3))
        .double()
        .eval()
    )
    x = torch.randn(4, 5, dtype=torch.float64)
    hidden = layer_representation(model, model[1], (x,), None)
    assert torch.allclose(hidden, model[:2](x))
    at_layer = pullback_spectrum(model, x, layer=model[1])
    tail = pullback_spectrum(model[2:], hidden)
    assert torch.allclose(at_layer.singular_values, tail.singular_values)
    assert torch.allclose(at_layer.robustness(), tail.robustness(), atol=1e-12)
    at_input = pullback_spectrum(model, x, layer=model[2], attribute_to_layer_input=True)
    assert torch.allclose(at_input.relevance(), tail.relevance(), atol=1e-12)
    metric = TopKMetric(2)
    assert torch.equal(
        pullback_spectrum(model, x, layer=model[1], output_metric=metric).rank,
        pullback_spectrum(model[2:], hidden, output_metric=metric).rank,
    )


def test_fastest_method_reports_timings():
    model = TinyMLP(n=6, m=3).double().eval()
    best, timings = fastest_jacobian_method(model, (torch.randn(2, 6, dtype=torch.float64),))
    assert best in timings
    assert set(timings) == {"replicate", "batched_grad", "vmap"}  # n = 6 > p = 3: no jacfwd
    few_inputs = nn.Sequential(nn.Linear(2, 5)).double().eval()
    _, timings = fastest_jacobian_method(few_inputs, (torch.randn(2, 2, dtype=torch.float64),))
    assert "jacfwd" in timings and "backward" not in timings
    one_row = resolve_output_metric("target")
    target = torch.tensor([0, 1])
    _, timings = fastest_jacobian_method(
        model, (torch.randn(2, 6, dtype=torch.float64),), one_row, target
    )
    assert "backward" in timings


def test_user_tensors_are_untouched():
    model = TinyMLP().eval()
    x = torch.randn(2, 6, requires_grad=True)
    x.grad = torch.ones_like(x)
    y = torch.randn(2, 6)
    pullback_spectrum(model, x)
    pullback_spectrum(model, y)
    assert torch.equal(x.grad, torch.ones_like(x)) and x.requires_grad
    assert not y.requires_grad and y.grad is None


def test_runs_under_no_grad():
    model = TinyMLP().eval()
    with torch.no_grad():
        spec = pullback_spectrum(model, torch.randn(2, 6))
    assert (spec.rank == 4).all()


def test_auto_times_the_general_paths_and_chunking_replicates():
    model = TinyMLP(n=6, m=4).double().eval()
    x = torch.randn(5, 6, dtype=torch.float64)
    auto = jacobian(model, (x,))
    assert auto.method in ("replicate", "batched_grad") and auto.fallback_reason is None
    chunked = jacobian(model, (x,), internal_batch_size=3)
    assert chunked.method == "replicate"  # whichever path auto calibrated to on this machine
    assert torch.allclose(auto.factor, chunked.factor, atol=1e-14)
    # a path that needs the whole batch in one pass says why it was replaced
    bounded = jacobian(model, (x,), method="batched_grad", internal_batch_size=3)
    assert bounded.method == "replicate"
    assert "internal_batch_size=3" in bounded.fallback_reason


def test_cudnn_is_switched_off_only_for_recurrent_models_on_cuda():
    import contextlib

    from captum_simec.explore._flat_model import FlatOutputs
    from captum_simec.geometry._modules import cudnn_for

    gru = dict((c[0], c) for c in ZOO)["gru"][1]
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert not isinstance(cudnn_for(gru, cuda), contextlib.nullcontext)
    assert not isinstance(cudnn_for(FlatOutputs(gru.forward), cuda), contextlib.nullcontext)
    assert isinstance(cudnn_for(gru, cpu), contextlib.nullcontext)
    assert isinstance(cudnn_for(TinyMLP(), cuda), contextlib.nullcontext)


class _NumpySquare(torch.autograd.Function):
    """`x^2` whose backward leaves torch (numpy): vmap, hence batched_grad, cannot run it."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return torch.from_numpy(2 * x.detach().numpy() * grad.numpy())


class _Unbatchable(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(4, 5), nn.Linear(5, 3)

    def forward(self, x):
        return self.b(_NumpySquare.apply(self.a(x)))


def test_auto_says_why_it_replicates_and_warns_about_the_memory():
    model, x = _Unbatchable().eval(), torch.randn(3, 4)
    reference = jacobian(model, (x,), method="replicate").factor
    for _ in range(2):  # calibrating, then from the cache
        with pytest.warns(UserWarning, match=r"3 copies of every example.*activation memory"):
            spectrum = pullback_spectrum(model, x)
        assert spectrum.jacobian_method == "replicate"
        assert "batched_grad failed (RuntimeError" in spectrum.fallback_reason
        torch.testing.assert_close(spectrum.factor, reference)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a bound on the pairs per pass: no memory warning
        bounded = pullback_spectrum(model, x, internal_batch_size=2)
        assert "batched_grad failed" in bounded.fallback_reason
        one_row = pullback_spectrum(model, x, output_metric="target", target=0)
    assert one_row.jacobian_method == "backward" and one_row.fallback_reason is None
