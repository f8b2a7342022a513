"""Train the built-in `fashion_cnn` on Fashion-MNIST and write its checkpoint.

    python scripts/train_reference.py [--epochs 8] [--out simulator/checkpoints/fashion_cnn.pt]

Trains on the first 55,000 training images (the last 5,000 are the held-out
validation split the pruner probes on), one-cycle Adam, then measures top-1
accuracy on the 10,000 test images and stores it beside the weights
(`fashion_cnn.json`). Deterministic for a given --seed on one machine.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pruning.training import FinetuneSettings, accuracy, split_train_validation, train  # noqa: E402
from simulator.datasets import load_fashion_mnist  # noqa: E402
from simulator.models import CHECKPOINT_DIR, FashionCNN, _seeded  # noqa: E402
from simulator.report import atomic_write, progress_bar  # noqa: E402


@click.command()
@click.option("--epochs", default=8.0, type=float, show_default=True, help="training epochs over 55,000 images")
@click.option("--lr", default=3e-3, show_default=True, help="peak learning rate (one-cycle Adam)")
@click.option("--seed", default=0, show_default=True)
@click.option("--data-dir", default=None, help="folder with the IDX files [default: the Debian package's]")
@click.option("--out", default=str(Path(CHECKPOINT_DIR) / "fashion_cnn.pt"), show_default=True)
def main(epochs, lr, seed, data_dir, out):
    torch.manual_seed(seed)
    x, y = load_fashion_mnist("train", data_dir)
    tx, ty, vx, vy = split_train_validation(x, y)
    test_x, test_y = load_fashion_mnist("test", data_dir)
    model = _seeded(FashionCNN, seed)
    t0 = time.perf_counter()
    settings = FinetuneSettings(epochs=epochs, lr=lr, weight_decay=1e-4, optimizer="adamw",
                                batch_size=128)
    with progress_bar(True) as bar:
        task = bar.add_task(f"training {epochs} epochs", total=None)

        def on_batch(i, n, loss):
            bar.update(task, completed=i, total=n, description=f"training (loss {loss:.3f})")
        train(model, tx, ty, settings, seed=seed, scheduler="onecycle", on_batch=on_batch)
    minutes = (time.perf_counter() - t0) / 60
    val_acc, test_acc = accuracy(model, vx, vy), accuracy(model, test_x, test_y)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda p: torch.save(model.state_dict(), p))
    meta = {"model": "fashion_cnn", "epochs": epochs, "lr": lr, "seed": seed,
            "train_images": len(tx), "validation_accuracy": val_acc, "test_accuracy": test_acc,
            "train_minutes": round(minutes, 2), "torch": torch.__version__,
            "threads": torch.get_num_threads()}
    atomic_write(out.with_suffix(".json"), lambda p: Path(p).write_text(json.dumps(meta, indent=2) + "\n"))
    print(f"validation accuracy {val_acc:.2%}, test accuracy {test_acc:.2%}, {minutes:.1f} min "
          f"on {torch.get_num_threads()} threads -> {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
