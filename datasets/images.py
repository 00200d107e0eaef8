"""Pixel-by-pixel image classification: sequential / permuted MNIST and sequential CIFAR-10.

Each variant follows one seed paper's loader, since they differ in permutation seed, validation split and input
scaling (PAPERS.md 5.4, 4.3, 1.6, 6.6):

| task        | paper           | input per step                       | permutation        | validation            |
|-------------|-----------------|--------------------------------------|--------------------|-----------------------|
| smnist      | nnRNN / Stair   | 1 pixel / 255, 784 steps             | none               | RandomState(1234) 10k |
| psmnist     | nnRNN / Stair   | 1 pixel / 255, 784 steps             | RandomState(1234)  | the same RNG, 10k     |
| smnist_rru  | RRU             | 1 pixel / 255, 784 steps             | none               | last 10k of train     |
| psmnist_rru | RRU             | 1 pixel / 255, 784 steps             | RandomState(0)     | last 10k of train     |
| scifar      | LRU (colour)    | 3 channels normalised, 1024 steps    | none               | 1% of train, seed 42  |
| scifar_gray | LRA image       | 1 grey level normalised, 1024 steps  | none               | 10% of train, seed 42 |

Images stay uint8 on the device; each batch is scaled (and permuted) on the fly.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rnns.errors import ConfigError

from . import files
from .base import Batch, Task, TaskSpec, register_task
from .common import ArrayTask, fraction, positive
from .objectives import ClassCE

_RAW: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # decoded files, shared by the tasks of one process


def load_mnist(root: Path, train: bool, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 784) uint8, labels (N,) int64) through torchvision's MNIST reader on a checked root."""
    import torchvision  # lazy: only image tasks need it

    mroot = files.mnist_root(root, task)
    key = ("mnist", str(mroot), train)
    if key not in _RAW:
        try:
            ds = torchvision.datasets.MNIST(str(mroot), train=train, download=False)
        except RuntimeError as e:
            raise files.corrupt(task, mroot / "MNIST" / "raw", f"torchvision could not read it: {e}") from None
        x, y = ds.data.reshape(len(ds.data), 784).contiguous(), ds.targets.long()
        want = 60000 if train else 10000
        if x.shape[0] != want or y.shape[0] != want:
            raise files.corrupt(task, mroot / "MNIST" / "raw", f"{x.shape[0]} images, expected {want}")
        _RAW[key] = (x, y)
    return _RAW[key]


def nnrnn_split(permute: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixel order, train rows, val rows) of nnRNN/Stair: RandomState(1234) draws the permutation, then the same RNG
    permutes the 60k training rows; the first 50k are train and the last 10k validation. The permutation is drawn
    for sMNIST too (and not applied) so that both variants share one split."""
    rng = np.random.RandomState(1234)
    perm = rng.permutation(784)
    rows = rng.permutation(60000)
    return (perm if permute else np.arange(784)), rows[:50000], rows[50000:]


def rru_split(permute: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixel order, train rows, val rows) of RRU: RandomState(0) permutation; the last 10k training rows validate."""
    perm = np.random.RandomState(0).permutation(784) if permute else np.arange(784)
    return perm, np.arange(50000), np.arange(50000, 60000)


def _mnist_task(name: str, paper: str, split_fn, *, permute: bool, data_dir, seed, device, allow_test, batch_size,
                shuffle: bool, label_smoothing: float) -> Task:
    positive(name, batch_size=batch_size)
    if not 0.0 <= label_smoothing < 1.0:
        raise ConfigError(f"task {name!r}: label_smoothing must be in [0, 1), got {label_smoothing!r}")
    root = files.need_root(data_dir, name)
    order, tr, va = split_fn(permute)

    def reorder(t: torch.Tensor) -> torch.Tensor:  # permute once at load time, not per batch (numpy: faster gather)
        return torch.from_numpy(np.take(t.numpy(), order, axis=1)) if permute else t

    x, y = load_mnist(root, True, name)
    x = reorder(x).numpy()
    tr_t, va_t = torch.from_numpy(tr), torch.from_numpy(va)

    def test():
        xt, yt = load_mnist(root, False, name)
        return reorder(xt), yt

    def collate(rows):
        xb, yb = rows
        return Batch(xb.float().div_(255.0).unsqueeze(-1), yb)  # (B, 784, 1)

    spec = TaskSpec(name, paper, input_size=1, output_size=10, seq_len=784, readout="last", metric="accuracy",
                    mode="max", description=f"{'permuted' if permute else 'sequential'} MNIST, pixels / 255")
    data = {"train": (torch.from_numpy(x[tr]), y[tr_t]), "val": (torch.from_numpy(x[va]), y[va_t]), "test": test}
    raw = root / "MNIST" / "raw"
    return ArrayTask(spec, ClassCE(label_smoothing), data=data, collate=collate, batch_size=batch_size,
                     eval_batch_size=max(batch_size, 500), seed=seed, device=device, allow_test=allow_test,
                     shuffle=shuffle, files=sorted(raw.glob("*-ubyte*")))


@register_task("smnist", paper="nnRNN (Kerg et al. 2019) / Stair RNN")
def smnist(*, data_dir, seed, device, allow_test, batch_size: int = 100, shuffle: bool = False) -> Task:
    """Sequential MNIST, nnRNN/Stair loader: 784 pixels / 255, val = 10k drawn by RandomState(1234)."""
    return _mnist_task("smnist", "nnrnn", nnrnn_split, permute=False, data_dir=data_dir, seed=seed, device=device,
                       allow_test=allow_test, batch_size=batch_size, shuffle=shuffle, label_smoothing=0.0)


@register_task("psmnist", paper="nnRNN (Kerg et al. 2019) / Stair RNN")
def psmnist(*, data_dir, seed, device, allow_test, batch_size: int = 100, shuffle: bool = False) -> Task:
    """Permuted sequential MNIST, nnRNN/Stair loader: permutation and 50k/10k split from RandomState(1234)."""
    return _mnist_task("psmnist", "nnrnn", nnrnn_split, permute=True, data_dir=data_dir, seed=seed, device=device,
                       allow_test=allow_test, batch_size=batch_size, shuffle=shuffle, label_smoothing=0.0)


@register_task("smnist_rru", paper="RRU (Zakovskis et al. 2021)")
def smnist_rru(*, data_dir, seed, device, allow_test, batch_size: int = 64, label_smoothing: float = 0.1) -> Task:
    """Sequential MNIST, RRU loader: pixels / 255, last 10k of train for validation, label smoothing 0.1."""
    return _mnist_task("smnist_rru", "rru", rru_split, permute=False, data_dir=data_dir, seed=seed, device=device,
                       allow_test=allow_test, batch_size=batch_size, shuffle=True, label_smoothing=label_smoothing)


@register_task("psmnist_rru", paper="RRU (Zakovskis et al. 2021)")
def psmnist_rru(*, data_dir, seed, device, allow_test, batch_size: int = 64, label_smoothing: float = 0.1) -> Task:
    """Permuted MNIST, RRU loader: permutation RandomState(0), last 10k of train for validation."""
    return _mnist_task("psmnist_rru", "rru", rru_split, permute=True, data_dir=data_dir, seed=seed, device=device,
                       allow_test=allow_test, batch_size=batch_size, shuffle=True, label_smoothing=label_smoothing)


# ----------------------------------------------------------------------------------------------------------------
# CIFAR-10

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)  # per-channel normalisation of the S4/S5/LRU loaders
CIFAR_STD = (0.247, 0.243, 0.261)
GRAY_MEAN, GRAY_STD = 122.6 / 255.0, 61.0 / 255.0  # LRA grey image normalisation (S4/S5 loaders)


def load_cifar(root: Path, train: bool, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 1024, 3) uint8 in row-major pixel order, labels (N,) int64) via torchvision's CIFAR10 reader."""
    import torchvision

    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    for n in names + ["batches.meta"]:
        files.require(root, task, f"cifar-10-batches-py/{n}")
    key = ("cifar", str(root), train)
    if key not in _RAW:
        try:
            ds = torchvision.datasets.CIFAR10(str(root), train=train, download=False)
        except (RuntimeError, OSError, EOFError, KeyError, ValueError) as e:
            raise files.corrupt(task, root / "cifar-10-batches-py", f"torchvision could not read it: {e}") from None
        x = torch.from_numpy(np.ascontiguousarray(ds.data))  # (N, 32, 32, 3) uint8, HWC
        if x.ndim != 4 or tuple(x.shape[1:]) != (32, 32, 3):
            raise files.corrupt(task, root / "cifar-10-batches-py", f"images of shape {tuple(x.shape[1:])}")
        _RAW[key] = (x.reshape(x.shape[0], 1024, 3), torch.as_tensor(ds.targets, dtype=torch.long))
    return _RAW[key]


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """uint8 RGB (..., 3) -> uint8 grey (...) with PIL's ITU-R 601-2 luma in fixed point, the conversion
    torchvision's Grayscale applies to PIL images: L = (19595 R + 38470 G + 7471 B + 2^15) >> 16."""
    x = x.to(torch.int32)
    return ((x[..., 0] * 19595 + x[..., 1] * 38470 + x[..., 2] * 7471 + 32768) >> 16).to(torch.uint8)


def cifar_split(n: int, val_fraction: float, split_seed: int = 42) -> tuple[torch.Tensor, torch.Tensor]:
    """(train rows, val rows) as torch.utils.data.random_split with Generator().manual_seed(42) would draw them."""
    n_train = int(n * (1.0 - val_fraction))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    return perm[:n_train], perm[n_train:]


def _cifar_task(name: str, paper: str, *, gray: bool, tokens: bool, data_dir, seed, device, allow_test,
                batch_size: int, val_fraction: float) -> Task:
    positive(name, batch_size=batch_size)
    fraction(name, "val_fraction", val_fraction)
    root = files.need_root(data_dir, name)
    x, y = load_cifar(root, True, name)
    prep = to_gray if gray else (lambda t: t)
    tr, va = cifar_split(x.shape[0], val_fraction)

    def test():
        xt, yt = load_cifar(root, False, name)
        return prep(xt), yt

    mean = torch.tensor(CIFAR_MEAN, device=device)
    std = torch.tensor(CIFAR_STD, device=device)

    def collate(rows):
        xb, yb = rows
        if tokens:  # grey levels as tokens 0..255 (LRA's original input)
            return Batch(xb.long(), yb)
        if gray:
            return Batch(((xb.float() / 255.0 - GRAY_MEAN) / GRAY_STD).unsqueeze(-1), yb)  # (B, 1024, 1)
        return Batch((xb.float() / 255.0 - mean) / std, yb)  # (B, 1024, 3)

    xs = prep(x)
    spec = TaskSpec(name, paper, input_size=256 if tokens else (1 if gray else 3), output_size=10, seq_len=1024,
                    readout="mean", metric="accuracy", mode="max", input_kind="tokens" if tokens else "continuous",
                    description=f"sequential CIFAR-10, {'grey' if gray else 'colour'}, 1024 steps")
    data = {"train": (xs[tr], y[tr]), "val": (xs[va], y[va]), "test": test}
    return ArrayTask(spec, ClassCE(), data=data, collate=collate, batch_size=batch_size,
                     eval_batch_size=max(batch_size, 250), seed=seed, device=device, allow_test=allow_test,
                     files=[root / "cifar-10-batches-py" / n for n in files.CIFAR_FILES])


@register_task("scifar", paper="LRU (Orvieto et al. 2023) / Rescaled Glorot")
def scifar(*, data_dir, seed, device, allow_test, batch_size: int = 50, val_fraction: float = 0.01) -> Task:
    """Sequential CIFAR-10 in colour (LRU): 1024 steps x 3 channels normalised per channel, val 1% of train."""
    return _cifar_task("scifar", "lru", gray=False, tokens=False, data_dir=data_dir, seed=seed, device=device,
                       allow_test=allow_test, batch_size=batch_size, val_fraction=val_fraction)


@register_task("scifar_gray", paper="LRA Image (Tay et al. 2021), S4/S5 loader")
def scifar_gray(*, data_dir, seed, device, allow_test, batch_size: int = 50, val_fraction: float = 0.1,
                tokens: bool = False) -> Task:
    """Sequential grey CIFAR-10 (LRA Image): 1024 grey levels, normalised (or as 256 tokens), val 10% of train."""
    return _cifar_task("scifar_gray", "lra", gray=True, tokens=bool(tokens), data_dir=data_dir, seed=seed,
                       device=device, allow_test=allow_test, batch_size=batch_size, val_fraction=val_fraction)
