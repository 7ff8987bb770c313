"""The walk loop: the policy hooks it calls (observe, adaptive step lengths), in its own terms."""

import torch

from captum_simec.explore._directions import MarginPolicy, NullPolicy, RangePolicy
from captum_simec.explore._walker import run_walk
from captum_simec.explore.options import WalkOptions
from captum_simec.geometry import pullback_spectrum
from tests.explore.helpers import linear_classifier, tanh_mlp


class Observed:
    """Mixin that keeps every `observe` call (clones of its tensors, the spectra)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.calls = []

    def observe(self, rows, here, new, spectrum_here, spectrum_new):
        self.calls.append((rows.clone(), here.clone(), new.clone(), spectrum_here, spectrum_new))


class ObservedMargin(Observed, MarginPolicy):
    pass


class ObservedRange(Observed, RangePolicy):
    pass


def test_observe_sees_every_accepted_step_with_its_end_points_and_spectra():
    _, _, f = linear_classifier(n=6, m=3, seed=1)
    x = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    policy = ObservedMargin("leave_class", None, 1e-9, True)
    walk = run_walk(f, x, policy, WalkOptions(steps=400, step_size=0.05, seed=0))
    assert walk.stop_reason == ["class_change"] * 4
    assert len(policy.calls) == int(walk.stopped_at.max())
    position = x.clone()
    for step, (rows, here, new, spectrum_here, spectrum_new) in enumerate(policy.calls, 1):
        assert torch.equal(rows, (walk.stopped_at >= step).nonzero().flatten())
        assert torch.equal(here, position[rows])  # each step starts where the last one ended
        assert torch.allclose(spectrum_here.outputs, f(here), atol=1e-12)
        assert torch.allclose(spectrum_new.outputs, f(new), atol=1e-12)
        position[rows] = new
    assert torch.equal(position, walk.points_flat[-1])  # the last `new` is the refined stop


def test_observe_integrates_the_target_gradient_along_the_path():
    """The trapezoidal rule over the observed steps recovers f_t(x_end) - f_t(x_0) (the
    completeness a path-integrated score relies on), to O(step^2) on a smooth model."""
    model = tanh_mlp(n=6, m=3, seed=2)
    x = torch.rand(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    target = torch.tensor([0, 1, 2])
    policy = ObservedRange("directed", False, None)
    options = WalkOptions(steps=60, step_size=0.01, output_metric="target", target=target, seed=0)
    walk = run_walk(model, x, policy, options)
    integral = torch.zeros(3, dtype=torch.float64)
    for rows, here, new, spectrum_here, spectrum_new in policy.calls:
        gradient = (spectrum_here.factor[:, 0] + spectrum_new.factor[:, 0]) / 2
        integral[rows] += (gradient * (new - here)).sum(dim=1)
    change = (model(walk.final) - model(x)).gather(1, target[:, None])[:, 0]
    assert change.abs().min() > 0.05  # the walk moved the target output
    assert torch.allclose(integral, change, rtol=1e-5, atol=1e-9)


class Varying(NullPolicy):
    """Null steps whose length depends on the example and the step (adaptive lengths)."""

    def __init__(self):
        super().__init__("isotropic")
        self.count = 0

    def propose(self, spectrum, view, context):
        self.count += 1
        lengths = 0.01 * (1 + view.rows.double()) * (1 + self.count % 3)
        return spectrum.null_direction(view.noise) * lengths[:, None]


def test_the_walk_takes_the_step_lengths_a_policy_proposes():
    weight, _, f = linear_classifier(n=5, m=2, seed=3)
    x = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    walk = run_walk(f, x, Varying(), WalkOptions(steps=9, seed=0))
    steps = walk.points_flat.diff(dim=0).norm(dim=2)  # (9, batch): every point is saved
    expected = (
        0.01
        * (1 + torch.arange(3.0, dtype=torch.float64))
        * torch.tensor([(1 + k % 3) for k in range(1, 10)], dtype=torch.float64).unsqueeze(1)
    )
    assert torch.allclose(steps, expected, atol=1e-12)
    assert torch.allclose(walk.path_length, expected.sum(dim=0), atol=1e-12)
    assert walk.max_drift.max() < 1e-12  # null steps of a linear model: the class is exact
    # the records follow the steps: pseudolength 0 on the class, spectra at every point
    assert walk.pseudolength.max() < 1e-12
    spectrum = pullback_spectrum(f, walk.final)
    assert torch.equal(walk.rank[-1], spectrum.rank)
    assert torch.allclose(walk.smallest_retained[-1], spectrum.smallest_retained)
