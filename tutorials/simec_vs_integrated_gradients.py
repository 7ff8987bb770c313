# %% [markdown]
# # SiMEC attributions next to Integrated Gradients
#
# `SiMECAttribution` is a drop-in Captum method built on the pullback metric
# `g = J^T G J = A^T A` (`A = C J`, with `G = C^T C` a metric on the outputs). Which score to
# use depends on the question; the two that measure best in `benchmarks/bench_evaluation.py`
# come first:
#
# * **boundary** (faithful relevance): the target's gradient integrated along the SiMExp walk
#   down the decision margin, from the image to just across the decision boundary. It is
#   Integrated Gradients whose path follows the geometry and whose baseline is the nearest
#   decision change instead of a chosen image; it sums to `f_t(x) - f_t(x_end)`, and
#   `return_convergence_delta=True` gives the quadrature gap, as IG's delta;
# * **robustness** (invariance: which pixels the prediction ignores), box-aware with the
#   pixel box `domain=(0, 1)`: `1 - r_i / max_j r_j`, with `r_i` the output motion that
#   uniform noise in pixel `i` causes to first order (1 where noise moves nothing);
# * **relevance** `rho_i = ||A e_i||`: how far the output moves per unit move of pixel `i`;
#   with a `target` this is exactly `Saliency(abs=True)`, the cheapest map;
# * **flip**: `|x_flip - x_0|` of the same walk: what the model needs changed to change its
#   decision.
#
# Integrated Gradients (IG) splits the output difference to a baseline image over the pixels
# along the straight path from that baseline. We train the paper's small CNN on
# scikit-learn's digits (28x28), compare the maps and their faithfulness, then look at what
# the null directions of `g` show. Figures go to `$CAPTUM_SIMEC_TUTORIAL_OUT` (default: a
# fresh temporary folder).
#
# The network is created and trained in float64 and analysed as a float32 copy. Trained in
# float32 it would come out different on every kind of CPU (their float32 kernels round
# differently, from the initial weights on, and SGD amplifies a last-bit difference into
# different weights), and so would every number below; in float64 it is the same network
# everywhere.

# %%
import os
import tempfile
from pathlib import Path

import torch
from captum.attr import IntegratedGradients, Saliency

from captum_simec.attr import SiMECAttribution, explain
from captum_simec.evaluation import compare_attributions
from captum_simec.explore import simec
from captum_simec.geometry import pullback_spectrum
from captum_simec.viz import plot_attributions
from captum_simec.zoo import PaperMNISTCNN, accuracy, load_digits, train_classifier

torch.set_num_threads(1)  # small models run fastest on one thread of a shared CPU
OUT = Path(os.environ.get("CAPTUM_SIMEC_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="simec_ig_"))
OUT.mkdir(parents=True, exist_ok=True)

split = load_digits(seed=0)
torch.set_default_dtype(torch.float64)  # initial weights drawn in float64 ...
model = PaperMNISTCNN(seed=0)
torch.set_default_dtype(torch.float32)
train_classifier(  # ... and trained in float64
    model, split.x_train.double(), split.y_train, epochs=20, lr=0.05, momentum=0.9, seed=0
)
model = model.float()  # the analysis runs in float32, as usual
print(f"test accuracy {accuracy(model, split.x_test, split.y_test):.3f}")
x = split.x_test[:16]
with torch.no_grad():
    predicted = model(x).argmax(dim=1)
print("labels   ", split.y_test[:16].tolist())
print("predicted", predicted.tolist())

# %% [markdown]
# ## The maps
#
# The boundary walk stays in the pixel box; its convergence delta is the quadrature error of
# the path integral, small next to the output change it explains. The box-aware robustness
# map is class-agnostic: the default metric weighs the predicted class and its two
# runners-up, the outputs the decision is made among. With `target` given, the relevance
# coincides with Captum's Saliency: a built-in cross-check. IG integrates from a black
# image, 50 steps.

# %%
simec_attr = SiMECAttribution(model)
boundary, delta = simec_attr.attribute(
    x, target=predicted, score="boundary", domain=split.domain, return_convergence_delta=True
)
sums = boundary.flatten(1).sum(dim=1)  # f_t(x) - f_t(x_end), up to the delta
print(f"boundary: sums {sums[:4].numpy().round(2)}, largest |delta| {delta.abs().max():.1e}")
robustness = simec_attr.attribute(x, score="robustness", domain=split.domain)
relevance = simec_attr.attribute(x, target=predicted)
saliency = Saliency(model).attribute(x.clone().requires_grad_(), target=predicted)
print("relevance == Saliency(abs=True):", torch.equal(relevance, saliency))
flip = simec_attr.attribute(x, target=predicted, score="flip", domain=split.domain)
ig = IntegratedGradients(model).attribute(x, baselines=0.0, target=predicted, n_steps=50)

print(f"robustness: min {robustness.min():.3f}, median {robustness.median():.3f} (1 = ignored)")
print(f"flip distance (L2) per image: {flip.flatten(1).norm(dim=1)[:8].numpy().round(2)}")
figure = plot_attributions(
    {
        "SiMEC boundary": boundary,
        "SiMEC 1 - robustness (box)": 1 - robustness,
        "SiMEC relevance = Saliency": relevance,
        "SiMEC flip": flip,
        "IG (black)": ig,
    },
    x,
    examples=6,
    example_titles=[f"true {int(split.y_test[i])}, pred {int(predicted[i])}" for i in range(6)],
)
figure.savefig(OUT / "maps.png", dpi=90)

# %% [markdown]
# The `SaturationWarning` above is real: with a log-softmax head, the target's
# log-probability is flat where the model is sure (`d log p_t = d z_t - sum_j p_j d z_j`,
# about 0 at `p_t = 1`), so the target relevance, like Saliency, is rounding noise on those
# images. The boundary map and the box-aware robustness are not: they follow the margin and
# the top outputs. (Explaining the logits, `head="logits"`, avoids it for relevance too.)
#
# ## Faithfulness and sanity, side by side
#
# `compare_attributions` runs the SiMEC scores next to Captum's IG (from black and from
# uniform noise), Saliency, InputXGradient, GradientShap and IG from PGD's nearest
# adversarial point, and scores each map: infidelity and max-sensitivity, deletion and
# insertion AUC to a black, a uniform-noise and a mean-grey baseline (and a blur), ROAD,
# the invariance curve, and Adebayo et al.'s sanity checks (cascading weight randomisation,
# random logit). Deletion to black favours IG from black, whose baseline *is* black.
# `mean_ranks` sums a method's standing up over several scores (1 = best on every one).

# %%
comparison = compare_attributions(
    model,
    x[:8],
    predicted[:8],
    labels=split.y_test[:8],
    domain=split.domain,
    n_steps_ig=50,
    seed=0,
    progress=False,
)
print(comparison.to_markdown())
faithfulness = [m for m in comparison.winners() if m.startswith(("deletion", "insertion"))]
ranks = comparison.mean_ranks(faithfulness)
for name in sorted(ranks, key=ranks.get):
    print(f"{ranks[name]:5.2f}  {name}")
comparison.plot(examples=4).savefig(OUT / "comparison.png", dpi=80)
comparison.plot_invariance().savefig(OUT / "invariance.png", dpi=90)
for baseline in ("black", "uniform"):
    comparison.plot_curves("deletion", baseline).savefig(OUT / f"deletion_{baseline}.png", dpi=90)

# %% [markdown]
# ## What the null directions show
#
# With `G = I` on a 10-class log-softmax head, `g` has rank at most 9: log-softmax kills the
# all-ones direction of the logits, so at least 775 of the 784 pixel directions are null.
# A ReLU network can have fewer non-null directions: the rank is also at most the number of
# active units of each hidden layer, and at the third image only seven of the 50 units of
# the first fully connected layer are active (rank 7, 777 null directions). The spectral gap
# `s_r / s_{r+1}` and the rank margin (how far the rank tolerance could move without
# changing the rank) show that each rank is a clear-cut decision, not a rounding effect.
#
# Moving along a null direction leaves the output unchanged inside the image's activation
# region (only ReLU units switching along the step move it, at second order overall);
# moving along the top range direction changes it at first order. The step sizes below are
# in pixel units (an image has norm about 10).

# %%
explanation = explain(model, x[:4])
print("rank", explanation.rank.tolist(), "null dimension", explanation.null_dim.tolist())
print(pullback_spectrum(model, x[:4]).summary())
explanation.plot().savefig(OUT / "explanation.png", dpi=90)

spectrum = pullback_spectrum(model, x[:1])
null_direction = spectrum.unflatten(spectrum.sample_null(torch.Generator().manual_seed(0)))
range_direction = spectrum.unflatten(spectrum.right_vectors[:, :, 0])
with torch.no_grad():
    start = model(x[:1])
    print(" step | output change along null | along top range direction")
    for delta in (0.01, 0.1, 0.5):
        along_null = (model(x[:1] + delta * null_direction) - start).norm().item()
        along_range = (model(x[:1] + delta * range_direction) - start).norm().item()
        print(f" {delta:4.2f} | {along_null:24.2e} | {along_range:.2e}")

# %% [markdown]
# A short SiMEC walk follows the null space step after step (200 steps of 0.05, the
# pixels kept in [0, 1]): it travels a path as long as the image's own norm while the
# log-probabilities drift only at second order and the prediction stays put. Spread over
# 775 directions, each pixel moves by at most a few hundredths: the class of an image is a
# huge, thin set, and the robustness map (`kappa` near 1 almost everywhere) says so. IG
# cannot show this: its path from black crosses many classes, and its map says nothing
# about which changes the model ignores.

# %%
walk = simec(model, x[:1], steps=200, step_size=0.05, domain=split.domain, seed=0, progress=False)
print(
    f"SiMEC walk: {walk.num_steps} steps, path length {float(walk.path_length[0]):.2f} "
    f"(image norm {float(x[0].norm()):.2f}), largest pixel change "
    f"{float(walk.max_abs_flat.max()):.3f}, largest drift of the log-probabilities "
    f"{float(walk.max_drift[0]):.2e}, class changed: {bool(walk.class_changed[0])}"
)
frames = walk.points[:: max(1, walk.points.shape[0] // 5)][:, 0]
plot_attributions(
    {"walk": frames - frames[:1]},
    frames,
    examples=frames.shape[0],
    example_titles=[f"save {i}" for i in range(frames.shape[0])],
).savefig(OUT / "simec_walk.png", dpi=90)
print("figures written to", OUT)

# %% [markdown]
# ## Reading the results
#
# * Boundary is the SiMEC map to read first for *which pixels the decision rests on*. On 64
#   test images per model of three benchmark models (`benchmarks/bench_evaluation.py`; the
#   README has the tables) it beats Saliency and IG from black on deletion and insertion
#   with uniform-noise and training-mean baselines, without a baseline to choose. It does
#   not win everywhere: GradientShap, which averages IG over black and noise baselines, is
#   the strongest peer (first on two of the three models), IG from black wins the black
#   baseline it integrates from, and on a few images, as here, the ranking is noisy; the
#   ranks above are this model's own measurement.
# * Box-aware robustness answers the opposite question, *which pixels the prediction
#   ignores*; the invariance curve measures it (noise on the pixels a map calls robust:
#   the share of unchanged predictions), and in the benchmark it is the best robustness
#   map, ahead of inverse Saliency and inverse IG on all three models.
# * SiMEC relevance is Saliency: a local, first-order map, the cheapest one.
# * The flip score is target-specific and non-local: it follows the margin until the
#   decision changes, so it reflects the boundary the model actually uses.
# * The null directions are what IG does not give: 775 or more of the 784 directions leave
#   the output unchanged to first order, and a walk along them keeps the prediction.
#   Class-agnostic maps (the robustness maps) cannot pass the random-logit sanity check, by
#   construction; the comparison's notes say so.
