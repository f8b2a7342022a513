"""The fast Numba engine equals the brute-force cycle-by-cycle reference
(tests/reference_sim.py) exactly: cycles, folds, SRAM accesses, metadata,
MACs issued/gated/skipped and toggles per register class, for every dataflow
and sparsity mode on seeded random cases."""
import itertools

import numpy as np
import pytest
from conftest import make_config
from reference_sim import reference_simulate

from simulator import simulate_gemm
from simulator.formats import OPERAND_BITS, encode, random_operand

FLOWS = {"ws": "weight_stationary", "os": "output_stationary", "is": "input_stationary"}
MODES = ("dense", "gating", "skipping", "nm24")
FORMATS = ("int8", "int16", "fp16")
ZERO_FRACTIONS = (0.0, 0.5, 0.9)
CASES_PER_COMBO = 6


def _nm_prune(b, rng, n=2, m=4):
    """Keep the n largest of every m along K in most columns; leave a random
    column dense so that some strips conform and others do not."""
    K, N = b.shape
    out = b.copy()
    for col in range(N):
        if rng.random() < 0.25:
            continue
        for g in range(0, K, m):
            grp = np.abs(out[g:g + m, col].astype(np.float64))
            drop = np.argsort(-grp, kind="stable")[n:]
            out[g + drop, col] = 0
    return out


def _cases():
    cases = []
    seed = 0
    for flow, mode in itertools.product(FLOWS, MODES):
        if flow == "is" and mode == "nm24":
            continue
        for i in range(CASES_PER_COMBO):
            cases.append((flow, mode, FORMATS[(seed + i) % 3], ZERO_FRACTIONS[i % 3], seed))
            seed += 1
    return cases


def _compare(A, B, cfg, flow):
    fmt = cfg.array.operand_format
    acc = cfg.array.accumulator_bits
    sp = cfg.sparsity
    res = simulate_gemm(A, B, cfg, dataflow=flow)
    a, b = encode(A, fmt, acc), encode(B, fmt, acc)
    ref = reference_simulate(
        a.bits, a.values.astype(np.float32 if fmt.startswith(("fp", "bf")) else np.int64),
        b.bits, b.values.astype(np.float32 if fmt.startswith(("fp", "bf")) else np.int64),
        rows=cfg.array.rows, cols=cfg.array.cols, dataflow=flow,
        operand_bits=OPERAND_BITS[fmt], acc_bits=acc, float_acc=fmt.startswith(("fp", "bf")),
        zero_gating=sp.zero_gating, zero_skipping=sp.zero_skipping,
        nm=cfg.structured_nm)
    c = res.counts
    got = {
        "cycles": c.cycles, "folds": c.folds, "folds_planned": c.folds_planned,
        "sram_reads_ifmap": c.sram_reads_ifmap, "sram_reads_filter": c.sram_reads_filter,
        "sram_writes_ofmap": c.sram_writes_ofmap, "sram_reads_psum": c.sram_reads_psum,
        "metadata_bits": c.metadata_bits, "macs_total": res.macs["total"],
        "macs_issued": res.macs["issued"], "macs_gated": res.macs["gated"],
        "macs_skipped": res.macs["skipped"],
        **{f"toggles_{k}": v for k, v in res.toggles.items()},
    }
    assert got == ref
    return ref


@pytest.mark.parametrize("flow,mode,fmt,zf,seed", _cases())
def test_engine_equals_reference(flow, mode, fmt, zf, seed):
    rng = np.random.default_rng(seed)
    R, C = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    M, K, N = (int(x) for x in rng.integers(1, 19, size=3))
    acc = 32 if fmt != "int16" else int(rng.choice([32, 40]))
    A = random_operand((M, K), fmt, rng, zf)
    B = random_operand((K, N), fmt, rng, zf)
    sparsity = {"zero_gating": mode == "gating" or (mode == "skipping" and seed % 2 == 0),
                "zero_skipping": mode == "skipping", "structured": "none"}
    if mode == "nm24":
        B = _nm_prune(B, rng)
        sparsity["structured"] = "2:4"
        sparsity["zero_gating"] = seed % 2 == 1
    cfg = make_config(array={"rows": R, "cols": C, "dataflow": FLOWS[flow], "operand_format": fmt,
                             "accumulator_bits": acc}, sparsity=sparsity)
    ref = _compare(A, B, cfg, flow)
    assert ref["macs_total"] == M * K * N


@pytest.mark.parametrize("fmt", ["bf16", "fp32", "int8"])
@pytest.mark.parametrize("flow", ["ws", "os", "is"])
def test_other_formats_and_narrow_accumulator(fmt, flow):
    rng = np.random.default_rng(hash((fmt, flow)) % 2**32)
    A = random_operand((9, 11), fmt, rng, 0.3)
    B = random_operand((11, 6), fmt, rng, 0.3)
    acc = 32 if fmt != "int8" else 20    # int8 with a 20-bit accumulator wraps
    cfg = make_config(array={"rows": 3, "cols": 5, "dataflow": FLOWS[flow], "operand_format": fmt,
                             "accumulator_bits": acc}, sparsity={"zero_gating": True})
    _compare(A, B, cfg, flow)


def test_all_modes_together_on_nm_array():
    rng = np.random.default_rng(7)
    A = random_operand((13, 17), "int8", rng, 0.5)
    B = _nm_prune(random_operand((17, 10), "int8", rng, 0.2), rng)
    for flow in ("ws", "os"):
        cfg = make_config(array={"rows": 5, "cols": 3, "dataflow": FLOWS[flow]},
                          sparsity={"zero_gating": True, "zero_skipping": True,
                                    "structured": "2:4"})
        _compare(A, B, cfg, flow)


@pytest.mark.parametrize("flow", ["ws", "os", "is"])
@pytest.mark.parametrize("gating", [False, True])
def test_one_pe_array(flow, gating):
    """1x1: on output-stationary no bubble separates consecutive folds."""
    rng = np.random.default_rng(11)
    A = random_operand((5, 4), "int8", rng, 0.3)
    B = random_operand((4, 3), "int8", rng, 0.3)
    cfg = make_config(array={"rows": 1, "cols": 1, "dataflow": FLOWS[flow]},
                      sparsity={"zero_gating": gating})
    _compare(A, B, cfg, flow)


@pytest.mark.parametrize("seed", range(12))
def test_sampled_dense_ws_decomposition_equals_reference(seed):
    """Sampled mode on a dense weight-stationary array counts forwarding,
    multiplier-input and stationary toggles exactly and estimates partial
    sums from step transitions; asked for every transition (a tiny error
    target) it must reproduce the brute-force reference exactly."""
    rng = np.random.default_rng(100 + seed)
    fmt = FORMATS[seed % 3] if seed < 9 else ("bf16", "fp32", "int8")[seed - 9]
    R, C = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    M, K, N = (int(x) for x in rng.integers(1, 30, size=3))
    acc = {"int8": (20, 32), "int16": (32, 40)}.get(fmt, (32,))[seed % 2 if fmt.startswith("int") else 0]
    A = random_operand((M, K), fmt, rng, ZERO_FRACTIONS[seed % 3])
    B = random_operand((K, N), fmt, rng, 0.3)
    if fmt == "int8" and seed % 2:                 # lowered GEMMs arrive as int8 storage
        A, B = A.astype(np.int8), B.astype(np.int8)
    cfg = make_config(array={"rows": R, "cols": C, "operand_format": fmt, "accumulator_bits": acc})
    census = simulate_gemm(A, B, cfg, sample_error=1e-12)
    a, b = encode(A, fmt, acc), encode(B, fmt, acc)
    is_float = fmt.startswith(("fp", "bf"))
    ref = reference_simulate(
        a.bits, a.values.astype(np.float32 if is_float else np.int64),
        b.bits, b.values.astype(np.float32 if is_float else np.int64),
        rows=R, cols=C, dataflow="ws", operand_bits=OPERAND_BITS[fmt], acc_bits=acc,
        float_acc=is_float, zero_gating=False, zero_skipping=False, nm=None)
    assert census.mode == "exact"
    assert {k: census.toggles[k] for k in census.toggles} == \
        {k: ref[f"toggles_{k}"] for k in census.toggles}
    assert census.counts.cycles == ref["cycles"]
    loose = simulate_gemm(A, B, cfg, sample_error=0.5, seed=seed)
    for k in ("forwarding", "stationary", "mult_inputs"):    # never sampled
        assert loose.toggles[k] == ref[f"toggles_{k}"]


@pytest.mark.parametrize("fmt,R,C,K,N", [("int8", 40, 33, 131, 100), ("int8", 32, 64, 64, 129),
                                         ("int16", 24, 40, 50, 87), ("fp32", 16, 20, 37, 45)])
def test_dense_ws_stationary_toggles_equal_the_fold_by_fold_definition(fmt, R, C, K, N):
    """The stationary-register toggles of sampled mode (counted over runs of
    bytes, 8 per popcount) equal the definition written out fold by fold: each
    fold (n-major, k-minor) loads its R x C block of B, zero past K and N, and
    every PE toggles popcount(new XOR old), starting from zero. Arrays wide
    enough that runs span several 8- and 32-byte words, with ragged ends."""
    rng = np.random.default_rng(7)
    B = random_operand((K, N), fmt, rng, 0.3)
    bits = encode(B, fmt, 32).bits
    held = np.zeros((R, C), bits.dtype)
    expected = 0
    for nf in range(-(-N // C)):
        for kf in range(-(-K // R)):
            block = np.zeros((R, C), bits.dtype)
            part = bits[kf * R:(kf + 1) * R, nf * C:(nf + 1) * C]
            block[:part.shape[0], :part.shape[1]] = part
            expected += int(np.bitwise_count(block ^ held).sum())
            held = block
    cfg = make_config(array={"rows": R, "cols": C, "operand_format": fmt})
    A = random_operand((3, K), fmt, rng, 0.0)
    assert simulate_gemm(A, B, cfg, sample_error=0.5).toggles["stationary"] == expected
