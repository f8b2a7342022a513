"""Classification tasks for the pruner: data plus evaluate/probe/finetune/test.

Owns where the pruner's accuracy comes from. `--data fashion-mnist` reads the
Debian package's IDX files (training split minus its last 5,000 images for
fine-tuning; those 5,000 for validation and probes; the 10,000 test images for
the reported accuracy). `--data FILE.npz` takes arrays `x` (N, ...) float32
and `y` (N,) integer labels, and optionally `x_test`/`y_test`; without them
the last fifth of x is held out as test data. Accuracies are fractions.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from pruning.training import FinetuneSettings, accuracy, split_train_validation, train
from simulator.errors import JoulesimError

PROBE_SIZE = 1000           # validation images per candidate probe
CALIBRATION_SIZE = 256      # training images for the taylor/activation criteria


@dataclass
class ClassificationTask:
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    settings: FinetuneSettings = field(default_factory=FinetuneSettings)
    probe_size: int = PROBE_SIZE
    teacher: Optional[nn.Module] = None    # the dense model, for distillation while fine-tuning

    def evaluate(self, model: nn.Module) -> float:
        return accuracy(model, self.val_x, self.val_y)

    def probe(self, model: nn.Module) -> float:
        return accuracy(model, self.val_x[:self.probe_size], self.val_y[:self.probe_size])

    def test(self, model: nn.Module) -> float:
        return accuracy(model, self.test_x, self.test_y)

    def finetune(self, model: nn.Module, masks: dict, seed: int) -> None:
        train(model, self.train_x, self.train_y, self.settings, seed=seed, masks=masks,
              teacher=self.teacher)

    def final_finetune(self, model: nn.Module, masks: dict, seed: int) -> None:
        """The longer fine-tune of the finished model: `settings.final_epochs` epochs."""
        train(model, self.train_x, self.train_y, replace(self.settings, epochs=self.settings.final_epochs),
              seed=seed, masks=masks, teacher=self.teacher)

    def calibration(self, n: int = CALIBRATION_SIZE):
        return self.train_x[:n], self.train_y[:n]

    def example_inputs(self, batch: int = 1) -> torch.Tensor:
        """Real held-out images for the simulator (the inference the energy is for)."""
        return self.val_x[-batch:]

    @classmethod
    def from_arrays(cls, x, y, x_test=None, y_test=None, settings=None, train_limit=None):
        x, y = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)
        if x_test is None:
            n_test = max(1, len(x) // 5)
            x, y, x_test, y_test = x[:-n_test], y[:-n_test], x[-n_test:], y[-n_test:]
        tx, ty, vx, vy = split_train_validation(x, y)
        if train_limit:
            tx, ty = tx[:train_limit], ty[:train_limit]
        return cls(tx, ty, vx, vy, torch.as_tensor(x_test, dtype=torch.float32),
                   torch.as_tensor(y_test, dtype=torch.int64), settings or FinetuneSettings())


def load_task(data: str, data_dir=None, settings: FinetuneSettings | None = None,
              train_limit: int | None = None) -> ClassificationTask:
    """`data`: 'fashion-mnist' or a path to an .npz file (see the module docstring)."""
    if data == "fashion-mnist":
        from simulator.datasets import load_fashion_mnist
        x, y = load_fashion_mnist("train", data_dir)
        xt, yt = load_fashion_mnist("test", data_dir)
        return ClassificationTask.from_arrays(x, y, xt, yt, settings, train_limit)
    path = Path(data)
    if path.suffix != ".npz":
        raise JoulesimError(f"--data {data}: expected 'fashion-mnist' or a .npz file with arrays x and y")
    if not path.is_file():
        raise JoulesimError(f"--data {data}: no such file")
    try:
        arrays = np.load(path)
        x, y = arrays["x"], arrays["y"]
        x_test = arrays["x_test"] if "x_test" in arrays else None
        y_test = arrays["y_test"] if "y_test" in arrays else None
    except KeyError as e:
        raise JoulesimError(f"--data {data}: missing array {e}") from None
    except Exception as e:  # noqa: BLE001 - an unreadable file is the user's input
        raise JoulesimError(f"--data {data}: cannot read it as .npz ({e})") from None
    if len(x) != len(y) or len(x) < 10:
        raise JoulesimError(f"--data {data}: x has {len(x)} samples and y {len(y)}; need equal, >= 10")
    return ClassificationTask.from_arrays(x, y, x_test, y_test, settings, train_limit)
