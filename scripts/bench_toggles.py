"""Benchmark the toggle engine on a ResNet 3x3 conv at 56x56 lowered to a GEMM
(3136 x 576 x 64, int8), on 16x16 and 32x32 arrays, WS and OS.

Prints, per case: exact-mode simulated MACs per second, sampled-mode time at
1% target error, numpy's `A.astype(int32) @ B` time in the same run and the
ratios; then the Numba first-call compile time (fresh cache, in a child
process) and the warm start of the `joulesim gemm` command.

    python scripts/bench_toggles.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator import load_config, simulate_gemm  # noqa: E402
from simulator.formats import random_operand  # noqa: E402

HW = ROOT / "hw_configs" / "edge_npu_16x16_int8.yaml"
M, K, N = 3136, 576, 64

COMPILE_SNIPPET = """
import time, numpy as np
t = time.perf_counter()
from simulator import load_config, simulate_gemm
cfg = load_config(r"{hw}")
t_import = time.perf_counter() - t
rng = np.random.default_rng(0)
A = rng.integers(-128, 128, (20, 20)); B = rng.integers(-128, 128, (20, 20))
t = time.perf_counter()
for flow in ("ws", "os"):
    simulate_gemm(A, B, cfg, dataflow=flow)
print(t_import, time.perf_counter() - t)
"""


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def first_call_seconds(cache_dir: str | None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if cache_dir:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run([sys.executable, "-c", COMPILE_SNIPPET.format(hw=HW)], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="timed repetitions (best is reported)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as fresh:
        _, compile_s = first_call_seconds(fresh)
    print(f"first call (Numba compile, empty cache, WS + OS int8 kernels): {compile_s:.2f} s")
    _, cached_s = first_call_seconds(None)
    print(f"first call (kernels loaded from the on-disk cache):             {cached_s:.2f} s")

    cfg = load_config(HW)
    rng = np.random.default_rng(0)
    A = random_operand((M, K), "int8", rng)
    B = random_operand((K, N), "int8", rng)
    macs = M * K * N
    t_np, _ = best_of(lambda: A.astype(np.int32) @ B.astype(np.int32), args.repeats)
    print(f"\nGEMM {M}x{K}x{N} int8 ({macs / 1e6:.1f} M MACs); numpy int32 matmul: {t_np * 1e3:.1f} ms")
    header = (f"{'array':>7} {'flow':>4} {'exact ms':>9} {'G MAC/s':>8} {'exact/numpy':>11} "
              f"{'sampled ms':>10} {'folds':>9} {'sampled/numpy':>13}")
    print(header)
    for size in (16, 32):
        for flow in ("ws", "os"):
            simulate_gemm(A[:64], B, cfg, dataflow=flow, rows=size, cols=size)   # warm
            t_ex, ex = best_of(lambda: simulate_gemm(A, B, cfg, dataflow=flow, rows=size,
                                                     cols=size), args.repeats)
            t_sa, sa = best_of(lambda: simulate_gemm(A, B, cfg, dataflow=flow, rows=size,
                                                     cols=size, sample_error=0.01), args.repeats)
            worst = max((hi - lo) / 2 / max(v, 1) for v, (lo, hi) in
                        zip(sa.toggles.values(), sa.toggles_ci95.values()))
            print(f"{size:>4}x{size:<2} {flow:>4} {t_ex * 1e3:9.1f} {macs / t_ex / 1e9:8.2f} "
                  f"{t_ex / t_np:11.2f} {t_sa * 1e3:10.1f} {sa.folds_sampled:>4}/{ex.counts.folds:<4} "
                  f"{t_sa / t_np:13.2f}   (sampled worst 95% half-width {100 * worst:.2f}%)")

    # the brute-force cycle-by-cycle reference of the tests, for scale
    sys.path.insert(0, str(ROOT / "tests"))
    from reference_sim import reference_simulate
    from simulator.formats import encode
    a, b = encode(A[:64, :64], "int8"), encode(B[:64, :], "int8")
    t = time.perf_counter()
    reference_simulate(a.bits, a.values.astype(np.int64), b.bits, b.values.astype(np.int64),
                       rows=16, cols=16, dataflow="ws", operand_bits=8, acc_bits=32,
                       float_acc=False, zero_gating=False, zero_skipping=False)
    t_ref = time.perf_counter() - t
    t_small, _ = best_of(lambda: simulate_gemm(A[:64, :64], B[:64, :], cfg, dataflow="ws"),
                         args.repeats)
    small = 64 * 64 * 64
    t_big, _ = best_of(lambda: simulate_gemm(A, B, cfg, dataflow="ws"), args.repeats)
    print(f"\nbrute-force reference (tests/reference_sim.py), 64x64x64 WS on 16x16: "
          f"{t_ref:.2f} s = {small / t_ref / 1e3:.1f} k MAC/s; engine on the same GEMM "
          f"{t_small * 1e3:.1f} ms ({t_ref / t_small:,.0f}x), engine throughput on the big GEMM "
          f"{macs / t_big / 1e9:.2f} G MAC/s ({macs / t_big / (small / t_ref):,.0f}x the reference)")

    cmd = [sys.executable, "-m", "simulator.cli", "gemm", "--m", "3136", "--k", "576", "--n", "64",
           "--hw", str(HW), "--json"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t_cli, _ = best_of(lambda: subprocess.run(cmd, env=env, capture_output=True, check=True),
                       args.repeats)
    print(f"\nwarm start of `joulesim gemm --m 3136 --k 576 --n 64 --json`: {t_cli:.2f} s "
          f"(whole process: imports, cached kernels, simulation)")


if __name__ == "__main__":
    main()
