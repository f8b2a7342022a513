"""Simulate your own PyTorch model on two shipped accelerators with the Python API.

Shows: a small nn.Module defined inline, `simulator.simulate(model, inputs, hw)` on
edge_npu_16x16_int8 and its zero-gating twin, the per-layer table (pandas), the totals,
and one CSV per config in --out. Random weights and inputs are dense, so the twin's bitmap
compression costs DRAM bytes and its gating saves little: sparsity pays where tensors hold zeros.

    .venv/bin/python examples/simulate_your_own_model.py [--out examples_out] [--tiny]
"""
import argparse
from pathlib import Path

import pandas as pd
import torch
from torch import nn

import simulator

CONFIGS = ["edge_npu_16x16_int8", "edge_npu_16x16_int8_zero_gating"]   # bare names: hw_configs/
COLUMNS = ["layer", "kind", "macs", "latency_cycles", "utilization", "energy_mac_uj",
           "energy_sram_uj", "energy_dram_uj", "energy_total_uj"]


class SmallCNN(nn.Module):
    """conv-BN-ReLU, max-pool, conv-ReLU, global average pool, linear: 10 classes."""

    def __init__(self, channels: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.MaxPool2d(2), nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(2 * channels, 10)

    def forward(self, x):
        return self.classifier(self.features(x))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("examples_out"), help="folder for the CSVs")
    parser.add_argument("--tiny", action="store_true", help="a 16x16 input: runs in a few seconds")
    args = parser.parse_args()
    side_px = 16 if args.tiny else 32
    torch.manual_seed(0)
    model = SmallCNN().eval()
    inputs = torch.randn(1, 3, side_px, side_px)   # a batch of one image; bring real ones here
    args.out.mkdir(parents=True, exist_ok=True)
    for config in CONFIGS:
        report = simulator.simulate(model, inputs, simulator.load_config(config))
        print(f"\n{config}: per layer, µJ per inference")
        print(report.layers[COLUMNS].to_string(index=False, float_format="{:.4f}".format))
        print(f"{config}: totals\n{pd.Series(report.total).to_string()}")
        csv_path = args.out / f"layers_{config}.csv"
        report.layers.to_csv(csv_path, index=False)
        print(f"wrote {csv_path}")


if __name__ == "__main__":
    main()
