"""Datasets: Fashion-MNIST from the IDX files of the Debian package
`dataset-fashion-mnist` (no download at run time).

Images come back as float32 tensors (N, 1, 28, 28), normalised with the
training set's mean and standard deviation of pixel intensity in [0, 1]
(FASHION_MEAN, FASHION_STD); labels as int64 (N,).
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from simulator.errors import JoulesimError

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530   # of the 60,000 training images, pixels in [0, 1]


def _open(path: Path):
    for p in (path, path.with_name(path.name + ".gz")):
        if p.is_file():
            return gzip.open(p, "rb") if p.suffix == ".gz" else open(p, "rb")
    return None


def read_idx(fh) -> np.ndarray:
    """Parse one IDX file (big-endian header: 0, 0, type 0x08, ndim; dims; uint8 data)."""
    head = fh.read(4)
    if len(head) != 4 or head[:2] != b"\x00\x00" or head[2] != 0x08:
        raise JoulesimError("not an IDX file of unsigned bytes")
    ndim = head[3]
    dims = np.frombuffer(fh.read(4 * ndim), dtype=">u4").astype(int)
    data = np.frombuffer(fh.read(), dtype=np.uint8)
    if data.size != int(np.prod(dims)):
        raise JoulesimError(f"IDX file truncated: {data.size} bytes for shape {tuple(dims)}")
    return data.reshape(tuple(dims))


def load_fashion_mnist(split: str = "test", data_dir: str | Path | None = None, limit: int | None = None):
    """(images (N,1,28,28) float32 normalised, labels (N,) int64)."""
    if split not in FILES:
        raise JoulesimError(f"split {split!r}: allowed train, test")
    root = Path(data_dir) if data_dir else DEFAULT_DIR
    img_f, lbl_f = (_open(root / name) for name in FILES[split])
    if img_f is None or lbl_f is None:
        hint = ("install the Debian package dataset-fashion-mnist (apt-get install "
                "dataset-fashion-mnist)" if data_dir is None else "pass the folder holding the IDX files")
        raise JoulesimError(f"Fashion-MNIST {split} files not found in {root}: {hint}")
    with img_f, lbl_f:
        images, labels = read_idx(img_f), read_idx(lbl_f)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
    return (x - FASHION_MEAN) / FASHION_STD, torch.from_numpy(labels.astype(np.int64))
