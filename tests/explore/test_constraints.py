"""Domain boxes: validation, rounding tolerance, shortened steps, freezing versus clamping."""

import pytest
import torch
from torch import nn

from captum_simec.explore import Box, simec, simexp
from captum_simec.explore.constraints import ULPS, as_box
from captum_simec.zoo.datasets import load_mnist
from tests.explore.helpers import linear_classifier, tanh_mlp

SHAPE = (torch.Size([2]),)
CPU = torch.device("cpu")
# the usual MNIST normalisation, and its box computed the same way in Python floats
MEAN, STD = 0.1307, 0.3081
MNIST_BOX = ((0 - MEAN) / STD, (1 - MEAN) / STD)


def _bound(lower, upper, constraint="freeze"):
    return Box(lower, upper, constraint).bind(SHAPE, torch.float64, torch.device("cpu"))


def test_box_validation_names_domain():
    with pytest.raises(ValueError, match="domain.*lower > upper"):
        Box(1.0, 0.0)
    with pytest.raises(ValueError, match="domain"):
        Box(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match="constraint"):
        Box(0.0, 1.0, constraint="wrap")
    with pytest.raises(ValueError, match="finite"):
        Box(float("nan"), 1.0)
    with pytest.raises(ValueError, match="broadcast"):
        Box(torch.zeros(3), 1.0).bind(SHAPE, torch.float64, torch.device("cpu"))
    with pytest.raises(TypeError, match="domain"):
        as_box([0.0, 1.0])
    assert as_box((0.0, 1.0)).constraint == "freeze"
    assert "freeze" in repr(Box(0.0, torch.ones(2)))


def test_per_feature_and_tuple_bounds_flatten_in_input_order():
    box = Box((0.0, torch.tensor([[-1.0], [-2.0]])), (1.0, 5.0))
    bound = box.bind((torch.Size([2]), torch.Size([2, 2])), torch.float64, torch.device("cpu"))
    assert bound.lower.tolist() == [0.0, 0.0, -1.0, -1.0, -2.0, -2.0]
    assert bound.upper.tolist() == [1.0, 1.0, 5.0, 5.0, 5.0, 5.0]


def test_a_step_that_would_cross_a_bound_is_shortened_to_land_on_it():
    bound = _bound(0.0, 1.0)
    x = torch.tensor([[0.5, 0.9], [0.5, 0.5]], dtype=torch.float64)
    step = torch.tensor([[0.1, 0.2], [0.1, 0.1]], dtype=torch.float64)
    moved, fraction = bound.advance(x, step)
    assert moved[0].tolist() == [0.55, 1.0]  # half the step, exactly on the upper bound
    assert torch.allclose(fraction, torch.tensor([0.5, 1.0], dtype=torch.float64))
    assert torch.allclose(moved[1], x[1] + step[1])
    clipped, fraction = _bound(0.0, 1.0, "clamp").advance(x, step)
    assert torch.allclose(clipped[0], torch.tensor([0.6, 1.0], dtype=torch.float64))
    assert fraction.tolist() == [0.0, 1.0]
    leaving = bound.leaving(x, step)
    assert leaving.tolist() == [[False, True], [False, False]]
    outward = bound.outward(
        torch.tensor([[0.0, 1.0]], dtype=torch.float64),
        torch.tensor([[-1.0, -1.0]], dtype=torch.float64),
    )
    assert outward.tolist() == [[True, False]]


def test_start_outside_the_box_is_refused_with_where_and_how_far():
    x = torch.full((2, 6), 0.5, dtype=torch.float64)
    x[1, 4] = 1.5
    with pytest.raises(
        ValueError,
        match=r"outside the `domain` box: example 1, feature \(4,\): 0.5 above the upper",
    ):
        simec(tanh_mlp(), x, steps=2, domain=Box(0.0, 1.0))


def test_the_refusal_names_the_input_and_position_of_tuple_inputs():
    shapes = (torch.Size([2]), torch.Size([2, 3]))
    bound = Box(0.0, (1.0, 2.0)).bind(shapes, torch.float32, CPU)
    flat = torch.full((3, 8), 0.5)
    flat[2, 2 + 4] = -0.25  # input 1, position (1, 1)
    with pytest.raises(
        ValueError, match=r"example 2, feature \(1, 1\) of input 1: 0.25 below the lower bound 0"
    ):
        bound.check_inside(flat)


def _ulps_outside(bound, ulps, dtype, direction):
    """`bound` in `dtype`, moved `ulps` representable steps towards `direction` (+-inf)."""
    value = torch.as_tensor(bound, dtype=dtype)
    for _ in range(ulps):
        value = torch.nextafter(value, torch.tensor(direction, dtype=dtype))
    return value


BOUND_FORMS = {
    "python floats": lambda lo, hi, dtype: (lo, hi),
    "0-d float64 tensors": lambda lo, hi, dtype: (torch.tensor(lo), torch.tensor(hi)),
    "per-feature tensors in the input's dtype": lambda lo, hi, dtype: (
        torch.tensor([lo, -1.0, 10.0], dtype=dtype),
        torch.tensor([hi, 1.0, 1000.0], dtype=dtype),
    ),
}


@pytest.mark.parametrize("form", list(BOUND_FORMS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_start_points_a_few_ulps_outside_are_clipped_onto_the_bound(dtype, form):
    lower, upper = BOUND_FORMS[form](*MNIST_BOX, dtype)
    bound = Box(lower, upper).bind((torch.Size([3]),), dtype, CPU)
    x = bound.lower.clone().repeat(2, 1)  # example 0 on the lower bounds, example 1 above
    x[1] = bound.upper
    for i in range(3):  # two ulps outside every bound, of each feature's own magnitude
        x[0, i] = _ulps_outside(bound.lower[i], 2, dtype, -torch.inf)
        x[1, i] = _ulps_outside(bound.upper[i], 2, dtype, torch.inf)
    assert ((x < bound.lower) | (x > bound.upper)).all()  # outside, not merely on
    original = x.clone()
    clipped = bound.check_inside(x)
    assert torch.equal(clipped[0], bound.lower) and torch.equal(clipped[1], bound.upper)
    assert torch.equal(x, original)  # the caller's points are left alone

    far = x.clone()
    far[1, 1] = bound.upper[1] + 1e-4 * (bound.upper[1] - bound.lower[1])
    with pytest.raises(ValueError, match=r"example 1, feature \(1,\): 0.000[0-9]+ above"):
        bound.check_inside(far)


def test_the_tolerance_follows_the_coarser_precision_of_inputs_and_bounds():
    lo, hi = MNIST_BOX
    gap = 1e-9  # far above float64 rounding at this scale, far below float32 rounding
    assert 10 * torch.finfo(torch.float64).eps * hi < gap < torch.finfo(torch.float32).eps * hi
    shape = (torch.Size([1]),)
    bound = Box(lo, hi).bind(shape, torch.float64, CPU)
    with pytest.raises(ValueError, match="below the lower bound"):
        bound.check_inside(bound.lower.view(1, 1) - gap)
    bound = Box(lo, hi).bind(shape, torch.float32, CPU)  # float32 inputs: within rounding
    assert bound.check_inside(bound.lower.view(1, 1) - gap).item() == bound.lower.item()
    # bounds known only to float32 precision forgive as much, even for float64 inputs
    bound = Box(torch.tensor(lo, dtype=torch.float32), hi).bind(shape, torch.float64, CPU)
    assert bound.check_inside(bound.lower.view(1, 1) - gap).item() == bound.lower.item()
    assert bound.tolerance.item() == pytest.approx(ULPS * torch.finfo(torch.float32).eps * hi)


def _digits_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.Tanh(), nn.Linear(16, 10)).eval()


def _walk_normalised_images(pixels):
    images = (pixels - 0.1307) / 0.3081  # float32, as users normalise MNIST
    box = Box(*MNIST_BOX)
    lower, upper = (
        box.bind((images.shape[1:],), torch.float32, CPU).check_inside(images.flatten(1)).aminmax()
    )
    walk = simec(_digits_model(), images, steps=3, step_size=0.05, domain=box, seed=0)
    points = walk.points_flat
    assert walk.stop_reason == ["steps"] * images.shape[0]
    assert points.min() >= lower and points.max() <= upper
    return images


def test_mnist_normalised_in_float32_walks_inside_its_box():
    pixels = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    pixels[:, :, :4] = 0.0  # background
    pixels[:, :, 10:12] = 1.0  # saturated strokes
    images = _walk_normalised_images(pixels)
    lower32, upper32 = torch.tensor(MNIST_BOX).float()
    assert (images < lower32).any() and (images > upper32).any()  # the rounding case


def test_real_mnist_normalised_in_float32_walks_inside_its_box(shared_data):
    pixels, _ = load_mnist(shared_data, normalise=False)
    images = _walk_normalised_images(pixels[:4])
    assert (images < torch.tensor(MNIST_BOX[0]).float()).any()


def test_freeze_walk_stays_on_the_class_clamp_walk_does_not():
    model = tanh_mlp(n=6, m=1)
    x = torch.rand(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x[:, :3] = 0.002  # near the face x_0 = x_1 = x_2 = 0
    common = {"steps": 400, "step_size": 0.005, "seed": 0}
    frozen = simec(model, x, domain=Box(0.0, 1.0, "freeze"), **common)
    clamped = simec(model, x, domain=Box(0.0, 1.0, "clamp"), **common)
    ratio = clamped.max_drift / frozen.max_drift
    print(
        f"\nfreeze vs clamp, max drift: {frozen.max_drift.tolist()} vs "
        f"{clamped.max_drift.tolist()}; ratio {ratio.tolist()}"
    )
    assert (ratio > 10).all()
    for walk in (frozen, clamped):
        assert walk.points_flat.min() >= 0.0 and walk.points_flat.max() <= 1.0
    # freezing the coordinates a step would carry out keeps every step's full length (no
    # stall near the face), and the coordinates near the face still move
    assert torch.allclose(frozen.path_length, torch.full((4,), 400 * 0.005, dtype=torch.float64))
    assert (frozen.max_abs_flat[:, :3] > 1e-3).all()
    assert frozen.stop_reason == ["steps"] * 4


def test_lower_equal_upper_pins_a_feature_and_the_corrector_respects_the_box():
    model = tanh_mlp(n=6, m=1)
    x = torch.full((2, 6), 0.5, dtype=torch.float64)
    lower, upper = torch.zeros(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)
    lower[0] = upper[0] = 0.5
    walk = simec(
        model, x, steps=100, step_size=0.02, domain=Box(lower, upper), corrector=True, seed=0
    )
    assert (walk.points_flat[:, :, 0] == 0.5).all()
    assert walk.points_flat.min() >= 0.0 and walk.points_flat.max() <= 1.0
    assert walk.max_drift.max() < 1e-10


def test_a_one_dimensional_class_ends_on_the_box_with_reason_domain():
    # f = x0 + x1 on [0, 1]^2: the class of (0.5, 0.5) is the segment to the corners (0, 1)
    # and (1, 0); sign continuity walks to one corner, lands on it, then the box blocks it
    weight = torch.tensor([1.0, 1.0], dtype=torch.float64)
    walk = simec(
        lambda z: (z @ weight).unsqueeze(1),
        torch.full((1, 2), 0.5, dtype=torch.float64),
        steps=50,
        step_size=0.2,
        domain=Box(0.0, 1.0),
        seed=0,
    )
    assert walk.stop_reason == ["domain"] and walk.stopped_at.item() == 4
    final = sorted(walk.final[0].tolist())
    assert final[0] == 0.0 and final[1] == pytest.approx(1.0, abs=1e-12)
    assert walk.shortened_steps.item() == 1
    assert walk.path_length.item() == pytest.approx(0.5**0.5)
    assert (walk.points_flat.sum(dim=-1) - 1).abs().max() < 1e-12


def test_parity_clamps_even_with_a_freeze_box():
    _, _, f = linear_classifier(n=4, m=1)
    x = torch.full((1, 4), 0.001, dtype=torch.float64)
    walk = simec(f, x, steps=50, step_size=0.05, parity=True, domain=Box(0.0, 1.0), seed=0)
    assert walk.points_flat.min() >= 0.0
    assert walk.max_drift.item() > 1e-6  # clamping moved the point off the class


def test_eigenvector_mode_respects_the_box():
    model = tanh_mlp(n=6, m=1)
    x = torch.rand(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x[:, :2] = 0.001
    walk = simec(
        model, x, steps=200, step_size=0.005, direction="eigenvector", domain=Box(0.0, 1.0), seed=0
    )
    assert walk.points_flat.min() >= 0.0 and walk.points_flat.max() <= 1.0
    assert walk.max_drift.max() < 1e-3
    assert walk.pseudolength.max() < 1e-10  # frozen coordinates never break null steps


def test_leave_class_follows_the_gradient_projected_on_the_free_coordinates():
    # margin gradient (-1, -1) pushes x0 below 0 at the start; x0 stays frozen on the face
    weight = torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    x = torch.tensor([[0.0, 0.5]], dtype=torch.float64)
    walk = simexp(
        lambda z: z @ weight.T,
        x,
        mode="leave_class",
        steps=100,
        step_size=0.05,
        domain=Box(0.0, 1.0),
        seed=0,
    )
    assert walk.stop_reason == ["domain"]  # the box blocks the way down before the boundary
    assert walk.final[0].tolist() == [0.0, 0.0]
    lowered = simexp(
        lambda z: z @ weight.T,
        x,
        mode="leave_class",
        steps=100,
        step_size=0.05,
        domain=Box(torch.tensor([0.0, -1.0]), 1.0),
        seed=0,
    )
    assert lowered.stop_reason == ["class_change"]
    assert lowered.final[0, 0].item() == 0.0
    assert lowered.final[0, 1].item() == pytest.approx(0.0, abs=1e-6)


def test_many_coordinates_near_a_bound_do_not_stall_the_walk():
    # 100 of 200 coordinates a hair above 0: shortening every step to the first bound met
    # would move almost nothing; freezing the leaving coordinates keeps the full step length
    model = tanh_mlp(n=200, m=3)
    x = torch.rand(2, 200, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x[:, ::2] = 1e-5
    walk = simec(model, x, steps=50, step_size=0.05, domain=Box(0.0, 1.0), seed=0)
    assert torch.allclose(walk.path_length, torch.full((2,), 2.5, dtype=torch.float64))
    assert walk.points_flat.min() >= 0.0
    assert walk.max_drift.max() < 1e-3
