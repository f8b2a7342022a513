"""Benchmark whole-network simulation: ResNet-18 at 1x3x224x224 on a 32x32
weight-stationary int8 array (the edge NPU config with a 32x32 array).

Prints wall time of exact and sampled (1%) simulation (cold: nothing cached;
the Numba kernels are loaded from the on-disk cache by a warm-up run on a
small model first), simulated MACs per second, the PyTorch forward time of
the same model in the same run and the ratios, and peak RSS.

    python scripts/bench_simulate.py
"""
from __future__ import annotations

import resource
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
    cfg = apply_overrides(load_config(ROOT / "hw_configs" / "edge_npu_16x16_int8.yaml"),
                          {"array.rows": 32, "array.cols": 32})
    small, shape = load_model("fashion_cnn")
    for err in (None, 0.01):                                    # warm: both modes' kernels from cache
        network.simulate(small, make_inputs(shape), cfg, sample_error=err)
    model, _ = load_model("resnet18")
    x = make_inputs((1, 3, 224, 224))
    with torch.no_grad():
        model(x)
        t = time.perf_counter()
        for _ in range(3):
            model(x)
        t_torch = (time.perf_counter() - t) / 3
    rows = []
    for label, err in (("exact", None), ("sampled 1%", 0.01)):
        network.clear_cache()
        t = time.perf_counter()
        rep = network.simulate(model, x, cfg, sample_error=err)
        dt = time.perf_counter() - t
        rows.append((label, dt, rep))
    macs = rows[0][2].total["macs_per_inference"]
    print(f"ResNet-18 1x3x224x224, {macs / 1e9:.2f} G MACs, on {cfg.name} with a 32x32 array")
    print(f"PyTorch forward (CPU, same run): {t_torch * 1e3:.1f} ms")
    for label, dt, rep in rows:
        print(f"{label:>11}: {dt:6.2f} s  {macs / dt / 1e9:5.2f} G simulated MAC/s  "
              f"{dt / t_torch:6.1f}x the PyTorch forward   energy {rep.total['energy_uj_per_inference']:.1f} µJ, "
              f"latency {rep.total['latency_us']:.0f} µs")
    e0, e1 = rows[0][2].total["energy_uj_per_inference"], rows[1][2].total["energy_uj_per_inference"]
    print(f"sampled vs exact energy: {100 * (e1 / e0 - 1):+.3f}%")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
