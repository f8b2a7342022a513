"""Numba kernels that count register bit toggles fold by fold.

Owns the hot loops of the engine: for every executed fold of a mapped GEMM
they count `popcount(old XOR new)` for every value written to the forwarding,
stationary, partial-sum and multiplier-input registers, following the
semantics of `docs/simulation-model.md` (units: bit toggles, dimensionless).

Each kernel works on one fold at a time (folds in parallel with `prange`,
vectorised over the array's columns) and returns, per fold:
- for *bubbled* registers (streams separated by zero bubbles): the fold's own
  toggles including the rise from and the fall back to zero, plus the first and
  last value of every stream, so that the rare case with no bubble between
  folds (a 1x1 output-stationary array) can be corrected exactly;
- for *held* registers (stationary, accumulators, gated multiplier inputs):
  the toggles inside the fold and the first/last value written, which
  `held_contributions` chains across folds.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic


@intrinsic
def popcount(typingctx, x):
    """LLVM ctpop: compiles to a vector popcount where the CPU has one."""
    if not isinstance(x, types.Integer):
        return None
    sig = types.int64(x)

    def codegen(context, builder, signature, args):
        cnt = builder.ctpop(args[0])
        if x.bitwidth < 64:
            return builder.zext(cnt, ir.IntType(64))
        return cnt

    return sig, codegen


@intrinsic
def load_u64(typingctx, buf, i):
    """The 8 bytes of a uint8 array from byte index i on, as one uint64 (an
    unaligned load; the caller keeps i + 8 <= len(buf))."""
    if not (isinstance(buf, types.Array) and buf.dtype == types.uint8
            and isinstance(i, types.Integer)):
        return None
    sig = types.uint64(buf, i)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        idx = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = builder.bitcast(builder.gep(ary.data, [idx]), ir.IntType(64).as_pointer())
        return builder.load(ptr, align=1)

    return sig, codegen


@njit(inline="always")
def xor_popcount_bytes(buf, i, j, n):
    """Bits that differ between bytes buf[i:i+n] and buf[j:j+n]: the sum of
    popcount(x ^ y) over any values stored in them (int8 or int16 alike), 8
    bytes per popcount."""
    tot = 0
    t = 0
    while t + 32 <= n:
        tot += (popcount(load_u64(buf, i + t) ^ load_u64(buf, j + t))
                + popcount(load_u64(buf, i + t + 8) ^ load_u64(buf, j + t + 8))
                + popcount(load_u64(buf, i + t + 16) ^ load_u64(buf, j + t + 16))
                + popcount(load_u64(buf, i + t + 24) ^ load_u64(buf, j + t + 24)))
        t += 32
    while t + 8 <= n:
        tot += popcount(load_u64(buf, i + t) ^ load_u64(buf, j + t))
        t += 8
    while t < n:
        tot += popcount(buf[i + t] ^ buf[j + t])
        t += 1
    return tot


@njit(inline="always")
def popcount_bytes(buf, i, n):
    """Set bits in bytes buf[i:i+n], 8 bytes per popcount."""
    tot = 0
    t = 0
    while t + 8 <= n:
        tot += popcount(load_u64(buf, i + t))
        t += 8
    while t < n:
        tot += popcount(buf[i + t])
        t += 1
    return tot


@intrinsic
def bits_of(typingctx, x):
    """Reinterpret an int32/int64/float32/float64 as the unsigned int of the same width."""
    if isinstance(x, (types.Integer, types.Float)):
        out = types.uint32 if x.bitwidth == 32 else types.uint64
    else:
        return None
    sig = out(x)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(out.bitwidth))

    return sig, codegen


@njit(parallel=True, cache=True)
def ws_folds(a_bits_t, a_val_t, ksel, lane, carried, wbits, wval, step_ptr, steps,
             dense, acc_proto, mask_arr, gating,
             fwd_out, psum_out, multa_out, gated_macs_out,
             g_first_a, g_last_a, g_int_a, g_cnt, g_first_w):
    """Weight-stationary folds (input-stationary runs here on the transpose).

    a_bits_t/a_val_t: streamed operand, transposed to (K, M) so that a row's
    stream is contiguous. ksel/lane/wbits/wval: (F, R, C) per PE; carried:
    (F, R, G) K index per lane (-1 = none); steps: the issued m of each fold.
    """
    F, R, C = ksel.shape
    G = carried.shape[2]
    mask = mask_arr[0]
    for f in prange(F):
        t0 = step_ptr[f]
        t1 = step_ptr[f + 1]
        T = t1 - t0
        lane_tot = np.zeros((R, G), np.int64)
        nz_cnt = np.zeros((R, G), np.int64)
        nz_first = np.zeros((R, G), np.uint64)
        nz_last = np.zeros((R, G), np.uint64)
        nz_int = np.zeros((R, G), np.int64)
        # one pass per carried stream: forwarding toggles (shared by the C
        # PEs of the row) and, under gating, the stream of non-zero values
        for r in range(R):
            for g in range(G):
                k = carried[f, r, g]
                if k < 0:
                    continue
                prev = np.uint64(0)
                tog = 0
                held = np.uint64(0)
                cnt = 0
                inner = 0
                first = np.uint64(0)
                for t in range(t0, t1):
                    m = steps[t]
                    x = np.uint64(a_bits_t[k, m])
                    tog += popcount(x ^ prev)
                    prev = x
                    if gating and a_val_t[k, m] != 0:
                        if cnt == 0:
                            first = x
                        else:
                            inner += popcount(x ^ held)
                        held = x
                        cnt += 1
                lane_tot[r, g] = tog + popcount(prev)
                nz_cnt[r, g] = cnt
                nz_first[r, g] = first
                nz_last[r, g] = held
                nz_int[r, g] = inner
        fwd_out[f] = lane_tot.sum() * C
        multa = 0
        gm = 0
        for r in range(R):
            for c in range(C):
                g = lane[f, r, c]
                u = r * C + c
                g_cnt[f, u] = 0
                if g < 0:
                    continue
                multa += lane_tot[r, g]
                if gating:
                    if wval[f, r, c] != 0 and nz_cnt[r, g] > 0:
                        g_first_a[f, u] = nz_first[r, g]
                        g_last_a[f, u] = nz_last[r, g]
                        g_int_a[f, u] = nz_int[r, g]
                        g_cnt[f, u] = nz_cnt[r, g]
                        g_first_w[f, u] = np.uint64(wbits[f, r, c])
                        gm += T - nz_cnt[r, g]
                    else:
                        gm += T
        multa_out[f] = multa
        gated_macs_out[f] = gm
        # partial sums: psum(r, c) = sum_{r' <= r} a(r', c) * w(r', c), one
        # register write per PE per cycle; bubbles before and after are zero
        acc = np.zeros_like(acc_proto)
        prevb = np.zeros((R, C), mask_arr.dtype)
        tog_c = np.zeros(C, np.int64)
        wv = wval[f]
        ks = ksel[f]
        is_dense = dense[f]
        for t in range(t0, t1):
            m = steps[t]
            acc[:] = 0
            for r in range(R):
                if is_dense:
                    k = carried[f, r, 0]
                    if k >= 0:
                        a = a_val_t[k, m]
                        for c in range(C):
                            acc[c] += a * wv[r, c]
                else:
                    for c in range(C):
                        kk = ks[r, c]
                        if kk >= 0:
                            acc[c] += a_val_t[kk, m] * wv[r, c]
                for c in range(C):
                    b = bits_of(acc[c]) & mask
                    tog_c[c] += popcount(b ^ prevb[r, c])
                    prevb[r, c] = b
        fall = 0
        for r in range(R):
            for c in range(C):
                fall += popcount(prevb[r, c])
        psum_out[f] = tog_c.sum() + fall


@njit(parallel=True, cache=True)
def os_folds(a_bits, a_val, fold_m0, step_ptr, steps, s_ksel, s_carried, s_wbits, s_wval,
             acc_proto, mask_arr, gating,
             fwd_out, v_out, multa_out, gated_macs_out,
             h_first, h_last, v_first, v_last, ma_first, ma_last,
             acc_first, acc_last, acc_int,
             g_first_a, g_last_a, g_int_a, g_cnt, g_first_w, g_last_w, g_int_w):
    """Output-stationary folds. Steps index the per-strip step tables
    s_ksel/s_wbits/s_wval (S, C) and s_carried (S, G)."""
    F = fold_m0.shape[0]
    M = a_bits.shape[0]
    C = s_ksel.shape[1]
    G = s_carried.shape[1]
    R = acc_first.shape[1] // C
    mask = mask_arr[0]
    zero = a_val[0, 0] - a_val[0, 0]
    for f in prange(F):
        t0 = step_ptr[f]
        t1 = step_ptr[f + 1]
        m0 = fold_m0[f]
        fwd = 0
        # horizontal activation registers: one stream per row and lane
        for r in range(R):
            m = m0 + r
            for g in range(G):
                prev = np.uint64(0)
                tog = 0
                first = np.uint64(0)
                for t in range(t0, t1):
                    s = steps[t]
                    k = s_carried[s, g]
                    x = np.uint64(0)
                    if m < M and k >= 0:
                        x = np.uint64(a_bits[m, k])
                    if t == t0:
                        first = x
                    tog += popcount(x ^ prev)
                    prev = x
                h_first[f, r * G + g] = first
                h_last[f, r * G + g] = prev
                fwd += (tog + popcount(prev)) * C
        # vertical weight registers: one stream per column, seen by R PEs
        vt = 0
        for c in range(C):
            prev = np.uint64(0)
            tog = 0
            for t in range(t0, t1):
                x = np.uint64(s_wbits[steps[t], c])
                if t == t0:
                    v_first[f, c] = x
                tog += popcount(x ^ prev)
                prev = x
            v_last[f, c] = prev
            vt += tog + popcount(prev)
        fwd_out[f] = fwd
        v_out[f] = vt * R
        # per PE: multiplier inputs, accumulator, gating
        acc = np.zeros_like(acc_proto)
        accb = np.zeros(C, mask_arr.dtype)
        a_prev = np.zeros(C, np.uint64)
        ga = np.zeros(C, np.uint64)
        gw = np.zeros(C, np.uint64)
        gcnt = np.zeros(C, np.int64)
        gint_a = np.zeros(C, np.int64)
        gint_w = np.zeros(C, np.int64)
        ainner = np.zeros(C, np.int64)
        multa = 0
        gm = 0
        for r in range(R):
            m = m0 + r
            row_ok = m < M
            acc[:] = 0
            a_prev[:] = 0
            gcnt[:] = 0
            gint_a[:] = 0
            gint_w[:] = 0
            ainner[:] = 0
            for t in range(t0, t1):
                s = steps[t]
                for c in range(C):
                    kk = s_ksel[s, c]
                    ab = np.uint64(0)
                    av = zero
                    if row_ok and kk >= 0:
                        ab = np.uint64(a_bits[m, kk])
                        av = a_val[m, kk]
                    w = s_wval[s, c]
                    # multiplier activation input without gating (bubbled)
                    ainner[c] += popcount(ab ^ a_prev[c])
                    a_prev[c] = ab
                    if t == t0:
                        ma_first[f, r * C + c] = ab
                        acc[c] = av * w
                    else:
                        acc[c] += av * w
                    b = bits_of(acc[c]) & mask
                    if t == t0:
                        acc_first[f, r * C + c] = b
                    else:
                        acc_int[f, r * C + c] += popcount(b ^ accb[c])
                    accb[c] = b
                    if gating and row_ok and kk >= 0:
                        if av != 0 and w != 0:
                            wb = np.uint64(s_wbits[s, c])
                            if gcnt[c] == 0:
                                g_first_a[f, r * C + c] = ab
                                g_first_w[f, r * C + c] = wb
                            else:
                                gint_a[c] += popcount(ab ^ ga[c])
                                gint_w[c] += popcount(wb ^ gw[c])
                            ga[c] = ab
                            gw[c] = wb
                            gcnt[c] += 1
                        else:
                            gm += 1
            for c in range(C):
                u = r * C + c
                ma_last[f, u] = a_prev[c]
                multa += ainner[c] + popcount(a_prev[c])
                acc_last[f, u] = accb[c]
                g_cnt[f, u] = gcnt[c]
                g_last_a[f, u] = ga[c]
                g_last_w[f, u] = gw[c]
                g_int_a[f, u] = gint_a[c]
                g_int_w[f, u] = gint_w[c]
        multa_out[f] = multa
        gated_macs_out[f] = gm


@njit(cache=True)
def held_contributions(first, last, inner, nonempty, out):
    """Chain held registers across folds: fold f contributes its inner
    toggles plus the switch from the value held at the end of the previous
    non-empty fold (0 before the first)."""
    F, U = first.shape
    for u in range(U):
        prev = np.uint64(0)
        for f in range(F):
            if nonempty[f, u]:
                out[f] += inner[f, u] + popcount(np.uint64(first[f, u]) ^ prev)
                prev = np.uint64(last[f, u])


@njit(cache=True)
def no_bubble_correction(first, last, multiplicity, out):
    """Bubbled streams with no bubble between consecutive folds: replace the
    counted fall to zero and rise from zero by the direct switch."""
    F, U = first.shape
    for f in range(1, F):
        for u in range(U):
            a = np.uint64(last[f - 1, u])
            b = np.uint64(first[f, u])
            out[f] += multiplicity * (popcount(a ^ b) - popcount(a) - popcount(b))


# --- dense weight-stationary folds, decomposed for sampled mode --------------
# Without sparsity features every fold of a weight-stationary plan streams all
# M rows of A through its R K-rows, so (semantics as in `ws_folds`):
# - forwarding and multiplier-input toggles are sums of the per-K stream
#   toggles of A (`stream_toggles`), counted exactly;
# - stationary toggles follow B alone (`ws_dense_stationary`), counted exactly;
# - partial-sum toggles are a sum over the fold's M + 1 step transitions
#   (step t-1 -> t, zero before the first step and after the last), and
#   `ws_dense_psum_units` computes any chosen transitions exactly, so that
#   sampled mode can estimate that sum from a random subset of them.


@njit(parallel=True, cache=True)
def stream_toggles(a_bits, out):
    """Toggles of each column k of A (M, K) streamed row after row, the rise
    from zero included and the fall back to zero excluded: out (chunks, K)
    is summed by the caller over its first axis (rows split over chunks)."""
    M, K = a_bits.shape
    n_chunks = out.shape[0]
    for ch in prange(n_chunks):
        m0 = ch * M // n_chunks
        m1 = (ch + 1) * M // n_chunks
        for m in range(m0, m1):
            if m == 0:
                for k in range(K):
                    out[ch, k] += popcount(np.uint64(a_bits[0, k]))
            else:
                for k in range(K):
                    out[ch, k] += popcount(np.uint64(a_bits[m, k]) ^ np.uint64(a_bits[m - 1, k]))


@njit(parallel=True, cache=True)
def ws_dense_stationary(b_bytes, K, N, R, C, out):
    """Stationary-register toggles of the dense weight-stationary folds of a
    (K, N) B on an R x C array, folds n-major, k-minor, each fold writing
    every PE once (zero where the fold runs past K or N), starting from zero.
    b_bytes: B's C-order bytes (`B.reshape(-1).view(np.uint8)`, elements of
    any width); each row of a fold is compared with the previous fold's
    as one run of bytes (`xor_popcount_bytes`). out (n-folds,): toggles of
    the folds of each n-fold."""
    isz = b_bytes.shape[0] // max(1, K * N)
    row = N * isz
    fk = (K + R - 1) // R
    fn = out.shape[0]
    for j in prange(fn):
        nf = np.int64(j)
        n0 = nf * C
        nc = min(C, N - n0)
        tot = 0
        for kf in range(fk):
            pk, pn = kf - 1, nf        # the previous fold in execution order
            if kf == 0:
                pk, pn = fk - 1, nf - 1
            p0 = pn * C
            pc = min(C, N - p0) if pn >= 0 else 0     # columns the previous fold held
            for r in range(R):
                k = kf * R + r
                q = pk * R + r
                cur_c = nc if k < K else 0
                prv_c = pc if (pn >= 0 and q < K) else 0
                both = min(cur_c, prv_c)
                ik, iq = k * row + n0 * isz, q * row + p0 * isz
                tot += xor_popcount_bytes(b_bytes, ik, iq, both * isz)
                tot += popcount_bytes(b_bytes, ik + both * isz, (cur_c - both) * isz)
                tot += popcount_bytes(b_bytes, iq + both * isz, (prv_c - both) * isz)
        out[j] = tot


@njit(parallel=True, cache=True)
def gather_segments(a, rows, k0s, out):
    """out[u, r] = a[rows[u], k0s[u] + r], 0 where rows[u] < 0 or past a's last column."""
    K = a.shape[1]
    for u in prange(rows.shape[0]):
        m, k0 = rows[u], k0s[u]
        for r in range(out.shape[1]):
            if m >= 0 and k0 + r < K:
                out[u, r] = a[m, k0 + r]
            else:
                out[u, r] = 0


@njit(parallel=True, cache=True)
def ws_dense_psum_units(a_cur, a_prev, b_val, R, C, unit_kf, unit_nf, acc_proto, mask_arr, out):
    """Partial-sum toggles of chosen step transitions of dense weight-
    stationary folds: unit i is fold (unit_kf[i], unit_nf[i]) and one
    transition, from step t-1 to step t, t in [0, M] (the register holds zero
    before step 0 and after step M-1). a_cur[i], a_prev[i] (U, R): the values
    the multipliers see at steps t and t-1, A's rows over the fold's K range
    (`gather_segments`; zero before the first step, after the last and past K);
    b_val (K, N) (acc_proto's dtype fixes the accumulator, as in `ws_folds`)."""
    K, N = b_val.shape
    mask = mask_arr[0]
    U = a_cur.shape[0]
    chunk = 64                        # units per task: the psum buffers are allocated per chunk
    for ch in prange((U + chunk - 1) // chunk):
        cur = np.zeros_like(acc_proto)     # psums of step t
        prv = np.zeros_like(acc_proto)     # psums of step t - 1
        zero = acc_proto[0] - acc_proto[0]
        for i in range(ch * chunk, min(U, (ch + 1) * chunk)):
            k0 = unit_kf[i] * R
            n0 = unit_nf[i] * C
            rr = min(R, K - k0)
            nc = min(C, N - n0)
            cur[:] = 0
            prv[:] = 0
            tog = 0
            row = 0
            for r in range(rr):
                k = k0 + r
                a1 = zero + a_cur[i, r]
                a0 = zero + a_prev[i, r]
                w = b_val[k, n0:n0 + nc]
                row = 0
                for c in range(nc):
                    wc = zero + w[c]
                    cur[c] += a1 * wc
                    prv[c] += a0 * wc
                    row += popcount((bits_of(cur[c]) ^ bits_of(prv[c])) & mask)
                tog += row
            # rows past K add nothing: they write the last row's sums again
            out[i] = tog + (R - rr) * row
