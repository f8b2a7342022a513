"""joulesim demo: price one ResNet-style 3x3 conv layer (lowered to a
3136 x 576 x 64 int8 GEMM) on two edge-NPU configs, dense and with 50% zero
activations, and show where zero-gating saves energy.

    .venv/bin/python scripts/demo.py

(The demo grows with the project: whole-network simulation, pruning and
design comparison join it as they land.)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator import load_config, simulate_gemm  # noqa: E402
from simulator.formats import random_operand  # noqa: E402

CONFIGS = ["edge_npu_16x16_int8.yaml", "edge_npu_16x16_int8_zero_gating.yaml"]
M, K, N = 3136, 576, 64


def main():
    console = Console() if Console().is_terminal else Console(width=110)
    rng = np.random.default_rng(0)
    weights = random_operand((K, N), "int8", rng)
    inputs = {"dense": random_operand((M, K), "int8", rng),
              "50% zeros": random_operand((M, K), "int8", rng, 0.5)}
    table = Table(title=f"GEMM {M}x{K}x{N} int8 (a 3x3 conv at 56x56): energy in µJ")
    for col in ("config", "activations", "MAC+regs", "SRAM", "leakage", "total", "cycles",
                "MACs gated"):
        table.add_column(col, justify="left" if col in ("config", "activations") else "right")
    with console.status("simulating...") as status:
        for cfg_name in CONFIGS:
            cfg = load_config(ROOT / "hw_configs" / cfg_name)
            for label, A in inputs.items():
                status.update(f"simulating {label} on {cfg.name}")
                r = simulate_gemm(A, weights, cfg)
                e = r.energy_pj
                mac = sum(v for k, v in e.items() if k.startswith(("mac_", "reg_", "gating")))
                sram = sum(v for k, v in e.items() if k.startswith("sram_"))
                table.add_row(cfg.name, label, f"{mac / 1e6:.2f}", f"{sram / 1e6:.2f}",
                              f"{e['leakage'] / 1e6:.2f}", f"{r.energy_pj_total / 1e6:.2f}",
                              f"{r.cycles:,}", f"{r.macs['gated']:,}")
    console.print(table)
    console.print("Per-component detail: [bold]joulesim gemm --m 3136 --k 576 --n 64 "
                  "--hw hw_configs/edge_npu_16x16_int8_zero_gating.yaml --zero-fraction 0.5[/bold]")


if __name__ == "__main__":
    main()
