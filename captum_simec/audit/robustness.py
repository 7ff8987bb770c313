"""Per-example robustness audit of a classifier: pullback geometry, SiMEC/SiMExp walks, attacks.

For every example `x` with prediction `t = argmax f(x)` the audit measures (method.md §3-4):

- the spectrum of the pullback metric `g = J^T G J`: rank `r`, null dimension `n - r`, the top
  singular value `s_1` and the spectral gap `s_r / s_{r+1}`, and the per-feature robustness
  map `kappa_i = ||P_N e_i||^2 = 1 - sum_{k<=r} v_ki^2`;
- the **class extent**: a seeded SiMEC walk of K steps inside the class of `x` (the output held
  fixed, drift `||f(x_k) - f(x_0)||_G` reported and optionally bounded); how far it got, as the
  end-to-end displacement (L2, L-inf) and the path length;
- the **flip distance**: a directed SiMExp walk that leaves the predicted class, stopped when
  the prediction changes (the crossing refined by bisection); its displacement in L2 and L-inf,
  its path length and the class reached, or "no flip within budget" (`inf`);
- for comparison, the smallest FGSM and PGD radius that flips the prediction (per example, in
  L2 and L-inf, from :mod:`captum_simec.audit.attacks`), and the ratios
  `flip_l2 / pgd_l2_eps` and `flip_linf / pgd_linf_eps`. Both numbers bound the true minimal
  adversarial perturbation from above; a ratio near 1 means the walk found an attack-sized
  flip, a large ratio that the walk's path is far from the shortest one.

The records and their summaries are defined in :mod:`captum_simec.audit.records`; with an
output folder every batch is committed to the shard store (:mod:`captum_simec.audit.store`),
so an interrupted audit resumes.

Reproducibility: an example's record depends only on the settings, the seed and its data-set
index, not on the batch it was audited in (the SiMEC walk of the example at index `j` is
seeded `seed + j`, following the walks' own per-example convention; the SiMExp walk and the
attacks are deterministic), so a resumed or sharded audit gives the records of an
uninterrupted one, up to float round-off.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from captum_simec._runtime import show_progress
from captum_simec._validation import (
    check_input_tensor,
    check_int,
    check_labels,
)
from captum_simec.audit._data import index_batches
from captum_simec.audit.attacks import (
    AttackResult,
    deepfool,
    l2_norm,
    linf_norm,
    min_fgsm_epsilon,
    min_pgd_epsilon,
)
from captum_simec.audit.attacks._inputs import NORMS, check_classifier, classifier_logits
from captum_simec.audit.records import (
    AuditResult,
    _concat_maps,
    _records_from_columns,
)
from captum_simec.audit.settings import AuditSettings
from captum_simec.audit.store import _prepare_output, _ShardStore, load_audit
from captum_simec.explore import simec, simexp
from captum_simec.geometry import as_probabilities, pullback_spectrum

__all__ = ["RobustnessAudit"]


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Adds the seconds the block takes to ``timings[stage]``."""
    start = time.perf_counter()
    yield
    timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def _ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    """`numerator / denominator` where both are finite and the denominator positive, else nan."""
    ok = torch.isfinite(numerator) & torch.isfinite(denominator) & (denominator > 0)
    return torch.where(ok, numerator / denominator.clamp_min(1e-300), torch.nan)


# ----------------------------------------------------------------------------- the audit


@dataclass(eq=False)
class RobustnessAudit(AuditSettings):
    """Audits a classifier example by example: geometry, class extent, flip distance, attacks.

    The keyword arguments but ``keep_maps`` and ``progress`` are the :class:`AuditSettings`
    (stored with the records and checked on construction); their defaults are class
    attributes (``RobustnessAudit.simec_steps`` is 20), which the command line reads too.

    Args:
        model: classifier in ``eval()`` mode returning ``(B, C)`` logits (or log-probabilities
            or probabilities), called as ``model(x)`` on one input tensor.
        domain: the box of admissible inputs, ``(lo, hi)`` (numbers or tensors broadcastable
            to one example) or a :class:`~captum_simec.explore.Box`; walks stay inside it and
            attacks are clipped to it. None: unbounded (then pass ``eps_max``).
        output_metric: the output metric `G` of the spectrum and the walks (see
            :func:`~captum_simec.geometry.pullback_spectrum`); metrics that need a target
            (``"target"``, ``"margin"``) use the predicted class.
        simec_steps: K, steps of the SiMEC (class extent) walk; 0 skips it.
        simec_step_size: length of one SiMEC step, in input units.
        max_drift: stop an example's SiMEC walk once its output drift exceeds this (None:
            never; the drift is reported either way).
        corrector: Gauss-Newton correction back onto the class after each SiMEC step.
        simexp_steps: most steps of the SiMExp (flip) walk; 0 skips it.
        simexp_step_size: length of one SiMExp step, in input units (the crossing is then
            refined by bisection, so the flip distance is not quantised by it).
        attacks: which of ``"fgsm"``, ``"pgd"`` (both in L2 and L-inf) and ``"deepfool"``
            (L2) to run; empty for none.
        pgd_steps: PGD iterations per candidate radius.
        eps_max: largest attack radius per norm, ``{"L2": ..., "Linf": ...}``; default from
            the domain: ``hi - lo`` for L-inf and ``(hi - lo) sqrt(n)`` for L2 (the box's
            diagonal). Required when ``domain`` is None and attacks run.
        attack_rtol: bisection tolerance of the attack radii, relative to ``eps_max``.
        attack_loss: what FGSM and PGD ascend: ``"margin"`` (default; best other output minus
            the predicted one, which heads for the nearest boundary), ``"ce"``
            (cross-entropy, which spreads its push over all classes and overestimates the
            radius with three or more classes) or ``"targeted"`` (one attack per other
            class, the tightest and C - 1 times the cost).
        seed: seeds every random choice (the SiMEC walk of the example at data-set index
            `j` uses ``seed + j``); a non-negative integer.
        rtol: relative rank tolerance of the spectrum (default: the geometry default).
        keep_maps: keep each example's input, robustness map and flip displacement (for the
            report figures; costs 3 n floats per example).
        progress: tqdm bars; None shows them only on a terminal.

    Raises:
        TypeError: a model that cannot be called, a setting of the wrong type.
        ValueError: a model in training mode, a bad box (lo > hi), negative steps,
            non-positive step sizes, an unknown attack or attack loss, attacks without a
            domain or ``eps_max``.
    """

    model: Callable[..., Tensor] = field(repr=False)
    keep_maps: bool = field(default=True, kw_only=True)
    progress: bool | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        check_classifier(self.model)
        super().__post_init__()
        self.keep_maps = bool(self.keep_maps)

    # ----- one batch -----
    def audit_batch(
        self,
        inputs: Tensor,
        labels: Tensor | Sequence[int] | None = None,
        indices: Tensor | Sequence[int] | None = None,
        timings: dict[str, float] | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Tensor]]:
        """Audits one batch.

        Args:
            inputs: ``(B, ...)`` float inputs inside the domain (moved to the model's device).
            labels: ``(B,)`` true classes, or None.
            indices: ``(B,)`` data-set indices (they seed the SiMEC walks); default
                ``0..B-1``.
            timings: if given, seconds per stage are added to it.

        Returns:
            ``(records, maps)``: one record per example and the per-example maps (``index``,
            ``input``, ``robustness``, ``flip``; empty if ``keep_maps`` is False).
        """
        x, y, index = self._checked_batch(inputs, labels, indices)
        timings = {} if timings is None else timings
        with _timed(timings, "spectrum"):
            columns, robustness = self._geometry(x, y, index)
        prediction = columns["prediction"]
        with _timed(timings, "simec"):
            columns.update(self._class_extent(x, index, prediction))
        with _timed(timings, "simexp"):
            flip_columns, flip_map = self._flip(x, prediction)
        columns.update(flip_columns)
        with _timed(timings, "attacks"):
            columns.update(self._attack(x))
        columns["ratio_l2"] = _ratio(columns["flip_l2"], columns["pgd_l2_eps"])
        columns["ratio_linf"] = _ratio(columns["flip_linf"], columns["pgd_linf_eps"])
        records = _records_from_columns(columns, x.shape[0])
        maps: dict[str, Tensor] = {}
        if self.keep_maps:
            maps = {
                "index": index,
                "input": x.detach().cpu(),
                "robustness": robustness.reshape(x.shape).detach().cpu(),
                "flip": flip_map.reshape(x.shape).detach().cpu(),
            }
        return records, maps

    def _checked_batch(
        self,
        inputs: Tensor,
        labels: Tensor | Sequence[int] | None,
        indices: Tensor | Sequence[int] | None,
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        """The inputs on the model's device, inside the domain; the labels and the indices."""
        x = check_input_tensor(inputs, "inputs", min_dim=2).detach()
        parameter = next(iter(getattr(self.model, "parameters", list)()), None)
        if parameter is not None and parameter.device != x.device:
            x = x.to(parameter.device)  # e.g. CPU batches from a DataLoader, model on a GPU
        batch = x.shape[0]
        index = torch.arange(batch) if indices is None else torch.as_tensor(indices).long()
        if index.shape != (batch,):
            raise ValueError(f"`indices` must have shape ({batch},), got {tuple(index.shape)}.")
        if self.domain is not None:  # a rounding step outside the box is clipped onto it
            bound = self.domain.bind((x.shape[1:],), x.dtype, x.device)
            x = bound.check_inside(x.flatten(1)).view_as(x)
        return x, check_labels(labels, batch), index

    def _geometry(
        self, x: Tensor, y: Tensor | None, index: Tensor
    ) -> tuple[dict[str, Any], Tensor]:
        """The prediction, its confidence and margin, the spectrum's columns and the map."""
        outputs = classifier_logits(self.model, x, ())
        check_labels(y, x.shape[0], num_classes=outputs.shape[1])
        prediction = outputs.argmax(dim=1)
        top2 = outputs.topk(2, dim=1).values
        spectrum = pullback_spectrum(
            self.model,
            x,
            output_metric=self.output_metric,
            target=self._target_for_metric(prediction),
            rtol=self.rtol,
        )
        columns = {
            "index": index,
            "label": torch.full((x.shape[0],), -1, dtype=torch.long) if y is None else y,
            "prediction": prediction,
            "confidence": as_probabilities(outputs).gather(1, prediction[:, None]).squeeze(1),
            "margin": top2[:, 0] - top2[:, 1],
            "rank": spectrum.rank,
            "null_dim": spectrum.null_dim,
            "top_singular_value": spectrum.singular_values[:, 0],
            "spectral_gap": spectrum.spectral_gap,
            "rank_margin": spectrum.rank_margin,
        }
        return columns, spectrum.robustness()

    def _class_extent(self, x: Tensor, index: Tensor, prediction: Tensor) -> dict[str, Any]:
        """SiMEC walks; the example at data-set index `j` walks with seed `seed + j`.

        One batched walk with one seed per example, so the result does not depend on how
        the data were batched, sharded or resumed.
        """
        batch = x.shape[0]
        if self.simec_steps == 0:
            nan = torch.full((batch,), torch.nan, dtype=torch.float64)
            return {
                "extent_l2": nan,
                "extent_linf": nan,
                "extent_path": nan,
                "extent_drift": nan,
                "extent_class_kept": [None] * batch,
                "extent_stop": ["skipped"] * batch,
            }
        walk = simec(
            self.model,
            x,
            steps=self.simec_steps,
            step_size=self.simec_step_size,
            output_metric=self.output_metric,
            target=self._target_for_metric(prediction),
            domain=self.domain,
            corrector=self.corrector,
            max_drift=self.max_drift,
            seed=[self.seed + int(j) for j in index],
            progress=False,
        )
        return {
            "extent_l2": l2_norm(walk.displacement()).tolist(),
            "extent_linf": linf_norm(walk.max_abs_displacement()).tolist(),
            "extent_path": walk.path_length.tolist(),
            "extent_drift": walk.max_drift.tolist(),
            "extent_class_kept": (~walk.class_changed).tolist(),
            "extent_stop": list(walk.stop_reason),
        }

    def _flip(self, x: Tensor, prediction: Tensor) -> tuple[dict[str, Any], Tensor]:
        """The directed SiMExp walk out of the predicted class, batched."""
        batch = x.shape[0]
        if self.simexp_steps == 0:
            nan = torch.full((batch,), torch.nan, dtype=torch.float64)
            columns = {
                "flip_found": [None] * batch,
                "flip_class": [None] * batch,
                "flip_l2": nan,
                "flip_linf": nan,
                "flip_path": nan,
                "flip_stop": ["skipped"] * batch,
            }
            return columns, torch.zeros_like(x)
        walk = simexp(
            self.model,
            x,
            steps=self.simexp_steps,
            step_size=self.simexp_step_size,
            mode="leave_class",
            target=prediction,
            output_metric=self.output_metric,
            domain=self.domain,
            refine_boundary=True,
            seed=self.seed,
            progress=False,
        )
        # The crossing is refined onto the decision boundary, where the start class may still
        # tie for the top output: the class reached is the best class other than the start's.
        flipped = torch.tensor([reason == "class_change" for reason in walk.stop_reason])
        final = walk.outputs[-1].detach().cpu()
        reached = final.scatter(1, prediction.cpu()[:, None], -torch.inf).argmax(dim=1)
        displacement = walk.displacement().reshape(batch, -1).detach()
        inf = torch.full((batch,), torch.inf, dtype=torch.float64)

        def when_flipped(values: Tensor) -> Tensor:
            return torch.where(flipped, values.double().cpu(), inf)

        columns = {
            "flip_found": flipped,
            "flip_class": torch.where(flipped, reached, -1),
            "flip_l2": when_flipped(l2_norm(displacement)),
            "flip_linf": when_flipped(linf_norm(displacement)),
            "flip_path": when_flipped(torch.as_tensor(walk.path_length)),
            "flip_stop": [str(reason) for reason in walk.stop_reason],
        }
        return columns, displacement

    def _attack(self, x: Tensor) -> dict[str, Tensor]:
        """Smallest flipping FGSM / PGD radii (L2 and L-inf) and DeepFool's L2 norm."""
        batch = x.shape[0]
        columns = {
            f"{attack}_{norm.lower()}_eps": torch.full((batch,), torch.nan, dtype=torch.float64)
            for attack in ("fgsm", "pgd")
            for norm in NORMS
        }
        columns["deepfool_l2_eps"] = columns["pgd_l2_eps"].clone()
        if not self.attacks:
            return columns
        domain = self._bounds(x)
        eps_max = self._eps_max(domain, x[0].numel())
        bounds = {} if domain is None else {"lower_bound": domain[0], "upper_bound": domain[1]}

        def epsilon(result: AttackResult) -> Tensor:
            return result.epsilon.double().cpu()

        for norm in NORMS:
            common = {"norm": norm, "loss": self.attack_loss, "progress": False, **bounds}
            search = {"eps_max": eps_max[norm], "tol": self.attack_rtol * eps_max[norm]}
            if "fgsm" in self.attacks:
                result = min_fgsm_epsilon(self.model, x, **common, **search)
                columns[f"fgsm_{norm.lower()}_eps"] = epsilon(result)
            if "pgd" in self.attacks:
                result = min_pgd_epsilon(
                    self.model, x, steps=self.pgd_steps, seed=self.seed, **common, **search
                )
                columns[f"pgd_{norm.lower()}_eps"] = epsilon(result)
        if "deepfool" in self.attacks:
            columns["deepfool_l2_eps"] = epsilon(deepfool(self.model, x, norm="L2", **bounds))
        return columns

    # ----- whole data sets -----
    def run(
        self,
        data: Tensor | Dataset | DataLoader,
        labels: Tensor | Sequence[int] | None = None,
        *,
        out: str | os.PathLike | None = None,
        batch_size: int = 32,
        resume: bool = False,
        limit: int | None = None,
    ) -> AuditResult:
        """Audits a data set batch by batch, committing each batch to `out` if given.

        Args:
            data: ``(N, ...)`` inputs, a map-style Dataset of ``x`` or ``(x, y)`` items, or a
                DataLoader over one (its sampler decides which examples are audited).
            labels: ``(N,)`` true classes for tensor `data` (optional).
            out: output folder for the shards (resume); None keeps everything in memory.
            batch_size: examples per batch for tensor or Dataset `data`.
            resume: skip the examples already committed under `out`.
            limit: audit at most this many new examples in this call (then stop cleanly).

        Returns:
            An :class:`AuditResult`: with `out`, every example committed there (this run's and
            earlier ones), also saved as ``records.csv``, ``records.json`` and
            ``summary.json`` in `out`; without, this run's examples.

        Raises:
            FileExistsError: `out` already holds records and ``resume`` is False.
        """
        skip = _prepare_output(out, self.settings, resume) if out is not None else set()
        result = self.audit_shard(
            data, labels, out=out, batch_size=batch_size, skip=skip, limit=limit
        )
        if out is None:
            return result
        merged = load_audit(out)
        merged.timings = result.timings
        merged.save(out)
        return merged

    def audit_shard(
        self,
        data: Tensor | Dataset | DataLoader,
        labels: Tensor | Sequence[int] | None = None,
        *,
        out: str | os.PathLike | None = None,
        batch_size: int = 32,
        skip: set[int] | frozenset[int] = frozenset(),
        limit: int | None = None,
        shard: str = "rank-0",
        progress: bool | None = None,
    ) -> AuditResult:
        """Audits the examples of `data` whose index is not in `skip`: one process's share.

        Unlike :meth:`run`, the output folder is neither checked against earlier settings nor
        initialised, so several processes can each audit their shard of one folder
        (:mod:`captum_simec.audit.distributed`).

        Args:
            data, labels, batch_size, limit: as in :meth:`run`.
            out: folder whose ``shards/<shard>`` receives each committed batch, or None.
            skip: data-set indices not to audit (already done).
            shard: name of this process's shard folder.
            progress: override of the audit's ``progress`` setting.

        Returns:
            The records and maps audited in this call, with their timings.
        """
        from tqdm.auto import tqdm

        batches, total = index_batches(data, labels, batch_size)
        if limit is not None:
            limit = check_int(limit, "limit", 1)
        store = None if out is None else _ShardStore(Path(out) / "shards" / shard)
        show = show_progress(self.progress if progress is None else progress)
        timings: dict[str, float] = {}
        records: list[dict[str, Any]] = []
        maps: list[dict[str, Tensor]] = []
        skip = set(skip)
        flips = 0
        start = time.perf_counter()
        bar = tqdm(total=total, desc="robustness audit", unit="ex", disable=not show)
        try:
            for index, x, y in batches:
                pending = torch.tensor([int(i) not in skip for i in index], dtype=torch.bool)
                if limit is not None:
                    pending &= torch.cumsum(pending.long(), 0) <= limit - len(records)
                if bool(pending.any()):
                    batch_records, batch_maps = self.audit_batch(
                        x[pending], None if y is None else y[pending], index[pending], timings
                    )
                    if store is not None:
                        store.append(batch_records, batch_maps)
                    records += batch_records
                    maps.append(batch_maps)
                    skip.update(index[pending].tolist())
                    flips += sum(r["flip_found"] is True for r in batch_records)
                bar.update(len(index))
                bar.set_postfix(audited=len(records), flipped=flips)
                if limit is not None and len(records) >= limit:
                    break
        finally:
            bar.close()
        timings["total"] = time.perf_counter() - start
        timings["examples"] = float(len(records))
        return AuditResult(records, _concat_maps(maps), self.settings, timings)
