"""Brute-force, cycle-by-cycle reference of the GEMM simulation model.

This module implements ``docs/simulation-model.md`` literally and slowly.  It
is deliberately independent of the fast engine in ``simulator/``: nothing is
imported from there and no toggle count is derived in closed form.  Every
register of every PE is a Python object that is rewritten cycle by cycle; the
new state of the whole array is computed from the old state (synchronous
update), and every write adds ``popcount(old ^ new)`` to its register class.

Moving values carry *tags* (which fold / step / ``m`` / ``k`` they belong to,
or bubble) so that the MAC counting and the psum-chain bookkeeping can be
checked with assertions instead of being inferred from timing formulas.

Public entry point: :func:`reference_simulate`.  :func:`reference_simulate_debug`
returns the same counts plus the GEMM result the array produced (WS: the
bottom-row psum outputs accumulated over k-folds; OS: the final accumulators;
IS: the WS result of the transposed problem, transposed back), so tests can
check it against ``A @ B``.

Choices made where the contract is not explicit (also listed in the report):

1. Fold-local timing: at cycle ``tau`` the streaming registers are written
   first (edge / neighbour values of the *previous* cycle), and the
   multiplier inputs, the MAC test and the psum/accumulator write of the same
   cycle use the *new* content of the PE's streaming registers.  This is the
   reading under which "row r's left edge receives step t at tau = R + t + r"
   (WS) makes PE (r, c) see step t at tau = R + t + r + c and the WS psum chain
   (psum_in = previous-cycle psum of PE (r-1, c)) lines up with the same step,
   and under which the last step leaves PE (R-1, C-1) exactly at tau = L-1.
2. WS stationary write: all stationary registers are written at tau = 0 of
   every executed fold (one write per PE per fold, including PEs with no
   weight, which get 0).  Any tau < R gives the same counts because the
   activation registers hold bubbles during the whole load phase.
3. A row / lane / PE outside the problem still carries the step's *tag*
   (value 0 bits 0), it is not a bubble.  Consequences: (a) in OS the
   accumulator of a PE outside the problem is still written when a step
   reaches it (acc = 0*w, or acc + 0*w) -- "bubbles do not write the
   accumulator" is read as "only bubbles do not write"; (b) the multiplier
   ``w`` input of an OS PE with no assignment (e.g. its row is outside M) is
   still the vertical register value (the doc says w = vertical register).
4. Float products use exactly ``np.float32(a) * np.float32(w)`` with a = +0.0
   for bubbles / unassigned PEs, so signed zeros appear where IEEE says so
   (e.g. an OS accumulator reset with ``0 * negative`` holds -0.0 =
   0x80000000).  The float psum register is the fp32 pattern (32 bits) and is
   not masked to ``acc_bits``.
5. Zero-skipping over an empty set of assigned PEs (possible only for an N:M
   compressed fold/step whose kept positions are all >= K) counts as "all
   zero": the step is skipped.
6. ``psum`` SRAM reads: "every executed fold of an n-fold but the first" is
   read as "but the first *executed* fold of that n-fold" (a skipped first
   k-fold does not make the next one pay psum reads).
7. Metadata: log2(M) is taken as ``ceil(log2(M))`` (``(M-1).bit_length()``),
   equal to log2(M) for the power-of-two M the config allows; it is charged
   per filter read of a *compressed* fold only (WS: per PE with a weight
   assignment per executed compressed fold; OS: per weight assignment read per
   issued step).  The occupancy bitmap (1 bit per planned step of every planned
   fold) is charged only when zero_skipping is on.
8. "Valid carried lanes" / "distinct valid K positions": a lane counts when
   it carries a K index < K (for OS, times the rows inside M).  Rows of a WS
   fold beyond K (dense) or beyond K' (compressed) carry nothing.
9. The drain (R + C bubble cycles after the last executed fold) runs with the
   last fold's stationary weights still in place; in WS the psum registers are
   written every drain cycle (psum_in + 0*w); in OS nothing writes the
   accumulators.  If no fold executed there is nothing to drain (all zeros).
10. Operand bit patterns must fit ``operand_bits`` (ValueError otherwise);
    they are not masked.
"""

from __future__ import annotations


import numpy as np

COUNT_KEYS = (
    "cycles",
    "folds",
    "folds_planned",
    "sram_reads_ifmap",
    "sram_reads_filter",
    "sram_writes_ofmap",
    "sram_reads_psum",
    "metadata_bits",
    "macs_total",
    "macs_issued",
    "macs_gated",
    "macs_skipped",
    "toggles_forwarding",
    "toggles_stationary",
    "toggles_psum",
    "toggles_mult_inputs",
)


def _pc(x: int) -> int:
    """popcount of a non-negative Python int."""
    return int(x).bit_count()


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# ---------------------------------------------------------------------------
# operand handling
# ---------------------------------------------------------------------------
class _Operands:
    """Plain Python copies of the operand matrices.

    bits[i][j]: int bit pattern; val[i][j]: Python int (integer formats) or
    np.float32 scalar (float formats).
    """

    def __init__(self, bits, val, float_acc, operand_bits, name):
        bits = np.asarray(bits)
        val = np.asarray(val)
        if bits.ndim != 2 or bits.shape != val.shape:
            raise ValueError(f"{name}: bits and values must be 2-D of equal shape")
        self.shape = bits.shape
        self.bits = [[int(x) for x in row] for row in bits.tolist()]
        for row in self.bits:
            for x in row:
                if x < 0 or x >= (1 << operand_bits):
                    raise ValueError(f"{name}: bit pattern {x:#x} does not fit {operand_bits} bits")
        if float_acc:
            v32 = val.astype(np.float32)
            self.val = [[v32[i, j] for j in range(v32.shape[1])] for i in range(v32.shape[0])]
        else:
            self.val = [[int(x) for x in row] for row in val.astype(np.int64).tolist()]


class _Acc:
    """Accumulator arithmetic (int two's complement at acc_bits, or fp32)."""

    def __init__(self, float_acc: bool, acc_bits: int):
        self.float_acc = float_acc
        self.mask = (1 << acc_bits) - 1
        self.acc_bits = acc_bits
        self.zero_operand = np.float32(0.0) if float_acc else 0

    def zero(self):
        return np.float32(0.0) if self.float_acc else 0

    def product(self, a, w):
        if self.float_acc:
            return np.float32(a) * np.float32(w)
        return int(a) * int(w)

    def add(self, x, y):
        """x is a register content, y a product; returns the new content."""
        if self.float_acc:
            return np.float32(np.float32(x) + np.float32(y))
        return (int(x) + int(y)) & self.mask

    def bits(self, x) -> int:
        if self.float_acc:
            return int(np.array(np.float32(x), dtype=np.float32).view(np.uint32))
        return int(x) & self.mask

    def to_result(self, x):
        """Register content -> Python number (signed for ints)."""
        if self.float_acc:
            return np.float32(x)
        x = int(x) & self.mask
        if x >> (self.acc_bits - 1):
            x -= 1 << self.acc_bits
        return x


# ---------------------------------------------------------------------------
# N:M strip planning (shared by WS and OS)
# ---------------------------------------------------------------------------
def _plan_strip(B: _Operands, K: int, N: int, n0: int, C: int, nm):
    """Return (compressed, kept) for the weight strip B[:, n0:n0+C].

    kept[c][g] is the ascending list of the N kept positions (absolute K
    indices, possibly >= K) of group g in column c (only for valid columns).
    """
    if nm is None:
        return False, None
    Nn, Mm = nm
    groups = _ceil_div(K, Mm)
    valid_cols = [c for c in range(C) if n0 + c < N]

    def is_nz(k, n):
        return k < K and B.val[k][n] != 0

    # conformance: every group of every valid column has at most N non-zeros
    for c in valid_cols:
        n = n0 + c
        for g in range(groups):
            nnz = sum(1 for l in range(Mm) if is_nz(Mm * g + l, n))
            if nnz > Nn:
                return False, None
    kept = {}
    for c in valid_cols:
        n = n0 + c
        kept[c] = []
        for g in range(groups):
            positions = [Mm * g + l for l in range(Mm)]
            nonzero = [k for k in positions if is_nz(k, n)]
            zeros = [k for k in positions if not is_nz(k, n)]  # ascending
            chosen = sorted(nonzero + zeros[: Nn - len(nonzero)])
            assert len(chosen) == Nn
            kept[c].append(chosen)
    return True, kept


# ---------------------------------------------------------------------------
# result container
# ---------------------------------------------------------------------------
def _new_counts():
    return {k: 0 for k in COUNT_KEYS}


# ---------------------------------------------------------------------------
# Weight stationary (also used for IS on the transposed problem)
# ---------------------------------------------------------------------------
def _plan_ws(A, B, M, K, N, R, C, nm, zero_skipping):
    """List of planned folds (dicts), n-fold major, k-fold minor."""
    G = nm[1] if nm is not None else 1
    folds = []
    for nf in range(_ceil_div(N, C)):
        n0 = nf * C
        valid_cols = [c for c in range(C) if n0 + c < N]
        compressed, kept = _plan_strip(B, K, N, n0, C, nm)
        if compressed:
            Nn, Mm = nm
            Kp = Nn * _ceil_div(K, Mm)
            n_kf = _ceil_div(Kp, R)
        else:
            n_kf = _ceil_div(K, R)
        for kf in range(n_kf):
            # row_lanes[r]: the K index carried by each of the G lanes of row r
            row_lanes = []
            ksel = [[-1] * C for _ in range(R)]
            for r in range(R):
                lanes = [-1] * G
                if compressed:
                    s = kf * R + r  # slot
                    if s < Kp:
                        g, j = divmod(s, Nn)
                        for l in range(Mm):
                            k = Mm * g + l
                            lanes[l] = k if k < K else -1
                        for c in valid_cols:
                            pos = kept[c][g][j]
                            ksel[r][c] = pos if pos < K else -1
                else:
                    k = kf * R + r
                    if k < K:
                        lanes[0] = k
                        for c in valid_cols:
                            ksel[r][c] = k
                row_lanes.append(lanes)
            w_bits = [[0] * C for _ in range(R)]
            w_val = [[None] * C for _ in range(R)]
            for r in range(R):
                for c in range(C):
                    if ksel[r][c] >= 0:
                        w_bits[r][c] = B.bits[ksel[r][c]][n0 + c]
                        w_val[r][c] = B.val[ksel[r][c]][n0 + c]
            assigned = [(r, c) for r in range(R) for c in range(C) if ksel[r][c] >= 0]
            # planned steps: one per row m of A
            issued = []
            for m in range(M):
                if zero_skipping:
                    acts = [A.val[m][ksel[r][c]] for (r, c) in assigned]
                    wts = [w_val[r][c] for (r, c) in assigned]
                    all_a_zero = all(a == 0 for a in acts)  # empty -> True (choice 5)
                    all_w_zero = all(w == 0 for w in wts)
                    if all_a_zero or all_w_zero:
                        continue
                issued.append(m)
            folds.append(
                dict(
                    nf=nf,
                    kf=kf,
                    n0=n0,
                    valid_cols=valid_cols,
                    compressed=compressed,
                    row_lanes=row_lanes,
                    ksel=ksel,
                    w_bits=w_bits,
                    w_val=w_val,
                    assigned=assigned,
                    issued=issued,
                    planned_steps=M,
                )
            )
    return folds


def _simulate_ws(A, B, M, K, N, R, C, nm, float_acc, acc_bits, zero_gating, zero_skipping):
    G = nm[1] if nm is not None else 1
    acc = _Acc(float_acc, acc_bits)
    zero = acc.zero_operand
    cnt = _new_counts()
    cnt["macs_total"] = M * K * N
    meta_per_elem = (nm[1] - 1).bit_length() if nm is not None else 0

    # GEMM result produced by the array (bottom-row outputs, summed over k-folds
    # like the read-modify-write of partial outputs in SRAM).
    result = [[acc.zero() if float_acc else 0 for _ in range(N)] for _ in range(M)]

    BUBBLE_LANES = (tuple([-1] * G), tuple([0] * G), tuple([zero] * G))
    # --- register state (all start at 0) ---
    # forwarding register: (tag, k_lanes, bit_lanes, val_lanes); tag None = bubble,
    # else (fold_index, t, m)
    fwd = [[(None,) + BUBBLE_LANES for _ in range(C)] for _ in range(R)]
    stat_bits = [[0] * C for _ in range(R)]
    stat_val = [[zero] * C for _ in range(R)]
    mul_a = [[0] * C for _ in range(R)]
    mul_w = [[0] * C for _ in range(R)]
    psum = [[acc.zero() for _ in range(C)] for _ in range(R)]
    psum_tag = [[None] * C for _ in range(R)]

    folds = _plan_ws(A, B, M, K, N, R, C, nm, zero_skipping)
    cnt["folds_planned"] = len(folds)
    if zero_skipping:
        cnt["metadata_bits"] += sum(f["planned_steps"] for f in folds)

    def run_cycle(fi, fold, tau, edge_fn, count_cycle):
        """One synchronous cycle of the whole array."""
        nonlocal fwd, psum, psum_tag
        ksel = fold["ksel"]
        # 1) horizontal forwarding registers: column 0 takes the edge value,
        #    every other PE takes its left neighbour's (old) value.
        new_fwd = [[None] * C for _ in range(R)]
        for r in range(R):
            edge = edge_fn(r)
            for c in range(C):
                new = edge if c == 0 else fwd[r][c - 1]
                old = fwd[r][c]
                for l in range(G):
                    cnt["toggles_forwarding"] += _pc(old[2][l] ^ new[2][l])
                new_fwd[r][c] = new
        # 2) multiplier inputs, MAC accounting and psum chain
        new_psum = [[None] * C for _ in range(R)]
        new_psum_tag = [[None] * C for _ in range(R)]
        for r in range(R):
            for c in range(C):
                tag, klanes, blanes, vlanes = new_fwd[r][c]
                a_bits, a_val = 0, zero
                if tag is not None and ksel[r][c] >= 0:
                    assert tag[0] == fi, "a step of another fold reached a PE"
                    lane = klanes.index(ksel[r][c])  # lane whose K index == ksel
                    a_bits, a_val = blanes[lane], vlanes[lane]
                w_bits, w_val = stat_bits[r][c], stat_val[r][c]
                is_zero = (a_val == 0) or (w_val == 0)
                if tag is not None and ksel[r][c] >= 0:
                    cnt["macs_issued"] += 1
                    if zero_gating and is_zero:
                        cnt["macs_gated"] += 1
                if not (zero_gating and is_zero):
                    cnt["toggles_mult_inputs"] += _pc(mul_a[r][c] ^ a_bits) + _pc(mul_w[r][c] ^ w_bits)
                    mul_a[r][c] = a_bits
                    mul_w[r][c] = w_bits
                # psum register: written every cycle with psum_in + a*w
                if r == 0:
                    p_in = acc.zero()
                else:
                    p_in = psum[r - 1][c]
                    if tag is not None:
                        assert psum_tag[r - 1][c] == tag, "psum chain out of step"
                new = acc.add(p_in, acc.product(a_val, w_val))
                cnt["toggles_psum"] += _pc(acc.bits(psum[r][c]) ^ acc.bits(new))
                new_psum[r][c] = new
                new_psum_tag[r][c] = tag
                # bottom-row output of a real step in a valid column
                if r == R - 1 and tag is not None and c in fold["valid_cols"]:
                    m = tag[2]
                    n = fold["n0"] + c
                    if float_acc:
                        result[m][n] = np.float32(result[m][n] + np.float32(new))
                    else:
                        result[m][n] += acc.to_result(new)
        fwd = new_fwd
        psum = new_psum
        psum_tag = new_psum_tag
        if count_cycle:
            cnt["cycles"] += 1

    last_fold = None
    executed_in_nfold = {}
    for fi, fold in enumerate(folds):
        issued = fold["issued"]
        T = len(issued)
        if T == 0:
            continue  # skipped whole: no weight load, no cycles
        cnt["folds"] += 1
        nvc = len(fold["valid_cols"])
        # --- SRAM accounting for this executed fold ---
        cnt["sram_reads_filter"] += len(fold["assigned"])
        distinct_k = {k for lanes in fold["row_lanes"] for k in lanes if 0 <= k < K}
        cnt["sram_reads_ifmap"] += T * len(distinct_k)
        cnt["sram_writes_ofmap"] += T * nvc
        if executed_in_nfold.get(fold["nf"], 0) > 0:
            cnt["sram_reads_psum"] += T * nvc
        executed_in_nfold[fold["nf"]] = executed_in_nfold.get(fold["nf"], 0) + 1
        if fold["compressed"]:
            cnt["metadata_bits"] += meta_per_elem * len(fold["assigned"])

        L = 2 * R + C + T - 2
        for tau in range(L):
            if tau == 0:
                # stationary load: one write per PE per fold (choice 2)
                for r in range(R):
                    for c in range(C):
                        nb = fold["w_bits"][r][c]
                        nv = fold["w_val"][r][c] if fold["ksel"][r][c] >= 0 else zero
                        cnt["toggles_stationary"] += _pc(stat_bits[r][c] ^ nb)
                        stat_bits[r][c] = nb
                        stat_val[r][c] = nv

            def edge_fn(r, tau=tau, fold=fold, fi=fi):
                t = tau - R - r  # row r's edge gets step t at tau = R + t + r
                if 0 <= t < T:
                    m = fold["issued"][t]
                    klanes = tuple(fold["row_lanes"][r])
                    blanes = tuple(A.bits[m][k] if k >= 0 else 0 for k in klanes)
                    vlanes = tuple(A.val[m][k] if k >= 0 else zero for k in klanes)
                    return ((fi, t, m), klanes, blanes, vlanes)
                return (None,) + BUBBLE_LANES

            run_cycle(fi, fold, tau, edge_fn, True)
        last_fold = (fi, fold)

    # --- drain: R + C bubble cycles, toggles count, cycles don't ---
    if last_fold is not None:
        fi, fold = last_fold
        for _ in range(R + C):
            run_cycle(fi, fold, None, lambda r: (None,) + BUBBLE_LANES, False)

    cnt["macs_skipped"] = cnt["macs_total"] - cnt["macs_issued"]
    return cnt, result


# ---------------------------------------------------------------------------
# Output stationary
# ---------------------------------------------------------------------------
def _plan_os(A, B, M, K, N, R, C, nm, zero_skipping):
    """List of planned folds, m-fold major, n-fold minor."""
    G = nm[1] if nm is not None else 1
    strips = {}
    for nf in range(_ceil_div(N, C)):
        strips[nf] = _plan_strip(B, K, N, nf * C, C, nm)
    folds = []
    for mf in range(_ceil_div(M, R)):
        m0 = mf * R
        valid_rows = [r for r in range(R) if m0 + r < M]
        for nf in range(_ceil_div(N, C)):
            n0 = nf * C
            valid_cols = [c for c in range(C) if n0 + c < N]
            compressed, kept = strips[nf]
            steps = []  # planned steps: dict(lanes=[G K indices], ksel=[C])
            if compressed:
                Nn, Mm = nm
                Kp = Nn * _ceil_div(K, Mm)
                for s in range(Kp):
                    g, j = divmod(s, Nn)
                    lanes = [(Mm * g + l) if Mm * g + l < K else -1 for l in range(Mm)]
                    ks = [-1] * C
                    for c in valid_cols:
                        pos = kept[c][g][j]
                        ks[c] = pos if pos < K else -1
                    steps.append(dict(lanes=lanes, ksel=ks))
            else:
                for k in range(K):
                    lanes = [-1] * G
                    lanes[0] = k
                    ks = [-1] * C
                    for c in valid_cols:
                        ks[c] = k
                    steps.append(dict(lanes=lanes, ksel=ks))
            issued = []
            for p, st in enumerate(steps):
                if zero_skipping:
                    acts, wts = [], []
                    for r in valid_rows:
                        for c in valid_cols:
                            k = st["ksel"][c]
                            if k >= 0:
                                acts.append(A.val[m0 + r][k])
                                wts.append(B.val[k][n0 + c])
                    if all(a == 0 for a in acts) or all(w == 0 for w in wts):
                        continue  # (empty set -> skipped, choice 5)
                issued.append(p)
            folds.append(
                dict(
                    mf=mf,
                    nf=nf,
                    m0=m0,
                    n0=n0,
                    valid_rows=valid_rows,
                    valid_cols=valid_cols,
                    compressed=compressed,
                    steps=steps,
                    issued=issued,
                    planned_steps=len(steps),
                )
            )
    return folds


def _simulate_os(A, B, M, K, N, R, C, nm, float_acc, acc_bits, zero_gating, zero_skipping):
    G = nm[1] if nm is not None else 1
    acc = _Acc(float_acc, acc_bits)
    zero = acc.zero_operand
    cnt = _new_counts()
    cnt["macs_total"] = M * K * N
    meta_per_elem = (nm[1] - 1).bit_length() if nm is not None else 0
    result = [[acc.zero() if float_acc else 0 for _ in range(N)] for _ in range(M)]

    H_BUBBLE = (None, tuple([-1] * G), tuple([0] * G), tuple([zero] * G))
    V_BUBBLE = (None, -1, 0, zero)
    # horizontal: (tag, k_lanes, bit_lanes, val_lanes); tag = (fold, t, p, m)
    hreg = [[H_BUBBLE for _ in range(C)] for _ in range(R)]
    # vertical: (tag, k, bits, val); tag = (fold, t, p, n)
    vreg = [[V_BUBBLE for _ in range(C)] for _ in range(R)]
    mul_a = [[0] * C for _ in range(R)]
    mul_w = [[0] * C for _ in range(R)]
    accr = [[acc.zero() for _ in range(C)] for _ in range(R)]

    folds = _plan_os(A, B, M, K, N, R, C, nm, zero_skipping)
    cnt["folds_planned"] = len(folds)
    if zero_skipping:
        cnt["metadata_bits"] += sum(f["planned_steps"] for f in folds)

    def run_cycle(fi, fold, row_edge, col_edge, count_cycle):
        nonlocal hreg, vreg
        new_h = [[None] * C for _ in range(R)]
        new_v = [[None] * C for _ in range(R)]
        for r in range(R):
            for c in range(C):
                nh = row_edge(r) if c == 0 else hreg[r][c - 1]
                nv = col_edge(c) if r == 0 else vreg[r - 1][c]
                oh, ov = hreg[r][c], vreg[r][c]
                for l in range(G):
                    cnt["toggles_forwarding"] += _pc(oh[2][l] ^ nh[2][l])
                cnt["toggles_forwarding"] += _pc(ov[2] ^ nv[2])
                new_h[r][c] = nh
                new_v[r][c] = nv
        for r in range(R):
            for c in range(C):
                htag, klanes, blanes, vlanes = new_h[r][c]
                vtag, wk, w_bits, w_val = new_v[r][c]
                if htag is None:
                    assert vtag is None, "weight without activation"
                else:
                    assert vtag is not None and htag[:3] == vtag[:3], "operands out of step"
                    assert htag[0] == fi
                assigned = False
                if htag is not None:
                    m = fold["m0"] + r
                    n = fold["n0"] + c
                    p = htag[2]
                    ks = fold["steps"][p]["ksel"][c]
                    assert ks == wk
                    assigned = (m < M) and (n < N) and ks >= 0
                a_bits, a_val = 0, zero
                if assigned:
                    lane = klanes.index(ks)  # lane whose K index == ksel
                    a_bits, a_val = blanes[lane], vlanes[lane]
                is_zero = (a_val == 0) or (w_val == 0)
                if assigned:
                    cnt["macs_issued"] += 1
                    if zero_gating and is_zero:
                        cnt["macs_gated"] += 1
                if not (zero_gating and is_zero):
                    cnt["toggles_mult_inputs"] += _pc(mul_a[r][c] ^ a_bits) + _pc(mul_w[r][c] ^ w_bits)
                    mul_a[r][c] = a_bits
                    mul_w[r][c] = w_bits
                if htag is not None:  # bubbles do not write the accumulator
                    prod = acc.product(a_val, w_val)
                    if htag[1] == 0:
                        new = acc.add(acc.zero(), prod) if not float_acc else np.float32(prod)
                    else:
                        new = acc.add(accr[r][c], prod)
                    cnt["toggles_psum"] += _pc(acc.bits(accr[r][c]) ^ acc.bits(new))
                    accr[r][c] = new
        hreg = new_h
        vreg = new_v
        if count_cycle:
            cnt["cycles"] += 1

    last = None
    for fi, fold in enumerate(folds):
        issued = fold["issued"]
        T = len(issued)
        if T == 0:
            continue
        cnt["folds"] += 1
        nvr, nvc = len(fold["valid_rows"]), len(fold["valid_cols"])
        for p in issued:
            st = fold["steps"][p]
            valid_lanes = sum(1 for k in st["lanes"] if 0 <= k < K)
            cnt["sram_reads_ifmap"] += nvr * valid_lanes
            wreads = sum(1 for c in fold["valid_cols"] if st["ksel"][c] >= 0)
            cnt["sram_reads_filter"] += wreads
            if fold["compressed"]:
                cnt["metadata_bits"] += meta_per_elem * wreads
        cnt["sram_writes_ofmap"] += nvr * nvc

        L = R + C + T - 2
        m0, n0 = fold["m0"], fold["n0"]
        for tau in range(L):

            def row_edge(r, tau=tau, fold=fold, fi=fi):
                t = tau - r  # row r gets step t at tau = t + r
                if not (0 <= t < T):
                    return H_BUBBLE
                p = fold["issued"][t]
                m = m0 + r
                if m < M:
                    klanes = tuple(fold["steps"][p]["lanes"])
                else:
                    klanes = tuple([-1] * G)  # row outside M carries zeros
                blanes = tuple(A.bits[m][k] if k >= 0 else 0 for k in klanes)
                vlanes = tuple(A.val[m][k] if k >= 0 else zero for k in klanes)
                return ((fi, t, p, m), klanes, blanes, vlanes)

            def col_edge(c, tau=tau, fold=fold, fi=fi):
                t = tau - c  # column c gets step t at tau = t + c
                if not (0 <= t < T):
                    return V_BUBBLE
                p = fold["issued"][t]
                n = n0 + c
                k = fold["steps"][p]["ksel"][c]
                if n < N and k >= 0:
                    return ((fi, t, p, n), k, B.bits[k][n], B.val[k][n])
                return ((fi, t, p, n), -1, 0, zero)

            run_cycle(fi, fold, row_edge, col_edge, True)
        # final accumulators of this fold
        for r in fold["valid_rows"]:
            for c in fold["valid_cols"]:
                result[m0 + r][n0 + c] = acc.to_result(accr[r][c])
        last = (fi, fold)

    if last is not None:
        fi, fold = last
        for _ in range(R + C):
            run_cycle(fi, fold, lambda r: H_BUBBLE, lambda c: V_BUBBLE, False)

    cnt["macs_skipped"] = cnt["macs_total"] - cnt["macs_issued"]
    return cnt, result


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------
def reference_simulate_debug(
    a_bits,
    a_val,
    b_bits,
    b_val,
    *,
    rows,
    cols,
    dataflow,
    operand_bits,
    acc_bits,
    float_acc,
    zero_gating,
    zero_skipping,
    nm=None,
):
    """Like :func:`reference_simulate`, but returns ``(counts, C)`` where ``C``
    is the (M, N) result the array produced (object ndarray of Python ints for
    integer formats, float32 ndarray for float formats)."""
    if dataflow not in ("ws", "os", "is"):
        raise ValueError(f"unknown dataflow {dataflow!r}")
    if operand_bits not in (8, 16, 32):
        raise ValueError("operand_bits must be 8, 16 or 32")
    if nm is not None:
        nm = (int(nm[0]), int(nm[1]))
        if not (1 <= nm[0] <= nm[1]):
            raise ValueError(f"bad N:M {nm}")
        if dataflow == "is":
            raise ValueError("IS with N:M structured sparsity is not supported")
    R, C = int(rows), int(cols)
    A = _Operands(a_bits, a_val, float_acc, operand_bits, "A")
    B = _Operands(b_bits, b_val, float_acc, operand_bits, "B")
    M, K = A.shape
    K2, N = B.shape
    if K != K2:
        raise ValueError("inner dimensions differ")

    if dataflow == "os":
        cnt, res = _simulate_os(A, B, M, K, N, R, C, nm, float_acc, acc_bits, zero_gating, zero_skipping)
    elif dataflow == "ws":
        cnt, res = _simulate_ws(A, B, M, K, N, R, C, nm, float_acc, acc_bits, zero_gating, zero_skipping)
    else:
        # IS = WS on C^T = B^T @ A^T; the activations (A) become stationary.
        At = _Operands(np.asarray(b_bits).T, np.asarray(b_val).T, float_acc, operand_bits, "B^T")
        Bt = _Operands(np.asarray(a_bits).T, np.asarray(a_val).T, float_acc, operand_bits, "A^T")
        cnt, res_t = _simulate_ws(At, Bt, N, K, M, R, C, None, float_acc, acc_bits, zero_gating, zero_skipping)
        # SRAM names swap: stationary loads are ifmap reads, streamed reads filter reads
        cnt["sram_reads_ifmap"], cnt["sram_reads_filter"] = cnt["sram_reads_filter"], cnt["sram_reads_ifmap"]
        res = [[res_t[n][m] for n in range(N)] for m in range(M)]

    out = {k: int(cnt[k]) for k in COUNT_KEYS}
    if float_acc:
        res_arr = np.array(res, dtype=np.float32).reshape(M, N)
    else:
        res_arr = np.empty((M, N), dtype=object)
        for i in range(M):
            for j in range(N):
                res_arr[i, j] = int(res[i][j])
    return out, res_arr


def reference_simulate(
    a_bits,
    a_val,
    b_bits,
    b_val,
    *,
    rows,
    cols,
    dataflow,
    operand_bits,
    acc_bits,
    float_acc,
    zero_gating,
    zero_skipping,
    nm=None,
) -> dict:
    """Brute-force cycle-by-cycle simulation of one GEMM on a systolic array.

    See the module docstring and ``docs/simulation-model.md``.  Returns a dict
    with exactly the keys in ``COUNT_KEYS`` (all Python ints).
    """
    counts, _ = reference_simulate_debug(
        a_bits,
        a_val,
        b_bits,
        b_val,
        rows=rows,
        cols=cols,
        dataflow=dataflow,
        operand_bits=operand_bits,
        acc_bits=acc_bits,
        float_acc=float_acc,
        zero_gating=zero_gating,
        zero_skipping=zero_skipping,
        nm=nm,
    )
    return counts
