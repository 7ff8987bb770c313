"""Data indexing for the audit: batches of (data-set indices, inputs, labels) from any source.

Every example keeps its index in the data set, whatever the source (tensors, a map-style
Dataset, or a DataLoader with its own sampler): the index seeds the example's walks and keys
its record, so resuming and merging shards work by index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

from captum_simec._validation import check_input_tensor, check_int, check_labels

Batches = Iterator[tuple[Tensor, Tensor, Tensor | None]]


class _Indexed(Dataset):
    """Yields `(index, item)` so every example of a batch keeps its data-set index."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[int, Any]:
        return index, self.dataset[index]


class _IndexedCollate:
    """Collates `(index, item)` pairs with the user's collate function (picklable)."""

    def __init__(self, collate: Callable[[list[Any]], Any]) -> None:
        self.collate = collate

    def __call__(self, batch: list[tuple[int, Any]]) -> tuple[Tensor, Any]:
        indices = torch.tensor([index for index, _ in batch], dtype=torch.long)
        return indices, self.collate([item for _, item in batch])


def _split_item(item: Any) -> tuple[Tensor, Tensor | None]:
    """`(x, y)` from a collated batch: a tensor, `(x,)`, `(x, y)` or a dict with x/y keys."""
    if isinstance(item, Mapping):
        keys = [k for k in ("x", "inputs") if k in item]
        if not keys:
            raise ValueError(
                f"a batch dict has keys {sorted(item)}; the audit needs 'x' (or 'inputs') and "
                "optionally 'y' (or 'labels')."
            )
        labels = item.get("y", item.get("labels"))
        return item[keys[0]], labels
    if isinstance(item, Tensor):
        return item, None
    if isinstance(item, list | tuple) and len(item) in (1, 2):
        return item[0], (item[1] if len(item) == 2 else None)
    raise ValueError(
        f"a data batch of type {type(item).__name__} is neither a tensor nor an (inputs, "
        "labels) pair; make the dataset return x or (x, y)."
    )


def _inputs(x: Any, name: str = "data") -> Tensor:
    """One float, finite input tensor with a batch dimension and a feature dimension."""
    return check_input_tensor(x, name, min_dim=2).detach()


def _tensor_batches(x: Tensor, labels: Tensor | None, batch_size: int) -> Batches:
    """Consecutive slices of `batch_size` examples, indexed from 0."""
    for start in range(0, x.shape[0], batch_size):
        index = torch.arange(start, min(start + batch_size, x.shape[0]))
        yield index, x[start : start + batch_size], None if labels is None else labels[index]


def _indexed_loader(data: DataLoader) -> DataLoader:
    """The same batches as `data` (sampler, workers, collate function), with their indices."""
    if isinstance(data.dataset, IterableDataset):
        raise ValueError(
            "`data` iterates over an IterableDataset, whose examples have no index to resume "
            "or merge by: use a map-style Dataset (e.g. TensorDataset)."
        )
    if data.batch_sampler is None:
        raise ValueError("`data` is a DataLoader with batch_size=None; give it a batch_size.")
    return DataLoader(
        _Indexed(data.dataset),
        batch_sampler=data.batch_sampler,
        num_workers=data.num_workers,
        collate_fn=_IndexedCollate(data.collate_fn),
        pin_memory=data.pin_memory,
        worker_init_fn=data.worker_init_fn,
    )


def _loader_batches(loader: DataLoader) -> Batches:
    """The batches of an indexed loader, split into checked inputs and labels."""
    for index, item in loader:
        x, y = _split_item(item)
        x = _inputs(x)
        yield index, x, check_labels(y, x.shape[0])


def index_batches(
    data: Tensor | Dataset | DataLoader,
    labels: Tensor | Sequence[int] | None = None,
    batch_size: int = 32,
) -> tuple[Batches, int | None]:
    """Batches `(indices, inputs, labels or None)` from tensors, a Dataset or a DataLoader.

    A DataLoader keeps its sampler (e.g. a `DistributedSampler`), batch sampler, workers and
    collate function; its examples are identified by their index in `loader.dataset`, which
    must therefore be map-style.

    Returns:
        The batch iterable and the number of examples it yields (None when unknown).

    Raises:
        TypeError: `data` of another kind, non-float inputs or non-integer labels.
        ValueError: `labels` beside a Dataset or DataLoader, inputs without a feature
            dimension or with NaN, an IterableDataset, a DataLoader without a batch size.
    """
    if isinstance(data, Tensor):
        x = _inputs(data)
        y = check_labels(labels, x.shape[0])
        return _tensor_batches(x, y, check_int(batch_size, "batch_size", 1)), x.shape[0]
    if labels is not None:
        raise ValueError(
            "`labels` is only used with tensor inputs; a Dataset or DataLoader carries its own "
            "labels as (x, y) items."
        )
    if isinstance(data, Dataset) and not isinstance(data, IterableDataset):
        data = DataLoader(data, batch_size=check_int(batch_size, "batch_size", 1))
    if not isinstance(data, DataLoader):
        raise TypeError(
            f"`data` must be a tensor, a map-style Dataset or a DataLoader, got "
            f"{type(data).__name__}."
        )
    loader = _indexed_loader(data)
    try:
        total = len(data.batch_sampler.sampler)  # type: ignore[union-attr]
    except (AttributeError, TypeError):
        total = None  # a custom batch sampler: the progress bar shows a count only
    return _loader_batches(loader), total
