# %% [markdown]
# # Walks inside and across the classes of a network
#
# A network `f` pulls the output metric `G` back to its input space: `g(x) = J(x)^T G J(x)`,
# with `J` the Jacobian. Directions in the **null space** of `g` leave the output unchanged to
# first order; directions in its **range space** change it. Two inputs are *equivalent* when
# a path along which `f` stays constant joins them: the equivalence class of `x` is a piece of
# the level set `f^{-1}(f(x))`, of dimension `n - rank g` where the rank is constant.
#
# * **SiMEC** walks inside the class: each step `x <- x + delta u` with `u` a random unit
#   vector of the null space (an optional Gauss-Newton *corrector* removes the O(delta^2)
#   drift that first-order steps accumulate).
# * **SiMExp** walks across classes: the same steps along the range space, at random or down
#   the decision margin until the predicted class changes.
#
# This tutorial retells the three experiments of Benfenati & Marta, paper III, §7: toy
# planes and lines, MNIST images that keep their prediction while they change, and the set
# of operating conditions of a power plant that give the same output. It reads the real data
# in `../shared/data` when present, and otherwise falls back to scikit-learn's digits and to
# a synthetic power plant. Figures go to `$CAPTUM_SIMEC_TUTORIAL_OUT` (default: a fresh
# temporary folder). It runs in about half a minute on two CPU cores; some walks are
# shorter than in the paper (and than in `tests/reproductions`), as said where they are.

# %%
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from captum_simec import zoo
from captum_simec.explore import Box, preimage, simec, simexp
from captum_simec.geometry import pullback_spectrum
from captum_simec.viz import plot_class_scatter, plot_image_strip, plot_traces

torch.set_num_threads(1)  # small models run fastest on one thread of a shared CPU
OUT = Path(os.environ.get("CAPTUM_SIMEC_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="walks_"))
OUT.mkdir(parents=True, exist_ok=True)
BEGIN = time.perf_counter()


def save(figure: Figure, name: str) -> None:
    path = OUT / name
    figure.savefig(path, dpi=90)
    print(f"  figure: {path}")


# %% [markdown]
# ## 1. Toy networks: planes, lines and a dead region (§7.1)
#
# For `f(x) = act(a . x)` the Jacobian is `act'(a . x) a^T`: rank 1 wherever `act' != 0`, with
# null space `a^⊥`. So the class of a point is the hyperplane `a . x = const` through it: a
# plane in 3-D, a line in 2-D. With `a = (1, -1, 1)` and a ReLU, the walk from
# (1.85, 1.3, 1.5) must stay on the plane `x - y + z = 2.05`.

# %%
relu_3d = zoo.ToyNet([1.0, -1.0, 1.0], activation="relu")
start = torch.tensor([[1.85, 1.3, 1.5]], dtype=torch.float64)
walk = simec(relu_3d, start, steps=1000, step_size=0.01, seed=0, progress=False)
invariant = walk.points_flat[:, 0] @ relu_3d.weights
print(f"ReLU 3-D: x - y + z in [{invariant.min():.12f}, {invariant.max():.12f}]")
print(f"  rank along the walk: {sorted(set(walk.rank[:, 0].tolist()))}, ", end="")
print(f"displacement {walk.displacement().norm():.3f} after a path of {walk.path_length[0]:.1f}")
save(plot_class_scatter(walk, dims=(0, 1, 2), feature_names=["x", "y", "z"]), "toy_relu_3d.png")

# %% [markdown]
# With a leaky ReLU and `a = (1, -1)` the class of (1.85, 1.3) is the line `x - y = 0.55`.
# The null space is one-dimensional; SiMEC keeps the sign of its direction from step to step,
# so the walk travels along the line instead of jittering on it: `K` steps of `delta` cover
# `K delta`. (The paper takes 10,000 steps of 0.001; here 2,000, which cover 2.0.) The grey
# line is the exact level set `x - y = 0.55`.

# %%
leaky = zoo.ToyNet([1.0, -1.0], activation="leaky_relu", negative_slope=0.01)
start = torch.tensor([[1.85, 1.3]], dtype=torch.float64)
walk = simec(leaky, start, steps=2000, step_size=0.001, seed=0, save_every=20, progress=False)
gap = (walk.points_flat[:, 0, 0] - walk.points_flat[:, 0, 1] - 0.55).abs().max()
print(f"leaky ReLU 2-D: max |x - y - 0.55| = {gap:.2e}, ", end="")
print(f"distance travelled {walk.displacement().norm():.4f}")
save(
    plot_class_scatter(walk, level_set=lambda x, y: x - y, feature_names=["x", "y"]),
    "toy_leaky_line.png",
)

# %% [markdown]
# A plain ReLU has a *dead* region: where `a . x < 0` the output is 0 and `g = 0`, so every
# direction is null and the class of (-1.85, 1.3) is the whole half-plane `x < y`: a class of
# full dimension. A random walk diffuses in it until it crosses `x = y`, where the rank jumps
# from 0 to 1; with `on_rank_change="stop"` it stops there.

# %%
relu_2d = zoo.ToyNet([1.0, -1.0], activation="relu")
start = torch.tensor([[-1.85, 1.3]], dtype=torch.float64)
walk = simec(
    relu_2d, start, steps=500, step_size=0.5, seed=2, on_rank_change="stop", progress=False
)
print(f"dead region: rank at the start {int(walk.rank[0, 0])}, stopped by ", end="")
print(f"'{walk.stop_reason[0]}' after {int(walk.stopped_at[0])} steps at {walk.final[0].tolist()}")
figure = plot_class_scatter(walk, feature_names=["x", "y"])
figure.axes[0].axline((0.0, 0.0), slope=1.0, color="grey", ls="--", label="x = y (rank 0 | 1)")
figure.axes[0].legend(fontsize=8)
save(figure, "toy_relu_dead_region.png")

# %% [markdown]
# ## 2. MNIST: images that keep their prediction while they change (§7.2)
#
# The paper's CNN (two convolutions with average pooling and ReLU, three dense layers, a
# log-softmax head). A log-softmax output cannot move along the all-ones direction, so
# `rank g <= 9` and the class of a 784-pixel image has dimension at least 775 (more where
# hidden ReLU units are dead at the image: fewer directions then move the output).
#
# With the MNIST test split at hand we train on 8,000 of its images. The paper's recipe (one
# epoch, lr 0.01, momentum 0.5) is far too short for 8,000 images (it reaches about 14 %
# test accuracy), so we train 5 epochs at lr 0.05, momentum 0.9. Without the data, the CNN
# is trained on scikit-learn's 8x8 digits upsampled to 28x28. Either way the network is
# created and trained in float64 and analysed as a float32 copy (`float64=True`): trained in
# float32 it would differ from one CPU to the next, and so would every number below.

# %%
try:
    split = zoo.mnist_split(train_size=8000, seed=0)
    cnn = zoo.train_classifier(
        lambda: zoo.PaperMNISTCNN(head="log_softmax", seed=0),
        split.x_train,
        split.y_train,
        epochs=5,
        lr=0.05,
        momentum=0.9,
        num_threads=1,
        float64=True,  # built and trained in float64 (the same on every CPU), used in float32
    )
except FileNotFoundError:
    cnn, split = zoo.fit_digits_cnn(seed=0)
low, high = split.domain
print(f"{split.name}: test accuracy {zoo.accuracy(cnn, split.x_test, split.y_test):.3f}")
# step sizes are given for MNIST's normalised pixels; scale them to the data's pixel range
scale = (high - low) / (zoo.mnist_domain()[1] - zoo.mnist_domain()[0])
images = split.x_test[:2]
spectrum = pullback_spectrum(cnn, images)
print(f"rank {spectrum.rank.tolist()}, null dimension {spectrum.null_dim.tolist()}")
print(
    f"spectral gap {[f'{g:.3g}' for g in spectrum.spectral_gap.tolist()]}, rank margin "
    f"{[f'{m:.3g}' for m in spectrum.rank_margin.tolist()]} (near 1: a close call)"
)

# %% [markdown]
# **SiMEC.** Steps of 0.05 (normalised pixels) inside the class, in the pixel box: a
# coordinate on a bound that a step would push out is frozen for that step and the null
# direction is recomputed from the other pixels. The paper takes 1,000 steps; here 300
# (the reproduction test runs the full 1,000). The strip shows the image every few dozen
# steps with its predicted class and probability: the pixels change, the prediction does not.

# %%
walk = simec(
    cnn,
    images,
    steps=300,
    step_size=0.05 * scale,
    domain=Box(low, high),
    corrector=True,
    save_every=25,
    seed=0,
    progress=False,
)
p = walk.probabilities()
moved = walk.points_flat[-1] - walk.points_flat[0]
print(
    f"SiMEC: class kept at every saved point: {bool((walk.predictions == walk.start_class).all())}"
)
print(f"  max probability change {(p - p[0]).abs().max():.2e}, ", end="")
print(f"max log-probability drift {walk.max_drift.max():.2e}")
print(f"  L2 displacement {[round(float(v), 3) for v in moved.norm(dim=1)]}, ", end="")
print(f"largest pixel change {[round(float(v), 3) for v in moved.abs().amax(dim=1)]}")
save(plot_image_strip(walk, example=0), "mnist_simec_strip.png")

# %% [markdown]
# The change is spread over hundreds of pixels (a random walk in a class of 775 dimensions
# or more), so each pixel moves little: the image is "the same digit", and it is a different
# image.
#
# **SiMExp.** Now the walk goes down the decision margin `f_c - max_{j != c} f_j` (mode
# `"leave_class"`, steps of 0.005) until the predicted class changes; the crossing is refined
# by bisection. The traces show the output drifting away while the rank stays 9.

# %%
walk = simexp(
    cnn,
    images,
    steps=3000,
    step_size=0.005 * scale,
    mode="leave_class",
    domain=Box(low, high),
    save_every=25,
    seed=0,
    progress=False,
)
for i in range(walk.batch_size):
    print(
        f"SiMExp: image {i}: class {int(walk.start_class[i])} -> {int(walk.final_class[i])} ",
        end="",
    )
    print(f"after {int(walk.stopped_at[i])} steps ({walk.stop_reason[i]}), ", end="")
    print(f"L2 distance {walk.displacement()[i].norm():.3f}")
save(plot_image_strip(walk, example=0), "mnist_simexp_strip.png")
save(plot_traces(walk), "mnist_simexp_traces.png")

# %% [markdown]
# ## 3. The power plant: operating conditions with the same output (§7.3)
#
# The UCI Combined Cycle Power Plant table: ambient temperature AT, exhaust vacuum V,
# ambient pressure AP and relative humidity RH (min-max scaled to [0, 1]) predict the net
# electrical output PE (MW). The regressor is a small residual network with an LSTM cell.
# With a scalar output `g = grad f grad f^T` has rank 1, so the class of an operating point is
# a 3-D surface in the 4-D input box. Without the data, a synthetic plant stands in.

# %%
try:
    plant = zoo.load_ccpp()
except FileNotFoundError:
    plant = zoo.synthetic_regression(n=2000, seed=0)
x_train, y_train, x_test, y_test = plant.train_test_split(test_fraction=0.2, seed=0)
regressor = zoo.train_regressor(
    lambda: zoo.PowerPlantResidualLSTM(in_features=4, hidden=16, steps=3, seed=0),
    x_train,
    y_train,
    epochs=40,
    lr=1e-2,
    seed=0,
    num_threads=1,
    float64=True,
)
with torch.no_grad():
    rmse = float((regressor(x_test) - y_test).square().mean().sqrt()) * plant.y_std
print(f"{plant.name}: test RMSE {rmse:.2f} MW")

# %% [markdown]
# SiMEC from four test rows with the corrector, inside `[0, 1]^4`. The paper takes 1,000
# steps of 1e-4, which move a point by only ~3e-3 (a random walk covers `sqrt(K) delta`);
# to see the shape of the class we take 1,000 steps of 1e-2. The output stays constant to a
# fraction of a milliwatt (without the corrector these steps drift by up to a few MW). The
# scatter plots show the classes projected on (AT, V) and (AT, AP), in physical units.

# %%
starts = x_test[:4]
walk = simec(
    regressor,
    starts,
    steps=1000,
    step_size=1e-2,
    domain=Box(0.0, 1.0),
    corrector=True,
    save_every=10,
    seed=0,
    progress=False,
)
levels = plant.target_to_physical(walk.outputs[0, :, 0])
print(f"outputs held: {[round(float(v), 2) for v in levels]} MW, ", end="")
print(f"max drift {float(walk.max_drift.max()) * plant.y_std:.2e} MW")
units = {"AT": "C", "V": "cm Hg", "AP": "mbar", "RH": "%"}
names = [f"{name} ({units[name]})" for name in plant.feature_names]
physical = dataclasses.replace(walk, points_flat=plant.inputs_to_physical(walk.points_flat))
save(plot_class_scatter(physical, dims=(0, 1), feature_names=names), "plant_class_AT_V.png")
save(plot_class_scatter(physical, dims=(0, 2), feature_names=names), "plant_class_AT_AP.png")

# %% [markdown]
# **Which operating conditions give between 440 and 450 MW?** `preimage` slices the interval
# into levels; from each start it hops to a level along the gradient (Gauss-Newton steps
# `x <- x - A^+ (f(x) - y)`) and then sweeps that level with SiMEC. Every point it returns has
# an output inside the interval.

# %%
low_mw, high_mw = 440.0, 450.0
found = preimage(
    regressor,
    starts,
    float(plant.target_from_physical(low_mw)),
    float(plant.target_from_physical(high_mw)),
    sweeps=4,
    simec_steps=150,
    step_size=0.01,
    domain=Box(0.0, 1.0),
    seed=0,
    progress=False,
)
points = plant.inputs_to_physical(found.points).numpy()
power = plant.target_to_physical(found.outputs).numpy()
print(f"preimage [{low_mw:g}, {high_mw:g}] MW: {len(power)} points, ", end="")
print(f"outputs in [{power.min():.2f}, {power.max():.2f}] MW")
for j, name in enumerate(plant.feature_names):
    print(f"  {name}: {points[:, j].min():8.2f} to {points[:, j].max():8.2f} {units[name]}")
figure = Figure(figsize=(5.5, 4.5), layout="constrained")
ax = figure.add_subplot()
shown = ax.scatter(points[:, 0], points[:, 1], c=power, s=5, cmap="viridis")
figure.colorbar(shown, ax=ax, label="PE (MW)")
ax.set_xlabel(names[0])
ax.set_ylabel(names[1])
ax.set_title(f"operating points with {low_mw:g}-{high_mw:g} MW", fontsize=9)
save(figure, "plant_preimage_440_450.png")
assert np.all((power >= low_mw - 1e-3) & (power <= high_mw + 1e-3))

# %% [markdown]
# Each sweep is a piece of one level set; together they sample the slab of inputs whose
# predicted output lies in the interval. Along each level the operating conditions trade off
# against each other (a hotter day with a lower exhaust vacuum, say) while the predicted
# output stays the same: that trade-off is what the class is.

# %%
print(f"tutorial finished in {time.perf_counter() - BEGIN:.1f} s")
