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
  probabilities. Here the loss is always cross-entropy on the model outputs read as logits
  (which is also right for log-softmax outputs, since log-softmax is shift-invariant).

The cross-entropy gradient ``softmax(z) - onehot(y)`` underflows for confident predictions
and Captum's FGSM zeroes every gradient entry below ``1e-6``. The loss is therefore
differentiated in the equivalent *log-odds* form ``logsumexp_{k != y} z_k - z_y``:
cross-entropy equals ``softplus`` of it, a strictly increasing function, so the gradient has
exactly the same direction (same sign, same normalised L2 direction) but never underflows.

Captum's attack classes take one scalar epsilon / radius per call, while the bisection needs a
different radius per example. The L-inf signed-gradient step is computed by Captum's public
:class:`captum.robust.FGSM` (called with ``epsilon=1`` and our loss); the per-example step
length, the projection on each example's ball and the domain box are applied here. The L2
steps (fast gradient method and L2 PGD) are computed here, for the reasons above.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from captum.robust import FGSM
from torch import Tensor

from captum_simec import _compat
from captum_simec._runtime import show_progress
from captum_simec.geometry.jacobian import check_eval_mode

__all__ = ["AttackResult", "deepfool", "min_fgsm_epsilon", "min_pgd_epsilon"]

_NORMS = {"linf": "Linf", "l2": "L2"}
_LOSSES = ("ce", "margin", "targeted")


@dataclass
class AttackResult:
    """Per-example outcome of a minimal-perturbation attack.

    Attributes:
        epsilon: ``(B,)`` float tensor. For the bisection attacks, the smallest radius found
            at which the attack flips the prediction (within ``tol``); for DeepFool, the norm
            of the perturbation found. ``inf`` where no flip was found, ``0`` where the clean
            input is already not classified as its label.
        flipped: ``(B,)`` bool tensor, True where ``adversarial`` is classified differently
            from ``label`` (verified with a forward pass on the whole batch).
        adversarial: ``(B, ...)`` adversarial inputs at ``epsilon``; the clean input where
            ``flipped`` is False.
        new_class: ``(B,)`` long tensor, the predicted class of ``adversarial``; ``-1`` where
            ``flipped`` is False.
        perturbation_l2: ``(B,)`` L2 norm of ``adversarial - inputs`` (after box clipping).
        perturbation_linf: ``(B,)`` L-inf norm of ``adversarial - inputs``.
        label: ``(B,)`` long tensor, the class the attack moved away from.
        norm: ``"L2"`` or ``"Linf"``, the norm ``epsilon`` is measured in.
        attack: name of the attack (``"fgsm"``, ``"pgd"`` or ``"deepfool"``).
    """

    epsilon: Tensor
    flipped: Tensor
    adversarial: Tensor
    new_class: Tensor
    perturbation_l2: Tensor
    perturbation_linf: Tensor
    label: Tensor
    norm: str
    attack: str

    def __len__(self) -> int:
        """Number of examples."""
        return int(self.epsilon.shape[0])

    def to_records(self) -> list[dict[str, Any]]:
        """One plain-Python dict per example, e.g. for ``pandas.DataFrame`` or JSON.

        Returns:
            A list of ``B`` dicts with keys ``index``, ``attack``, ``norm``, ``label``,
            ``epsilon``, ``flipped``, ``new_class``, ``perturbation_l2`` and
            ``perturbation_linf`` (Python floats, ints and bools).
        """
        eps = self.epsilon.detach().cpu().tolist()
        flipped = self.flipped.detach().cpu().tolist()
        new_class = self.new_class.detach().cpu().tolist()
        label = self.label.detach().cpu().tolist()
        l2 = self.perturbation_l2.detach().cpu().tolist()
        linf = self.perturbation_linf.detach().cpu().tolist()
        return [
            {
                "index": i,
                "attack": self.attack,
                "norm": self.norm,
                "label": int(label[i]),
                "epsilon": float(eps[i]),
                "flipped": bool(flipped[i]),
                "new_class": int(new_class[i]),
                "perturbation_l2": float(l2[i]),
                "perturbation_linf": float(linf[i]),
            }
            for i in range(len(eps))
        ]


# ----------------------------------------------------------------------------- validation


def _check_inputs(inputs: Tensor) -> Tensor:
    if not isinstance(inputs, Tensor):
        raise ValueError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}.")
    if not inputs.dtype.is_floating_point:
        raise ValueError(
            f"inputs must be a floating-point tensor, got dtype {inputs.dtype}; "
            "convert with inputs.float()."
        )
    if inputs.dim() < 1 or inputs.shape[0] == 0:
        raise ValueError(
            f"inputs must have a non-empty batch dimension 0, got shape {tuple(inputs.shape)}."
        )
    if not bool(torch.isfinite(inputs).all()):
        raise ValueError("inputs contain NaN or inf; remove or impute those examples first.")
    return inputs.detach().clone()


def _check_norm(norm: str) -> str:
    key = norm.lower() if isinstance(norm, str) else None
    if key not in _NORMS:
        raise ValueError(f"norm must be 'Linf' or 'L2', got {norm!r}.")
    return _NORMS[key]


def _check_positive(value: float, name: str, hint: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a positive number, got {value!r}; {hint}.")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}; {hint}.")
    return value


def _check_int(value: int, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return value


def _clean_logits(model: Callable[..., Tensor], x0: Tensor, args: tuple[Any, ...]) -> Tensor:
    with torch.no_grad():
        logits = model(x0, *args)
    if not isinstance(logits, Tensor):
        raise ValueError(
            f"model must return a tensor of logits, got {type(logits).__name__}; wrap the "
            "model so that it returns a (batch, classes) tensor."
        )
    if logits.dim() != 2 or logits.shape[0] != x0.shape[0] or logits.shape[1] < 2:
        raise ValueError(
            f"model output must have shape (batch, classes) with classes >= 2, got "
            f"{tuple(logits.shape)} for batch {x0.shape[0]}; wrap the model to return logits."
        )
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("model output contains NaN or inf on the clean inputs.")
    return logits


def _check_labels(labels: Tensor | Sequence[int] | None, logits: Tensor) -> Tensor:
    batch, classes = logits.shape
    if labels is None:
        return logits.argmax(dim=1)
    if not isinstance(labels, Tensor):
        try:
            labels = torch.as_tensor(labels)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"labels must be a (B,) tensor or sequence of class indices: {exc}"
            ) from exc
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise ValueError(f"labels must hold integer class indices, got dtype {labels.dtype}.")
    if tuple(labels.shape) != (batch,):
        raise ValueError(
            f"labels must have shape ({batch},), one class index per example, got "
            f"{tuple(labels.shape)}; pass labels=None to attack the model's own predictions."
        )
    labels = labels.to(device=logits.device, dtype=torch.long)
    if bool(((labels < 0) | (labels >= classes)).any()):
        raise ValueError(
            f"labels must lie in [0, {classes}) for a model with {classes} outputs, got values "
            f"in [{int(labels.min())}, {int(labels.max())}]."
        )
    return labels


def _check_bound(bound: float | Tensor | None, x0: Tensor, name: str) -> Tensor | None:
    if bound is None:
        return None
    if isinstance(bound, bool) or not isinstance(bound, (int, float, Tensor)):
        raise ValueError(f"{name} must be None, a number or a tensor, got {type(bound).__name__}.")
    b = torch.as_tensor(bound, dtype=x0.dtype, device=x0.device)
    try:
        shape = torch.broadcast_shapes(b.shape, x0.shape)
    except RuntimeError:
        shape = None
    if shape != x0.shape:
        raise ValueError(
            f"{name} of shape {tuple(b.shape)} does not broadcast to the inputs' shape "
            f"{tuple(x0.shape)}; pass a scalar, a per-feature tensor of shape "
            f"{tuple(x0.shape[1:])}, or one of the inputs' shape."
        )
    if bool(torch.isnan(b).any()):
        raise ValueError(f"{name} contains NaN.")
    return b.detach()


def _check_box(x0: Tensor, lower: Tensor | None, upper: Tensor | None) -> None:
    if lower is not None and upper is not None and bool((lower > upper).any()):
        raise ValueError("lower_bound exceeds upper_bound somewhere; swap or fix the bounds.")
    outside = torch.zeros((), dtype=torch.bool, device=x0.device)
    if lower is not None:
        outside = outside | (x0 < lower).any()
    if upper is not None:
        outside = outside | (x0 > upper).any()
    if bool(outside):
        raise ValueError(
            "inputs lie outside [lower_bound, upper_bound]; clip the inputs or widen the bounds."
        )


def _clip(x: Tensor, lower: Tensor | None, upper: Tensor | None) -> Tensor:
    if lower is not None:
        x = torch.maximum(x, lower)
    if upper is not None:
        x = torch.minimum(x, upper)
    return x


def _take_bound(bound: Tensor | None, index: Tensor, x0: Tensor) -> Tensor | None:
    """Rows ``index`` of a bound broadcast against the full batch ``x0``."""
    if bound is None:
        return None
    if bound.dim() == x0.dim() and bound.shape[0] == x0.shape[0] and x0.shape[0] > 1:
        return bound[index]
    return bound


def _view(v: Tensor, like: Tensor) -> Tensor:
    """Reshape a ``(n,)`` per-example vector to broadcast over ``like`` of shape (n, ...)."""
    return v.view(-1, *([1] * (like.dim() - 1)))


# ----------------------------------------------------------------------------- loss, steps


def _log_odds_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-example ``logsumexp_{k != y} z_k - z_y``; cross-entropy is softplus of it.

    Args:
        logits: ``(n, C)`` model outputs read as logits.
        labels: ``(n,)`` class indices.

    Returns:
        ``(n,)`` loss, increasing in cross-entropy, with a gradient that never underflows.
    """
    own = logits.gather(1, labels[:, None]).squeeze(1)
    mask = torch.nn.functional.one_hot(labels, logits.shape[1]).to(torch.bool)
    others = logits.masked_fill(mask, float("-inf"))
    return torch.logsumexp(others, dim=1) - own


def _margin_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-example ``max_{k != y} z_k - z_y`` (Carlini-Wagner-style untargeted margin)."""
    own = logits.gather(1, labels[:, None]).squeeze(1)
    mask = torch.nn.functional.one_hot(labels, logits.shape[1]).to(torch.bool)
    return logits.masked_fill(mask, float("-inf")).amax(dim=1) - own


def _loss_function(loss: str, targets: Tensor | None) -> Callable[[Tensor, Tensor], Tensor]:
    """The per-example loss ``(logits, labels) -> (n,)`` that the attack ascends."""
    if loss == "ce":
        return _log_odds_loss
    if loss == "margin":
        return _margin_loss
    if targets is None:
        raise ValueError("the targeted loss needs one target class per row.")

    def targeted(logits: Tensor, labels: Tensor) -> Tensor:
        own = logits.gather(1, labels[:, None]).squeeze(1)
        return logits.gather(1, targets[:, None]).squeeze(1) - own

    return targeted


def _check_loss(loss: str) -> str:
    if not isinstance(loss, str) or loss.lower() not in _LOSSES:
        raise ValueError(f"loss must be one of {sorted(_LOSSES)}, got {loss!r}.")
    return loss.lower()


def l2_norm(t: Tensor) -> Tensor:
    """Per-example L2 norm of a batch-first tensor (batch,)."""
    return _compat.flatten_features(t).norm(p=2, dim=1)


def linf_norm(t: Tensor) -> Tensor:
    """Per-example L-inf norm of a batch-first tensor (batch,); 0 without features."""
    flat = _compat.flatten_features(t)
    return flat.abs().amax(dim=1) if flat.shape[1] > 0 else t.new_zeros(t.shape[0])


def _ascent_direction(
    model: Callable[..., Tensor],
    x: Tensor,
    labels: Tensor,
    args: tuple[Any, ...],
    norm: str,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = _log_odds_loss,
) -> tuple[Tensor, Tensor]:
    """Unit ascent direction of ``loss_fn`` at ``x`` and the logits at ``x``.

    For ``Linf`` the direction is Captum FGSM's signed gradient (``epsilon=1``, our loss);
    for ``L2`` it is the gradient divided by its per-example L2 norm (zero where the gradient
    vanishes).

    Returns:
        ``(direction, logits)`` with shapes ``x.shape`` and ``(n, C)``; both detached.
    """
    stash: dict[str, Tensor] = {}

    def loss_func(outputs: Tensor, target: Tensor) -> Tensor:
        stash["logits"] = outputs.detach()
        return loss_fn(outputs, target)

    xg = x.detach().clone().requires_grad_(True)
    if norm == "Linf":
        fgsm = FGSM(model, loss_func=loss_func)
        stepped = fgsm.perturb(xg, 1.0, labels, additional_forward_args=args or None)
        direction = torch.sign(stepped.detach() - x)
    else:
        with torch.enable_grad():
            loss = loss_func(model(xg, *args), labels)
            (grad,) = torch.autograd.grad(loss.sum(), xg)
        length = _view(l2_norm(grad), grad)
        direction = torch.where(length > 0, grad / length.clamp_min(1e-30), torch.zeros_like(grad))
    return direction.detach(), stash["logits"]


def _project(delta: Tensor, radius: Tensor, norm: str) -> Tensor:
    """Project each example's ``delta`` on its own ball of radius ``radius`` (shape (n,))."""
    r = _view(radius, delta)
    if norm == "Linf":
        return torch.maximum(torch.minimum(delta, r), -r)
    length = _view(l2_norm(delta), delta)
    scale = torch.where(length > r, r / length.clamp_min(1e-30), torch.ones_like(length))
    return delta * scale


def _random_start(x0: Tensor, radius: Tensor, norm: str, generator: torch.Generator) -> Tensor:
    """A uniform random point in each example's own ball (works for any batch size)."""
    r = _view(radius, x0)
    if norm == "Linf":
        u = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return (2 * u - 1) * r
    g = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    unit = g / _view(l2_norm(g), g).clamp_min(1e-30)
    dim = x0[0].numel()
    u = torch.rand(x0.shape[0], generator=generator, device=x0.device, dtype=x0.dtype)
    return unit * _view(u ** (1.0 / dim), x0) * r


def _pgd(
    model: Callable[..., Tensor],
    x0: Tensor,
    labels: Tensor,
    radius: Tensor,
    *,
    norm: str,
    steps: int,
    step_fraction: float,
    random_start: bool,
    generator: torch.Generator | None,
    lower: Tensor | None,
    upper: Tensor | None,
    args: tuple[Any, ...],
    loss_fn: Callable[[Tensor, Tensor], Tensor] = _log_odds_loss,
    stop_on_flip: bool = True,
) -> tuple[Tensor, Tensor]:
    """Projected gradient ascent with one radius per example.

    The step order follows Captum's PGD (step, project on the ball, clip to the box). With
    ``stop_on_flip`` an example is frozen at the first iterate whose prediction differs from
    its label.

    Returns:
        ``(x_adv, pred)``: the first flipping iterate (or the last iterate) and its prediction.
    """
    alpha = _view(radius * step_fraction, x0)
    if random_start:
        if generator is None:
            raise ValueError("random_start=True needs a generator.")
        x = _clip(x0 + _random_start(x0, radius, norm, generator), lower, upper)
    else:
        x = x0.clone()
    done = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)
    pred = labels.clone()
    for _ in range(steps):
        direction, logits = _ascent_direction(model, x, labels, args, norm, loss_fn)
        if stop_on_flip:
            current = logits.argmax(dim=1)
            newly = (current != labels) & ~done
            pred = torch.where(newly, current, pred)
            done = done | newly
            if bool(done.all()):
                return x, pred
            direction = direction * _view((~done).to(x.dtype), x)
        x = _clip(x0 + _project(x + alpha * direction - x0, radius, norm), lower, upper)
    with torch.no_grad():
        final = model(x, *args).argmax(dim=1)
    pred = torch.where(done, pred, final)
    return x, pred


# ----------------------------------------------------------------------------- bisection


@dataclass
class _Rows:
    """What an attack runs on: the examples, or (example, target class) pairs, with their data.

    Attributes:
        example: index into the batch of each row (R,).
        x0: clean inputs (R, ...).
        labels: classes to move away from (R,).
        clean_pred: predictions on ``x0`` (R,).
        targets: the class each row ascends towards (R,), or None (untargeted).
        args: additional forward arguments; tensors with a batch dimension follow the rows.
        lower: domain lower bound, per row where it was given per example, or None.
        upper: domain upper bound, same forms as ``lower``.
    """

    example: Tensor
    x0: Tensor
    labels: Tensor
    clean_pred: Tensor
    targets: Tensor | None
    args: tuple[Any, ...]
    lower: Tensor | None
    upper: Tensor | None

    def take(self, index: Tensor) -> _Rows:
        """The rows ``index`` (a long tensor into these rows)."""
        return _Rows(
            example=self.example[index],
            x0=self.x0[index],
            labels=self.labels[index],
            clean_pred=self.clean_pred[index],
            targets=None if self.targets is None else self.targets[index],
            args=_compat.index_additional_forward_args(self.args, index, self.x0.shape[0]),
            lower=_take_bound(self.lower, index, self.x0),
            upper=_take_bound(self.upper, index, self.x0),
        )


def _finish(
    model: Callable[..., Tensor],
    batch: _Rows,
    adversarial: Tensor,
    epsilon: Tensor,
    norm: str,
    attack: str,
) -> AttackResult:
    """Verify the adversarials with one full-batch forward pass and assemble the result."""
    x0, labels = batch.x0, batch.labels
    with torch.no_grad():
        pred = model(adversarial, *batch.args).argmax(dim=1)
    flipped = torch.isfinite(epsilon) & (pred != labels)
    # A flip found inside a sub-batch that does not survive the full-batch forward pass (only
    # possible within float round-off of the decision boundary) is reported as no flip.
    adversarial = torch.where(_view(flipped, x0), adversarial, x0)
    epsilon = torch.where(flipped, epsilon, torch.full_like(epsilon, float("inf")))
    delta = adversarial - x0
    return AttackResult(
        epsilon=epsilon,
        flipped=flipped,
        adversarial=adversarial.detach(),
        new_class=torch.where(flipped, pred, torch.full_like(pred, -1)),
        perturbation_l2=l2_norm(delta).detach(),
        perturbation_linf=linf_norm(delta).detach(),
        label=labels,
        norm=norm,
        attack=attack,
    )


def _bisect(
    attack: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
    rows: _Rows,
    *,
    eps_max: float,
    tol: float,
    max_halvings: int,
    progress: bool | None,
    desc: str,
) -> tuple[Tensor, Tensor]:
    """Per-row bisection of the flip radius in ``(0, eps_max]``.

    Args:
        attack: ``attack(index, radius) -> (x_adv, pred)`` for the rows ``index`` (a long
            tensor into ``rows``), each with its own radius.
        rows: the rows to find a radius for.
        eps_max: upper end of the search interval.
        tol: stop a row once its interval is no wider than this.
        max_halvings: at most this many bisection rounds.
        progress: tqdm bar over rounds (None: only when stderr is a TTY).
        desc: bar description.

    Returns:
        ``(epsilon, adversarial)``: ``(R,)`` radii (``inf`` where ``eps_max`` does not flip,
        ``0`` where the clean input is already misclassified) and the flipping inputs found.
    """
    x0, labels = rows.x0, rows.labels
    epsilon = torch.full((x0.shape[0],), float("inf"), dtype=x0.dtype, device=x0.device)
    adversarial = x0.clone()
    already = rows.clean_pred != labels
    epsilon[already] = 0.0

    index = (~already).nonzero().squeeze(1)
    if index.numel() > 0:
        x_adv, pred = attack(index, torch.full_like(epsilon[index], eps_max))
        ok = pred != labels[index]
        adversarial[index[ok]] = x_adv[ok]
        index = index[ok]
    lo = torch.zeros(index.numel(), dtype=torch.float64, device=x0.device)
    hi = torch.full_like(lo, eps_max)

    rounds = min(max_halvings, max(0, math.ceil(math.log2(eps_max / tol))))
    bar = None
    if show_progress(progress) and index.numel() > 0 and rounds > 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=rounds, desc=desc, unit="round", leave=False)
    try:
        for _ in range(max_halvings):
            open_ = (hi - lo) > tol
            if not bool(open_.any()):
                break
            sub = open_.nonzero().squeeze(1)
            mid = (lo[sub] + hi[sub]) / 2
            x_adv, pred = attack(index[sub], mid.to(x0.dtype))
            ok = pred != labels[index[sub]]
            hi[sub] = torch.where(ok, mid, hi[sub])
            lo[sub] = torch.where(ok, lo[sub], mid)
            adversarial[index[sub[ok]]] = x_adv[ok]
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    epsilon[index] = hi.to(x0.dtype)
    return epsilon, adversarial


def _prepare(
    model: Callable[..., Tensor],
    inputs: Tensor,
    labels: Tensor | Sequence[int] | None,
    norm: str,
    lower_bound: float | Tensor | None,
    upper_bound: float | Tensor | None,
    additional_forward_args: Any,
) -> tuple[_Rows, Tensor, str]:
    """The validated batch (one row per example), its clean logits and the norm's name."""
    if not callable(model):
        raise ValueError("model must be callable (a torch.nn.Module or a function).")
    check_eval_mode(model, strict=True)
    x0 = _check_inputs(inputs)
    norm = _check_norm(norm)
    args = _compat.format_additional_forward_args(additional_forward_args) or ()
    lower = _check_bound(lower_bound, x0, "lower_bound")
    upper = _check_bound(upper_bound, x0, "upper_bound")
    _check_box(x0, lower, upper)
    logits = _clean_logits(model, x0, args)
    batch = _Rows(
        example=torch.arange(x0.shape[0], device=x0.device),
        x0=x0,
        labels=_check_labels(labels, logits),
        clean_pred=logits.argmax(dim=1),
        targets=None,
        args=args,
        lower=lower,
        upper=upper,
    )
    return batch, logits, norm


@dataclass
class _Search:
    """A validated per-example search for the smallest radius at which an attack flips.

    Attributes:
        batch: the clean batch, one row per example.
        rows: the rows the bisection runs on: the examples, or (example, other class) pairs
            for the targeted loss.
        norm: ``"L2"`` or ``"Linf"``.
        loss: ``"ce"``, ``"margin"`` or ``"targeted"``.
        eps_max: upper end of the search interval.
        tol: width of the final bisection interval.
        max_halvings: most bisection rounds.
    """

    batch: _Rows
    rows: _Rows
    norm: str
    loss: str
    eps_max: float
    tol: float
    max_halvings: int

    @classmethod
    def prepare(
        cls,
        model: Callable[..., Tensor],
        inputs: Tensor,
        labels: Tensor | Sequence[int] | None,
        *,
        norm: str,
        eps_max: float,
        lower_bound: float | Tensor | None,
        upper_bound: float | Tensor | None,
        tol: float,
        max_halvings: int,
        loss: str,
        additional_forward_args: Any,
    ) -> _Search:
        """Validates what the bisection attacks share and lays out the rows."""
        batch, logits, norm = _prepare(
            model, inputs, labels, norm, lower_bound, upper_bound, additional_forward_args
        )
        eps_max = _check_positive(eps_max, "eps_max", "pass the largest radius worth trying")
        tol = _check_positive(tol, "tol", "pass e.g. tol=1e-3")
        max_halvings = _check_int(max_halvings, "max_halvings", 1)
        loss = _check_loss(loss)
        rows = batch
        if loss == "targeted":
            size, classes = logits.shape
            pairs = torch.ones(size, classes, dtype=torch.bool, device=logits.device)
            pairs[torch.arange(size, device=logits.device), batch.labels] = False
            example, targets = pairs.nonzero(as_tuple=True)
            rows = dataclasses.replace(batch.take(example), targets=targets)
        return cls(batch, rows, norm, loss, eps_max, tol, max_halvings)

    def loss_fn(self, rows: _Rows) -> Callable[[Tensor, Tensor], Tensor]:
        """The per-example loss the attack ascends on ``rows``."""
        return _loss_function(self.loss, rows.targets)

    def run(
        self,
        model: Callable[..., Tensor],
        attack: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
        name: str,
        progress: bool | None,
    ) -> AttackResult:
        """Bisects every row's radius with ``attack`` and keeps each example's smallest."""
        epsilon, adversarial = _bisect(
            attack,
            self.rows,
            eps_max=self.eps_max,
            tol=self.tol,
            max_halvings=self.max_halvings,
            progress=progress,
            desc=f"{name.upper()} ({self.norm}) bisection",
        )
        epsilon, adversarial = self._per_example(epsilon, adversarial)
        return _finish(model, self.batch, adversarial, epsilon, self.norm, name)

    def _per_example(self, epsilon: Tensor, adversarial: Tensor) -> tuple[Tensor, Tensor]:
        """Per example, the smallest radius over its rows and that row's adversarial."""
        if self.rows.targets is None:
            return epsilon, adversarial
        example, x0 = self.rows.example, self.batch.x0
        batch = x0.shape[0]
        best = torch.full((batch,), float("inf"), dtype=epsilon.dtype, device=x0.device)
        best = best.scatter_reduce(0, example, epsilon, reduce="amin")
        # The first row of each example that attains its minimum.
        hit = (epsilon == best[example]) & torch.isfinite(epsilon)
        order = torch.arange(epsilon.shape[0], device=x0.device)
        first = torch.full((batch,), epsilon.shape[0], dtype=torch.long, device=x0.device)
        first = first.scatter_reduce(0, example[hit], order[hit], reduce="amin")
        chosen = first < epsilon.shape[0]
        out = x0.clone()
        out[chosen] = adversarial[first[chosen]]
        return best, out


def min_fgsm_epsilon(
    model: Callable[..., Tensor],
    inputs: Tensor,
    labels: Tensor | Sequence[int] | None = None,
    *,
    norm: str = "Linf",
    eps_max: float,
    lower_bound: float | Tensor | None = None,
    upper_bound: float | Tensor | None = None,
    tol: float = 1e-3,
    max_halvings: int = 30,
    loss: str = "ce",
    additional_forward_args: Any = None,
    progress: bool | None = None,
) -> AttackResult:
    """Per-example smallest FGSM step that changes the predicted class.

    The gradient is taken once at the clean input; the adversarial at radius ``eps`` is
    ``clip(x + eps * d)`` with ``d = sign(grad)`` (``Linf``, computed by Captum's
    :class:`~captum.robust.FGSM`, including its ``1e-6`` zero-gradient threshold) or
    ``d = grad / ||grad||_2`` (``L2``, the fast gradient method, computed here because
    Captum's FGSM only takes signed steps). The loss is never Captum's default
    ``-log(output)``, which assumes probabilities.

    Each example gets its own radius: a vectorised bisection on ``(0, eps_max]`` keeps one
    interval per example (unlike Captum's ``MinParamPerturbation``, which returns one value per
    batch). The bisection assumes that a flip at radius ``e`` implies a flip at every larger
    radius, which holds for linear models; otherwise the result is a radius that flips with a
    non-flipping radius at most ``tol`` below it.

    Args:
        model: classifier in eval mode returning ``(B, C)`` logits (or log-probabilities).
        inputs: ``(B, ...)`` float inputs; never modified.
        labels: ``(B,)`` classes to move away from; default: the model's prediction on
            ``inputs``. Examples whose prediction already differs get ``epsilon = 0``.
        norm: ``"Linf"`` (FGSM) or ``"L2"`` (fast gradient method).
        eps_max: largest radius tried; examples not flipped at ``eps_max`` get ``inf``.
        lower_bound: domain lower bound, a scalar or a tensor broadcastable to ``inputs``.
        upper_bound: domain upper bound, same forms as ``lower_bound``.
        tol: absolute width of the final bisection interval, in the units of ``norm``.
        max_halvings: maximum number of bisection rounds.
        loss: what the attack ascends. ``"ce"`` (default): cross-entropy on the outputs
            read as logits. ``"margin"``: ``max_{k != y} z_k - z_y``. ``"targeted"``: one
            attack per other class ``k`` ascending ``z_k - z_y``, keeping the smallest radius
            (``C - 1`` times the cost; the best minimal-radius estimate when the classes are
            not well separated, since cross-entropy spreads its push over all classes).
        additional_forward_args: extra positional arguments for ``model`` after the input
            (a single object or a tuple); tensors whose dim 0 is the batch follow the examples.
        progress: show a tqdm bar over bisection rounds; None shows it only on a terminal.

    Returns:
        An :class:`AttackResult` with ``attack="fgsm"``.

    Raises:
        ValueError: model in training mode, non-float or non-finite inputs, bad ``labels``,
            unknown ``norm`` or ``loss``, non-positive ``eps_max`` / ``tol``, or bad bounds.
    """
    search = _Search.prepare(
        model,
        inputs,
        labels,
        norm=norm,
        eps_max=eps_max,
        lower_bound=lower_bound,
        upper_bound=upper_bound,
        tol=tol,
        max_halvings=max_halvings,
        loss=loss,
        additional_forward_args=additional_forward_args,
    )
    rows = search.rows
    direction, _ = _ascent_direction(
        model, rows.x0, rows.labels, rows.args, search.norm, search.loss_fn(rows)
    )

    def attack(index: Tensor, radius: Tensor) -> tuple[Tensor, Tensor]:
        sub = rows.take(index)
        x_adv = _clip(sub.x0 + _view(radius, sub.x0) * direction[index], sub.lower, sub.upper)
        with torch.no_grad():
            return x_adv, model(x_adv, *sub.args).argmax(dim=1)

    return search.run(model, attack, "fgsm", progress)


def min_pgd_epsilon(
    model: Callable[..., Tensor],
    inputs: Tensor,
    labels: Tensor | Sequence[int] | None = None,
    *,
    norm: str = "Linf",
    eps_max: float,
    steps: int = 20,
    step_fraction: float | None = None,
    random_start: bool = False,
    lower_bound: float | Tensor | None = None,
    upper_bound: float | Tensor | None = None,
    tol: float = 1e-3,
    max_halvings: int = 30,
    loss: str = "ce",
    seed: int = 0,
    generator: torch.Generator | None = None,
    additional_forward_args: Any = None,
    progress: bool | None = None,
) -> AttackResult:
    """Per-example smallest PGD radius that changes the predicted class.

    For a candidate radius ``r_i`` per example, PGD runs ``steps`` iterations of: ascent step
    of length ``step_fraction * r_i`` (signed gradient for ``Linf``, computed by Captum's
    :class:`~captum.robust.FGSM`; normalised gradient for ``L2``), projection on example
    ``i``'s own ball of radius ``r_i``, clipping to the domain box. An example stops at the
    first iterate that flips. A vectorised bisection on ``(0, eps_max]`` then narrows every
    example's radius at once; examples already resolved keep their interval.

    The projected-gradient loop is implemented here, not by ``captum.robust.PGD``, because
    Captum's PGD takes one scalar radius per call (the bisection needs one per example), its
    L2 mode takes signed (L-inf) steps, and its L2 random start crashes for batch > 1. Without
    random start and with all radii equal, the ``Linf`` iterates match Captum's PGD with
    ``step_size = step_fraction * radius``. Like any attack, the result is an upper bound on
    the true minimal radius (up to ``tol``); the bisection assumes flips are monotone in the
    radius.

    Args:
        model: classifier in eval mode returning ``(B, C)`` logits (or log-probabilities).
        inputs: ``(B, ...)`` float inputs; never modified.
        labels: ``(B,)`` classes to move away from; default: the model's prediction on
            ``inputs``. Examples whose prediction already differs get ``epsilon = 0``.
        norm: ``"Linf"`` or ``"L2"``.
        eps_max: largest radius tried; examples not flipped at ``eps_max`` get ``inf``.
        steps: PGD iterations per radius.
        step_fraction: step length as a fraction of the radius; default ``2.5 / steps``.
        random_start: start from a uniform random point of each example's ball (drawn from
            ``generator``), fresh at every bisection round.
        lower_bound: domain lower bound, a scalar or a tensor broadcastable to ``inputs``.
        upper_bound: domain upper bound, same forms as ``lower_bound``.
        tol: absolute width of the final bisection interval, in the units of ``norm``.
        max_halvings: maximum number of bisection rounds.
        loss: what the attack ascends. ``"ce"`` (default): cross-entropy on the outputs
            read as logits. ``"margin"``: ``max_{k != y} z_k - z_y``. ``"targeted"``: one
            attack per other class ``k`` ascending ``z_k - z_y``, keeping the smallest radius
            (``C - 1`` times the cost; the best minimal-radius estimate when the classes are
            not well separated, since cross-entropy spreads its push over all classes).
        seed: seeds a fresh ``torch.Generator`` on the inputs' device when ``generator`` is
            None (only used with ``random_start``).
        generator: random generator for the random start; overrides ``seed``.
        additional_forward_args: extra positional arguments for ``model`` after the input
            (a single object or a tuple); tensors whose dim 0 is the batch follow the examples.
        progress: show a tqdm bar over bisection rounds; None shows it only on a terminal.

    Returns:
        An :class:`AttackResult` with ``attack="pgd"``.

    Raises:
        ValueError: model in training mode, non-float or non-finite inputs, bad ``labels``,
            unknown ``norm`` or ``loss``, non-positive ``eps_max`` / ``tol`` /
            ``step_fraction``, ``steps < 1``, a non-integer ``seed`` or bad bounds.
    """
    search = _Search.prepare(
        model,
        inputs,
        labels,
        norm=norm,
        eps_max=eps_max,
        lower_bound=lower_bound,
        upper_bound=upper_bound,
        tol=tol,
        max_halvings=max_halvings,
        loss=loss,
        additional_forward_args=additional_forward_args,
    )
    steps = _check_int(steps, "steps", 1)
    if step_fraction is None:
        step_fraction = 2.5 / steps
    step_fraction = _check_positive(step_fraction, "step_fraction", "pass e.g. 2.5 / steps")
    if random_start and generator is None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}.")
        generator = torch.Generator(device=search.batch.x0.device).manual_seed(seed)

    def attack(index: Tensor, radius: Tensor) -> tuple[Tensor, Tensor]:
        sub = search.rows.take(index)
        return _pgd(
            model,
            sub.x0,
            sub.labels,
            radius,
            norm=search.norm,
            steps=steps,
            step_fraction=step_fraction,
            random_start=random_start,
            generator=generator,
            lower=sub.lower,
            upper=sub.upper,
            args=sub.args,
            loss_fn=search.loss_fn(sub),
        )

    return search.run(model, attack, "pgd", progress)


def deepfool(
    model: Callable[..., Tensor],
    inputs: Tensor,
    labels: Tensor | Sequence[int] | None = None,
    *,
    norm: str = "L2",
    max_iter: int = 50,
    overshoot: float = 0.02,
    candidates: int | None = 10,
    lower_bound: float | Tensor | None = None,
    upper_bound: float | Tensor | None = None,
    additional_forward_args: Any = None,
    progress: bool | None = None,
) -> AttackResult:
    """Multi-class DeepFool: repeated linearised steps to the nearest decision boundary.

    At each iteration every unflipped example is linearised around its current point; for
    each candidate class ``k`` the boundary with the label ``y`` is the hyperplane
    ``f_k - f_y + (w_k - w_y) . r = 0``, the nearest one (distance ``|f_k - f_y| / ||w_k -
    w_y||_q``, ``q`` the dual norm) is chosen and the minimal step onto it is added to the
    accumulated perturbation; the candidate point is ``clip(x + (1 + overshoot) * r_total)``.
    DeepFool's step lies in the range of the Jacobian: it is a linearised SiMExp step.

    Gradients are batched over examples, with one backward pass per candidate class. For a
    linear model one iteration lands on the nearest boundary exactly (times ``1 + overshoot``,
    plus the ``1e-4`` push of the original algorithm).

    Args:
        model: classifier in eval mode returning ``(B, C)`` logits.
        inputs: ``(B, ...)`` float inputs; never modified.
        labels: ``(B,)`` classes to move away from; default: the model's prediction on
            ``inputs``. Examples whose prediction already differs get ``epsilon = 0``.
        norm: ``"L2"`` (the original DeepFool) or ``"Linf"`` (steps along the sign of the
            boundary normal, distance measured with its L1 norm).
        max_iter: maximum number of linearised steps.
        overshoot: relative overshoot applied to the accumulated perturbation.
        candidates: number of classes considered per example (the label plus the
            ``candidates - 1`` highest clean logits); None considers all classes.
        lower_bound: domain lower bound, a scalar or a tensor broadcastable to ``inputs``.
        upper_bound: domain upper bound, same forms as ``lower_bound``.
        additional_forward_args: extra positional arguments for ``model`` after the input
            (a single object or a tuple); tensors whose dim 0 is the batch follow the examples.
        progress: show a tqdm bar over iterations; None shows it only on a terminal.

    Returns:
        An :class:`AttackResult` with ``attack="deepfool"``; ``epsilon`` is the ``norm`` of
        the perturbation found (``inf`` where none flips within ``max_iter``).

    Raises:
        ValueError: model in training mode, non-float or non-finite inputs, bad ``labels``,
            unknown ``norm``, ``max_iter < 1``, negative ``overshoot``, ``candidates < 2``
            or bad bounds.
    """
    batch, scores, norm = _prepare(
        model, inputs, labels, norm, lower_bound, upper_bound, additional_forward_args
    )
    x0, labels_t = batch.x0, batch.labels
    max_iter = _check_int(max_iter, "max_iter", 1)
    if isinstance(overshoot, bool) or not isinstance(overshoot, (int, float)) or overshoot < 0:
        raise ValueError(f"overshoot must be a number >= 0, got {overshoot!r}.")
    classes = scores.shape[1]
    if candidates is None:
        candidates = classes
    candidates = min(_check_int(candidates, "candidates", 2), classes)
    # Candidate classes: the label first, then the highest remaining clean logits.
    scores = scores.scatter(1, labels_t[:, None], float("inf"))
    cand = scores.topk(candidates, dim=1).indices

    epsilon = torch.full((x0.shape[0],), float("inf"), dtype=x0.dtype, device=x0.device)
    already = batch.clean_pred != labels_t
    epsilon[already] = 0.0
    adversarial = x0.clone()
    r_total = torch.zeros_like(x0)
    x = x0.clone()
    active = ~already

    bar = None
    if show_progress(progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=max_iter, desc=f"DeepFool ({norm})", unit="iter", leave=False)
    try:
        for _ in range(max_iter):
            index = active.nonzero().squeeze(1)
            if index.numel() == 0:
                break
            sub = batch.take(index)
            xi = x[index].detach().requires_grad_(True)
            with torch.enable_grad():
                logits = model(xi, *sub.args)
                picked = logits.gather(1, cand[index])
                grads = torch.stack(
                    [
                        torch.autograd.grad(
                            picked[:, j].sum(), xi, retain_graph=j < candidates - 1
                        )[0]
                        for j in range(candidates)
                    ],
                    dim=1,
                )
            picked = picked.detach()
            w = (grads[:, 1:] - grads[:, :1]).reshape(len(index), candidates - 1, -1)
            gap = (picked[:, 1:] - picked[:, :1]).abs()  # (n, K-1)
            dual = w.norm(p=2, dim=2) if norm == "L2" else w.abs().sum(dim=2)
            far = torch.full_like(gap, math.inf)
            dist = torch.where(dual > 0, gap / dual.clamp_min(1e-30), far)
            best = dist.argmin(dim=1)
            stuck = ~torch.isfinite(dist.gather(1, best[:, None]).squeeze(1))
            w_l = w.gather(1, best[:, None, None].expand(-1, 1, w.shape[2])).squeeze(1)
            gap_l = gap.gather(1, best[:, None]).squeeze(1)
            dual_l = dual.gather(1, best[:, None]).squeeze(1).clamp_min(1e-30)
            if norm == "L2":
                step = ((gap_l + 1e-4) / dual_l**2)[:, None] * w_l
            else:
                step = ((gap_l + 1e-4) / dual_l)[:, None] * torch.sign(w_l)
            step = torch.where(stuck[:, None], torch.zeros_like(step), step)
            r_total[index] = r_total[index] + step.view_as(xi)
            x_new = _clip(sub.x0 + (1 + overshoot) * r_total[index], sub.lower, sub.upper)
            x[index] = x_new
            with torch.no_grad():
                pred = model(x_new, *sub.args).argmax(dim=1)
            ok = pred != sub.labels
            adversarial[index[ok]] = x_new[ok]
            delta = x_new[ok] - sub.x0[ok]
            epsilon[index[ok]] = l2_norm(delta) if norm == "L2" else linf_norm(delta)
            active[index[ok | stuck]] = False
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return _finish(model, batch, adversarial, epsilon, norm, "deepfool")
