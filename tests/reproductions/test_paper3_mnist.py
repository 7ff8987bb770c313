"""Paper III §7.2 on real MNIST: walks inside and across the classes of the paper's CNN.

Targets (docs/method.md §5): the CNN with a log-softmax head trained by one epoch of SGD
(lr 0.01, momentum 0.5); SiMEC 1,000 steps of 0.05 from test images keeps the predicted class
at every saved point with nearly constant probabilities; SiMExp 5,000 steps of 0.005 changes
the probabilities; at the start the pullback metric has 9 non-null and 775 null eigenvalues.

Data: the 10,000 MNIST test images of ../shared/data/mnist (the 60k training split is not
available), 8,000 for training and 2,000 for testing. The paper's recipe trained on 60,000
images; on 8,000 one epoch is 125 SGD steps and the network is barely trained (measured test
accuracy 0.14 with seed 0, near chance; its walks are then trivial: it predicts the same class
with p = 0.11 everywhere). So the accuracy of the paper's recipe is reported, and the walks run
on a second, clearly labelled configuration that trains longer (5 epochs, lr 0.05, momentum
0.9; 0.96 test accuracy).

Walks stay in the MNIST pixel box (`datasets.mnist_domain()`) with the "freeze" constraint,
in float32 like the paper. Run with ``-s`` to see the measured numbers.
"""

from __future__ import annotations

import copy
import time

import pytest
import torch

from captum_simec.explore import Box, simec, simexp
from captum_simec.geometry import pullback_spectrum
from captum_simec.zoo import PaperMNISTCNN, accuracy, mnist_domain, mnist_split, train_classifier

PAPER = {"epochs": 1, "lr": 0.01, "momentum": 0.5}  # the paper's recipe
LONGER = {"epochs": 5, "lr": 0.05, "momentum": 0.9}  # ours: trains to ~0.96 on 8,000 images
START = slice(0, 4)  # the first four test images (labels 6, 7, 3, 1 with the seed-0 split)
LOW, HIGH = mnist_domain()


def _show(values: torch.Tensor) -> str:
    """A tensor of per-example numbers as a short string."""
    return "[" + ", ".join(f"{float(v):.3g}" for v in values.flatten()) + "]"


def _box() -> Box:
    return Box(LOW, HIGH, constraint="freeze")


def _max_probability_change(walk) -> torch.Tensor:
    """Per example, the largest |p_k(c) - p_0(c)| over saved points k and classes c."""
    p = walk.probabilities()
    return (p - p[0]).abs().amax(dim=(0, 2))


def _first_class_change(walk) -> list[int | None]:
    """Per example, the first saved step whose predicted class differs from the start."""
    changed = walk.predictions != walk.predictions[0]
    return [
        int(walk.saved_steps[column.nonzero()[0, 0]]) if column.any() else None
        for column in changed.T
    ]


@pytest.fixture(scope="module")
def mnist(shared_data):
    return mnist_split(train_size=8000, seed=0, root=shared_data)


@pytest.fixture(scope="module")
def models(mnist):
    """Both configurations, trained once per module: {name: (model, accuracy, seconds)}."""
    trained = {}
    for name, recipe in (("paper", PAPER), ("longer", LONGER)):
        started = time.perf_counter()
        model = PaperMNISTCNN(head="log_softmax", seed=0)
        train_classifier(
            model, mnist.x_train, mnist.y_train, batch_size=64, seed=0, num_threads=1, **recipe
        )
        seconds = time.perf_counter() - started
        trained[name] = (model, accuracy(model, mnist.x_test, mnist.y_test), seconds)
    return trained


@pytest.fixture(scope="module")
def starts(mnist):
    return mnist.x_test[START]


def test_training_accuracy_of_the_paper_recipe_and_of_a_longer_one(mnist, models):
    assert mnist.x_train.shape == (8000, 1, 28, 28) and mnist.x_test.shape[0] == 2000
    for name, recipe in (("paper", PAPER), ("longer", LONGER)):
        _, acc, seconds = models[name]
        print(f"\n[MNIST] {name} recipe {recipe}: test accuracy {acc:.4f} on 2,000 images")
        print(f"[MNIST] {name} recipe: trained in {seconds:.1f} s on 8,000 images")
    # The paper's recipe on 8,000 images (125 SGD steps) is far from converged: we only ask
    # that it beats chance; the longer configuration must be a real digit classifier.
    assert models["paper"][1] > 0.10
    assert models["longer"][1] >= 0.93


def test_spectrum_at_the_start_has_9_non_null_and_775_null_directions(mnist, models):
    x = mnist.x_test[:8]
    for name in ("paper", "longer"):
        spectrum = pullback_spectrum(models[name][0], x)
        print(f"\n[MNIST] {name}: rank {spectrum.rank.tolist()}, null {spectrum.null_dim.tolist()}")
        assert spectrum.rank.tolist() == [9] * 8
        assert spectrum.null_dim.tolist() == [775] * 8
        eigenvalues = spectrum.eigenvalues  # the 10 largest eigenvalues of g, descending
        assert eigenvalues.shape == (8, 10)
        print(f"[MNIST] {name}: 9th / 10th eigenvalue {eigenvalues[:, 8].min():.3g} / ", end="")
        print(f"{eigenvalues[:, 9].max():.3g} (min / max over the images)")
    # cross-check with the papers' construction: eigh of the dense 784 x 784 metric, float64
    model = copy.deepcopy(models["longer"][0]).double()
    jacobian = torch.autograd.functional.jacobian(lambda z: model(z).squeeze(0), x[:1].double())
    jacobian = jacobian.reshape(10, 784)
    dense = torch.linalg.eigvalsh(jacobian.T @ jacobian).flip(0)
    gap = dense[8] / dense[0], dense[9] / dense[0]
    print(f"[MNIST] dense eigh: lambda_9 / lambda_1 = {gap[0]:.3g}, ", end="")
    print(f"lambda_10 / lambda_1 = {gap[1]:.3g}")
    assert gap[0] > 1e-8 and gap[1] < 1e-12
    assert int((dense > 1e-10 * dense[0]).sum()) == 9


@pytest.mark.slow
def test_simec_keeps_the_prediction_for_1000_steps(models, starts):
    """SiMEC, 1,000 steps of 0.05, with and without the corrector (longer-trained model)."""
    model = models["longer"][0]
    start_class = model(starts).argmax(dim=1)
    walks = {}
    for corrector in (True, False):
        started = time.perf_counter()
        walk = simec(
            model,
            starts,
            steps=1000,
            step_size=0.05,
            domain=_box(),
            corrector=corrector,
            save_every=50,
            seed=0,
            progress=False,
        )
        seconds = time.perf_counter() - started
        walks[corrector] = walk
        label = "with" if corrector else "without"
        change = _max_probability_change(walk)
        print(f"\n[MNIST SiMEC] {label} corrector: {seconds:.1f} s for 1,000 steps x 4 images")
        print(f"[MNIST SiMEC] {label}: max |delta p| per image {_show(change)}")
        print(f"[MNIST SiMEC] {label}: max drift of log p {_show(walk.max_drift)}")
        print(f"[MNIST SiMEC] {label}: path length {_show(walk.path_length)}")
        displacement = (walk.points_flat[-1] - walk.points_flat[0]).norm(dim=1)
        print(f"[MNIST SiMEC] {label}: L2 displacement {_show(displacement)}")
        print(f"[MNIST SiMEC] {label}: corrector updates {walk.corrector_iterations.tolist()}")
        # the predicted class is unchanged at every saved point, re-evaluated independently
        assert walk.saved_steps.tolist() == list(range(0, 1001, 50))
        assert (walk.predictions == start_class).all()
        saved = walk.points.reshape(-1, 1, 28, 28)
        with torch.no_grad():
            again = model(saved).argmax(dim=1).reshape(walk.points_flat.shape[:2])
        assert (again == start_class).all()
        # the walk really travelled (not stalled on the box) and stayed in the box
        assert walk.stop_reason == ["steps"] * 4
        assert (walk.path_length > 0.95 * 1000 * 0.05).all()
        assert (displacement > 1.0).all()
        assert walk.points_flat.min() >= LOW - 1e-6 and walk.points_flat.max() <= HIGH + 1e-6
        assert (walk.rank == 9).all()  # the log-softmax head: rank 9 at every point
    # with the corrector the probabilities stay put (the target: max change below 1e-2)
    assert _max_probability_change(walks[True]).max() < 1e-2
    assert walks[True].max_drift.max() < walks[False].max_drift.max()


@pytest.mark.slow
def test_simexp_random_walk_changes_the_probabilities(models, starts):
    """SiMExp "random" (isotropic in the range space, the paper's walk), 5,000 steps of 0.005.

    Runs the paper's full 5,000 steps (about a minute for 4 images on one core). The authors'
    own MNIST "SiMExp" (one random null and one random non-null eigenvector of the dense
    784 x 784 metric per step, `simexp(..., parity=True)`) is not run: an `eigh` of the dense
    metric per image and step makes 20,000 of them, far beyond this test's time budget.
    """
    model = models["longer"][0]
    started = time.perf_counter()
    walk = simexp(
        model,
        starts,
        steps=5000,
        step_size=0.005,
        mode="random",
        domain=_box(),
        save_every=25,
        seed=0,
        progress=False,
    )
    seconds = time.perf_counter() - started
    change = _max_probability_change(walk)
    start_p = walk.probabilities()[0].amax(dim=1)
    print(f"\n[MNIST SiMExp random] {seconds:.1f} s for 5,000 steps x 4 images")
    print(f"[MNIST SiMExp random] start max probability {_show(start_p)}")
    print(f"[MNIST SiMExp random] max |delta p| per image {_show(change)}")
    print(f"[MNIST SiMExp random] max drift of the log-probabilities {_show(walk.max_drift)}")
    print(f"[MNIST SiMExp random] first class change (saved every 25) {_first_class_change(walk)}")
    assert walk.stop_reason == ["steps"] * 4
    # the output moves: the log-probabilities by O(1) (a SiMEC walk with the corrector: < 1e-3)
    assert (walk.max_drift > 0.3).all()
    assert change.max() > 5e-4


@pytest.mark.slow
def test_simexp_leave_class_changes_the_prediction(models, starts):
    """SiMExp "leave_class" (down the decision margin), at most 5,000 steps of 0.005."""
    model = models["longer"][0]
    started = time.perf_counter()
    walk = simexp(
        model,
        starts,
        steps=5000,
        step_size=0.005,
        mode="leave_class",
        domain=_box(),
        save_every=25,
        seed=0,
        progress=False,
    )
    seconds = time.perf_counter() - started
    probabilities = walk.probabilities()
    start_class = walk.start_class
    rows = torch.arange(4)
    p_start_class_final = probabilities[-1, rows, start_class]
    distance = (walk.points_flat[-1] - walk.points_flat[0]).norm(dim=1)
    print(f"\n[MNIST SiMExp leave_class] {seconds:.1f} s")
    print(f"[MNIST SiMExp leave_class] class change at step {walk.stopped_at.tolist()}")
    print(f"[MNIST SiMExp leave_class] {start_class.tolist()} -> {walk.final_class.tolist()}")
    start_p = probabilities[0, rows, start_class]
    print(f"[MNIST SiMExp leave_class] start-class probability {_show(start_p)}")
    print(f"[MNIST SiMExp leave_class] ... at the end {_show(p_start_class_final)}")
    print(f"[MNIST SiMExp leave_class] L2 distance to the boundary {_show(distance)}")
    assert walk.stop_reason == ["class_change"] * 4
    assert walk.class_changed.all()
    assert (walk.stopped_at < 5000).all()
    assert (_max_probability_change(walk) > 0.3).all()
    assert (p_start_class_final <= 0.5 + 1e-4).all()
