"""Benchmark design-space sweeps: a 100-point sweep of fashion_cnn (1x1x28x28, sampled mode,
sample_error 0.05) on the edge NPU config, run by the local process pool (`--jobs` workers,
default 2) and by one process (jobs=1), optionally also by Dask distributed (--dask).

Grid: array.rows x array.cols in {4, 8, 16, 32, 64}, array.dataflow in {weight_stationary,
output_stationary}, memory.dram.kind in {lpddr4, hbm2}: 5 x 5 x 2 x 2 = 100 points.

Wall time is that of the whole `simulator.exploration.sweep` call: model capture, grid validation,
worker start-up (spawned processes that import torch and load the Numba kernels from the
on-disk cache), the simulations and the table. A one-point warm-up run first makes sure the
Numba kernels are compiled and cached. The process is pinned to `--cores` CPUs (default 2)
when the machine has more; workers inherit the pinning.

    python scripts/bench_sweep.py [--cores 2] [--jobs 2] [--dask] [--input-shape 32,1,28,28]

(--model / --input-shape run the same grid on heavier work: the pool's start-up, about
2-3 s for spawning workers that import torch, pays off once a point costs more than a few
tens of ms.)

Target: 100 points in <= 60 s on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GRID = {"array.rows": [4, 8, 16, 32, 64], "array.cols": [4, 8, 16, 32, 64],
        "array.dataflow": ["weight_stationary", "output_stationary"],
        "memory.dram.kind": ["lpddr4", "hbm2"]}
BASE = ROOT / "hw_configs" / "edge_npu_16x16_int8.yaml"
TARGET_S = 60.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cores", type=int, default=2, help="pin to this many CPUs (default 2)")
    ap.add_argument("--jobs", type=int, default=2, help="workers of the local pool (default 2)")
    ap.add_argument("--sample-error", type=float, default=0.05)
    ap.add_argument("--dask", action="store_true", help="also time --executor dask")
    ap.add_argument("--model", default="fashion_cnn", help="model spec (default fashion_cnn)")
    ap.add_argument("--input-shape", default=None, help="e.g. 32,1,28,28 (default: the model's own)")
    args = ap.parse_args()

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > args.cores:
        os.sched_setaffinity(0, cpus[:args.cores])
    cores = len(os.sched_getaffinity(0))

    from simulator import network
    from simulator.models import load_model, make_inputs, parse_shape
    from simulator.exploration import sweep

    model, default_shape = load_model(args.model)
    shape = parse_shape(args.input_shape) if args.input_shape else default_shape
    x = make_inputs(shape)
    sweep(model, BASE, {"array.rows": [16]}, inputs=x, jobs=1, sample_error=args.sample_error)  # warm-up

    runs = [("one process (jobs=1)", dict(jobs=1, executor="local")),
            (f"local pool (jobs={args.jobs})", dict(jobs=args.jobs, executor="local"))]
    if args.dask:
        runs.append((f"dask LocalCluster ({args.jobs} workers)", dict(jobs=args.jobs, executor="dask")))
    n_points = 1
    for v in GRID.values():
        n_points *= len(v)
    print(f"{n_points}-point sweep of {args.model} {'x'.join(map(str, shape))} on {BASE.name}, sampled "
          f"(sample_error {args.sample_error:g}), {cores} core{'s' if cores > 1 else ''} "
          f"(of {os.cpu_count()})")
    results = {}
    for label, kw in runs:
        network.clear_cache()
        t = time.perf_counter()
        res = sweep(model, BASE, GRID, inputs=x, sample_error=args.sample_error, **kw)
        dt = time.perf_counter() - t
        results[label] = res
        assert len(res.table) == n_points and res.computed == n_points
        print(f"{label:>32}: {dt:6.2f} s  {n_points / dt:6.1f} points/s  "
              f"(Pareto front: {int(res.table['pareto'].sum())} points)")
    tables = [r.table for r in results.values()]
    same = all(t.equals(tables[0]) for t in tables[1:])
    print(f"tables identical across executors: {same}")
    print(f"target: {n_points} points in <= {TARGET_S:.0f} s on 2 cores")


if __name__ == "__main__":
    main()
