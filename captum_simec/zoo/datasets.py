"""Small data loaders for the demo, tutorials and tests (torch tensors out, never a download).

Three sources:

- scikit-learn's built-in 8x8 digits (:func:`load_digits`), upsampled to 28x28 so the paper's
  MNIST CNN applies unchanged; always available.
- the real data in the project's shared data folder (:func:`shared_data_dir`): the MNIST test
  split (:func:`load_mnist`, :func:`mnist_split`) and the UCI Combined Cycle Power Plant table
  (:func:`load_ccpp`).
- a synthetic stand-in for the power plant (:func:`synthetic_regression`) for when the shared
  folder is absent.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "CCPP_FEATURES",
    "CCPP_TARGET",
    "DATA_ENV_VAR",
    "MNIST_MEAN",
    "MNIST_STD",
    "RegressionData",
    "Split",
    "load_ccpp",
    "load_digits",
    "load_mnist",
    "mnist_domain",
    "mnist_split",
    "shared_data_dir",
    "synthetic_regression",
]

DATA_ENV_VAR = "CAPTUM_SIMEC_DATA"
"""Environment variable that points at the real data folder (else ``../shared/data`` beside
the current directory)."""

MNIST_MEAN = 0.1307
"""Mean pixel value of MNIST in [0, 1] units (the usual normalisation constant)."""

MNIST_STD = 0.3081
"""Standard deviation of MNIST pixels in [0, 1] units (the usual normalisation constant)."""

CCPP_FEATURES = ("AT", "V", "AP", "RH")
"""CCPP input columns: ambient temperature (C), exhaust vacuum (cm Hg), ambient pressure
(mbar), relative humidity (%)."""

CCPP_TARGET = "PE"
"""CCPP target column: net hourly electrical energy output (MW)."""

_MNIST_IMAGES = "t10k-images-idx3-ubyte.gz"
_MNIST_LABELS = "t10k-labels-idx1-ubyte.gz"
_IDX_UBYTE = 0x08  # IDX type code for unsigned bytes


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------


@dataclass
class Split:
    """A classification data set split into training and test parts.

    Attributes:
        x_train: Training inputs, float32, shape ``(N_train, ...)``.
        y_train: Training labels, int64, shape ``(N_train,)``.
        x_test: Test inputs, float32, shape ``(N_test, ...)``.
        y_test: Test labels, int64, shape ``(N_test,)``.
        domain: ``(lo, hi)``, the range a valid input value (pixel) may take.
        name: Short name of the data set.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    domain: tuple[float, float]
    name: str

    @property
    def num_classes(self) -> int:
        """Number of classes (largest label + 1 over both parts)."""
        return int(max(self.y_train.max().item(), self.y_test.max().item())) + 1


@dataclass
class RegressionData:
    """A tabular regression data set with scaled inputs and a standardised target.

    Inputs are min-max scaled per feature, ``x = (raw - x_min) / (x_max - x_min)``, so they lie
    in [0, 1]; the target is standardised, ``y = (raw - y_mean) / y_std``. The scaling
    constants are kept so values can be mapped back to physical units.

    Attributes:
        x: Scaled inputs, float32, shape ``(N, F)``.
        y: Standardised target, float32, shape ``(N, 1)``.
        feature_names: Names of the ``F`` input columns.
        target_name: Name of the target column.
        x_min: Per-feature minimum used for scaling, float64 numpy array of shape ``(F,)``.
        x_max: Per-feature maximum used for scaling, float64 numpy array of shape ``(F,)``.
        y_mean: Target mean used for standardising (physical units).
        y_std: Target standard deviation used for standardising (physical units).
        name: Short name of the data set.
    """

    x: Tensor
    y: Tensor
    feature_names: tuple[str, ...]
    target_name: str
    x_min: np.ndarray
    x_max: np.ndarray
    y_mean: float
    y_std: float
    name: str

    @property
    def domain(self) -> tuple[float, float]:
        """The range of a scaled input value, ``(0.0, 1.0)``."""
        return (0.0, 1.0)

    def inputs_to_physical(self, x: Tensor | np.ndarray) -> Tensor | np.ndarray:
        """Map scaled inputs (last axis = features) back to physical units.

        Args:
            x: Scaled inputs, shape ``(..., F)``; a tensor or a numpy array.

        Returns:
            The same kind of array, in physical units (a tensor keeps its dtype and device).
        """
        span = self.x_max - self.x_min
        if isinstance(x, Tensor):
            lo = torch.as_tensor(self.x_min, dtype=x.dtype, device=x.device)
            return x * torch.as_tensor(span, dtype=x.dtype, device=x.device) + lo
        return np.asarray(x) * span + self.x_min

    def inputs_from_physical(self, raw: Tensor | np.ndarray) -> Tensor | np.ndarray:
        """Map physical inputs (last axis = features) to the scaled [0, 1] units.

        Args:
            raw: Physical inputs, shape ``(..., F)``; a tensor or a numpy array.

        Returns:
            The same kind of array, in scaled units.
        """
        span = self.x_max - self.x_min
        if isinstance(raw, Tensor):
            lo = torch.as_tensor(self.x_min, dtype=raw.dtype, device=raw.device)
            return (raw - lo) / torch.as_tensor(span, dtype=raw.dtype, device=raw.device)
        return (np.asarray(raw) - self.x_min) / span

    def target_to_physical(self, y: Tensor | np.ndarray) -> Tensor | np.ndarray:
        """Map standardised target values back to physical units (MW for CCPP)."""
        return y * self.y_std + self.y_mean

    def target_from_physical(self, raw: Tensor | np.ndarray) -> Tensor | np.ndarray:
        """Map physical target values to standardised units."""
        return (raw - self.y_mean) / self.y_std

    def train_test_split(
        self, test_fraction: float = 0.2, seed: int = 0
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Split the rows at random into training and test parts.

        Args:
            test_fraction: Fraction of rows in the test part, in (0, 1).
            seed: Seed of the permutation.

        Returns:
            ``(x_train, y_train, x_test, y_test)``.
        """
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        n = self.x.shape[0]
        perm = torch.from_numpy(np.random.default_rng(seed).permutation(n))
        n_test = max(1, round(test_fraction * n))
        test, train = perm[:n_test], perm[n_test:]
        return self.x[train], self.y[train], self.x[test], self.y[test]


# --------------------------------------------------------------------------------------------
# Locating the real data
# --------------------------------------------------------------------------------------------


def shared_data_dir() -> Path | None:
    """Locate the real data folder (the loaders also take an explicit ``root=``).

    Never relative to the installed package's files, which may live anywhere (a wheel in
    site-packages): the folder is named by the environment or found beside a checkout.

    Returns:
        ``$CAPTUM_SIMEC_DATA`` when that variable is set (even if the folder does not exist, so
        the error names the folder the user asked for); otherwise ``../shared/data`` relative
        to the current directory (a checkout of the project, run from its root) when it
        exists; otherwise ``None``.
    """
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env).expanduser()
    beside = Path.cwd().parent / "shared" / "data"
    return beside if beside.is_dir() else None


def _resolve_root(root: str | os.PathLike | None, subdir: str, files: tuple[str, ...]) -> Path:
    """Return the folder that holds ``files``: ``root/subdir`` or ``root`` itself."""
    base = Path(root).expanduser() if root is not None else shared_data_dir()
    if base is None:
        raise FileNotFoundError(
            f"no data folder: set {DATA_ENV_VAR} to a folder containing '{subdir}/' "
            f"(with {', '.join(files)}), or pass root=..."
        )
    for folder in (base / subdir, base):
        if all((folder / f).is_file() for f in files):
            return folder
    missing = [f for f in files if not (base / subdir / f).is_file()]
    raise FileNotFoundError(
        f"missing {', '.join(missing)} in folder {base / subdir} "
        f"(data folder {base}; set {DATA_ENV_VAR} or pass root=... to point elsewhere)"
    )


# --------------------------------------------------------------------------------------------
# Digits (scikit-learn, bundled)
# --------------------------------------------------------------------------------------------


def _stratified_indices(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split: ``round(test_fraction * n_c)`` of each class go to the test set."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = round(test_fraction * idx.size)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    # Shuffle the concatenations so classes are interleaved.
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def load_digits(image_size: int = 28, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """scikit-learn's bundled 8x8 handwritten digits as small images (no download).

    Pixels (0..16) are scaled to [0, 1] and upsampled bilinearly to ``image_size`` x
    ``image_size`` (bilinear weights are convex, so values stay in [0, 1]). The split is
    stratified by class and seeded.

    Args:
        image_size: Side of the output images (8 keeps the originals).
        test_fraction: Fraction of each class put in the test part, in (0, 1).
        seed: Seed of the split.

    Returns:
        A :class:`Split` with inputs of shape ``(N, 1, image_size, image_size)`` (float32),
        int64 labels 0-9, ``domain=(0.0, 1.0)`` and ``name="digits"`` (1,797 images in all).
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    bunch = _sk_load_digits()
    images = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) / 16.0).unsqueeze(1)
    if image_size != images.shape[-1]:
        # in float64, then rounded: float32 kernels round differently on different CPUs
        # (a quarter of the pixels differed by 1 ulp), which made every digits model
        # CPU-dependent; float64's differences (1e-16) vanish in the rounding
        images = torch.nn.functional.interpolate(
            images.double(), size=(image_size, image_size), mode="bilinear", align_corners=False
        ).float()
    images = images.clamp_(0.0, 1.0).contiguous()
    labels_np = np.asarray(bunch.target, dtype=np.int64)
    labels = torch.from_numpy(labels_np)
    train, test = _stratified_indices(labels_np, test_fraction, seed)
    train_t, test_t = torch.from_numpy(train), torch.from_numpy(test)
    return Split(
        x_train=images[train_t],
        y_train=labels[train_t],
        x_test=images[test_t],
        y_test=labels[test_t],
        domain=(0.0, 1.0),
        name="digits",
    )


# --------------------------------------------------------------------------------------------
# MNIST (IDX files from the shared data folder)
# --------------------------------------------------------------------------------------------


def _normalise_mnist(pixels: Tensor) -> Tensor:
    """``(x - mean) / std`` on float32 pixels in [0, 1]."""
    return (pixels - MNIST_MEAN) / MNIST_STD


def mnist_domain() -> tuple[float, float]:
    """The normalised MNIST pixel range ``((0 - mean)/std, (1 - mean)/std)`` ≈ (-0.4242, 2.8215).

    Computed in float32 like the images, so that every normalised pixel lies inside it.
    """
    low, high = _normalise_mnist(torch.tensor([0.0, 1.0], dtype=torch.float32)).tolist()
    return low, high


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes with ``ndim`` dimensions."""
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    magic = int(np.frombuffer(data, dtype=">i4", count=1)[0])
    if magic != (_IDX_UBYTE << 8 | ndim):
        raise ValueError(f"{path}: bad IDX magic number {magic:#x} for a {ndim}-D ubyte array")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    offset = 4 * (1 + ndim)
    expected = int(np.prod(shape))
    if len(data) - offset != expected:
        raise ValueError(f"{path}: {len(data) - offset} data bytes, header says {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def load_mnist(
    root: str | os.PathLike | None = None, normalise: bool = True
) -> tuple[Tensor, Tensor]:
    """The MNIST test split (10,000 images) from the real data folder.

    Args:
        root: The data folder holding ``mnist/`` (or the ``mnist`` folder itself); defaults to
            :func:`shared_data_dir`.
        normalise: If True, pixels are ``(x/255 - MNIST_MEAN)/MNIST_STD``, in
            :func:`mnist_domain`; if False, ``x/255`` in [0, 1].

    Returns:
        ``(images, labels)``: float32 of shape ``(10000, 1, 28, 28)`` and int64 of shape
        ``(10000,)``.

    Raises:
        FileNotFoundError: The folder or one of the two IDX files is absent.
    """
    folder = _resolve_root(root, "mnist", (_MNIST_IMAGES, _MNIST_LABELS))
    images = _read_idx(folder / _MNIST_IMAGES, ndim=3)
    labels = _read_idx(folder / _MNIST_LABELS, ndim=1)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels in {folder}")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    if normalise:
        x = _normalise_mnist(x)
    return x.contiguous(), torch.from_numpy(labels.astype(np.int64))


def mnist_split(
    train_size: int = 8000, seed: int | None = 0, root: str | os.PathLike | None = None
) -> Split:
    """Split the 10,000 MNIST test images into a training and a test part.

    Args:
        train_size: Number of images in the training part; the rest form the test part.
        seed: Seed of a random permutation; ``None`` takes the first ``train_size`` images in
            file order.
        root: Passed to :func:`load_mnist`.

    Returns:
        A normalised :class:`Split` with ``domain=mnist_domain()`` and ``name="mnist"``.
    """
    x, y = load_mnist(root, normalise=True)
    n = x.shape[0]
    if not 0 < train_size < n:
        raise ValueError(f"train_size must be in (0, {n}), got {train_size}")
    if seed is None:
        order = torch.arange(n)
    else:
        order = torch.from_numpy(np.random.default_rng(seed).permutation(n))
    train, test = order[:train_size], order[train_size:]
    return Split(x[train], y[train], x[test], y[test], domain=mnist_domain(), name="mnist")


# --------------------------------------------------------------------------------------------
# Combined Cycle Power Plant (real) and a synthetic stand-in
# --------------------------------------------------------------------------------------------


def _regression_data(
    raw_x: np.ndarray,
    raw_y: np.ndarray,
    name: str,
    x_min: np.ndarray | None = None,
    x_max: np.ndarray | None = None,
) -> RegressionData:
    """Scale raw float64 inputs/target into a :class:`RegressionData`."""
    x_min = raw_x.min(axis=0) if x_min is None else np.asarray(x_min, dtype=np.float64)
    x_max = raw_x.max(axis=0) if x_max is None else np.asarray(x_max, dtype=np.float64)
    y_mean, y_std = float(raw_y.mean()), float(raw_y.std())
    x = (raw_x - x_min) / (x_max - x_min)
    y = (raw_y - y_mean) / y_std
    return RegressionData(
        x=torch.from_numpy(x.astype(np.float32)),
        y=torch.from_numpy(y.astype(np.float32)).reshape(-1, 1),
        feature_names=CCPP_FEATURES,
        target_name=CCPP_TARGET,
        x_min=x_min,
        x_max=x_max,
        y_mean=y_mean,
        y_std=y_std,
        name=name,
    )


def load_ccpp(root: str | os.PathLike | None = None) -> RegressionData:
    """The UCI Combined Cycle Power Plant table (9,568 rows) from the real data folder.

    The file ``ccpp/combined.csv`` is ``;``-separated with no header row; columns AT, V, AP,
    RH, PE. Inputs are the first four columns min-max scaled to [0, 1]; the target is PE
    standardised (mean about 454.4 MW, std about 17.1 MW).

    Args:
        root: The data folder holding ``ccpp/`` (or the ``ccpp`` folder itself); defaults to
            :func:`shared_data_dir`.

    Returns:
        A :class:`RegressionData` named ``"ccpp"``.

    Raises:
        FileNotFoundError: The folder or ``combined.csv`` is absent.
    """
    folder = _resolve_root(root, "ccpp", ("combined.csv",))
    table = np.loadtxt(folder / "combined.csv", delimiter=";", dtype=np.float64, ndmin=2)
    if table.shape[1] != 5:
        raise ValueError(f"{folder / 'combined.csv'}: expected 5 columns, got {table.shape[1]}")
    return _regression_data(table[:, :4], table[:, 4], name="ccpp")


# Physical ranges of the CCPP inputs (min, max), used by the synthetic stand-in.
_CCPP_RANGES = np.array([[1.81, 37.11], [25.36, 81.56], [992.89, 1033.30], [25.56, 100.16]])


def synthetic_regression(n: int = 2000, seed: int = 0) -> RegressionData:
    """A synthetic stand-in for the power plant data, for when the real folder is absent.

    Four inputs uniform in [0, 1] (named and scaled like CCPP's AT, V, AP, RH) and a smooth
    target that, like PE, decreases in AT and V and increases mildly in AP and RH::

        s  = -1.2 AT - 0.6 V - 0.3 AT V + 0.15 AP + 0.1 RH + 0.02 sin(pi RH)
        PE = 488 + 40 s + noise,   noise ~ N(0, 1) MW

    (AT, V, AP, RH here in scaled units), then standardised like :func:`load_ccpp`.

    Args:
        n: Number of rows.
        seed: Seed of the inputs and the noise.

    Returns:
        A :class:`RegressionData` named ``"synthetic-ccpp"`` whose physical mapping uses
        CCPP-like input ranges.
    """
    rng = np.random.default_rng(seed)
    u = rng.uniform(0.0, 1.0, size=(n, 4))
    at, v, ap, rh = u.T
    s = -1.2 * at - 0.6 * v - 0.3 * at * v + 0.15 * ap + 0.1 * rh + 0.02 * np.sin(np.pi * rh)
    pe = 488.0 + 40.0 * s + rng.normal(0.0, 1.0, size=n)
    lo, hi = _CCPP_RANGES[:, 0], _CCPP_RANGES[:, 1]
    raw_x = lo + u * (hi - lo)
    return _regression_data(raw_x, pe, name="synthetic-ccpp", x_min=lo, x_max=hi)
