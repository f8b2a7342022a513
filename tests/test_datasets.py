"""Fashion-MNIST IDX reader on tiny files made here (no dataset needed)."""
import gzip
import struct

import numpy as np
import pytest

from simulator.datasets import FASHION_MEAN, FASHION_STD, load_fashion_mnist
from simulator.errors import JoulesimError


def _write_idx(path, arr, gz):
    head = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = head + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.mark.parametrize("gz", [True, False])
def test_reads_idx_images_and_labels(tmp_path, gz):
    imgs = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    labels = np.array([3, 1, 4])
    suffix = ".gz" if gz else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", imgs, gz)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, gz)
    x, y = load_fashion_mnist("test", tmp_path, limit=2)
    assert x.shape == (2, 1, 28, 28) and y.tolist() == [3, 1]
    expect = (imgs[1].astype(np.float32) / 255 - FASHION_MEAN) / FASHION_STD
    assert np.allclose(x[1, 0].numpy(), expect, atol=1e-6)


def test_missing_files_name_the_folder(tmp_path):
    with pytest.raises(JoulesimError, match=str(tmp_path)):
        load_fashion_mnist("test", tmp_path)
