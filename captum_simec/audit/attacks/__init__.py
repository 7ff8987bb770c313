"""Per-example minimal adversarial radius: FGSM / PGD bisection and DeepFool.

These attacks estimate, for every example separately, the smallest perturbation that changes
the model's predicted class. They are the classical counterpart of the geometric *flip
distance* (method.md section 4): any flip found by a walk or an attack is an upper bound on
the true minimal adversarial perturbation, so the two can be compared example by example.

Three defects of Captum 0.9.0 are worked around here rather than inherited:

* ``captum.robust.MinParamPerturbation`` returns one epsilon per *batch*. Here the bisection
  keeps one interval per example, vectorised over the batch; examples already resolved keep
  their interval while the others continue.
* ``captum.robust.PGD(norm="L2", random_start=True)`` crashes for batch > 1 (its random
  radius of shape ``(B,)`` does not broadcast against ``(B, n)``), and its L2 mode steps with
  the *sign* of the gradient, an L-inf step, before projecting on the L2 ball, so it does not
  reach the L2-optimal direction even on a linear model. The L2 steps here are normalised
  gradient steps and the L2 random start samples uniformly in each example's own ball.
* ``captum.robust.FGSM``'s default loss is ``-log(output)``, which assumes the model outputs
  probabilities, and it treats every gradient entry below ``1e-6`` as zero. Here the loss is
  always computed on the model outputs read as logits (also right for log-softmax outputs,
  since log-softmax is shift-invariant), and the signed step is ``sign(grad)`` exactly.

The cross-entropy gradient ``softmax(z) - onehot(y)`` underflows for confident predictions.
The loss is therefore differentiated in the equivalent *log-odds* form
``logsumexp_{k != y} z_k - z_y``: cross-entropy equals ``softplus`` of it, a strictly
increasing function, so the gradient has exactly the same direction (same sign, same
normalised L2 direction) but never underflows.

Captum's attack classes take one scalar epsilon / radius per call, while the bisection needs
a different radius per example, so the steps are computed here, per example.

Layout (like Captum's ``robust/_core``): :mod:`.result` (the result type and the norms),
``_inputs`` (input checks and the validated rows), ``_losses`` (what the attacks ascend),
:mod:`.search` (the per-example bisection and its settings), :mod:`.fgsm`, :mod:`.pgd` and
:mod:`.deepfool`.
"""

from captum_simec.audit.attacks.deepfool import deepfool
from captum_simec.audit.attacks.fgsm import min_fgsm_epsilon
from captum_simec.audit.attacks.pgd import min_pgd_epsilon
from captum_simec.audit.attacks.result import AttackResult, l2_norm, linf_norm
from captum_simec.audit.attacks.search import SearchSettings

__all__ = [
    "AttackResult",
    "SearchSettings",
    "deepfool",
    "l2_norm",
    "linf_norm",
    "min_fgsm_epsilon",
    "min_pgd_epsilon",
]
