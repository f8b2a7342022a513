"""One GEMM on one accelerator: `simulate_gemm(A, B, hw) -> GemmResult`.

Owns the orchestration of a GEMM simulation: encoding the operands in the
array's format, mapping (folds), running the toggle kernels on every fold
(exact mode) or on a random sample of folds scaled up with a 95% confidence
interval (sampled mode), and the energy accounting. Units: cycles, element
accesses, bit toggles, pJ, microseconds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import njit

from simulator import toggles as tk
from simulator.config import HardwareConfig, load_config, resolve_prices
from simulator.energy import REGISTER_CLASSES, energy_breakdown
from simulator.errors import JoulesimError
from simulator.formats import BITS_DTYPE, FLOAT_FORMATS, INT_STORAGE, OPERAND_BITS, Operand, encode
from simulator.mapping import Counts, OSPlan, WSPlan, dense_ws_counts, plan_os, plan_ws

DATAFLOWS = {"ws": "weight_stationary", "os": "output_stationary", "is": "input_stationary",
             "weight_stationary": "weight_stationary", "output_stationary": "output_stationary",
             "input_stationary": "input_stationary"}
Z95 = 1.959963984540054
MIN_SAMPLE_FOLDS = 12
PER_STRATUM = 3        # folds sampled at least per stratum
FOLDS_PER_STRATUM = 8  # strata are at least this large (merged when finer)
MIN_SAMPLE_UNITS = 512  # dense weight-stationary sampled mode: first sample of psum transitions
MAX_UNIT_STRATA = 16    # ... in at most this many strata (ranges of K folds)


def t95(df: float) -> float:
    """Two-sided 95% Student-t quantile (Cornish-Fisher expansion around the
    normal quantile; within 0.3% of the exact value for df >= 5, conservative
    below)."""
    z = Z95
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


@dataclass
class GemmResult:
    """Everything one simulated GEMM costs. Counts are exact in both modes
    except the toggle counts and gated MACs, which sampled mode estimates
    (`toggles_ci95` gives their 95% interval)."""

    config: str
    dataflow: str
    rows: int
    cols: int
    m: int
    k: int
    n: int
    operand_format: str
    mode: str
    counts: Counts
    macs_gated: int
    toggles: dict
    toggles_ci95: dict
    energy_pj: dict
    events: dict
    frequency_hz: float
    folds_sampled: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def cycles(self) -> int:
        return self.counts.cycles

    @property
    def energy_pj_total(self) -> float:
        return float(sum(self.energy_pj.values()))

    @property
    def latency_us(self) -> float:
        return self.counts.cycles / self.frequency_hz * 1e6

    @property
    def utilization(self) -> float:
        slots = self.counts.cycles * self.rows * self.cols
        return self.counts.macs_issued / slots if slots else 0.0

    @property
    def macs(self) -> dict:
        c = self.counts
        return {"total": c.macs_total, "issued": c.macs_issued, "gated": int(self.macs_gated),
                "skipped": c.macs_total - c.macs_issued}

    def to_dict(self) -> dict:
        c = self.counts
        return {
            "config": self.config, "dataflow": self.dataflow, "rows": self.rows, "cols": self.cols,
            "m": self.m, "k": self.k, "n": self.n, "operand_format": self.operand_format,
            "mode": self.mode, "folds_sampled": self.folds_sampled,
            "cycles": c.cycles, "latency_us": self.latency_us, "folds": c.folds,
            "folds_planned": c.folds_planned, "utilization": self.utilization,
            "sram_reads_ifmap": c.sram_reads_ifmap, "sram_reads_filter": c.sram_reads_filter,
            "sram_writes_ofmap": c.sram_writes_ofmap, "sram_reads_psum": c.sram_reads_psum,
            "metadata_bits": c.metadata_bits, "macs": self.macs,
            "toggles": {k: int(v) for k, v in self.toggles.items()},
            "toggles_ci95": {k: [float(lo), float(hi)] for k, (lo, hi) in self.toggles_ci95.items()},
            "energy_pj": self.energy_pj,
            "events": {k: {"count": int(n), "unit": u, "pj_per_event": p}
                       for k, (n, u, p) in self.events.items()},
            "energy_pj_total": self.energy_pj_total,
        }


def _acc_setup(fmt: str, acc_bits: int, cols: int):
    if fmt in FLOAT_FORMATS:
        return np.zeros(cols, np.float32), np.array([0xFFFFFFFF], np.uint32)
    if acc_bits <= 32:
        return np.zeros(cols, np.int32), np.array([(1 << acc_bits) - 1], np.uint32)
    return np.zeros(cols, np.int64), np.array([(1 << acc_bits) - 1], np.uint64)


def _held(first, last, inner, nonempty):
    out = np.zeros(first.shape[0], np.int64)
    tk.held_contributions(first, last, inner, nonempty, out)
    return out


def _ws_stationary(plan: WSPlan):
    """Stationary-register toggles per fold: one write per PE per fold."""
    F, R, C = plan.wbits.shape
    w = plan.wbits.reshape(F, R * C)
    prev = np.concatenate([np.zeros((1, R * C), w.dtype), w[:-1]])
    return np.bitwise_count(w ^ prev).sum(axis=1, dtype=np.int64)


def _ws_contributions(plan: WSPlan, A: Operand, fmt, acc_bits, gating, cols):
    """Per-fold toggle contributions of a weight-stationary plan."""
    F, R, C = plan.ksel.shape
    U = R * C
    a_bits_t = np.ascontiguousarray(A.bits.T)
    a_val_t = np.ascontiguousarray(A.values.T)
    acc_proto, mask_arr = _acc_setup(fmt, acc_bits, C)
    fwd, psum, multa, gm = (np.zeros(F, np.int64) for _ in range(4))
    gshape = (F, U) if gating else (0, U)
    g_first_a, g_last_a, g_first_w = (np.zeros(gshape, np.uint64) for _ in range(3))
    g_int_a, g_cnt = np.zeros(gshape, np.int64), np.zeros((F, U), np.int64)
    if F:
        tk.ws_folds(a_bits_t, a_val_t, plan.ksel, plan.lane, plan.carried, plan.wbits, plan.wval,
                    plan.step_ptr, plan.steps, plan.dense, acc_proto, mask_arr, gating,
                    fwd, psum, multa, gm, g_first_a, g_last_a, g_int_a, g_cnt, g_first_w)
    stationary = _ws_stationary(plan)
    if gating:
        nonempty = g_cnt > 0
        mult = _held(g_first_a, g_last_a, g_int_a, nonempty) + \
            _held(g_first_w, g_first_w, np.zeros((F, U), np.int64), nonempty)
    else:
        mult = multa + stationary   # the weight input follows the stationary register
    return {"forwarding": fwd, "stationary": stationary, "psum": psum, "mult_inputs": mult,
            "macs_gated": gm if gating else np.zeros(F, np.int64)}


def _os_contributions(plan: OSPlan, A: Operand, fmt, acc_bits, gating, rows, cols):
    F = plan.n_folds
    R, C = rows, cols
    G = plan.s_carried.shape[1]
    U = R * C
    acc_proto, mask_arr = _acc_setup(fmt, acc_bits, C)
    fwd, vtot, multa, gm = (np.zeros(F, np.int64) for _ in range(4))
    h_first, h_last = np.zeros((F, R * G), np.uint64), np.zeros((F, R * G), np.uint64)
    v_first, v_last = np.zeros((F, C), np.uint64), np.zeros((F, C), np.uint64)
    ma_first, ma_last, acc_first, acc_last, g_first_a, g_last_a, g_first_w, g_last_w = (
        np.zeros((F, U), np.uint64) for _ in range(8))
    acc_int, g_int_a, g_cnt, g_int_w = (np.zeros((F, U), np.int64) for _ in range(4))
    if F:
        tk.os_folds(A.bits, A.values, plan.fold_m0, plan.step_ptr, plan.steps, plan.s_ksel,
                    plan.s_carried, plan.s_wbits, plan.s_wval, acc_proto, mask_arr, gating,
                    fwd, vtot, multa, gm, h_first, h_last, v_first, v_last, ma_first, ma_last,
                    acc_first, acc_last, acc_int, g_first_a, g_last_a, g_int_a, g_cnt,
                    g_first_w, g_last_w, g_int_w)
    if R + C - 2 == 0:   # 1x1 array: no bubble separates consecutive folds
        tk.no_bubble_correction(h_first, h_last, C, fwd)
        tk.no_bubble_correction(v_first, v_last, R, vtot)
        tk.no_bubble_correction(ma_first, ma_last, 1, multa)
    psum = _held(acc_first, acc_last, acc_int, np.ones((F, U), bool))
    if gating:
        nonempty = g_cnt > 0
        mult = _held(g_first_a, g_last_a, g_int_a, nonempty) + \
            _held(g_first_w, g_last_w, g_int_w, nonempty)
    else:
        mult = multa + vtot   # the weight input follows the vertical register
    return {"forwarding": fwd + vtot, "stationary": np.zeros(F, np.int64), "psum": psum,
            "mult_inputs": mult, "macs_gated": gm if gating else np.zeros(F, np.int64)}


def _resolve_hw(hw) -> HardwareConfig:
    if isinstance(hw, HardwareConfig):
        return hw
    if isinstance(hw, (str, Path)):
        return load_config(hw)
    raise JoulesimError(f"hw must be a HardwareConfig or a YAML path, got {type(hw).__name__}")


def simulate_gemm(A, B, hw, *, dataflow: str | None = None, rows: int | None = None,
                  cols: int | None = None, sample_error: float | None = None,
                  seed: int = 0) -> GemmResult:
    """Simulate `A (M x K) @ B (K x N)` on the array of `hw`.

    A is the ifmap (activations), B the filter (weights): numpy arrays, real
    (quantized to the config's format) or integer (taken as quantized); A
    may also be a `lowering.ConvIfmap`, a conv's im2col not yet built (sampled
    mode on a dense weight-stationary array never builds it; others do).
    `dataflow` ('ws', 'os', 'is'), `rows`, `cols` override the config.
    `sample_error=None` is exact mode; a relative error (e.g. 0.01) selects
    sampled mode: a random subset of folds is simulated, scaled up, and each
    toggle count gets a 95% confidence interval whose half-width targets that
    relative error.
    """
    cfg = _resolve_hw(hw)
    arr = cfg.array
    flow = DATAFLOWS.get(dataflow or arr.dataflow)
    if flow is None:
        raise JoulesimError(f"dataflow = {dataflow!r}: allowed ws, os, is")
    R = int(rows or arr.rows)
    C = int(cols or arr.cols)
    if R < 1 or C < 1:
        raise JoulesimError(f"array size {R}x{C}: rows and cols must be >= 1")
    if sample_error is not None and not 0 < sample_error < 1:
        raise JoulesimError(f"sample_error = {sample_error}: must be in (0, 1)")
    fmt, acc_bits = arr.operand_format, arr.accumulator_bits
    sp = cfg.sparsity
    nm = cfg.structured_nm
    if nm is not None and flow == "input_stationary":
        raise JoulesimError("N:M structured sparsity needs weight_stationary or output_stationary")
    gating = bool(sp.zero_gating)
    if sample_error is not None and flow == "weight_stationary" and nm is None \
            and not sp.zero_skipping and not gating:
        return _sampled_dense_ws(A, B, cfg, R, C, sample_error, seed)
    if _is_lazy(A):
        A = A.materialize()
    Aop = encode(A, fmt, acc_bits, "A (ifmap)")
    Bop = encode(B, fmt, acc_bits, "B (filter)")
    if Aop.values.shape[1] != Bop.values.shape[0]:
        raise JoulesimError(f"shapes do not chain: A is {Aop.values.shape}, B is {Bop.values.shape}")
    M, K = Aop.values.shape
    N = Bop.values.shape[1]
    if min(M, K, N) < 1:
        raise JoulesimError(f"empty GEMM {M}x{K}x{N}")

    if flow == "output_stationary":
        plan = plan_os(Aop, Bop, R, C, nm, sp.zero_skipping)

        def contributions(p):
            return _os_contributions(p, Aop, fmt, acc_bits, gating, R, C)
    else:
        if flow == "weight_stationary":
            streamed, stationary = Aop, Bop
        else:   # input-stationary = weight-stationary on C^T = B^T A^T
            streamed = Operand(Bop.bits.T.copy(), Bop.values.T.copy(), Bop.scale, fmt)
            stationary = Operand(Aop.bits.T.copy(), Aop.values.T.copy(), Aop.scale, fmt)
        plan = plan_ws(streamed, stationary, R, C, nm, sp.zero_skipping)

        def contributions(p):
            return _ws_contributions(p, streamed, fmt, acc_bits, gating, C)

    counts = plan.counts
    if flow == "input_stationary":
        counts.sram_reads_ifmap, counts.sram_reads_filter = \
            counts.sram_reads_filter, counts.sram_reads_ifmap

    F = plan.n_folds
    classes = REGISTER_CLASSES + ("macs_gated",)
    if sample_error is None or F <= MIN_SAMPLE_FOLDS:
        contrib = contributions(plan)
        totals = {c: int(contrib[c].sum()) for c in classes}
        ci = {c: (float(totals[c]), float(totals[c])) for c in classes}
        mode, n_sampled = "exact", F
    else:
        sampled_classes = tuple(c for c in classes if c != "stationary")
        totals, ci, n_sampled = _sampled(plan, contributions, sampled_classes, sample_error, seed)
        # stationary writes depend on the plan alone: always counted exactly
        stationary = int(_ws_stationary(plan).sum()) if isinstance(plan, WSPlan) else 0
        totals["stationary"] = stationary
        ci["stationary"] = (float(stationary), float(stationary))
        mode = "sampled" if n_sampled < F else "exact"

    prices = resolve_prices(cfg)
    toggles = {c: totals[c] for c in REGISTER_CLASSES}
    energy, events = energy_breakdown(prices, fmt, acc_bits, toggles, counts,
                                      totals["macs_gated"], gating)
    return GemmResult(config=cfg.name, dataflow=flow, rows=R, cols=C, m=M, k=K, n=N,
                      operand_format=fmt, mode=mode, counts=counts,
                      macs_gated=int(totals["macs_gated"]), toggles=toggles,
                      toggles_ci95={c: ci[c] for c in REGISTER_CLASSES}, energy_pj=energy,
                      events=events, frequency_hz=prices.frequency_hz, folds_sampled=n_sampled)


def _sample_contributions(plan, contributions, sample):
    """Contributions of the sampled folds, each with its predecessor simulated
    so that the switch into the fold is counted from the real previous state."""
    idx = np.union1d(sample, sample[sample > 0] - 1)
    contrib = contributions(plan.subset(idx))
    pos = np.searchsorted(idx, sample)
    return {c: v[pos] for c, v in contrib.items()}


def _stratified_estimate(x, labels, sizes):
    """Total of a population from a stratified sample without replacement:
    `x[i]` is the value of a sampled unit of stratum `labels[i]`, stratum h
    has `sizes[h]` units (each sampled at least once). Returns (estimate,
    95% half-width): each stratum expanded by its size, the variance with the
    finite-population correction per stratum, and Student's t with
    Satterthwaite's effective degrees of freedom."""
    H = len(sizes)
    sizes = np.asarray(sizes, np.float64)
    n_h = np.bincount(labels, minlength=H).astype(np.float64)
    mean = np.bincount(labels, x, minlength=H) / n_h
    ss = np.bincount(labels, (x - mean[labels]) ** 2, minlength=H)
    est = float((sizes * mean).sum())
    multi = n_h > 1
    part = np.zeros(H)
    part[multi] = sizes[multi] ** 2 * (1 - n_h[multi] / sizes[multi]) \
        * (ss[multi] / (n_h[multi] - 1)) / n_h[multi]
    var = float(part.sum())
    df_den = float((part[multi] ** 2 / (n_h[multi] - 1)).sum())
    df = var ** 2 / df_den if df_den > 0 else float(max(1, len(x) - H))
    return est, t95(max(1.0, df)) * math.sqrt(var)


def _sampled(plan, contributions, classes, target, seed):
    """Stratified random sample of folds without replacement.

    Folds are grouped in strata of folds that see alike data (weight-
    stationary: the same K range; output-stationary: the same weight strip);
    each stratum is sampled in proportion to its size, at least
    `PER_STRATUM` folds, and expanded by its size. The variance carries the
    finite-population correction per stratum; the interval uses Student's t
    with Satterthwaite's effective degrees of freedom. The sample grows until every toggle count's 95% half-width is
    within `target` of its estimate (or every fold is simulated)."""
    F = plan.n_folds
    rng = np.random.default_rng(seed)
    labels = np.unique(plan.stratum, return_inverse=True)[1]
    # merge neighbouring strata beyond one per FOLDS_PER_STRATUM folds
    max_strata = max(MIN_SAMPLE_FOLDS // PER_STRATUM, F // FOLDS_PER_STRATUM)
    labels = labels * max_strata // (labels.max() + 1)
    strata = [rng.permutation(np.flatnonzero(labels == h)) for h in np.unique(labels)]
    sizes = np.array([len(s) for s in strata])
    frac = MIN_SAMPLE_FOLDS / F
    while True:
        take = np.minimum(sizes, np.maximum(PER_STRATUM, np.ceil(frac * sizes).astype(int)))
        sample = np.sort(np.concatenate([s[:t] for s, t in zip(strata, take)]))
        n = len(sample)
        contrib = _sample_contributions(plan, contributions, sample)
        labels = np.zeros(n, np.int64)
        for h, (s, t) in enumerate(zip(strata, take)):
            labels[np.isin(sample, s[:t])] = h
        totals, ci, worst = {}, {}, 0.0
        for c in classes:
            est, half = _stratified_estimate(contrib[c].astype(np.float64), labels, sizes)
            totals[c] = int(round(est))
            ci[c] = (max(0.0, est - half), est + half)
            if est > 0 and c != "macs_gated":
                worst = max(worst, half / est)
        if worst <= target or n >= F:
            return totals, ci, n
        # the half-width shrinks about as 1/sqrt(n): grow the sampling fraction
        frac = min(1.0, frac * max(1.25, 1.1 * (worst / target) ** 2))


def _is_lazy(x) -> bool:
    """An operand not built as an array (`lowering.ConvIfmap`): built by `materialize`."""
    return hasattr(x, "materialize")


def _segments(A, a_val, rows, k0s, width):
    """Values of A's rows `rows` over columns k0s .. k0s + width - 1 (0 for row -1 and past K),
    from the unbuilt A (`lowering.ConvIfmap`) or from its values `a_val`."""
    if _is_lazy(A):
        return A.segments(rows, k0s, width)
    out = np.empty((len(rows), width), a_val.dtype)
    tk.gather_segments(a_val, rows, k0s, out)
    return out


def _raw_operand(x, fmt, acc_bits, name):
    """(bits, values) of an operand without copies when `x` is already stored
    in the format's integer dtype (lowered GEMMs are), else via `encode`."""
    storage = INT_STORAGE.get(fmt)
    if storage is not None and isinstance(x, np.ndarray) and x.dtype == storage and x.ndim == 2:
        x = np.ascontiguousarray(x)
        return x.view(BITS_DTYPE[OPERAND_BITS[fmt]]), x
    op = encode(x, fmt, acc_bits, name)
    return op.bits, op.values


@njit(cache=True)
def _pick_units(offsets, deficit, count, taken, u, out, w):
    """The loop of `_draw`, consuming the uniforms u in order: returns (units
    written to out, done); not done when u ran out (call again with more).
    deficit and count (units still to draw, units drawn, per stratum) and
    taken are updated in place."""
    p = 0
    for h in range(deficit.shape[0]):
        lo = offsets[h]
        size = offsets[h + 1] - lo
        while deficit[h] > 0:
            remaining = size - count[h]
            d = deficit[h]
            if 2 * d >= remaining:         # most of what is left: a partial shuffle of the rest
                if p + d > u.shape[0]:
                    return w, False
                rest = np.empty(remaining, np.int64)
                r = 0
                for v in range(lo, lo + size):
                    if not taken[v]:
                        rest[r] = v
                        r += 1
                for t in range(d):
                    s = t + min(int(u[p] * (remaining - t)), remaining - t - 1)
                    p += 1
                    rest[t], rest[s] = rest[s], rest[t]
                    taken[rest[t]] = True
                    out[w] = rest[t]
                    w += 1
                count[h] += d
                deficit[h] = 0
            else:                           # by rejection: at most half is taken
                if p == u.shape[0]:
                    return w, False
                v = lo + min(int(u[p] * size), size - 1)
                p += 1
                if not taken[v]:
                    taken[v] = True
                    out[w] = v
                    w += 1
                    deficit[h] -= 1
                    count[h] += 1
    return w, True


def _draw(rng, offsets, deficit, taken, count):
    """Draw `deficit[h]` more units of each stratum h (units offsets[h] ..
    offsets[h+1]-1, `count[h]` of them drawn before), each uniform among the
    units not `taken` yet (marked as they are drawn): by rejection, O(units
    drawn), while the draw is under half of what is left of the stratum, else
    by a partial shuffle of the rest; uniforms from `rng`."""
    deficit, count = np.array(deficit, np.int64), np.array(count, np.int64)
    offsets = np.asarray(offsets, np.int64)
    out = np.empty(int(deficit.sum()), np.int64)
    w, done = 0, False
    while not done:
        u = rng.random(2 * int(deficit.sum()) + 64)
        w, done = _pick_units(offsets, deficit, count, taken, u, out, w)
    return out[:w]


def _sampled_dense_ws(A, B, cfg, R, C, target, seed) -> GemmResult:
    """Sampled mode of a weight-stationary array without sparsity features.

    Forwarding, multiplier-input and stationary toggles are counted exactly
    from per-K stream toggles of A and from B (see the decomposition in
    `simulator.toggles`); partial-sum toggles, the only class that needs
    every MAC, are estimated from a stratified random sample of fold step
    transitions (strata: ranges of K folds, which see the same A columns),
    grown until their 95% half-width is within `target` of the estimate
    (`_stratified_estimate`), or every transition is simulated."""
    arr = cfg.array
    fmt, acc_bits = arr.operand_format, arr.accumulator_bits
    b_bits, b_val = _raw_operand(B, fmt, acc_bits, "B (filter)")
    if A.shape[1] != b_val.shape[0]:
        raise JoulesimError(f"shapes do not chain: A is {A.shape}, B is {b_val.shape}")
    M, K = A.shape
    N = b_val.shape[1]
    if min(M, K, N) < 1:
        raise JoulesimError(f"empty GEMM {M}x{K}x{N}")
    fk, fn = -(-K // R), -(-N // C)
    counts = dense_ws_counts(M, K, N, R, C)

    a_val = None
    if _is_lazy(A):      # a conv's im2col, not built: stream toggles from its input, rows on demand
        bits_dtype = BITS_DTYPE[OPERAND_BITS[fmt]]
        stream = A.stream_toggles(bits_dtype)
        last = A.rows(np.array([M - 1]))
        stream += int(np.bitwise_count(last.view(bits_dtype)).sum())               # + the fall
    else:
        a_bits, a_val = _raw_operand(A, fmt, acc_bits, "A (ifmap)")
        chunks = np.zeros((max(1, min(8, M // 64)), K), np.int64)
        tk.stream_toggles(a_bits, chunks)
        stream = int(chunks.sum()) + int(np.bitwise_count(a_bits[M - 1]).sum())   # + the fall
    stat = np.zeros(fn, np.int64)
    tk.ws_dense_stationary(np.ascontiguousarray(b_bits).reshape(-1).view(np.uint8), K, N, R, C, stat)
    stationary = int(stat.sum())
    exact = {"forwarding": C * fn * stream, "stationary": stationary,
             "mult_inputs": N * stream + stationary, "macs_gated": 0}

    # psum: population of fk * fn folds x (M + 1) transitions, strata = ranges of K folds
    acc_proto, mask_arr = _acc_setup(fmt, acc_bits, C)
    per_fold = M + 1
    H = min(fk, MAX_UNIT_STRATA)
    kf_edges = np.linspace(0, fk, H + 1).round().astype(np.int64)
    sizes = np.diff(kf_edges) * fn * per_fold
    offsets = kf_edges * fn * per_fold     # unit u = (kf * fn + nf) * (M + 1) + t
    rng = np.random.default_rng(seed)
    taken = np.zeros(int(offsets[-1]), bool)
    units, values = np.zeros(0, np.int64), np.zeros(0, np.float64)
    count = np.zeros(H, np.int64)
    frac = MIN_SAMPLE_UNITS / sizes.sum()
    while True:
        take = np.minimum(sizes, np.maximum(PER_STRATUM, np.ceil(frac * sizes).astype(np.int64)))
        take = np.where(2 * take >= sizes, sizes, np.maximum(take, count))   # half or more: all
        new = _draw(rng, offsets, take - count, taken, count)
        count = take
        out = np.zeros(len(new), np.int64)
        if len(new):
            fold, t = np.divmod(new, per_fold)
            k0s = (fold // fn) * R
            a_cur = _segments(A, a_val, np.where(t < M, t, -1), k0s, R)   # -1: zero (after the stream)
            a_prev = _segments(A, a_val, t - 1, k0s, R)                      # -1: zero (before it)
            tk.ws_dense_psum_units(a_cur, a_prev, b_val, R, C, fold // fn, fold % fn,
                                   acc_proto, mask_arr, out)
        units = np.concatenate([units, new])
        values = np.concatenate([values, out.astype(np.float64)])
        labels = np.searchsorted(offsets, units, side="right") - 1
        est, half = _stratified_estimate(values, labels, sizes)
        if est <= 0 or half <= target * est or np.array_equal(take, sizes):
            break
        frac = min(1.0, frac * max(1.25, 1.1 * (half / est / target) ** 2))
    n_units = len(units)
    complete = n_units == sizes.sum()
    totals = dict(exact, psum=int(round(est)))
    ci = {c: (float(v), float(v)) for c, v in exact.items()}
    ci["psum"] = (float(totals["psum"]),) * 2 if complete else (max(0.0, est - half), est + half)

    prices = resolve_prices(cfg)
    toggles = {c: totals[c] for c in REGISTER_CLASSES}
    energy, events = energy_breakdown(prices, fmt, acc_bits, toggles, counts, 0, False)
    sampled_folds = np.count_nonzero(np.bincount(units // per_fold, minlength=1))
    return GemmResult(config=cfg.name, dataflow="weight_stationary", rows=R, cols=C, m=M, k=K, n=N,
                      operand_format=fmt, mode="exact" if complete else "sampled", counts=counts,
                      macs_gated=0, toggles=toggles,
                      toggles_ci95={c: ci[c] for c in REGISTER_CLASSES}, energy_pj=energy,
                      events=events, frequency_hz=prices.frequency_hz,
                      folds_sampled=int(sampled_folds),
                      extra={"psum_transitions_sampled": n_units,
                             "psum_transitions": int(sizes.sum())})
