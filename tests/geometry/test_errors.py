"""Bad input gets an error that names the argument and the fix."""

import pytest
import torch
from torch import nn

from captum_simec import pullback_spectrum
from captum_simec.geometry import TopKMetric, factorise, jacobian
from tests.geometry.models import TinyMLP


@pytest.fixture
def model():
    return TinyMLP(n=6, m=4).eval()


@pytest.fixture
def x():
    return torch.randn(3, 6)


def test_integer_input(model):
    with pytest.raises(TypeError, match=r"`inputs` has dtype torch.int64.*\.float\(\)"):
        pullback_spectrum(model, torch.ones(3, 6, dtype=torch.long))


def test_not_a_tensor(model):
    with pytest.raises(TypeError, match="tensor or a tuple of tensors"):
        pullback_spectrum(model, [[1.0] * 6])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input(model, x, bad):
    x[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        pullback_spectrum(model, x)


def test_non_finite_output(x):
    with pytest.raises(ValueError, match=r"NaN or inf for examples \[0, 1, 2\]"):
        pullback_spectrum(lambda v: torch.log(-v.abs() - 1), x)


def test_batch_sizes_differ(model):
    with pytest.raises(ValueError, match="different batch sizes"):
        pullback_spectrum(lambda a, b: a + b[:2], (torch.randn(2, 3), torch.randn(3, 3)))


def test_scalar_input(model):
    with pytest.raises(ValueError, match="dim 0 is the batch"):
        pullback_spectrum(model, torch.tensor(1.0))


def test_train_mode_with_dropout(x):
    model = nn.Sequential(nn.Linear(6, 4), nn.Dropout(0.5)).train()
    with pytest.raises(ValueError, match=r"training mode.*model.eval\(\)"):
        pullback_spectrum(model, x)


def test_train_mode_with_batchnorm_through_bound_method(x):
    model = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4)).train()
    with pytest.raises(ValueError, match="BatchNorm1d"):
        pullback_spectrum(model.forward, x)


def test_output_independent_of_input(x):
    with pytest.raises(ValueError, match="does not depend on the inputs"):
        pullback_spectrum(lambda v: torch.ones(v.shape[0], 2), x)


def test_output_without_batch(x):
    with pytest.raises(ValueError, match="keep the batch as dim 0"):
        pullback_spectrum(lambda v: v.sum(0), x)


def test_output_not_a_tensor(x):
    with pytest.raises(TypeError, match="returned a tuple of 2.*not a tensor.*`output=`"):
        pullback_spectrum(lambda v: (v, v), x)


def test_target_out_of_range(model, x):
    with pytest.raises(ValueError, match="`target` index 7 is out of range"):
        pullback_spectrum(model, x, output_metric="target", target=7)


def test_target_list_wrong_length(model, x):
    with pytest.raises(ValueError, match="one target per example"):
        pullback_spectrum(model, x, output_metric="target", target=[0, 1])


def test_target_tensor_wrong_shape(model, x):
    with pytest.raises(ValueError, match="does not fit a batch of 3"):
        pullback_spectrum(model, x, output_metric="target", target=torch.zeros(2, 2).long())


def test_target_tuple_wrong_length(model, x):
    with pytest.raises(ValueError, match="one index per output dimension"):
        pullback_spectrum(model, x, output_metric="target", target=(0, 1))


def test_target_required(model, x):
    with pytest.raises(ValueError, match="needs `target`"):
        pullback_spectrum(model, x, output_metric="margin")


def test_metric_matrix_wrong_size(model, x):
    with pytest.raises(ValueError, match=r"pass an \(4, 4\) matrix"):
        pullback_spectrum(model, x, output_metric=torch.eye(3))


def test_metric_matrix_not_square(model, x):
    with pytest.raises(ValueError, match="must be square"):
        pullback_spectrum(model, x, output_metric=torch.ones(4, 3))


def test_metric_not_symmetric(model, x):
    g = torch.eye(4)
    g[0, 1] = 0.5
    with pytest.raises(ValueError, match="symmetric"):
        pullback_spectrum(model, x, output_metric=g)


def test_metric_not_psd(model, x):
    with pytest.raises(ValueError, match="not positive semi-definite"):
        pullback_spectrum(model, x, output_metric=-torch.eye(4))


def test_callable_metric_wrong_shape(model, x):
    with pytest.raises(ValueError, match="callable returned shape"):
        pullback_spectrum(model, x, output_metric=lambda y: torch.eye(3))


def test_callable_metric_matches_matrix(model, x):
    g = torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    a = pullback_spectrum(model, x, output_metric=lambda y: g)
    b = pullback_spectrum(model, x, output_metric=g)
    assert torch.allclose(a.singular_values, b.singular_values)


def test_unknown_metric_name(model, x):
    with pytest.raises(ValueError, match="Unknown output_metric 'cosine'"):
        pullback_spectrum(model, x, output_metric="cosine")


def test_topk_too_large(model, x):
    with pytest.raises(ValueError, match="exceeds the 4 outputs"):
        pullback_spectrum(model, x, output_metric=TopKMetric(5))


def test_bad_jacobian_method(model, x):
    with pytest.raises(ValueError, match="jacobian_method='fast'"):
        jacobian(model, (x,), method="fast")


def test_backward_needs_one_row(model, x):
    with pytest.raises(ValueError, match="one-row metric"):
        jacobian(model, (x,), method="backward")


def test_bad_solver_and_tolerance():
    with pytest.raises(ValueError, match="solver='qr'"):
        factorise(torch.randn(1, 2, 3), solver="qr")
    with pytest.raises(ValueError, match="non-negative"):
        factorise(torch.randn(1, 2, 3), rtol=-1.0)


def test_bad_free_mask(model, x):
    with pytest.raises(ValueError, match="`free` must be a bool tensor"):
        pullback_spectrum(model, x, free=torch.ones(3, 6))


def test_bad_internal_batch_size(model, x):
    with pytest.raises(ValueError, match="internal_batch_size"):
        pullback_spectrum(model, x, internal_batch_size=0)


def test_layer_not_in_model(model, x):
    with pytest.raises(ValueError, match="ran 0 times"):
        pullback_spectrum(model, x, layer=nn.Linear(2, 2))


def test_layer_with_tuple_output(x):
    class WithLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(6, 3, batch_first=True)

        def forward(self, v):
            return self.lstm(v.unsqueeze(1))[0][:, -1]

    model = WithLSTM().eval()
    with pytest.raises(ValueError, match="not a single tensor"):
        pullback_spectrum(model, x, layer=model.lstm)


def test_vectors_of_the_wrong_shape(model, x):
    spec = pullback_spectrum(model, x)
    with pytest.raises(ValueError, match="match neither"):
        spec.project_null(torch.randn(3, 5))


def test_large_finite_inputs_are_accepted(model):
    # the sum overflows to inf, but every element is finite: not an error
    x = torch.full((3, 6), 3e38)
    assert not torch.isfinite(x.sum())
    spec = pullback_spectrum(lambda v: v[:, :2] * 1e-38, x)
    assert spec.rank.tolist() == [2, 2, 2]
