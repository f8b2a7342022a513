"""Sanity tests of the brute-force reference simulator against hand-derived facts.

These tests do not compare against the fast engine; they check the reference
itself: closed-form cycle / fold / SRAM counts for dense cases, functional
correctness of the simulated dataflow (the array really computes A @ B),
zero-operand behaviour, and tiny cases whose toggle counts are derived by hand.
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_sim import COUNT_KEYS, reference_simulate, reference_simulate_debug  # noqa: E402


def cdiv(a, b):
    return -(-a // b)


def int8_operands(rng, shape, density=0.6):
    v = rng.integers(-128, 128, size=shape) * (rng.random(shape) < density)
    return v.astype(np.int8).view(np.uint8), v.astype(np.int64)


def run_int8(av, bv, **kw):
    ab = np.asarray(av, dtype=np.int8).view(np.uint8)
    bb = np.asarray(bv, dtype=np.int8).view(np.uint8)
    params = dict(operand_bits=8, acc_bits=32, float_acc=False, zero_gating=False, zero_skipping=False)
    params.update(kw)
    return reference_simulate_debug(ab, np.asarray(av, np.int64), bb, np.asarray(bv, np.int64), **params)


def nm_prune(rng, v, n, m):
    """Zero entries of v (K, N) so that every M-group of every column has <= n non-zeros."""
    v = v.copy()
    K, N = v.shape
    for c in range(N):
        for g in range(0, K, m):
            idx = [k for k in range(g, min(g + m, K)) if v[k, c] != 0]
            rng.shuffle(idx)
            for k in idx[n:]:
                v[k, c] = 0
    return v


# ---------------------------------------------------------------------------
# hand-derived 1x1 cases
# ---------------------------------------------------------------------------
def test_1x1_ws_by_hand():
    # 1x1 array, C = [3] @ [5], int8, acc 32, no gating.  L = 2R + C + T - 2 = 2.
    # tau 0 (load): stationary 0 -> 5 (2 bits); fwd stays bubble 0; mult (a=0, w=5): w 0->5 (2);
    #               psum = 0 + 0*5 = 0 (0).
    # tau 1:        fwd 0 -> 3 (2); mult a 0 -> 3 (2), w 5 -> 5 (0); psum 0 -> 15 (4).
    # drain (R + C = 2 cycles, toggles count, cycles don't):
    #   d0: fwd 3 -> 0 (2); mult a 3 -> 0 (2); psum 15 -> 0 (4).   d1: nothing changes.
    c, res = run_int8([[3]], [[5]], rows=1, cols=1, dataflow="ws")
    assert res[0, 0] == 15
    assert set(c) == set(COUNT_KEYS)
    assert c["cycles"] == 2 and c["folds"] == 1 and c["folds_planned"] == 1
    assert c["toggles_forwarding"] == 4
    assert c["toggles_stationary"] == 2
    assert c["toggles_mult_inputs"] == 6
    assert c["toggles_psum"] == 8
    assert (c["sram_reads_ifmap"], c["sram_reads_filter"], c["sram_writes_ofmap"], c["sram_reads_psum"]) == (1, 1, 1, 0)
    assert (c["macs_total"], c["macs_issued"], c["macs_gated"], c["macs_skipped"]) == (1, 1, 0, 0)
    assert c["metadata_bits"] == 0
    # with zero-gating the multiplier inputs only take (3, 5) at tau 1: 2 + 2 = 4 toggles
    c, _ = run_int8([[3]], [[5]], rows=1, cols=1, dataflow="ws", zero_gating=True)
    assert c["toggles_mult_inputs"] == 4
    assert c["toggles_forwarding"] == 4 and c["toggles_psum"] == 8 and c["toggles_stationary"] == 2


def test_1x1_os_by_hand():
    # OS, L = R + C + T - 2 = 1.
    # tau 0: h 0 -> 3 (2), v 0 -> 5 (2); mult (3, 5): 2 + 2; acc = 3*5 = 15 (4).
    # drain: h 3 -> 0 (2), v 5 -> 0 (2); mult (0, 0): 2 + 2 without gating, held with gating;
    #        bubbles do not write the accumulator.
    c, res = run_int8([[3]], [[5]], rows=1, cols=1, dataflow="os")
    assert res[0, 0] == 15
    assert c["cycles"] == 1
    assert c["toggles_forwarding"] == 8
    assert c["toggles_stationary"] == 0
    assert c["toggles_mult_inputs"] == 8
    assert c["toggles_psum"] == 4
    assert (c["sram_reads_ifmap"], c["sram_reads_filter"], c["sram_writes_ofmap"], c["sram_reads_psum"]) == (1, 1, 1, 0)
    c, _ = run_int8([[3]], [[5]], rows=1, cols=1, dataflow="os", zero_gating=True)
    assert c["toggles_mult_inputs"] == 4


def test_1x1_ws_two_steps_and_twos_complement():
    # A = [[1], [2]], B = [[3]]: L = 2 + 1 + 2 - 2 = 3.
    # tau0: stat 0->3 (2); mult w 0->3 (2); psum 0.
    # tau1: fwd 0->1 (1); mult a 0->1 (1); psum 0->3 (2).
    # tau2: fwd 1->2 (2); mult a 1->2 (2); psum 3->6 (2).
    # drain: fwd 2->0 (1); mult a 2->0 (1); psum 6->0 (2).
    c, res = run_int8([[1], [2]], [[3]], rows=1, cols=1, dataflow="ws")
    assert list(res[:, 0]) == [3, 6]
    assert c["cycles"] == 3
    assert (c["toggles_forwarding"], c["toggles_stationary"], c["toggles_mult_inputs"], c["toggles_psum"]) == (4, 2, 6, 6)
    # -1 * 1 = -1 is 0xFFFFFFFF in a 32-bit accumulator: 32 toggles in, 32 out (drain).
    # operands: fwd 0x00->0xFF->0x00 (16), stat 0->1 (1), mult w 0->1 (1) + a 0->0xFF->0 (16).
    c, res = run_int8([[-1]], [[1]], rows=1, cols=1, dataflow="ws")
    assert res[0, 0] == -1
    assert (c["toggles_forwarding"], c["toggles_stationary"], c["toggles_mult_inputs"], c["toggles_psum"]) == (16, 1, 17, 64)
    # with a 16-bit accumulator the register only has 16 bits
    c, _ = run_int8([[-1]], [[1]], rows=1, cols=1, dataflow="ws", acc_bits=16)
    assert c["toggles_psum"] == 32


# ---------------------------------------------------------------------------
# closed forms for dense cases
# ---------------------------------------------------------------------------
DENSE_SHAPES = [
    # R, C, M, K, N
    (1, 1, 1, 1, 1),
    (2, 3, 5, 4, 7),
    (4, 4, 4, 4, 4),
    (3, 2, 7, 9, 5),
    (8, 8, 16, 16, 16),
    (5, 1, 3, 11, 2),
]


@pytest.mark.parametrize("R,C,M,K,N", DENSE_SHAPES)
def test_dense_closed_forms(R, C, M, K, N):
    rng = np.random.default_rng(R * 1000 + C * 100 + M * 10 + K + N)
    av = rng.integers(1, 128, size=(M, K))  # no zeros: nothing gated or skipped
    bv = rng.integers(1, 128, size=(K, N))
    for zs in (False, True):
        ws, _ = run_int8(av, bv, rows=R, cols=C, dataflow="ws", zero_skipping=zs)
        folds = cdiv(K, R) * cdiv(N, C)
        assert ws["folds"] == ws["folds_planned"] == folds
        assert ws["cycles"] == folds * (2 * R + C + M - 2)
        assert ws["sram_reads_filter"] == K * N
        assert ws["sram_reads_ifmap"] == M * K * cdiv(N, C)
        assert ws["sram_writes_ofmap"] == M * N * cdiv(K, R)
        assert ws["sram_reads_psum"] == M * N * (cdiv(K, R) - 1)
        assert ws["metadata_bits"] == (folds * M if zs else 0)
        assert ws["macs_issued"] == ws["macs_total"] == M * K * N and ws["macs_skipped"] == 0

        os_, _ = run_int8(av, bv, rows=R, cols=C, dataflow="os", zero_skipping=zs)
        folds = cdiv(M, R) * cdiv(N, C)
        assert os_["folds"] == folds
        assert os_["cycles"] == folds * (R + C + K - 2)
        assert os_["sram_reads_ifmap"] == M * K * cdiv(N, C)
        assert os_["sram_reads_filter"] == K * N * cdiv(M, R)
        assert os_["sram_writes_ofmap"] == M * N
        assert os_["sram_reads_psum"] == 0
        assert os_["toggles_stationary"] == 0
        assert os_["macs_issued"] == M * K * N

        is_, _ = run_int8(av, bv, rows=R, cols=C, dataflow="is", zero_skipping=zs)
        folds = cdiv(K, R) * cdiv(M, C)
        assert is_["folds"] == folds
        assert is_["cycles"] == folds * (2 * R + C + N - 2)
        assert is_["sram_reads_ifmap"] == M * K  # stationary loads
        assert is_["sram_reads_filter"] == N * K * cdiv(M, C)  # streamed
        assert is_["sram_writes_ofmap"] == M * N * cdiv(K, R)
        assert is_["macs_issued"] == M * K * N


# ---------------------------------------------------------------------------
# functional correctness of the simulated dataflows
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
def test_array_computes_matmul_int8(dataflow):
    rng = np.random.default_rng({"ws": 1, "os": 2, "is": 3}[dataflow])
    for _ in range(25):
        R, C = (int(x) for x in rng.integers(1, 9, 2))
        M, K, N = (int(x) for x in rng.integers(1, 17, 3))
        ab, av = int8_operands(rng, (M, K), rng.random())
        bb, bv = int8_operands(rng, (K, N), rng.random())
        zs, zg = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        c, res = reference_simulate_debug(
            ab, av, bb, bv, rows=R, cols=C, dataflow=dataflow, operand_bits=8, acc_bits=32,
            float_acc=False, zero_gating=zg, zero_skipping=zs,
        )
        assert (res.astype(np.int64) == av @ bv).all()
        assert c["macs_issued"] + c["macs_skipped"] == M * K * N
        assert c["macs_gated"] <= c["macs_issued"]
        if not zg:
            assert c["macs_gated"] == 0
        if not zs:
            assert c["macs_issued"] == M * K * N and c["folds"] == c["folds_planned"]


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_array_computes_matmul_nm(dataflow):
    rng = np.random.default_rng(7)
    for n, m in [(2, 4), (1, 2), (1, 4)]:
        for _ in range(8):
            R, C = (int(x) for x in rng.integers(1, 9, 2))
            M, K, N = (int(x) for x in rng.integers(1, 17, 3))
            ab, av = int8_operands(rng, (M, K), 0.8)
            bv = nm_prune(rng, int8_operands(rng, (K, N), 0.9)[1], n, m)
            bb = bv.astype(np.int8).view(np.uint8)
            zs = bool(rng.random() < 0.5)
            c, res = reference_simulate_debug(
                ab, av, bb, bv, rows=R, cols=C, dataflow=dataflow, operand_bits=8, acc_bits=32,
                float_acc=False, zero_gating=True, zero_skipping=zs, nm=(n, m),
            )
            assert (res.astype(np.int64) == av @ bv).all()
            if not zs:
                Kp = n * cdiv(K, m)
                # each kept slot of each column is one MAC per row of A (kept positions >= K are not)
                assert c["macs_issued"] <= M * N * Kp
                if K % m == 0:
                    assert c["macs_issued"] == M * N * Kp
                if dataflow == "ws":
                    assert c["folds"] == cdiv(Kp, R) * cdiv(N, C)
                    assert c["cycles"] == c["folds"] * (2 * R + C + M - 2)
                else:
                    assert c["folds"] == cdiv(M, R) * cdiv(N, C)
                    assert c["cycles"] == c["folds"] * (R + C + Kp - 2)
                # metadata: log2(m) bits per kept weight read (no bitmap without zero-skipping)
                assert c["metadata_bits"] == (m - 1).bit_length() * c["sram_reads_filter"]


def test_nm_nonconforming_strip_runs_dense():
    # one column with 3 non-zeros in a group of 4 breaks 2:4 -> the strip runs dense (K folds)
    M, K, N, R, C = 3, 8, 2, 4, 2
    av = np.arange(1, M * K + 1).reshape(M, K) % 7 + 1
    bv = np.zeros((K, N), dtype=np.int64)
    bv[0:3, 0] = [1, 2, 3]
    bv[5, 1] = 4
    c, res = run_int8(av, bv, rows=R, cols=C, dataflow="ws", nm=(2, 4))
    assert (res.astype(np.int64) == av @ bv).all()
    assert c["folds"] == cdiv(K, R) and c["cycles"] == c["folds"] * (2 * R + C + M - 2)
    assert c["metadata_bits"] == 0 and c["macs_issued"] == M * K * N
    # conforming: 2 slots per group of 4 -> K' = 4 -> one fold
    bv[2, 0] = 0
    c, res = run_int8(av, bv, rows=R, cols=C, dataflow="ws", nm=(2, 4))
    assert (res.astype(np.int64) == av @ bv).all()
    assert c["folds"] == 1 and c["macs_issued"] == M * 4 * N
    assert c["metadata_bits"] == 2 * R * C
    # the activation path now carries 4 lanes; the rows hold groups 0,0,1,1 -> 8 distinct K
    assert c["sram_reads_ifmap"] == M * K


def test_float_matmul_exact_small_integers():
    rng = np.random.default_rng(11)
    for dataflow in ("ws", "os", "is"):
        for _ in range(6):
            R, C = (int(x) for x in rng.integers(1, 6, 2))
            M, K, N = (int(x) for x in rng.integers(1, 12, 3))
            av = (rng.integers(-8, 9, (M, K)) * (rng.random((M, K)) < 0.6)).astype(np.float32)
            bv = (rng.integers(-8, 9, (K, N)) * (rng.random((K, N)) < 0.6)).astype(np.float32)
            c, res = reference_simulate_debug(
                av.view(np.uint32), av, bv.view(np.uint32), bv, rows=R, cols=C, dataflow=dataflow,
                operand_bits=32, acc_bits=32, float_acc=True, zero_gating=True, zero_skipping=True,
            )
            assert res.dtype == np.float32
            assert (res == av @ bv).all()


# ---------------------------------------------------------------------------
# zero operands and zero-skipping
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
def test_all_zero_operands(dataflow):
    M, K, N, R, C = 5, 6, 7, 3, 4
    z_a = np.zeros((M, K), np.int64)
    z_b = np.zeros((K, N), np.int64)
    c, res = run_int8(z_a, z_b, rows=R, cols=C, dataflow=dataflow)
    assert (res == 0).all()
    for k in ("toggles_forwarding", "toggles_stationary", "toggles_psum", "toggles_mult_inputs"):
        assert c[k] == 0
    assert c["cycles"] > 0 and c["macs_issued"] == M * K * N
    c, _ = run_int8(z_a, z_b, rows=R, cols=C, dataflow=dataflow, zero_gating=True)
    assert c["macs_gated"] == M * K * N
    # zero-skipping: every fold skipped; only the occupancy bitmap remains
    c, _ = run_int8(z_a, z_b, rows=R, cols=C, dataflow=dataflow, zero_skipping=True)
    assert c["folds"] == 0 and c["cycles"] == 0 and c["macs_issued"] == 0
    assert c["macs_skipped"] == M * K * N
    planned = {"ws": (cdiv(K, R) * cdiv(N, C), M), "os": (cdiv(M, R) * cdiv(N, C), K), "is": (cdiv(K, R) * cdiv(M, C), N)}
    nfolds, steps = planned[dataflow]
    assert c["folds_planned"] == nfolds
    assert c["metadata_bits"] == nfolds * steps
    for k in ("toggles_forwarding", "toggles_stationary", "toggles_psum", "toggles_mult_inputs",
              "sram_reads_ifmap", "sram_reads_filter", "sram_writes_ofmap", "sram_reads_psum"):
        assert c[k] == 0


def test_negative_zero_floats_only_toggle_the_streaming_path():
    # bf16 -0.0 = 0x8000 is a zero operand. With zero-gating the multiplier inputs never move;
    # the WS psum chain computes +0 + (-0 * w) = +0, so only the forwarding register toggles.
    M, K, N = 2, 1, 1
    a_val = np.full((M, K), -0.0, np.float32)
    a_bits = np.full((M, K), 0x8000, np.uint16)
    b_val = np.full((K, N), 2.0, np.float32)
    b_bits = np.full((K, N), 0x4000, np.uint16)  # bf16 2.0
    c = reference_simulate(a_bits, a_val, b_bits, b_val, rows=1, cols=1, dataflow="ws", operand_bits=16,
                           acc_bits=32, float_acc=True, zero_gating=True, zero_skipping=False)
    # fwd: 0 -> 0x8000 -> 0x8000 -> 0 (drain): 2 toggles; stationary 0 -> 0x4000: 1 toggle
    assert c["toggles_forwarding"] == 2
    assert c["toggles_stationary"] == 1
    assert c["toggles_mult_inputs"] == 0
    assert c["toggles_psum"] == 0
    assert c["macs_gated"] == 2


def test_zero_skipping_steps_and_folds():
    # WS, R = C = 2, K = 4 -> 2 k-folds; B rows 2..3 zero -> second k-fold skipped whole.
    # A row 1 zero -> step m = 1 skipped in the executed fold (T = 2).
    av = np.array([[1, 2, 3, 4], [0, 0, 0, 0], [5, 6, 7, 8]])
    bv = np.array([[1, 2], [3, 4], [0, 0], [0, 0]])
    c, res = run_int8(av, bv, rows=2, cols=2, dataflow="ws", zero_skipping=True)
    assert (res.astype(np.int64) == av @ bv).all()
    assert c["folds_planned"] == 2 and c["folds"] == 1
    assert c["cycles"] == 2 * 2 + 2 + 2 - 2
    assert c["metadata_bits"] == 2 * 3  # 1 bit per planned step (M = 3) of both planned folds
    assert c["sram_reads_filter"] == 4 and c["sram_reads_ifmap"] == 2 * 2
    assert c["sram_writes_ofmap"] == 2 * 2 and c["sram_reads_psum"] == 0
    assert c["macs_issued"] == 2 * 2 * 2 and c["macs_skipped"] == 3 * 4 * 2 - 8
    # OS on the same problem: steps k = 2, 3 have all-zero weights -> T = 2
    c, res = run_int8(av, bv, rows=4, cols=2, dataflow="os", zero_skipping=True)
    assert (res.astype(np.int64) == av @ bv).all()
    assert c["folds"] == 1 and c["cycles"] == 4 + 2 + 2 - 2
    assert c["metadata_bits"] == 4
    assert c["sram_reads_ifmap"] == 3 * 2 and c["sram_reads_filter"] == 2 * 2


def test_is_rejects_nm():
    with pytest.raises(ValueError):
        run_int8([[1]], [[1]], rows=1, cols=1, dataflow="is", nm=(2, 4))


def test_speed_budget():
    import time

    rng = np.random.default_rng(5)
    ab, av = int8_operands(rng, (16, 16))
    bb, bv = int8_operands(rng, (16, 16))
    bv = nm_prune(rng, bv, 2, 4)
    bb = bv.astype(np.int8).view(np.uint8)
    for dataflow in ("ws", "os"):
        t0 = time.perf_counter()
        reference_simulate(ab, av, bb, bv, rows=8, cols=8, dataflow=dataflow, operand_bits=8, acc_bits=32,
                           float_acc=False, zero_gating=True, zero_skipping=True, nm=(2, 4))
        assert time.perf_counter() - t0 < 1.0
