"""Scale an audit out over processes with ``torchrun`` and a ``DistributedSampler``.

An audit is embarrassingly parallel over examples. Under ``torchrun`` every process (rank)
audits the examples that a :class:`~torch.utils.data.distributed.DistributedSampler` gives it
and commits them to its own shard, ``out/shards/rank-<r>/``; after a barrier, rank 0 merges
the shards into one table (``records.csv``, ``records.json``, ``summary.json``), keeping one
record per data-set index. The sampler pads the data set to a multiple of the world size by
repeating its first examples; those duplicates are audited twice and dropped by the merge.
Because an example's record depends only on its index (see
:mod:`captum_simec.audit.robustness`), the merged table equals a single-process audit's, up to
float round-off.

A script::

    # audit_digits.py
    from captum_simec.audit.distributed import audit_distributed
    from captum_simec.audit.robustness import RobustnessAudit
    from captum_simec.report import write_audit_report

    audit = RobustnessAudit(model.eval(), domain=(0.0, 1.0))
    result = audit_distributed(audit, dataset, out="audit_out", batch_size=32)
    if result is not None:  # rank 0 holds the merged result
        write_audit_report(result, "audit_out")

runs on one machine with ``torchrun --nproc_per_node 4 audit_digits.py`` (gloo on CPU, NCCL
when CUDA is available), or on several with torchrun's ``--nnodes`` / ``--rdzv-endpoint``
(the output folder must then be on a shared file system). The command-line audit does the
same: ``torchrun --nproc_per_node 4 -m captum_simec.cli audit --model ... --data ...``.
Without ``torchrun`` (``WORLD_SIZE`` unset or 1) :func:`audit_distributed` simply runs the
audit in the current process. Interrupted runs resume with ``resume=True`` at any world size:
every rank skips the indices committed in any shard.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from captum_simec.audit.records import AuditResult
from captum_simec.audit.robustness import RobustnessAudit
from captum_simec.audit.store import (
    ChangedSettingsError,
    ExistingAuditError,
    _completed_indices,
    _prepare_output,
    load_audit,
)

__all__ = ["audit_distributed"]


def _init_distributed(
    backend: str | None = None, timeout: timedelta = timedelta(hours=12)
) -> tuple[int, int, bool]:
    """Joins the process group that ``torchrun`` describes in the environment.

    Args:
        backend: ``"gloo"`` or ``"nccl"``; default NCCL when CUDA is available, else gloo.
            With NCCL, each process first selects the GPU ``LOCAL_RANK`` (torchrun sets it).
        timeout: collective timeout (generous: ranks meet only at the start and the end).

    Returns:
        ``(rank, world_size, initialised_here)``; ``(0, 1, False)`` outside ``torchrun``.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, False
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed.")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":  # one GPU per process: NCCL's collectives run on the current one
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=timeout)
    return dist.get_rank(), dist.get_world_size(), True


def _distributed_loader(
    data: Tensor | Dataset | DataLoader,
    labels: Tensor | Sequence[int] | None,
    batch_size: int,
    rank: int,
    world_size: int,
) -> DataLoader:
    """A DataLoader over this rank's share of `data` (a `DistributedSampler`, no shuffling).

    A DataLoader whose sampler already is a `DistributedSampler` is used as it is; any other
    DataLoader keeps its dataset, batch size, collate function and workers.
    """
    if isinstance(data, DataLoader) and isinstance(data.sampler, DistributedSampler):
        return data
    options: dict = {"batch_size": batch_size}
    if isinstance(data, DataLoader):
        options = {
            "batch_size": data.batch_size or batch_size,
            "collate_fn": data.collate_fn,
            "num_workers": data.num_workers,
        }
        data = data.dataset
    elif isinstance(data, Tensor):
        tensors = (data,) if labels is None else (data, torch.as_tensor(labels))
        data = TensorDataset(*tensors)
    elif labels is not None:
        raise ValueError("`labels` is only used with tensor inputs; a Dataset carries its own.")
    sampler = DistributedSampler(data, num_replicas=world_size, rank=rank, shuffle=False)
    return DataLoader(data, sampler=sampler, **options)


def audit_distributed(
    audit: RobustnessAudit,
    data: Tensor | Dataset | DataLoader,
    out: str | os.PathLike,
    *,
    labels: Tensor | Sequence[int] | None = None,
    batch_size: int = 32,
    resume: bool = False,
    backend: str | None = None,
) -> AuditResult | None:
    """Audits `data` over all ``torchrun`` processes; rank 0 merges and saves the records.

    Args:
        audit: the configured audit (the same settings on every rank).
        data: ``(N, ...)`` inputs, a map-style Dataset or a DataLoader.
        out: output folder, shared by all ranks.
        labels: ``(N,)`` true classes for tensor `data`.
        batch_size: examples per batch on each rank.
        resume: skip the indices already committed in `out` (by any rank, any world size).
        backend: process-group backend when this call initialises it.

    Returns:
        On rank 0 the merged :class:`AuditResult` (also saved as ``records.csv``,
        ``records.json`` and ``summary.json`` in `out`); None on the other ranks.

    Raises:
        ExistingAuditError, ChangedSettingsError: on every rank, when rank 0 finds `out`
            unusable (records there without ``resume``, or different settings).
    """
    rank, world, initialised = _init_distributed(backend)
    if world == 1:
        return audit.run(data, labels, out=out, batch_size=batch_size, resume=resume)
    try:
        problem: list[Exception | None] = [None]
        if rank == 0:
            try:
                _prepare_output(out, audit.settings, resume)
            except (ExistingAuditError, ChangedSettingsError) as error:
                problem = [error]
        dist.broadcast_object_list(problem, src=0)
        if problem[0] is not None:
            raise problem[0]
        skip = _completed_indices(out) if resume else set()
        loader = _distributed_loader(data, labels, batch_size, rank, world)
        shard = audit.audit_shard(
            loader,
            out=out,
            skip=skip,
            shard=f"rank-{rank}",
            progress=None if rank == 0 else False,
        )
        dist.barrier()
        if rank != 0:
            return None
        result = load_audit(Path(out))
        result.timings = shard.timings
        result.timings["world_size"] = float(world)
        result.save(out)
        return result
    finally:
        if initialised:
            dist.destroy_process_group()
