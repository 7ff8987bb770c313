"""The thin-factor spectrum against a dense float64 eigh of J^T G J and closed forms."""

import pytest
import torch
from captum.attr import Saliency
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from captum_simec import pullback_spectrum
from tests.geometry.models import TinyMLP, model_zoo

ZOO = model_zoo()


def dense_jacobian(model, x):
    """Per-example Jacobian by torch.autograd.functional (independent of the package)."""
    rows = []
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda v: model(v.unsqueeze(0))[0], xi)
        rows.append(jac.reshape(jac.shape[0], -1))
    return torch.stack(rows)


def dense_metric(name, y, target):
    """G per example from its textbook definition."""
    batch, m = y.shape
    eye = torch.eye(m, dtype=y.dtype)
    if name == "euclidean":
        return eye.expand(batch, m, m)
    mats = []
    for b in range(batch):
        t = int(target[b])
        if name == "target":
            mats.append(torch.outer(eye[t], eye[t]))
        elif name == "margin":
            others = y[b].clone()
            others[t] = -torch.inf
            d = eye[t] - eye[int(others.argmax())]
            mats.append(torch.outer(d, d))
        elif name == "topk":
            top = y[b].topk(2).indices
            mats.append(torch.diag(torch.zeros(m, dtype=y.dtype).index_fill(0, top, 1.0)))
        elif name == "fisher":
            p = torch.softmax(y[b], 0)
            mats.append(torch.diag(p) - torch.outer(p, p))
    return torch.stack(mats)


METRICS = ["euclidean", "target", "margin", "topk", "fisher"]


def metric_spec(name):
    from captum_simec.geometry import TopKMetric

    return TopKMetric(2) if name == "topk" else name


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("name,model,x", ZOO, ids=[c[0] for c in ZOO])
def test_agrees_with_dense_eigh(name, model, x, metric):
    target = [0, 1, 2]
    spec = pullback_spectrum(model, x, output_metric=metric_spec(metric), target=target)
    jac = dense_jacobian(model, x)
    y = model(x).detach()
    g = jac.transpose(1, 2) @ dense_metric(metric, y, torch.tensor(target)) @ jac
    values, vectors = torch.linalg.eigh(g)
    values, vectors = values.flip(-1), vectors.flip(-1)
    p = spec.eigenvalues.shape[1]
    k = min(p, values.shape[1])
    scale = values[:, :1].clamp_min(1e-30)
    assert torch.allclose(spec.eigenvalues[:, :k] / scale, values[:, :k] / scale, atol=1e-10)
    dense_rank = (values > 1e-10 * scale).sum(1)
    assert torch.equal(spec.rank, dense_rank)
    n = jac.shape[2]
    for b in range(x.shape[0]):
        r = int(dense_rank[b])
        dense_null = torch.eye(n, dtype=x.dtype) - vectors[b, :, :r] @ vectors[b, :, :r].T
        ours = spec.project_null(torch.eye(n, dtype=x.dtype).repeat(x.shape[0], 1, 1)[:, :, 0])
        assert ours.shape == (x.shape[0], n)
        probe = torch.randn(x.shape[0], n, dtype=x.dtype)
        assert torch.allclose(spec.project_null(probe)[b], dense_null @ probe[b], atol=1e-9)
    # the null directions really leave the output unchanged to first order
    probe = spec.project_null(torch.randn(x.shape[0], n, dtype=x.dtype))
    moved = (spec.factor @ probe.unsqueeze(2)).squeeze(2)
    assert moved.abs().max() < 1e-10


def test_linear_model_null_space_is_kernel_of_w():
    torch.manual_seed(1)
    w = torch.randn(3, 7, dtype=torch.float64)
    model = nn.Linear(7, 3, bias=True).double().eval()
    with torch.no_grad():
        model.weight.copy_(w)
    x = torch.randn(4, 7, dtype=torch.float64)
    gmat = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 3.0]], dtype=torch.float64)
    spec = pullback_spectrum(model, x, output_metric=gmat)
    assert spec.rank.tolist() == [3] * 4
    kernel = torch.linalg.svd(w).Vh[3:].T  # 7 x 4 basis of ker W
    null_of_kernel = spec.project_null(kernel.T.reshape(4, 7)[:4])
    assert torch.allclose(null_of_kernel, kernel.T[:4], atol=1e-12)
    assert spec.project_range(kernel.T[:4]).abs().max() < 1e-12
    evals, evecs = torch.linalg.eigh(gmat)
    root = evecs @ torch.diag(evals.sqrt()) @ evecs.T
    expected = (root @ w).norm(dim=0)
    assert torch.allclose(spec.relevance(), expected.expand(4, 7), atol=1e-12)


def test_ignored_features_have_zero_relevance_and_full_robustness():
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double().eval()

    def uses_first_four(x):
        return model(x[:, :4])

    x = torch.randn(5, 9, dtype=torch.float64)
    spec = pullback_spectrum(uses_first_four, x)
    assert spec.relevance()[:, 4:].abs().max() == 0
    assert torch.allclose(spec.robustness()[:, 4:], torch.ones(5, 5, dtype=torch.float64))
    assert (spec.relevance()[:, :4] > 0).all()
    assert (spec.robustness()[:, :4] < 1).all()


@pytest.mark.parametrize("head,expected", [("logits", 4), ("log_softmax", 3), ("softmax", 3)])
def test_classifier_heads_rank(head, expected):
    torch.manual_seed(2)
    model = TinyMLP(n=10, m=4, head=head).eval()  # float32, default tolerance
    spec = pullback_spectrum(model, torch.randn(6, 10))
    assert spec.rank.tolist() == [expected] * 6
    assert spec.null_dim.tolist() == [10 - expected] * 6


def test_mnist_sized_log_softmax_has_775_null_directions():
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 50), nn.ReLU(), nn.Linear(50, 10), nn.LogSoftmax(dim=1)
    ).eval()
    spec = pullback_spectrum(model, torch.randn(2, 1, 28, 28))
    assert spec.rank.tolist() == [9, 9]
    assert spec.null_dim.tolist() == [775, 775]


@pytest.mark.parametrize(
    "target", [2, torch.tensor([0, 1, 2, 3]), [3, 2, 1, 0], torch.tensor(1)], ids=str
)
def test_target_relevance_equals_captum_saliency(target):
    torch.manual_seed(4)
    model = TinyMLP(n=6, m=4).eval()
    x = torch.randn(4, 6)
    ours = pullback_spectrum(model, x, output_metric="target", target=target).relevance()
    theirs = Saliency(model).attribute(x, target=target, abs=True)
    assert torch.allclose(ours, theirs, atol=1e-7)


def test_target_relevance_equals_saliency_for_tuple_inputs():
    basic_models = pytest.importorskip(
        "captum.testing.helpers.basic_models", reason="Captum's test models ship with captum >= 0.9"
    )

    torch.manual_seed(5)
    model = basic_models.BasicModel_MultiLayer_MultiInput().eval()
    x = tuple(torch.randn(3, 3) for _ in range(3))
    spec = pullback_spectrum(
        model, x, output_metric="target", target=1, additional_forward_args=(2,)
    )
    ours = spec.unflatten(spec.relevance())
    theirs = Saliency(model).attribute(x, target=1, additional_forward_args=(2,), abs=True)
    assert isinstance(ours, tuple) and len(ours) == 3
    for a, b in zip(ours, theirs, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 9),
    m=st.integers(1, 5),
    seed=st.integers(0, 10_000),
    head=st.sampled_from(["logits", "log_softmax"]),
)
def test_projector_properties(n, m, seed, head):
    torch.manual_seed(seed)
    model = TinyMLP(n=n, m=m, head=head).double().eval()
    x = torch.randn(2, n, dtype=torch.float64)
    # a fixed tolerance well above float64 rounding in the Jacobian: the default
    # max(p, n) * eps can count a rounding-level singular value of the killed direction
    spec = pullback_spectrum(model, x, rtol=1e-10)
    z = torch.randn(2, n, dtype=torch.float64)
    pr, pn = spec.project_range(z), spec.project_null(z)
    assert torch.allclose(pr + pn, z, atol=1e-12)
    assert torch.allclose(spec.project_range(pr), pr, atol=1e-10)
    assert torch.allclose(spec.project_null(pn), pn, atol=1e-10)
    assert (pr * pn).sum(1).abs().max() < 1e-9
    leverage = (1 - spec.robustness()).sum(1)
    assert torch.allclose(leverage, spec.rank.double(), atol=1e-9)
    assert spec.rank.max() <= min(n, m - (head == "log_softmax"))


def test_batch_equals_per_example():
    torch.manual_seed(6)
    model = TinyMLP(n=6, m=4).double().eval()
    x = torch.randn(5, 6, dtype=torch.float64)
    target = [0, 1, 2, 3, 0]
    whole = pullback_spectrum(model, x, output_metric="margin", target=target)
    for b in range(5):
        single = pullback_spectrum(model, x[b : b + 1], output_metric="margin", target=target[b])
        assert torch.allclose(whole.relevance()[b], single.relevance()[0], atol=1e-12)
        assert torch.allclose(whole.robustness()[b], single.robustness()[0], atol=1e-12)
        assert whole.rank[b] == single.rank[0]


def test_free_mask_restricts_the_null_space():
    torch.manual_seed(7)
    model = TinyMLP(n=5, m=2).double().eval()
    x = torch.randn(1, 5, dtype=torch.float64)
    free = torch.tensor([[True, True, True, False, True]])
    spec = pullback_spectrum(model, x, free=free)
    step = spec.sample_null(torch.Generator().manual_seed(0))
    assert step[0, 3] == 0
    assert torch.isclose(step.norm(), torch.tensor(1.0, dtype=torch.float64))
    full = pullback_spectrum(model, x)
    assert (full.factor[:, :, free[0]] @ step[0, free[0]]).abs().max() < 1e-12
    assert spec.null_dim.item() == 4 - spec.rank.item()
    assert spec.robustness()[0, 3] == 0


def test_sampling_is_reproducible_and_in_the_right_space():
    torch.manual_seed(8)
    model = TinyMLP(n=8, m=3).double().eval()
    spec = pullback_spectrum(model, torch.randn(3, 8, dtype=torch.float64))
    a = spec.sample_null(torch.Generator().manual_seed(1))
    b = spec.sample_null(torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert torch.allclose(a.norm(dim=1), torch.ones(3, dtype=torch.float64))
    assert (spec.factor @ a.unsqueeze(2)).abs().max() < 1e-12
    r = spec.sample_range(torch.Generator().manual_seed(2), weighted=True)
    assert torch.allclose(spec.project_range(r), r, atol=1e-12)


def test_dead_relu_region_has_rank_zero():
    model = nn.Sequential(nn.Linear(2, 1), nn.ReLU()).double().eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -1.0]]))
        model[0].bias.zero_()
    spec = pullback_spectrum(model, torch.tensor([[-1.85, 1.3], [1.85, 1.3]], dtype=torch.float64))
    assert spec.rank.tolist() == [0, 1]
    assert spec.null_dim.tolist() == [2, 1]
    assert spec.spectral_gap[0] == 0
    z = torch.tensor([[0.3, 0.4], [0.3, 0.4]], dtype=torch.float64)
    assert torch.equal(spec.project_null(z)[0], z[0])


def test_full_eigenvalues_and_gap():
    torch.manual_seed(9)
    model = TinyMLP(n=6, m=3, head="log_softmax").double().eval()
    spec = pullback_spectrum(model, torch.randn(2, 6, dtype=torch.float64))
    full = spec.full_eigenvalues()
    assert full.shape == (2, 6)
    assert (full[:, 2:] < 1e-20).all()
    assert (spec.spectral_gap > 1e6).all()
    assert torch.allclose(spec.smallest_retained, spec.singular_values[:, 1])


def test_restrict_equals_a_spectrum_computed_with_the_mask():
    torch.manual_seed(10)
    model = TinyMLP(n=6, m=3).double().eval()
    x = torch.randn(2, 6, dtype=torch.float64)
    free = torch.tensor([[True, False, True, True, True, False], [True] * 5 + [False]])
    restricted = pullback_spectrum(model, x, rtol=1e-9).restrict(free)
    direct = pullback_spectrum(model, x, free=free, rtol=1e-9)
    assert torch.allclose(restricted.singular_values, direct.singular_values)
    assert torch.equal(restricted.rank, direct.rank) and restricted.rtol == 1e-9
    z = torch.randn(2, 6, dtype=torch.float64)
    assert torch.allclose(restricted.project_null(z), direct.project_null(z))
    assert restricted.project_null(z)[~free].abs().max() == 0
