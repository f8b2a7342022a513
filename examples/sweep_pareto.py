"""Sweep a small design space with `simulator.sweep` and print the energy-latency Pareto front.

Shows: array rows x cols x DRAM bandwidth on top of hw_configs/edge_npu_16x16_int8.yaml,
fashion_cnn on one random 28x28 image, the Pareto-optimal points as a pandas table, and
the sweep's files in --out/sweep (sweep.csv, sweep.parquet, pareto.png). Nothing in the
energy model charges for a bigger array (area is not modeled, leakage is one fixed number per
config), so here the biggest, fastest point tends to be the whole front.

    .venv/bin/python examples/sweep_pareto.py [--out examples_out] [--jobs 2] [--tiny]
"""
import argparse
from pathlib import Path

import simulator

GRID = {"array.rows": [8, 16, 32], "array.cols": [8, 16, 32],
        "memory.dram.bandwidth_gbps": [6.4, 12.8, 25.6]}   # 27 points
TINY_GRID = {"array.rows": [8, 32], "memory.dram.bandwidth_gbps": [6.4, 25.6]}   # 4 points
SHOWN = ["energy_uj_per_inference", "latency_us", "edp_uj_us", "utilization",
         "dram_bytes_per_inference"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("examples_out"), help="folder for the sweep files")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: all CPUs)")
    parser.add_argument("--tiny", action="store_true", help="4 points in this process: a few seconds")
    args = parser.parse_args()
    grid = TINY_GRID if args.tiny else GRID
    result = simulator.sweep("fashion_cnn", "edge_npu_16x16_int8", grid,
                             jobs=1 if args.tiny else args.jobs, out_dir=args.out / "sweep",
                             progress=not args.tiny)
    front = result.front[result.keys + SHOWN]
    print(f"energy-latency Pareto front: {len(front)} of {len(result.table)} points")
    print(front.to_string(index=False, float_format="{:.4f}".format))
    best = result.table.loc[result.table["energy_uj_per_inference"].idxmin()]
    print(f"lowest energy: energy_uj_per_inference = {best['energy_uj_per_inference']:.6f}"
          f" at {best['point']}")
    for path in result.files:
        print(f"wrote {path}")


if __name__ == "__main__":   # the sweep's worker processes re-import this file
    main()
