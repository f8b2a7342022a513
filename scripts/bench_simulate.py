"""Benchmark whole-network simulation: ResNet-18 at 1x3x224x224 on a 32x32
weight-stationary int8 array (the edge NPU config with a 32x32 array).

Prints wall time of exact and sampled (1%) simulation (cold: nothing cached;
the Numba kernels are loaded from the on-disk cache by a warm-up run on a
small model first), simulated MACs per second, the PyTorch forward time of
the same model in the same run and the ratios, and peak RSS. Each time is the
median of --repeats runs (the simulator's caches cleared before each); each
run's ratio divides it by the median of 3 forwards timed just before it, and the
median of those ratios is printed, so that a noisy moment on a shared machine
does not decide a ratio.

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
    if args.repeats < 1:
        ap.error(f"--repeats {args.repeats}: must be >= 1")
    cfg = apply_overrides(load_config(ROOT / "hw_configs" / "edge_npu_16x16_int8.yaml"),
                          {"array.rows": 32, "array.cols": 32})
    small, shape = load_model("fashion_cnn")
    for err in (None, 0.01):                                    # warm: both modes' kernels from cache
        network.simulate(small, make_inputs(shape), cfg, sample_error=err)
    model, _ = load_model("resnet18")
    x = make_inputs((1, 3, 224, 224))
    with torch.no_grad():
        model(x)

    def forward_time():
        with torch.no_grad():
            t = time.perf_counter()
            model(x)
            return time.perf_counter() - t

    rows = []
    for label, err in (("exact", None), ("sampled 1%", 0.01)):
        times, ratios = [], []
        for _ in range(args.repeats):   # each run next to 3 forwards: the ratio of one moment
            t_fwd = statistics.median([forward_time() for _ in range(3)])
            network.clear_cache()
            t = time.perf_counter()
            rep = network.simulate(model, x, cfg, sample_error=err)
            times.append(time.perf_counter() - t)
            ratios.append(times[-1] / t_fwd)
        rows.append((label, statistics.median(times), statistics.median(ratios), rep))
    t_torch = statistics.median([forward_time() for _ in range(3 * args.repeats)])
    macs = rows[0][3].total["macs_per_inference"]
    print(f"ResNet-18 1x3x224x224, {macs / 1e9:.2f} G MACs, on {cfg.name} with a 32x32 array")
    print(f"PyTorch forward (CPU, same run): {t_torch * 1e3:.1f} ms (median of {3 * args.repeats} runs)")
    print(f"simulation: median of {args.repeats} runs, caches cleared before each; ratio: median over "
          "the runs of (run / median of the 3 forwards just before it)")
    for label, dt, ratio, rep in rows:
        print(f"{label:>11}: {dt:6.2f} s  {macs / dt / 1e9:5.2f} G simulated MAC/s  "
              f"{ratio:6.1f}x the PyTorch forward   energy {rep.total['energy_uj_per_inference']:.1f} µJ, "
              f"latency {rep.total['latency_us']:.0f} µs")
    e0, e1 = rows[0][3].total["energy_uj_per_inference"], rows[1][3].total["energy_uj_per_inference"]
    print(f"sampled vs exact energy: {100 * (e1 / e0 - 1):+.3f}%")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
