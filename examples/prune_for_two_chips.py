"""Prune the shipped fashion_cnn for two chips, then run each pruned model on both.

Shows: `pruning.prune_classifier` with the simulator in the loop for the dense edge NPU and
for its zero-gating twin (the same model and data; the hardware decides what to cut:
channels where only structure saves energy, sparse weights where gating and compression
pay), then `simulator.compare(..., pruned_for=[dir_a, dir_b])` for the cross matrix:
energy per inference of every model on every chip. Needs Fashion-MNIST (Debian package
dataset-fashion-mnist).

    .venv/bin/python examples/prune_for_two_chips.py [--out examples_out] [--tiny]

Without --tiny each pruning run takes several minutes on 2 cores.
"""
import argparse
from pathlib import Path

import pruning
import simulator
from simulator.models import fashion_cnn

CHIPS = ["edge_npu_16x16_int8", "edge_npu_16x16_int8_zero_gating"]

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--out", default="examples_out")
ap.add_argument("--tiny", action="store_true", help="a few hundred images, one pruning step")
args = ap.parse_args()

settings = pruning.FinetuneSettings(epochs=0.02 if args.tiny else 1.0)
task = pruning.load_task("fashion-mnist", settings=settings, train_limit=2000 if args.tiny else None)
if args.tiny:
    task.val_x, task.val_y, task.test_x, task.test_y = task.val_x[:300], task.val_y[:300], task.test_x[:300], task.test_y[:300]

dirs = []
for chip in CHIPS:
    out = Path(args.out) / f"pruned_for_{chip}"
    results = pruning.prune_classifier(fashion_cnn(), simulator.load_config(chip), task, model_name="fashion_cnn",
                                       out_dir=out, max_steps=1 if args.tiny else 40, energy_target=0.4)
    s = results["energy-aware"].summary
    print(f"pruned for {chip}: {s['energy_before_uj']:.3f} -> {s['energy_after_uj']:.3f} µJ per inference "
          f"({s['energy_reduction_x']:.2f}x), test accuracy {s['acc_before']:.2%} -> {s['acc_after']:.2%}")
    dirs.append(out)

cmp = simulator.compare(fashion_cnn(), CHIPS, inputs=task.example_inputs(), pruned_for=dirs,
                        out_dir=Path(args.out) / "cross", label="fashion_cnn")
print("energy per inference (µJ), model (rows) on chip (columns):")
print(cmp.matrix().to_string(float_format=lambda v: f"{v:.4f}"))
print(f"wrote {Path(args.out) / 'cross' / 'compare.html'}")
