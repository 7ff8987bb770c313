# %% [markdown]
# # Auditing a classifier's robustness with pullback geometry
#
# For every test image the audit asks two questions, one geometric and one adversarial:
#
# * **How far must the input move to change the decision?** A directed SiMExp walk leaves
#   the predicted class along the steepest descent of the decision margin and stops where
#   the prediction changes: the *flip distance*. Projected gradient descent (PGD) estimates
#   the same quantity as the smallest radius of a successful attack. Both bound the true
#   minimal perturbation from above, so their ratio tells how close the walk comes to an
#   attack-sized flip.
# * **Which pixels can move freely?** The pullback metric `g = J^T G J` of the network has
#   rank `r` (at most 9 for a 10-class log-softmax head), so the equivalence class of an
#   image, where the output stays put, has dimension `784 - r`; the robustness map
#   `kappa_i = 1 - sum_k v_ki^2` says how much of a move of pixel `i` the class absorbs.
#
# The model is the paper's small MNIST CNN, trained in seconds on scikit-learn's 8x8 digits
# upsampled to 28x28 (in float64, so that it is the same on every CPU; analysed in float32).
# Outputs go to `$CAPTUM_SIMEC_TUTORIAL_OUT` (default: a fresh temporary folder).

# %%
import os
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from captum_simec.audit.robustness import RobustnessAudit
from captum_simec.report import write_audit_report
from captum_simec.zoo import accuracy, fit_digits_cnn

torch.set_num_threads(1)  # small models run fastest on one thread of a shared CPU
OUT = Path(os.environ.get("CAPTUM_SIMEC_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="audit_"))
OUT.mkdir(parents=True, exist_ok=True)

model, split = fit_digits_cnn(seed=0)
print(f"test accuracy {accuracy(model, split.x_test, split.y_test):.3f}")

# %% [markdown]
# ## Configure and run the audit
#
# The domain box `[0, 1]` keeps walks and attacks on valid images. The SiMExp walk takes
# steps of 0.05 and at most 300 of them; the crossing is then refined by bisection, so the
# flip distance is not a multiple of the step. PGD runs 20 iterations per candidate radius and
# a per-example bisection of the radius (Captum's `MinParamPerturbation` would return one
# radius per batch). The data come as a `DataLoader`; the audit commits every batch to
# `OUT/audit/shards/`, so an interrupted run continues with `resume=True`.

# %%
count = 24
loader = DataLoader(TensorDataset(split.x_test[:count], split.y_test[:count]), batch_size=8)
audit = RobustnessAudit(
    model,
    domain=split.domain,
    simec_steps=10,
    simexp_steps=300,
    simexp_step_size=0.05,
    pgd_steps=20,
    seed=0,
)
folder = OUT / "audit"
first = audit.run(loader, out=folder, limit=16)  # e.g. a job cut short after 16 examples
result = audit.run(loader, out=folder, resume=True)  # continues with the last 8 only
print(f"first call audited {len(first)}, the resumed call {result.timings['examples']:.0f}")
speed = result.timings["examples"] / result.timings["total"]
print(f"{len(result)} examples in the table; the resumed call ran at {speed:.2f} examples/s")

# %% [markdown]
# ## Read the summary
#
# Per class (true label): accuracy, the share of examples whose walk flipped within the
# budget, and medians of the flip distance, the PGD radius and their ratio (L2 and L-inf).

# %%
summary = result.summary()
header = f"{'class':>5} {'n':>3} {'acc':>5} {'flip':>5} {'walk L2':>8} {'PGD L2':>7} {'ratio':>6}"
print(header)
for name, group in [("all", summary["overall"]), *summary["per_class"].items()]:
    print(
        f"{name!s:>5} {group['examples']:>3} {group['accuracy']:>5.2f} "
        f"{group['flip_rate']:>5.2f} {group['flip_l2']['median']:>8.3f} "
        f"{group['pgd_l2_eps']['median']:>7.3f} {group['ratio_l2']['median']:>6.3f}"
    )
overall = summary["overall"]
print(
    f"median flip / PGD ratio: L2 {overall['ratio_l2']['median']:.3f}, "
    f"L-inf {overall['ratio_linf']['median']:.3f}"
)

# %% [markdown]
# In L2 the ratio sits near 1: the margin-descent walk travels almost straight to the nearest
# boundary, as PGD does. In L-inf it is larger by design: the walk takes L2-steepest steps,
# which spread the change over few pixels, while an L-inf attack moves every pixel a little.
# The null dimension is 775 for most images: 9 directions of 784 change the log-softmax
# output, the rest are absorbed by the class. Where hidden ReLU units are dead at an image,
# fewer directions move the output and the class is larger. The spectral gap `s_r / s_{r+1}`
# and the rank margin say how clear each rank is (near 1: a close call).

# %%
nulls = result.column("null_dim")
print(f"null dimension: min {nulls.min()}, max {nulls.max()}")
print(
    f"spectral gap: min {result.column('spectral_gap').min():.3g}; "
    f"rank margin: min {result.column('rank_margin').min():.3g}"
)
least = min(result.records, key=lambda r: r["flip_l2"])
print(
    f"least robust: example {least['index']} (label {least['label']}, predicted "
    f"{least['prediction']}, confidence {least['confidence']:.3f}) flips to class "
    f"{least['flip_class']} after an L2 move of {least['flip_l2']:.3f}"
)

# %% [markdown]
# ## The report
#
# `write_audit_report` writes `report.md` (figures as PNG files) and a self-contained
# `report.html` (figures embedded): histograms of flip distance and null dimension, the flip
# distance against the PGD radius with the line y = x, and strips of the most and least
# robust examples with their robustness maps. The records are in `records.csv` and
# `records.json` beside it. To audit a large data set on several processes, run the same
# code under `torchrun` with `captum_simec.audit.distributed.audit_distributed`.

# %%
files = write_audit_report(result, folder, title="Robustness audit of the digits CNN")
print(f"report: {files.html}")
for line in files.markdown.read_text().splitlines()[:8]:
    print(line)
