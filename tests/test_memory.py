"""simulator.memory: tiling, DRAM bytes and tile-level timing, against numbers derived by hand.

Every config here runs at 1000 MHz, so a DRAM bandwidth of B GB/s moves
exactly B bytes per cycle. int8 operands and outputs (1 byte), 32-bit partial
sums (4 bytes).

The layer most timing tests use ("REREAD"): m = k = n = 64 with 2 KiB
buffers (half = 1024 bytes each). A and B are 4096 bytes each, too big for
half a buffer, so A is read ceil(64/tile_n) times and B ceil(64/tile_m) times
(4096 * (64/tile_n + 64/tile_m) bytes) under tile_m*tile_n*4 <= 1024. Over
powers of two that is smallest at tile_m = tile_n = 16 (4 reads each), and
tile_k = 64 (16*64 = 1024 bytes fits). So 4*4 = 16 tile steps, each loads
an A tile (16x64 = 1024 B) and a B tile (64x16 = 1024 B) = 2048 B and writes
one 16x16 = 256 B output tile. Totals: A 16384, B 16384, C 4096, 36864 B.
"""
import copy
import itertools
import math
import random
import time

import numpy as np
import pytest

from conftest import BASE_CONFIG
from simulator.config import config_from_dict
from simulator.errors import JoulesimError
from simulator.memory import MAX_SIM_STEPS, GemmTraffic, simulate_memory


def hw(ifmap_kib=64, filter_kib=64, ofmap_kib=64, bandwidth_gbps=64, burst_bytes=64,
       compression="none", pj_per_bit=None):
    d = copy.deepcopy(BASE_CONFIG)
    d["technology"]["frequency_mhz"] = 1000
    d["memory"]["sram"] = {"ifmap": {"size_kib": ifmap_kib}, "filter": {"size_kib": filter_kib},
                           "ofmap": {"size_kib": ofmap_kib}}
    d["memory"]["dram"] = {"kind": "lpddr4", "bandwidth_gbps": bandwidth_gbps, "burst_bytes": burst_bytes}
    if pj_per_bit is not None:
        d["memory"]["dram"]["pj_per_bit"] = pj_per_bit
    d["sparsity"] = {"compression": compression}
    return config_from_dict(d, source="<test>")


def gemm(m=64, k=64, n=64, compute_cycles=16_000, **kw):
    return GemmTraffic(m=m, k=k, n=n, compute_cycles=compute_cycles, operand_bytes=1, output_bytes=1,
                       acc_bytes=4, **kw)


def reread_hw(**kw):
    return hw(ifmap_kib=2, filter_kib=2, ofmap_kib=2, **kw)


# ----------------------------------------------------------------- bytes
def test_operands_that_fit_whole_are_read_once():
    # A, B = 4096 B <= 32 KiB (half of 64); psums need tile_m*tile_n*4 <= 4096 (half of 8 KiB), so at
    # least 64*64/1024 = 4 output tiles -- yet each operand crosses DRAM exactly once.
    r = simulate_memory(gemm(), hw(ofmap_kib=8))
    assert r.tile_m * r.tile_n * 4 <= 4096 and r.tile_k == 64
    assert r.n_tiles == 4
    assert (r.dram_read_bytes_ifmap, r.dram_read_bytes_filter, r.dram_write_bytes_ofmap) == (4096, 4096, 4096)
    assert r.dram_bytes == 12288 and not r.output_on_chip


def test_operands_that_do_not_fit_are_reread_per_tile():
    r = simulate_memory(gemm(), reread_hw())
    assert (r.tile_m, r.tile_k, r.tile_n, r.n_tiles) == (16, 64, 16, 16)
    assert r.dram_read_bytes_ifmap == 4096 * 4   # ceil(n / tile_n) = 4 passes over A
    assert r.dram_read_bytes_filter == 4096 * 4  # ceil(m / tile_m) = 4 passes over B
    assert r.dram_write_bytes_ofmap == 4096
    assert r.dram_bytes == 36864


@pytest.mark.parametrize("m,k,n,burst,expected", [
    (3, 5, 7, 64, (64, 64, 64)),        # 15, 35, 21 bytes -> one 64-byte burst each
    (10, 10, 10, 32, (128, 128, 128)),  # 100 bytes -> 4 bursts of 32
    (64, 64, 64, 1000, (5000, 5000, 5000)),  # 4096 bytes -> 5 bursts of 1000
])
def test_transfers_round_up_to_bursts(m, k, n, burst, expected):
    r = simulate_memory(gemm(m, k, n, compute_cycles=100), hw(burst_bytes=burst))
    assert r.n_tiles == 1
    assert (r.dram_read_bytes_ifmap, r.dram_read_bytes_filter, r.dram_write_bytes_ofmap) == expected
    assert r.dram_bytes == sum(expected)


@pytest.mark.parametrize("compression,expected", [
    ("none", 4096),
    ("bitmap", 1792),  # 0.3*4096*1 + 4096/8 = 1740.8 -> 1741 B -> 28 bursts
    ("csr", 3968),     # 0.3*4096*(1+2) + (64+1)*4 = 3946.4 -> 3947 B -> 62 bursts
    ("rle", 2496),     # 0.3*4096*(1+1) = 2457.6 -> 2458 B -> 39 bursts
])
def test_compression_of_sparse_operands(compression, expected):
    # one 64x64 tile per operand (everything fits); the output is written dense
    r = simulate_memory(gemm(density_ifmap=0.3, density_filter=0.3), hw(compression=compression))
    assert r.n_tiles == 1
    assert r.dram_read_bytes_ifmap == expected and r.dram_read_bytes_filter == expected
    assert r.dram_write_bytes_ofmap == 4096


# N:M-compressed weights (2:4, int8): per column, 2 kept values per 4 rows, each 1 byte + 2 metadata
# bits, i.e. 64 x 64 -> 64 * 32 * 1.25 = 2560 B (0.625 B per element), 40 bursts of 64 B.
@pytest.mark.parametrize("fraction,expected", [
    (1.0, 2560),
    (0.5, 3328),   # half the columns compressed: 32*32*1.25 + 32*64*1 = 1280 + 2048 = 3328 B = 52 bursts
    (0.0, 4096),
])
def test_nm_compressed_weights_move_kept_values_and_metadata(fraction, expected):
    r = simulate_memory(gemm(filter_nm=(2, 4), filter_nm_fraction=fraction), hw())
    assert r.n_tiles == 1
    assert r.dram_read_bytes_filter == expected
    assert r.dram_read_bytes_ifmap == r.dram_write_bytes_ofmap == 4096   # activations stay dense
    assert r.dram_energy_pj == pytest.approx((8192 + expected) * 8 * 8.0)  # lpddr4: 8 pJ/bit


def test_nm_compressed_weights_fit_the_filter_buffer_compressed():
    # filter buffer 6 KiB: half = 3072 B holds B compressed (2560 B) but not dense (4096 B); ifmap and
    # ofmap 2 KiB (halves 1024 B: A tiles tile_m*tile_k <= 1024, psums tile_m*tile_n*4 <= 1024).
    # Compressed: B is read once (2560 B), so only A's ceil(64/tile_n) passes are left to minimise:
    # tile_n = 64 forces tile_m <= 4, A is read once; tile_k = 64 (4*64 = 256 B of A; the 64x64 B tile
    # is 2560 B <= 3072). Total 4096 + 2560 + 4096 = 10752 B over 16 tile steps.
    cfg = hw(ifmap_kib=2, filter_kib=6, ofmap_kib=2)
    r = simulate_memory(gemm(filter_nm=(2, 4), filter_nm_fraction=1.0), cfg)
    assert (r.tile_m, r.tile_k, r.tile_n, r.n_tiles) == (4, 64, 64, 16)
    assert (r.dram_read_bytes_ifmap, r.dram_read_bytes_filter, r.dram_write_bytes_ofmap) == (4096, 2560, 4096)
    # Dense, B (4096 B) is re-read ceil(64/tile_m) times as well: A*64/tile_n + B*64/tile_m under
    # tile_m*tile_n <= 256 is least at 16 x 16: 4*4096 + 4*4096, plus C 4096 = 36864 B.
    dense = simulate_memory(gemm(), cfg)
    assert dense.dram_bytes == 36864
    # a strip that does not conform keeps the dense footprint: not read once
    part = simulate_memory(gemm(filter_nm=(2, 4), filter_nm_fraction=0.5), cfg)
    assert part.dram_read_bytes_filter > 3328

def test_compression_of_dense_operands_is_dense():
    r = simulate_memory(gemm(), hw(compression="csr"))
    assert r.dram_read_bytes_ifmap == r.dram_read_bytes_filter == 4096


def test_ifmap_on_chip_reads_no_ifmap():
    # REREAD buffers, but A costs nothing: B's ceil(64 / tile_m) passes are the only re-reads, so
    # tile_m = 64 (psums then allow tile_n <= 1024 / (64*4) = 4; A tiles tile_k <= 1024 / 64 = 16)
    # and B is read once.
    r = simulate_memory(gemm(ifmap_on_chip=True), reread_hw())
    assert r.dram_read_bytes_ifmap == 0
    assert (r.tile_m, r.tile_k, r.tile_n) == (64, 16, 4)
    assert r.dram_read_bytes_filter == 4096 and r.dram_write_bytes_ofmap == 4096
    assert r.dram_bytes == 8192


def test_kept_output_that_fits_is_not_written():
    # C = 64*64*1 = 4096 B <= 64 KiB ofmap buffer
    r = simulate_memory(gemm(keep_output_on_chip=True), hw())
    assert r.output_on_chip and r.dram_write_bytes_ofmap == 0 and r.dram_bytes == 8192


def test_kept_output_that_does_not_fit_is_written():
    # C = 4096 B > 2 KiB ofmap buffer
    r = simulate_memory(gemm(keep_output_on_chip=True), reread_hw())
    assert not r.output_on_chip and r.dram_write_bytes_ofmap == 4096


def test_dram_energy_is_bytes_times_price():
    r = simulate_memory(gemm(), hw(pj_per_bit=4.0))
    assert r.dram_energy_pj == pytest.approx(12288 * 8 * 4.0)


def reference_bytes(t, cfg, tm, tk, tn):
    """The byte rules, walked step by step through the loop nest (m, n outer; k inner)."""
    sram = {b: cfg.memory.sram[b].size_kib * 1024 for b in ("ifmap", "filter", "ofmap")}
    burst, comp = cfg.memory.dram.burst_bytes, cfg.sparsity.compression

    def xfer(rows, cols, nbytes, density):
        numel = rows * cols
        stored = {"none": numel * nbytes,
                  "bitmap": density * numel * nbytes + numel / 8,
                  "csr": density * numel * (nbytes + 2) + (rows + 1) * 4,
                  "rle": density * numel * (nbytes + 1)}[comp if density < 1 else "none"]
        return math.ceil(math.ceil(stored - 1e-9) / burst) * burst

    a_once = t.m * t.k * t.operand_bytes <= sram["ifmap"] / 2
    b_once = t.k * t.n * t.operand_bytes <= sram["filter"] / 2
    on_chip = t.keep_output_on_chip and t.m * t.n * t.output_bytes <= sram["ofmap"]
    mt, nt, kt = -(-t.m // tm), -(-t.n // tn), -(-t.k // tk)
    a = b = c = 0
    for mi, ni, ki in itertools.product(range(mt), range(nt), range(kt)):
        rm, rn, rk = min(tm, t.m - mi * tm), min(tn, t.n - ni * tn), min(tk, t.k - ki * tk)
        if not t.ifmap_on_chip and (ni == 0 or not a_once):
            a += xfer(rm, rk, t.operand_bytes, t.density_ifmap)
        if mi == 0 or not b_once:
            b += xfer(rk, rn, t.operand_bytes, t.density_filter)
        if ki == kt - 1 and not on_chip:
            c += xfer(rm, rn, t.output_bytes, 1.0)
    return a, b, c


def random_cases(count, max_dim, seed):
    rng = random.Random(seed)
    for _ in range(count):
        cfg = hw(ifmap_kib=rng.choice([0.0625, 0.125, 0.25, 1]), filter_kib=rng.choice([0.0625, 0.125, 0.25, 1]),
                 ofmap_kib=rng.choice([0.125, 0.25, 1]), burst_bytes=rng.choice([1, 16, 64, 100]),
                 compression=rng.choice(["none", "bitmap", "csr", "rle"]))
        t = GemmTraffic(m=rng.randint(1, max_dim), k=rng.randint(1, max_dim), n=rng.randint(1, max_dim),
                        compute_cycles=rng.randint(0, 5000), operand_bytes=rng.choice([1, 2]),
                        output_bytes=rng.choice([1, 2]), acc_bytes=4,
                        density_ifmap=rng.choice([1.0, 0.3, 0.05]), density_filter=rng.choice([1.0, 0.5]),
                        ifmap_on_chip=rng.random() < 0.25, keep_output_on_chip=rng.random() < 0.5)
        yield t, cfg


def test_bytes_match_a_step_by_step_walk_of_the_loop_nest():
    for t, cfg in random_cases(40, 60, seed=1):
        r = simulate_memory(t, cfg)
        a, b, c = reference_bytes(t, cfg, r.tile_m, r.tile_k, r.tile_n)
        assert (r.dram_read_bytes_ifmap, r.dram_read_bytes_filter, r.dram_write_bytes_ofmap) == (a, b, c)
        assert r.dram_bytes == a + b + c
        assert r.n_tiles == -(-t.m // r.tile_m) * -(-t.k // r.tile_k) * -(-t.n // r.tile_n)
        assert r.latency_cycles >= max(t.compute_cycles, r.dram_bytes / 64)


def test_chosen_tiles_fit_and_minimise_bytes():
    def candidates(d):
        return sorted({2 ** i for i in range(d.bit_length()) if 2 ** i < d} | {d})

    for t, cfg in random_cases(12, 20, seed=2):
        half = {b: cfg.memory.sram[b].size_kib * 1024 / 2 for b in ("ifmap", "filter", "ofmap")}

        def fits(tm, tk, tn):
            return (tm * tk * t.operand_bytes <= half["ifmap"] and tk * tn * t.operand_bytes <= half["filter"]
                    and tm * tn * t.acc_bytes <= half["ofmap"])

        r = simulate_memory(t, cfg)
        assert fits(r.tile_m, r.tile_k, r.tile_n)
        best = min(sum(reference_bytes(t, cfg, tm, tk, tn))
                   for tm in candidates(t.m) for tk in candidates(t.k) for tn in candidates(t.n) if fits(tm, tk, tn))
        assert r.dram_bytes == best


# ----------------------------------------------------------------- time
def test_single_tile_latency_is_load_compute_write():
    # 64 B/cycle: load A + B = 8192 B = 128 cycles, compute 16000, write C 4096 B = 64 cycles
    r = simulate_memory(gemm(), hw(bandwidth_gbps=64))
    assert r.latency_cycles == 128 + 16_000 + 64 and r.stall_cycles == 192
    kept = simulate_memory(gemm(keep_output_on_chip=True), hw(bandwidth_gbps=64))
    assert kept.latency_cycles == 128 + 16_000 and kept.stall_cycles == 128


def test_compute_bound_layer_stalls_only_for_fill_and_drain():
    # REREAD at 64 B/cycle: each step loads 2048 B in 32 cycles and writes 256 B in 4, while computing
    # 16000/16 = 1000 cycles, so every load and write-back hides under compute except the first
    # step's load (fill) and the last output tile's write-back (drain). stall_cycles counts both.
    r = simulate_memory(gemm(), reread_hw(bandwidth_gbps=64))
    assert r.latency_cycles == 32 + 16_000 + 4
    assert r.stall_cycles == 32 + 4


def test_huge_bandwidth_leaves_no_stall_beyond_rounding():
    # 1e6 B/cycle: fill + drain = (2048 + 256) / 1e6 cycles, rounded up to one whole cycle
    r = simulate_memory(gemm(), reread_hw(bandwidth_gbps=1e6))
    assert 0 <= r.stall_cycles <= 1 and r.latency_cycles == 16_000 + r.stall_cycles


def test_bandwidth_bound_latency_is_dram_time():
    # 1 B/cycle, 1 compute cycle per step: the channel is the bottleneck. It cannot finish before all
    # 36864 B have moved, and it only idles while the last step computes (1 cycle) -- within one tile
    # step's time (2048 B load + 1 compute + 256 B write) of the DRAM time.
    r = simulate_memory(gemm(compute_cycles=16), reread_hw(bandwidth_gbps=1))
    one_tile = 2048 + 1 + 256
    assert 36864 <= r.latency_cycles <= 36864 + one_tile
    assert r.stall_cycles == r.latency_cycles - 16


def test_doubling_bandwidth_halves_stall():
    slow = simulate_memory(gemm(compute_cycles=16), reread_hw(bandwidth_gbps=1))
    fast = simulate_memory(gemm(compute_cycles=16), reread_hw(bandwidth_gbps=2))
    one_tile_fast = (2048 + 256) / 2 + 1
    assert abs(fast.stall_cycles - slow.stall_cycles / 2) <= one_tile_fast
    # stall = DRAM time - compute time: doubling bandwidth saves half the DRAM time (36864 / 2)
    assert abs((slow.stall_cycles - fast.stall_cycles) - 36864 / 2) <= one_tile_fast


# ----------------------------------------------------------------- event cap and speed
def test_many_tiles_simulate_fast_with_exact_bytes():
    # REREAD tiling on a 1024^3 layer: 64 x 64 output tiles x 16 k tiles = 65536 tile steps; A (1 MiB)
    # is read 64 times, B (1 MiB) 64 times, C (1 MiB) written once.
    t = gemm(1024, 1024, 1024, compute_cycles=10**6)
    cfg = reread_hw(bandwidth_gbps=16)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        r = simulate_memory(t, cfg)
        best = min(best, time.perf_counter() - start)
    assert best < 0.050
    assert r.n_tiles == 65536 and r.sim_steps <= MAX_SIM_STEPS
    assert r.dram_read_bytes_ifmap == r.dram_read_bytes_filter == 64 * 2**20
    assert r.dram_write_bytes_ofmap == 2**20
    # the DRAM channel alone needs dram_bytes / 16 cycles
    assert r.latency_cycles >= r.dram_bytes / 16


def test_grouped_steps_stay_within_one_super_step_of_exact():
    # 256^3 with the REREAD tiling: 16 x 16 output tiles x 4 k tiles = 1024 steps, each loading 2048 B,
    # computing 100 cycles; one 256 B write per 4 steps. Grouped 16 at a time (max_sim_steps=64), a
    # super-step moves 16*2048 + 4*256 = 33792 B (2112 cycles at 16 B/cycle) and computes 1600 cycles.
    t = gemm(256, 256, 256, compute_cycles=1024 * 100)
    cfg = reread_hw(bandwidth_gbps=16)
    exact = simulate_memory(t, cfg, max_sim_steps=None)
    grouped = simulate_memory(t, cfg, max_sim_steps=64)
    assert exact.sim_steps == exact.n_tiles == 1024 and grouped.sim_steps == 64
    assert grouped.dram_bytes == exact.dram_bytes == 16 * 16 * 4 * 2048 + 256 * 256
    assert abs(grouped.latency_cycles - exact.latency_cycles) <= 2112 + 1600


def test_buffer_too_small_for_one_element_is_a_user_error():
    with pytest.raises(JoulesimError, match="memory.sram.ifmap.size_kib"):
        simulate_memory(gemm(), hw(ifmap_kib=0.0005))


def _pipeline_with_simpy_resource(load, comp, write, finishes, write_back):
    """The tile pipeline of `memory._run_pipeline` written with a capacity-1 `simpy.Resource` as
    the DRAM channel (request and release events): the reference for its lighter channel."""
    import simpy

    steps = len(load)
    outputs = [s for s in range(steps) if finishes[s]] if write_back else []
    env = simpy.Environment()
    loaded = [env.event() for _ in range(steps)]
    computed = [env.event() for _ in range(steps)]
    finished = [env.event() for _ in outputs]
    written = [env.event() for _ in outputs]
    dram = simpy.Resource(env, capacity=1)
    end = {"compute": 0.0, "write_back": 0.0}

    def dma_in():
        for s in range(steps):
            if s >= 2:
                yield computed[s - 2]
            if load[s] > 0:
                if not write_back:
                    yield env.timeout(load[s])
                else:
                    with dram.request() as channel:
                        yield channel
                        yield env.timeout(load[s])
            loaded[s].succeed()

    def compute():
        j = 0
        for s in range(steps):
            if write_back and j >= 2 and (s == 0 or finishes[s - 1]):
                yield written[j - 2]
            yield loaded[s]
            yield env.timeout(comp[s])
            computed[s].succeed()
            if write_back and finishes[s]:
                finished[j].succeed()
                j += 1
        end["compute"] = env.now

    def write_back_engine():
        for j, s in enumerate(outputs):
            yield finished[j]
            with dram.request() as channel:
                yield channel
                yield env.timeout(write[s])
            written[j].succeed()
        end["write_back"] = env.now

    env.process(dma_in())
    env.process(compute())
    if write_back:
        env.process(write_back_engine())
    env.run()
    return max(end.values())


def test_pipeline_channel_equals_a_simpy_resource():
    """The DES's first-come-first-served DRAM channel (`_Channel`) gives the same end time as a
    capacity-1 simpy.Resource on random pipelines, many of them full of ties (small integers)."""
    from simulator.memory import _run_pipeline

    rng = np.random.default_rng(0)
    for trial in range(400):
        n = int(rng.integers(1, 40))
        if trial % 2:      # small integers: loads, computes and writes end at the same instants
            load = np.where(rng.random(n) < 0.2, 0, rng.integers(1, 4, n)).astype(float)
            comp, write = rng.integers(0, 4, n).astype(float), rng.integers(1, 4, n).astype(float)
        else:
            load = np.where(rng.random(n) < 0.2, 0, rng.random(n) * 100 * rng.choice([0.1, 1, 10]))
            comp, write = rng.random(n) * 100, rng.random(n) * 50
        finishes = rng.random(n) < 0.4
        finishes[-1] = True
        write_back = bool(rng.random() < 0.7)
        assert _run_pipeline(load, comp, write, finishes, write_back) == \
            _pipeline_with_simpy_resource(load.tolist(), comp.tolist(), write.tolist(), finishes.tolist(),
                                          write_back)
