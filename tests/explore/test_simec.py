"""SiMEC on models with known classes: null steps, records, seeding, direction modes."""

import pytest
import torch

from captum_simec.explore import Walk, simec
from tests.explore.helpers import linear_classifier, tanh_mlp


def test_null_steps_keep_a_linear_model_constant():
    _, _, f = linear_classifier(n=8, m=3)
    x = torch.randn(4, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    walk = simec(f, x, steps=200, step_size=0.1, seed=0)
    assert walk.max_drift.max() < 1e-10
    assert walk.drift_euclidean.max() < 1e-10
    assert torch.allclose(walk.outputs, walk.outputs[:1].expand_as(walk.outputs), atol=1e-10)
    assert walk.path_length.allclose(torch.full((4,), 20.0, dtype=torch.float64))
    assert walk.pseudolength.max() < 1e-12 and walk.energy.max() < 1e-20
    assert (walk.rank == 3).all()


def test_record_lengths_and_saved_points():
    model = tanh_mlp()
    x = torch.rand(3, 6, dtype=torch.float64)
    walk = simec(model, x, steps=23, step_size=0.01, save_every=5, seed=0)
    assert walk.num_steps == 23
    for trace in (walk.rank, walk.smallest_retained, walk.largest_discarded, walk.drift):
        assert trace.shape == (24, 3)
    assert walk.saved_steps.tolist() == [0, 5, 10, 15, 20, 23]
    assert walk.points_flat.shape == (6, 3, 6) and walk.points.shape == (6, 3, 6)
    assert walk.outputs.shape == (6, 3, 2) and walk.predictions.shape == (6, 3)
    assert torch.equal(walk.start, x)
    assert torch.equal(walk.final, walk.points[-1])
    assert torch.equal(walk.displacement(), walk.final - walk.start)
    assert (walk.max_abs_displacement() >= walk.displacement().abs()).all()
    assert walk.stopped_at.tolist() == [23, 23, 23] and walk.stop_reason == ["steps"] * 3
    assert (walk.drift[0] == 0).all()
    assert (walk.rank == 2).all() and (walk.smallest_retained > 0).all()
    assert walk.jacobian_evaluations.tolist() == [24, 24, 24]
    records = walk.to_records()
    assert len(records) == 3 and records[1]["example"] == 1
    assert records[0]["stop_reason"] == "steps" and records[0]["class_changed"] is False
    assert "simec/isotropic" in walk.summary()


def test_max_abs_displacement_keeps_a_running_max_over_unsaved_steps():
    model = tanh_mlp()
    x = torch.rand(2, 6, dtype=torch.float64)
    sparse = simec(model, x, steps=40, step_size=0.05, save_every=40, seed=3)
    dense = simec(model, x, steps=40, step_size=0.05, save_every=1, seed=3)
    over_saved = (dense.points_flat - dense.points_flat[:1]).abs().amax(dim=0)
    assert torch.allclose(sparse.max_abs_flat, over_saved)
    assert sparse.saved_steps.tolist() == [0, 40]


def test_same_seed_same_walk_and_generator():
    model = tanh_mlp()
    x = torch.rand(3, 6, dtype=torch.float64)
    first = simec(model, x, steps=30, step_size=0.02, seed=11)
    second = simec(model, x, steps=30, step_size=0.02, seed=11)
    other = simec(model, x, steps=30, step_size=0.02, seed=12)
    assert torch.equal(first.points_flat, second.points_flat)
    assert not torch.allclose(first.points_flat, other.points_flat)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = simec(model, x, steps=10, step_size=0.02, generator=g1)
    b = simec(model, x, steps=10, step_size=0.02, generator=g2)
    assert torch.equal(a.points_flat, b.points_flat) and a.seeds == b.seeds


@pytest.mark.parametrize("direction", ["isotropic", "eigenvector"])
def test_batch_equals_examples_walked_alone(direction):
    model = tanh_mlp()
    x = torch.rand(3, 6, dtype=torch.float64)
    batch = simec(model, x, steps=30, step_size=0.02, seed=7, direction=direction)
    assert batch.seeds == [7, 8, 9]
    for i in range(3):
        alone = simec(
            model, x[i : i + 1], steps=30, step_size=0.02, seed=7 + i, direction=direction
        )
        assert torch.allclose(alone.points_flat[:, 0], batch.points_flat[:, i], atol=1e-10)
        assert torch.allclose(alone.drift[:, 0], batch.drift[:, i], atol=1e-12)


def test_stopped_examples_stay_frozen_while_others_go_on():
    model = tanh_mlp()
    x = torch.rand(3, 6, dtype=torch.float64)
    free = simec(model, x, steps=60, step_size=0.05, seed=0)
    threshold = free.max_drift.sort().values[1].item() * 0.5  # at least 2 examples stop
    walk = simec(model, x, steps=60, step_size=0.05, seed=0, max_drift=threshold)
    stopped = [r == "max_drift" for r in walk.stop_reason]
    assert sum(stopped) >= 2
    for i, flag in enumerate(stopped):
        k = walk.stopped_at[i].item()
        if flag:
            assert k < 60 and walk.drift[k, i] > threshold
            assert torch.isnan(walk.drift[k + 1 :, i]).all() and (walk.rank[k + 1 :, i] == -1).all()
            assert walk.jacobian_evaluations[i].item() == k + 1
            assert torch.equal(walk.points_flat[-1, i], walk.final[i])
        # up to its stop, each example walks as in the unconstrained run
        assert torch.allclose(walk.drift[: k + 1, i], free.drift[: k + 1, i], atol=1e-12)


@pytest.mark.parametrize("direction", ["isotropic", "eigenvector"])
def test_direction_modes_stay_in_the_null_space(direction):
    model = tanh_mlp(m=2)
    x = torch.rand(3, 6, dtype=torch.float64)
    walk = simec(model, x, steps=50, step_size=0.01, direction=direction, seed=1)
    assert walk.kind == f"simec/{direction}"
    # every step is in the null space of A at its start: ||A dx|| ~ 0
    assert walk.pseudolength.max() < 1e-12
    assert walk.max_drift.max() < 1e-3  # second-order drift only
    assert walk.path_length.allclose(torch.full((3,), 0.5, dtype=torch.float64))


def test_eigenvector_steps_are_basis_vectors_with_sign_continuity_in_1d():
    # f(x) = tanh(a . x) in 2-D: one null direction; the walk keeps going one way
    a = torch.tensor([1.0, 2.0], dtype=torch.float64)
    walk = simec(
        lambda x: torch.tanh(x @ a).unsqueeze(1),
        torch.zeros(1, 2, dtype=torch.float64),
        steps=20,
        step_size=0.1,
        direction="eigenvector",
        seed=0,
    )
    steps = walk.points_flat[1:, 0] - walk.points_flat[:-1, 0]
    assert (steps @ a).abs().max() < 1e-12
    assert (steps @ steps[0] > 0).all()


def test_parity_mode_fixed_split():
    _, _, f = linear_classifier(n=8, m=3)
    x = torch.rand(2, 8, dtype=torch.float64)
    walk = simec(f, x, steps=30, step_size=0.1, parity=True, seed=0)
    assert walk.kind == "simec/parity" and walk.max_drift.max() < 1e-10
    # fewer null eigenvectors than the true null dimension (the authors' 774 < 775): still null
    fewer = simec(f, x, steps=30, step_size=0.1, parity=True, parity_split=4, seed=0)
    assert fewer.max_drift.max() < 1e-10
    # more than the null dimension: a range eigenvector is taken for null and f moves
    more = simec(f, x, steps=30, step_size=0.1, parity=True, parity_split=6, seed=0)
    assert more.max_drift.max() > 1e-3


def test_walk_metric_frozen_at_start_for_target_metric():
    # with G = e_t e_t^T only output t is held: the other outputs may move
    _, _, f = linear_classifier(n=5, m=3)
    x = torch.rand(2, 5, dtype=torch.float64)
    walk = simec(f, x, steps=50, step_size=0.1, output_metric="target", target=1, seed=0)
    assert (walk.outputs[:, :, 1] - walk.outputs[0, :, 1]).abs().max() < 1e-10
    assert walk.drift_euclidean.max() > 1e-2
    assert (walk.rank == 1).all() and walk.metric == "target"


def test_tuple_inputs_and_additional_forward_args():
    weight = torch.randn(2, 3, dtype=torch.float64)

    def f(x1, x2, scale):
        return (x1 @ weight + x2.sum(dim=(1, 2)).unsqueeze(1)) * scale

    x1, x2 = torch.rand(2, 2, dtype=torch.float64), torch.rand(2, 2, 2, dtype=torch.float64)
    scale = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    walk = simec(f, (x1, x2), steps=20, step_size=0.05, additional_forward_args=(scale,), seed=0)
    assert isinstance(walk, Walk) and isinstance(walk.start, tuple)
    assert walk.start[0].shape == (2, 2) and walk.start[1].shape == (2, 2, 2)
    assert walk.points[1].shape == (21, 2, 2, 2)
    assert isinstance(walk.displacement(), tuple)
    assert walk.max_drift.max() < 1e-10


def test_no_direction_when_the_null_space_is_trivial():
    weight = torch.tensor([[1.0, 2.0], [3.0, -1.0]], dtype=torch.float64)
    walk = simec(
        lambda x: x @ weight.T,
        torch.zeros(2, 2, dtype=torch.float64),
        steps=5,
        step_size=0.1,
        seed=0,
    )
    assert walk.stop_reason == ["no_direction", "no_direction"]
    assert walk.stopped_at.tolist() == [0, 0] and walk.num_steps == 0
    assert torch.equal(walk.final, walk.start)


def test_global_seed_reproduces_and_progress_bar_runs(capsys):
    model = tanh_mlp()
    x = torch.rand(2, 6, dtype=torch.float64)
    torch.manual_seed(123)
    first = simec(model, x, steps=5, step_size=0.02, progress=True)
    torch.manual_seed(123)
    second = simec(model, x, steps=5, step_size=0.02, progress=False)
    assert torch.equal(first.points_flat, second.points_flat) and first.seeds == second.seeds
    assert "simec/isotropic" in capsys.readouterr().err


def test_one_seed_per_example():
    model = tanh_mlp(n=6, m=2)
    x = torch.randn(3, 6, dtype=torch.float64)
    together = simec(model, x, steps=5, step_size=0.1, seed=[7, 7, 7])
    for i in range(3):
        alone = simec(model, x[i : i + 1], steps=5, step_size=0.1, seed=7)
        assert torch.allclose(together.points_flat[:, i], alone.points_flat[:, 0], atol=1e-12)
    with pytest.raises(ValueError, match="sequence of 3 non-negative ints"):
        simec(model, x, steps=1, seed=[1, 2])


def test_tuple_target_on_a_multidimensional_output():
    lin = torch.nn.Linear(4, 6).double().eval()

    def model(v):
        return lin(v).reshape(-1, 2, 3)

    x = torch.randn(2, 4, dtype=torch.float64)
    walk = simec(model, x, steps=20, step_size=0.05, output_metric="target", target=(1, 2), seed=0)
    selected = (walk.outputs[:, :, 5] - walk.outputs[0, :, 5]).abs().max()
    assert selected < 1e-12  # the target output (1, 2) is output 5 of the flattened 6
    assert (walk.outputs[:, :, :5] - walk.outputs[0, :, :5]).abs().max() > 1e-3
