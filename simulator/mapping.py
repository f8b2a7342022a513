"""Mapping: how a GEMM is laid onto the array, fold by fold.

Owns the fold plan of `docs/simulation-model.md`: which PE holds which K/N
(weight-stationary) or M/N (output-stationary) index in every fold, which
steps are issued after zero-skipping, N:M compression of conforming weight
strips, and the closed-form event counts that follow from the plan alone:
cycles, folds, SRAM element accesses, metadata bits and issued MACs.
Input-stationary is weight-stationary on the transposed problem.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.formats import Operand


@dataclass
class Counts:
    """Event counts that the plan determines (no toggles). Units: cycles,
    folds, element accesses, bits, MACs."""

    cycles: int = 0
    folds: int = 0
    folds_planned: int = 0
    sram_reads_ifmap: int = 0
    sram_reads_filter: int = 0
    sram_writes_ofmap: int = 0
    sram_reads_psum: int = 0
    metadata_bits: int = 0
    macs_total: int = 0
    macs_issued: int = 0


def _pack_steps(step_lists):
    """Concatenate per-fold step lists into (pointer (F+1,), steps)."""
    lens = np.array([len(s) for s in step_lists], np.int64)
    ptr = np.zeros(len(step_lists) + 1, np.int64)
    np.cumsum(lens, out=ptr[1:])
    steps = np.concatenate(step_lists) if step_lists else np.zeros(0, np.int64)
    return ptr, steps


def _subset_steps(step_ptr, steps, idx):
    ptr, out = _pack_steps([steps[step_ptr[i]:step_ptr[i + 1]] for i in idx])
    return ptr, out.astype(steps.dtype)


@dataclass
class WSPlan:
    """Executed folds of a weight-stationary mapping (arrays over F folds)."""

    ksel: np.ndarray      # (F, R, C) int32: K index of each PE's weight, -1 = none
    lane: np.ndarray      # (F, R, C) int32: lane of the activation path the PE multiplies
    carried: np.ndarray   # (F, R, G) int32: K index carried by each lane of row r
    wbits: np.ndarray     # (F, R, C) stationary bit patterns
    wval: np.ndarray      # (F, R, C) stationary values
    dense: np.ndarray     # (F,) bool: every assigned PE of row r uses lane 0
    step_ptr: np.ndarray  # (F+1,) int64
    steps: np.ndarray     # issued m indices, int32
    counts: Counts = field(default_factory=Counts)
    stratum: np.ndarray | None = None   # (F,) folds alike in data: same K range

    @property
    def n_folds(self) -> int:
        return self.ksel.shape[0]

    def subset(self, idx: np.ndarray) -> "WSPlan":
        """The plan restricted to folds `idx` (in that order)."""
        idx = np.asarray(idx, dtype=np.int64)
        ptr, steps = _subset_steps(self.step_ptr, self.steps, idx)
        return WSPlan(self.ksel[idx], self.lane[idx], self.carried[idx], self.wbits[idx],
                      self.wval[idx], self.dense[idx], ptr, steps, self.counts)


@dataclass
class OSPlan:
    """Executed folds of an output-stationary mapping."""

    fold_m0: np.ndarray   # (F,) first output row of each fold
    step_ptr: np.ndarray  # (F+1,)
    steps: np.ndarray     # indices into the strip step tables
    s_ksel: np.ndarray    # (S, C) K index of each column's weight per step
    s_carried: np.ndarray  # (S, G) K index carried by each lane of the activation path
    s_wbits: np.ndarray   # (S, C)
    s_wval: np.ndarray    # (S, C)
    counts: Counts = field(default_factory=Counts)
    stratum: np.ndarray | None = None   # (F,) folds alike in data: same weight strip

    @property
    def n_folds(self) -> int:
        return self.fold_m0.shape[0]

    def subset(self, idx: np.ndarray) -> "OSPlan":
        """The plan restricted to folds `idx` (in that order)."""
        idx = np.asarray(idx, dtype=np.int64)
        ptr, steps = _subset_steps(self.step_ptr, self.steps, idx)
        return OSPlan(self.fold_m0[idx], ptr, steps, self.s_ksel, self.s_carried,
                      self.s_wbits, self.s_wval, self.counts)


def _groups_nonzero(b_val_strip: np.ndarray, m_group: int) -> np.ndarray:
    """(groups, M, nc) non-zero map of a weight strip (K, nc), K padded with zeros to whole groups."""
    K, nc = b_val_strip.shape
    groups = -(-K // m_group)
    padded = np.zeros((groups * m_group, nc), dtype=bool)
    padded[:K] = b_val_strip != 0
    return padded.reshape(groups, m_group, nc)


def strip_conforms(b_val_strip: np.ndarray, nm) -> bool:
    """Whether a weight strip (K, nc) has at most N non-zeros in every group of M consecutive K."""
    return bool(np.all(_groups_nonzero(b_val_strip, nm[1]).sum(axis=1) <= nm[0]))


def nm_conforming_columns(b_val: np.ndarray, cols: int, nm) -> int:
    """Columns of B (K, N) in weight strips of `cols` columns that conform to N:M: the columns the
    array runs (and stores) compressed."""
    N = b_val.shape[1]
    return sum(min(cols, N - n0) for n0 in range(0, N, cols)
               if strip_conforms(b_val[:, n0:n0 + cols], nm))


def _strip_slots(b_val_strip: np.ndarray, K: int, nm):
    """K slots of one weight strip (K, nc): dense, or N:M-compressed when the
    strip conforms. Returns (ksel (S, nc), carried (S, G), compressed)."""
    nc = b_val_strip.shape[1]
    if nm is not None:
        n_keep, m_group = nm
        groups = -(-K // m_group)
        nz = _groups_nonzero(b_val_strip, m_group)
        if np.all(nz.sum(axis=1) <= n_keep):
            pos = np.arange(m_group)[None, :, None]
            key = np.where(nz, 0, 1) * m_group + pos          # non-zeros first, then lowest zeros
            order = np.argsort(key, axis=1, kind="stable")[:, :n_keep, :]
            kept = np.sort(order, axis=1) + (np.arange(groups) * m_group)[:, None, None]
            ksel = kept.reshape(groups * n_keep, nc)
            ksel = np.where(ksel < K, ksel, -1).astype(np.int32)
            slot_group = np.arange(groups * n_keep) // n_keep
            carried = slot_group[:, None] * m_group + np.arange(m_group)[None, :]
            carried = np.where(carried < K, carried, -1).astype(np.int32)
            return ksel, carried, True
        g_lanes = m_group
    else:
        g_lanes = 1
    ksel = np.repeat(np.arange(K, dtype=np.int32)[:, None], nc, axis=1)
    carried = np.full((K, g_lanes), -1, np.int32)
    carried[:, 0] = np.arange(K)
    return ksel, carried, False


def plan_ws(A: Operand, B: Operand, rows: int, cols: int, nm=None,
            zero_skipping: bool = False) -> WSPlan:
    """Weight-stationary plan: n-fold major, k-fold minor. A streams (M, K),
    B is stationary (K, N)."""
    if nm is None and not zero_skipping:
        return _plan_ws_dense(A, B, rows, cols)
    M, K = A.values.shape
    N = B.values.shape[1]
    R, C = rows, cols
    G = nm[1] if nm is not None else 1
    meta_bits_per_kept = int(np.log2(nm[1])) if nm is not None else 0
    cnt = Counts(macs_total=M * K * N)
    ksels, lanes, carrieds, wbitss, wvals, dense_flags, step_lists = [], [], [], [], [], [], []
    strata = []
    all_m = np.arange(M, dtype=np.int32)
    a_nz = A.values != 0 if zero_skipping else None
    for n0 in range(0, N, C):
        nc = min(C, N - n0)
        slot_ksel, slot_carried, compressed = _strip_slots(B.values[:, n0:n0 + nc], K, nm)
        S = slot_ksel.shape[0]
        first_in_strip = True
        for s0 in range(0, S, R):
            cnt.folds_planned += 1
            rr = min(R, S - s0)
            ksel = np.full((R, C), -1, np.int32)
            ksel[:rr, :nc] = slot_ksel[s0:s0 + rr]
            carried = np.full((R, G), -1, np.int32)
            carried[:rr, :slot_carried.shape[1]] = slot_carried[s0:s0 + rr]
            assigned = ksel >= 0
            r_idx, c_idx = np.nonzero(assigned)
            wbits = np.zeros((R, C), B.bits.dtype)
            wval = np.zeros((R, C), B.values.dtype)
            wbits[r_idx, c_idx] = B.bits[ksel[assigned], c_idx + n0]
            wval[r_idx, c_idx] = B.values[ksel[assigned], c_idx + n0]
            n_assigned = len(r_idx)
            if zero_skipping:
                cnt.metadata_bits += M
                if np.any(wval != 0):
                    kset = np.unique(ksel[assigned])
                    steps = all_m[a_nz[:, kset].any(axis=1)]
                else:
                    steps = all_m[:0]
                if len(steps) == 0:
                    continue
            else:
                steps = all_m
            T = len(steps)
            lane = np.full((R, C), -1, np.int32)
            match = carried[:, None, :] == ksel[:, :, None]           # (R, C, G)
            lane[assigned] = np.argmax(match, axis=2)[assigned]
            n_carried = len(np.unique(carried[carried >= 0]))
            cnt.folds += 1
            cnt.cycles += 2 * R + C + T - 2
            cnt.sram_reads_filter += n_assigned
            cnt.sram_reads_ifmap += T * n_carried
            cnt.sram_writes_ofmap += T * nc
            if not first_in_strip:
                cnt.sram_reads_psum += T * nc
            first_in_strip = False
            if compressed:
                cnt.metadata_bits += n_assigned * meta_bits_per_kept
            cnt.macs_issued += T * n_assigned
            ksels.append(ksel)
            lanes.append(lane)
            carrieds.append(carried)
            wbitss.append(wbits)
            wvals.append(wval)
            dense_flags.append(bool(np.all(lane[assigned] == 0)))
            step_lists.append(steps)
            strata.append(2 * (s0 // R) + int(compressed))
    F = len(ksels)
    ptr, steps = _pack_steps(step_lists)
    return WSPlan(np.array(ksels, np.int32).reshape(F, R, C),
                  np.array(lanes, np.int32).reshape(F, R, C),
                  np.array(carrieds, np.int32).reshape(F, R, G),
                  np.array(wbitss, B.bits.dtype).reshape(F, R, C),
                  np.array(wvals, B.values.dtype).reshape(F, R, C),
                  np.array(dense_flags, bool).reshape(F), ptr, steps.astype(np.int32), cnt,
                  np.array(strata, np.int64))


def dense_ws_counts(M: int, K: int, N: int, R: int, C: int) -> Counts:
    """Closed-form counts of a weight-stationary plan without sparsity
    features: fk x fn folds, each streaming all M rows."""
    fk, fn = -(-K // R), -(-N // C)
    F = fk * fn
    return Counts(macs_total=M * K * N, folds=F, folds_planned=F,
                  cycles=F * (2 * R + C + M - 2),
                  sram_reads_filter=K * N,
                  sram_reads_ifmap=M * K * fn,
                  sram_writes_ofmap=M * N * fk,
                  sram_reads_psum=M * N * (fk - 1),
                  macs_issued=M * K * N)


def _plan_ws_dense(A: Operand, B: Operand, R: int, C: int) -> WSPlan:
    """The same plan as `plan_ws` without sparsity features, built with array
    operations instead of a loop over folds (every fold streams all M rows)."""
    M, K = A.values.shape
    N = B.values.shape[1]
    fk, fn = -(-K // R), -(-N // C)
    F = fk * fn
    k_idx = (np.arange(fk)[:, None] * R + np.arange(R)[None, :])           # (fk, R)
    n_idx = (np.arange(fn)[:, None] * C + np.arange(C)[None, :])           # (fn, C)
    k_ok, n_ok = k_idx < K, n_idx < N
    # fold f = nf * fk + kf (n-fold major, k-fold minor)
    ksel = np.where(k_ok[None, :, :, None] & n_ok[:, None, None, :],
                    k_idx[None, :, :, None], -1).reshape(F, R, C).astype(np.int32)
    carried = np.where(k_ok, k_idx, -1)[None].repeat(fn, axis=0).reshape(F, R, 1).astype(np.int32)
    lane = np.where(ksel >= 0, 0, -1).astype(np.int32)
    bpad_bits = np.zeros((fk * R, fn * C), B.bits.dtype)
    bpad_bits[:K, :N] = B.bits
    bpad_val = np.zeros((fk * R, fn * C), B.values.dtype)
    bpad_val[:K, :N] = B.values
    wbits = bpad_bits.reshape(fk, R, fn, C).transpose(2, 0, 1, 3).reshape(F, R, C)
    wval = bpad_val.reshape(fk, R, fn, C).transpose(2, 0, 1, 3).reshape(F, R, C)
    cnt = dense_ws_counts(M, K, N, R, C)
    ptr = np.arange(F + 1, dtype=np.int64) * M
    steps = np.tile(np.arange(M, dtype=np.int32), F)
    stratum = np.tile(2 * np.arange(fk), fn)
    return WSPlan(ksel, lane, carried, np.ascontiguousarray(wbits), np.ascontiguousarray(wval),
                  np.ones(F, bool), ptr, steps, cnt, stratum)


def plan_os(A: Operand, B: Operand, rows: int, cols: int, nm=None,
            zero_skipping: bool = False) -> OSPlan:
    """Output-stationary plan: m-fold major, n-fold minor. Both operands stream."""
    M, K = A.values.shape
    N = B.values.shape[1]
    R, C = rows, cols
    G = nm[1] if nm is not None else 1
    meta_bits_per_kept = int(np.log2(nm[1])) if nm is not None else 0
    cnt = Counts(macs_total=M * K * N)
    # one step table per weight strip (n-fold), shared by all m-folds
    strips = []
    s_ksel, s_carried, s_wbits, s_wval = [], [], [], []
    base = 0
    for n0 in range(0, N, C):
        nc = min(C, N - n0)
        ksl, car, compressed = _strip_slots(B.values[:, n0:n0 + nc], K, nm)
        S = ksl.shape[0]
        ks = np.full((S, C), -1, np.int32)
        ks[:, :nc] = ksl
        cr = np.full((S, G), -1, np.int32)
        cr[:, :car.shape[1]] = car
        assigned = ks >= 0
        wb = np.zeros((S, C), B.bits.dtype)
        wv = np.zeros((S, C), B.values.dtype)
        s_idx, c_idx = np.nonzero(assigned)
        wb[s_idx, c_idx] = B.bits[ks[assigned], c_idx + n0]
        wv[s_idx, c_idx] = B.values[ks[assigned], c_idx + n0]
        strips.append(dict(base=base, S=S, nc=nc, ksel=ks, carried=cr, compressed=compressed,
                           n_assigned=assigned.sum(axis=1), n_lanes=(cr >= 0).sum(axis=1),
                           w_any=(wv != 0).any(axis=1)))
        s_ksel.append(ks)
        s_carried.append(cr)
        s_wbits.append(wb)
        s_wval.append(wv)
        base += S
    fold_m0, step_lists, strata = [], [], []
    a_nz = A.values != 0 if zero_skipping else None
    for m0 in range(0, M, R):
        mr = min(R, M - m0)
        a_any_k = a_nz[m0:m0 + mr].any(axis=0) if zero_skipping else None
        for strip_index, st in enumerate(strips):
            cnt.folds_planned += 1
            steps = np.arange(st["S"], dtype=np.int64)
            if zero_skipping:
                cnt.metadata_bits += st["S"]
                ks = st["ksel"]
                a_any = np.where(ks >= 0, a_any_k[np.maximum(ks, 0)], False).any(axis=1)
                steps = steps[a_any & st["w_any"]]
                if len(steps) == 0:
                    continue
            T = len(steps)
            n_assigned = int(st["n_assigned"][steps].sum())
            cnt.folds += 1
            cnt.cycles += R + C + T - 2
            cnt.sram_reads_ifmap += mr * int(st["n_lanes"][steps].sum())
            cnt.sram_reads_filter += n_assigned
            cnt.sram_writes_ofmap += mr * st["nc"]
            if st["compressed"]:
                cnt.metadata_bits += n_assigned * meta_bits_per_kept
            cnt.macs_issued += mr * n_assigned
            fold_m0.append(m0)
            step_lists.append(steps + st["base"])
            strata.append(strip_index)
    ptr, steps = _pack_steps(step_lists)
    return OSPlan(np.array(fold_m0, np.int64), ptr, steps.astype(np.int64),
                  np.concatenate(s_ksel), np.concatenate(s_carried),
                  np.concatenate(s_wbits), np.concatenate(s_wval), cnt, np.array(strata, np.int64))
