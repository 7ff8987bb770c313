"""compare_attributions and its Comparison on images, time series and tabular data."""

import math
import warnings

import pytest
import torch
from captum.attr import Saliency
from matplotlib.figure import Figure
from torch import nn

from captum_simec import evaluation
from captum_simec.evaluation import METRICS, Comparison, compare_attributions
from captum_simec.evaluation import compare as compare_module
from tests.attr.helpers import mlp, small_cnn

DEFAULT_METHODS = {
    "SiMEC relevance",
    "SiMEC leverage (1-robustness)",
    "SiMEC flip",
    "SiMEC boundary",
    "IntegratedGradients",
    "IntegratedGradients (uniform)",
    "Boundary IG (PGD)",
    "Saliency",
    "InputXGradient",
    "GradientShap",
}


@pytest.fixture(scope="module")
def image_comparison() -> tuple[nn.Module, torch.Tensor, Comparison]:
    # a module fixture runs before the per-test single-thread fixture: tiny ops on several
    # threads of a loaded 2-core machine ran 10x slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model, x = small_cnn(), torch.rand(3, 1, 8, 8)
        result = compare_attributions(
            model, x, n_steps_ig=8, domain=(0.0, 1.0), curve_steps=8, progress=False
        )
    finally:
        torch.set_num_threads(threads)
    return model, x, result


def test_every_default_method_is_run_and_scored(image_comparison):
    model, x, result = image_comparison
    assert set(result.maps) == DEFAULT_METHODS
    # a timing recorded per method; its size is the benchmark's business, and a coarse
    # process clock may read 0 for a fast method
    assert set(result.seconds) == DEFAULT_METHODS
    assert all(math.isfinite(t) and t >= 0 for t in result.seconds.values())
    assert torch.equal(result.target, model(x).argmax(dim=1))
    for name, scores in result.scores.items():
        assert result.maps[name].shape == x.shape
        expected = {"infidelity", "sensitivity", "random_logit", "randomisation_top"}
        expected |= {"randomisation_mean", "road_morf_auc", "road_lerf_auc", "invariance_auc"}
        expected |= {
            f"{m}_auc/{b}"
            for m in ("deletion", "insertion")
            for b in ("black", "uniform", "mean", "blur")
        }
        assert expected <= set(scores), name
        for key, values in scores.items():
            assert values.shape == (3,), (name, key)
    count = len(DEFAULT_METHODS)
    assert result.correlation.shape == (count, count)
    torch.testing.assert_close(
        result.correlation.diagonal(), torch.ones(count, dtype=torch.float64)
    )


def test_saliency_and_simec_target_relevance_agree_in_every_metric(image_comparison):
    _, _, result = image_comparison
    ours, theirs = result.summary()["SiMEC relevance"], result.summary()["Saliency"]
    for metric in ours:
        if metric not in ("seconds", "sensitivity"):  # sensitivity: own noise draws per call
            assert ours[metric] == pytest.approx(theirs[metric], abs=1e-6), metric


def test_class_agnostic_leverage_is_flagged_and_fails_random_logit(image_comparison):
    _, _, result = image_comparison
    name = "SiMEC leverage (1-robustness)"
    assert result.class_agnostic[name] and not result.class_agnostic["Saliency"]
    torch.testing.assert_close(
        result.scores[name]["random_logit"], torch.ones(3, dtype=torch.float64)
    )
    assert any("cannot pass the random-logit check" in note for note in result.notes)


def test_records_and_markdown(image_comparison):
    _, _, result = image_comparison
    records = result.to_records()
    assert [r["method"] for r in records] == result.methods
    assert all(isinstance(r["deletion_auc/black"], float) for r in records)
    table = result.to_markdown()
    assert table.startswith("| method |")
    assert "Spearman correlation between methods" in table
    for name in result.methods:
        assert f"| {name} |" in table


def test_plots_of_the_comparison(image_comparison):
    _, _, result = image_comparison
    grid = result.plot(examples=2)
    assert isinstance(grid, Figure)
    count = len(DEFAULT_METHODS)
    # with a target, SiMEC relevance is Saliency bit for bit: one row for both
    assert result.identical_maps() == {"Saliency": "SiMEC relevance"}
    labels = [ax.get_ylabel() for ax in grid.axes]
    assert "SiMEC relevance\n= Saliency" in labels and "Saliency" not in labels
    assert len(grid.axes) == count * 2 + 1  # input row, one row per distinct map, colour bar
    curves = result.plot_curves("insertion", "mean")
    assert len(curves.axes[0].lines) == count
    road = result.plot_curves("road_morf", "road")
    assert "removed" in road.axes[0].get_xlabel()
    invariance = result.plot_invariance()
    assert len(invariance.axes[0].lines) == count
    with pytest.raises(ValueError, match="No 'deletion/grey' curves"):
        result.plot_curves("deletion", "grey")


def test_the_comparison_is_reproducible_with_a_seed():
    torch.manual_seed(1)
    model, x = mlp(n=10, m=3), torch.rand(4, 10)
    kw = dict(
        methods={"SiMEC flip": None, "IntegratedGradients": None},
        metrics=("sensitivity", "deletion", "sanity"),
        baselines=("uniform",),
        seed=3,
        progress=False,
    )
    first, second = compare_attributions(model, x, **kw), compare_attributions(model, x, **kw)
    for name in first.methods:
        for metric, values in first.scores[name].items():
            torch.testing.assert_close(values, second.scores[name][metric], equal_nan=True)
    assert first.correlation is None


def test_user_methods_are_added_dropped_and_sanity_checked():
    torch.manual_seed(2)
    model, x = mlp(n=10, m=3), torch.rand(4, 10)

    def doubled(target_model, inputs, target):
        return 2 * Saliency(target_model).attribute(inputs, target=target)

    wrapped = nn.Sequential(model)
    result = compare_attributions(
        model,
        x,
        target=1,
        methods={name: None for name in DEFAULT_METHODS - {"Saliency"}}
        | {"doubled": doubled, "instance": Saliency(model), "foreign": Saliency(wrapped)},
        metrics=("sanity", "correlation"),
        progress=False,
    )
    assert result.methods == ["Saliency", "doubled", "instance", "foreign"]
    assert torch.all(result.target == 1)
    torch.testing.assert_close(result.maps["doubled"], 2 * result.maps["Saliency"])
    torch.testing.assert_close(result.correlation, torch.ones(4, 4, dtype=torch.float64))
    saliency_cascade = result.scores["Saliency"]["randomisation_all"]
    torch.testing.assert_close(result.scores["doubled"]["randomisation_all"], saliency_cascade)
    torch.testing.assert_close(result.scores["instance"]["randomisation_all"], saliency_cascade)
    assert "randomisation_all" not in result.scores["foreign"]
    assert any("foreign" in note and "skipped" in note for note in result.notes)
    assert math.isfinite(result.summary()["foreign"]["random_logit"])


class _SequenceModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(3, 5, batch_first=True)
        self.head = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])


@pytest.mark.parametrize("kind", ["timeseries", "tabular"])
def test_time_series_and_tabular_comparisons_plot(kind):
    torch.manual_seed(0)
    if kind == "timeseries":
        model, x = _SequenceModel().eval(), torch.randn(2, 6, 3)
    else:
        model, x = mlp(n=5, m=2), torch.randn(2, 5)
    result = compare_attributions(
        model,
        x,
        methods={name: None for name in DEFAULT_METHODS - {"Saliency", "SiMEC boundary"}},
        metrics=("deletion", "road"),
        baselines=("mean",),
        progress=False,
    )
    figure = result.plot()
    assert len(figure.axes) == (1 + 2) * 2 + 1
    assert any("ROAD was skipped" in note for note in result.notes)


def test_compare_errors():
    model, x = mlp(), torch.randn(2, 6)
    with pytest.raises(ValueError, match="metrics \\['speed'\\]"):
        compare_attributions(model, x, metrics=("speed",))
    with pytest.raises(TypeError, match="methods\\['bad'\\]"):
        compare_attributions(model, x, methods={"bad": 3}, metrics=(), progress=False)
    with pytest.raises(ValueError, match="removed every method"):
        compare_attributions(
            model, x, methods={name: None for name in DEFAULT_METHODS}, progress=False
        )
    with pytest.raises(ValueError, match="\\(batch, classes\\)"):
        compare_attributions(lambda t: t.sum(1), x, progress=False)
    with pytest.raises(TypeError, match="one input tensor"):
        compare_attributions(model, (x,), progress=False)
    with pytest.raises(TypeError, match="`model` must be a callable"):
        compare_attributions("model", x, progress=False)
    with pytest.raises(ValueError, match="`labels` has shape \\(3,\\)"):
        compare_attributions(model, x, labels=[0, 1, 2], metrics=(), progress=False)


def test_a_plain_function_is_compared_without_the_randomisation_check():
    torch.manual_seed(0)
    weight = torch.randn(3, 6)

    def model(x):  # not an nn.Module: no layers to re-draw
        return torch.tanh(x @ weight.T)

    x = torch.rand(2, 6)
    methods = {name: None for name in DEFAULT_METHODS - {"SiMEC relevance", "Saliency"}}
    result = compare_attributions(
        model, x, methods=methods, labels=[1, 2], metrics=("sanity",), progress=False
    )
    assert torch.equal(result.labels, torch.tensor([1, 2]))
    assert torch.equal(result.predicted, model(x).argmax(dim=1))
    for scores in result.scores.values():
        assert set(scores) == {"random_logit"}  # the random-logit check still runs
    assert any("randomisation check was skipped" in note for note in result.notes)
    # the maps are those of the same function as an nn.Module
    module = nn.Sequential(nn.Linear(6, 3, bias=False), nn.Tanh()).eval()
    with torch.no_grad():
        module[0].weight.copy_(weight)
    same = compare_attributions(module, x, methods=methods, metrics=(), progress=False)
    for name in result.methods:
        torch.testing.assert_close(result.maps[name], same.maps[name])


def test_metric_names_are_documented():
    documented = compare_module.__doc__
    assert all(f"``{name}``" in documented for name in METRICS)
    assert evaluation.BASELINE_KINDS == ("black", "uniform", "mean", "blur")


def test_named_baselines_road_on_tabular_data_and_invariance():
    model, x = mlp(n=5, m=3, seed=4), torch.rand(4, 5)
    reference = torch.rand(50, 5, generator=torch.Generator().manual_seed(0))
    result = compare_attributions(
        model,
        x,
        methods={name: None for name in DEFAULT_METHODS - {"Saliency", "IntegratedGradients"}},
        metrics=("deletion", "road", "invariance"),
        baselines={"training mean": reference.mean(0), "zero": 0.0},
        domain=(0.0, 1.0),
        road_imputer=evaluation.GaussianImputer(reference),
        invariance_draws=5,
        progress=False,
    )
    saliency = result.scores["Saliency"]
    assert {"deletion_auc/training mean", "deletion_auc/zero", "road_morf_auc"} <= set(saliency)
    expected = evaluation.perturbation_curve(
        model, x, result.maps["Saliency"], result.target, baseline=reference.mean(0)
    )
    torch.testing.assert_close(saliency["deletion_auc/training mean"], expected.auc)
    invariance = evaluation.invariance_curve(
        model, x, result.maps["Saliency"], domain=(0.0, 1.0), robust_first=False, draws=5
    )
    torch.testing.assert_close(saliency["invariance_auc"], invariance.auc)
    assert not any("ROAD was skipped" in note for note in result.notes)
    with pytest.raises(TypeError, match="baselines"):
        compare_attributions(model, x, baselines="black", progress=False)


def test_walks_that_stop_short_in_the_sanity_checks_become_one_note():
    torch.manual_seed(0)
    model, x = mlp(), torch.rand(2, 6)

    def short_on_copies(run_model, inputs, target):
        if run_model is not model:  # a randomised copy: the walk would stop short
            message = "score='boundary': 1 example(s) stopped before their decision changed"
            warnings.warn(message, stacklevel=2)
        return inputs.abs()

    methods = {name: None for name in DEFAULT_METHODS} | {"custom": short_on_copies}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing escapes
        result = compare_attributions(
            model, x, methods=methods, metrics=("sanity",), progress=False
        )
    notes = [note for note in result.notes if "stopped before the decision changed" in note]
    assert len(notes) == 1 and notes[0].startswith("custom:")

    def other_warning(run_model, inputs, target):
        warnings.warn("something else", stacklevel=2)
        return inputs.abs()

    methods["custom"] = other_warning
    with pytest.warns(UserWarning, match="something else"):  # other warnings pass
        compare_attributions(model, x, methods=methods, metrics=("sanity",), progress=False)
