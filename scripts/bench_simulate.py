"""Benchmark whole-network simulation: ResNet-18 at 1x3x224x224 on a 32x32
weight-stationary int8 array (the edge NPU config with a 32x32 array).

Prints wall time of exact and sampled (1%) simulation (cold: nothing cached;
the Numba kernels are loaded from the on-disk cache by a warm-up run on a
small model first), simulated MACs per second, the PyTorch forward time of
the same model in the same run and the ratios, and peak RSS. Each time is the
median of --repeats runs (the simulator's caches cleared before each), so that
one noisy run on a shared machine does not decide a ratio.

    python scripts/bench_simulate.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator import network  # noqa: E402
from simulator.config import apply_overrides, load_config  # noqa: E402
from simulator.models import load_model, make_inputs  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="runs per timing; the median is printed")
    args = ap.parse_args()
    cfg = apply_overrides(load_config(ROOT / "hw_configs" / "edge_npu_16x16_int8.yaml"),
                          {"array.rows": 32, "array.cols": 32})
    small, shape = load_model("fashion_cnn")
    for err in (None, 0.01):                                    # warm: both modes' kernels from cache
        network.simulate(small, make_inputs(shape), cfg, sample_error=err)
    model, _ = load_model("resnet18")
    x = make_inputs((1, 3, 224, 224))
    with torch.no_grad():
        model(x)
        forward_times = []
        for _ in range(max(3, 2 * args.repeats)):
            t = time.perf_counter()
            model(x)
            forward_times.append(time.perf_counter() - t)
        t_torch = statistics.median(forward_times)
    rows = []
    for label, err in (("exact", None), ("sampled 1%", 0.01)):
        times = []
        for _ in range(args.repeats):
            network.clear_cache()
            t = time.perf_counter()
            rep = network.simulate(model, x, cfg, sample_error=err)
            times.append(time.perf_counter() - t)
        rows.append((label, statistics.median(times), rep))
    macs = rows[0][2].total["macs_per_inference"]
    print(f"ResNet-18 1x3x224x224, {macs / 1e9:.2f} G MACs, on {cfg.name} with a 32x32 array")
    print(f"PyTorch forward (CPU, same run): {t_torch * 1e3:.1f} ms (median of {len(forward_times)} runs)")
    print(f"simulation times: median of {args.repeats} runs, caches cleared before each")
    for label, dt, rep in rows:
        print(f"{label:>11}: {dt:6.2f} s  {macs / dt / 1e9:5.2f} G simulated MAC/s  "
              f"{dt / t_torch:6.1f}x the PyTorch forward   energy {rep.total['energy_uj_per_inference']:.1f} µJ, "
              f"latency {rep.total['latency_us']:.0f} µs")
    e0, e1 = rows[0][2].total["energy_uj_per_inference"], rows[1][2].total["energy_uj_per_inference"]
    print(f"sampled vs exact energy: {100 * (e1 / e0 - 1):+.3f}%")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
