"""The per-example bisection of the flip radius that FGSM and PGD share, and its settings.

For every example the search keeps its own interval ``(lo, hi]`` of radii, vectorised over
the batch: the attack is run at ``eps_max`` once, then at the midpoints of the intervals still
wider than ``tol``, each example with its own radius; examples already resolved keep their
interval while the others continue (unlike Captum's ``MinParamPerturbation``, which returns
one value per batch).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_simec._runtime import show_progress
from captum_simec._validation import check_int, check_positive
from captum_simec.audit.attacks._inputs import Rows, check_norm, prepare_rows
from captum_simec.audit.attacks._losses import Loss, check_loss, loss_function
from captum_simec.audit.attacks.result import AttackResult, _verified_result

__all__ = ["SearchSettings"]

#: ``attack(index, radius) -> (x_adv, pred)`` for the rows ``index``, one radius per row.
Attack = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


@dataclass
class SearchSettings:
    """How FGSM and PGD search each example's flip radius; the defaults of both live here.

    Attributes:
        eps_max: largest radius tried; examples not flipped at ``eps_max`` get ``inf``.
        norm: ``"Linf"`` or ``"L2"`` (in any case), the norm of the radius.
        tol: absolute width of the final bisection interval, in the units of ``norm``.
        max_halvings: the most bisection rounds.
        loss: what the attack ascends. ``"ce"``: cross-entropy on the outputs read as
            logits. ``"margin"``: ``max_{k != y} z_k - z_y``. ``"targeted"``: one attack per
            other class ``k`` ascending ``z_k - z_y``, keeping the smallest radius (``C - 1``
            times the cost; the best minimal-radius estimate when the classes are not well
            separated, since cross-entropy spreads its push over all classes).

    Raises:
        TypeError: a setting of the wrong type.
        ValueError: an unknown ``norm`` or ``loss``, ``eps_max`` or ``tol`` not a positive
            finite number, or ``max_halvings < 1``.
    """

    eps_max: float
    norm: str = "Linf"
    tol: float = 1e-3
    max_halvings: int = 30
    loss: str = "ce"

    def __post_init__(self) -> None:
        self.eps_max = check_positive(
            self.eps_max, "eps_max", "Pass the largest radius worth trying."
        )
        self.norm = check_norm(self.norm)
        self.tol = check_positive(self.tol, "tol", "Pass e.g. tol=1e-3.")
        self.max_halvings = check_int(self.max_halvings, "max_halvings", 1)
        self.loss = check_loss(self.loss)

    @property
    def rounds(self) -> int:
        """The bisection rounds needed to narrow ``(0, eps_max]`` to ``tol``, at most."""
        return min(self.max_halvings, max(0, math.ceil(math.log2(self.eps_max / self.tol))))


def _bisect(
    attack: Attack, rows: Rows, settings: SearchSettings, progress: bool | None, desc: str
) -> tuple[Tensor, Tensor]:
    """Per-row bisection of the flip radius in ``(0, eps_max]``.

    Args:
        attack: runs the attack on some rows, each with its own radius.
        rows: the rows to find a radius for.
        settings: ``eps_max``, ``tol`` and ``max_halvings``.
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
        x_adv, pred = attack(index, torch.full_like(epsilon[index], settings.eps_max))
        ok = pred != labels[index]
        adversarial[index[ok]] = x_adv[ok]
        index = index[ok]
    lo = torch.zeros(index.numel(), dtype=torch.float64, device=x0.device)
    hi = torch.full_like(lo, settings.eps_max)

    from tqdm.auto import tqdm

    show = show_progress(progress) and index.numel() > 0 and settings.rounds > 0
    with tqdm(total=settings.rounds, desc=desc, unit="round", leave=False, disable=not show) as bar:
        for _ in range(settings.max_halvings):
            open_ = (hi - lo) > settings.tol
            if not bool(open_.any()):
                break
            sub = open_.nonzero().squeeze(1)
            mid = (lo[sub] + hi[sub]) / 2
            x_adv, pred = attack(index[sub], mid.to(x0.dtype))
            ok = pred != labels[index[sub]]
            hi[sub] = torch.where(ok, mid, hi[sub])
            lo[sub] = torch.where(ok, lo[sub], mid)
            adversarial[index[sub[ok]]] = x_adv[ok]
            bar.update(1)
    epsilon[index] = hi.to(x0.dtype)
    return epsilon, adversarial


@dataclass
class _Search:
    """A validated per-example search for the smallest radius at which an attack flips.

    Attributes:
        batch: the clean batch, one row per example.
        rows: the rows the bisection runs on: the examples, or (example, other class) pairs
            for the targeted loss.
        settings: the validated search settings.
    """

    batch: Rows
    rows: Rows
    settings: SearchSettings

    @classmethod
    def prepare(
        cls,
        model: Callable[..., Tensor],
        inputs: Tensor,
        labels: Tensor | Sequence[int] | None,
        settings: SearchSettings,
        bounds: tuple[float | Tensor | None, float | Tensor | None],
        additional_forward_args: Any,
    ) -> _Search:
        """Validates the batch and lays out the rows (one per example, or per other class)."""
        batch, logits = prepare_rows(model, inputs, labels, *bounds, additional_forward_args)
        rows = batch
        if settings.loss == "targeted":
            size, classes = logits.shape
            pairs = torch.ones(size, classes, dtype=torch.bool, device=logits.device)
            pairs[torch.arange(size, device=logits.device), batch.labels] = False
            example, targets = pairs.nonzero(as_tuple=True)
            rows = dataclasses.replace(batch.take(example), targets=targets)
        return cls(batch, rows, settings)

    def loss_fn(self, rows: Rows) -> Loss:
        """The per-example loss the attack ascends on ``rows``."""
        return loss_function(self.settings.loss, rows.targets)

    def run(
        self, model: Callable[..., Tensor], attack: Attack, name: str, progress: bool | None
    ) -> AttackResult:
        """Bisects every row's radius with ``attack`` and keeps each example's smallest."""
        desc = f"{name.upper()} ({self.settings.norm}) bisection"
        epsilon, adversarial = _bisect(attack, self.rows, self.settings, progress, desc)
        epsilon, adversarial = self._per_example(epsilon, adversarial)
        return _verified_result(model, self.batch, adversarial, epsilon, self.settings.norm, name)

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
