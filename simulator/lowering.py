"""Lowering: every captured MAC op becomes one or more GEMMs with real,
quantized operands, in the order the array streams them.

Owns the quantization to the array's number format (int8/int16: symmetric
per-tensor activations, per-output-channel weights; fp16/bf16/fp32: casts,
done by `simulator.formats.encode`) and the conv -> GEMM transform:
- conv2d: im2col (a Numba kernel, `F.unfold`'s layout): A rows = output pixels (batch folded into M,
  order n, oh, ow), A columns = (c, kh, kw) of one group; B = that group's
  filters (K x Cout/g). A grouped conv is one GEMM per group (depthwise: K = kh*kw).
- linear: A = input rows (all leading dims folded into M), B = W^T.
- matmul/bmm: one GEMM per batch index; both operands are activations.
Operands are stored in the narrowest exact dtype (int8/int16 for the int
formats, float32 otherwise), and every GEMM carries `key`, a 128-bit hash of
the quantized tensors it was built from (plus the conv parameters and the
part index), so the layer cache never hashes the larger im2col matrix.
An int-format conv's A is a `ConvIfmap`, built on first use: sampled mode on a
dense weight-stationary array never builds it (its stream toggles come from the
conv input by prefix sums, the sampled steps' rows are gathered, each over its fold's K range).
The integer GEMM of a lowered conv equals `F.conv2d` on the same quantized
integers (tests/test_lowering.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import xxhash
from numba import njit, prange

from simulator.capture import MacOp
from simulator.errors import JoulesimError
from simulator.formats import FLOAT_FORMATS, INT_STORAGE, OPERAND_BITS
from simulator.toggles import popcount, popcount_bytes, xor_popcount_bytes


@dataclass
class LoweredGemm:
    layer: str            # the MacOp's name
    part: int             # group / batch index within the layer
    ifmap: "np.ndarray | ConvIfmap"   # A (M, K): quantized integers (int8/int16) or float32,
                                      # or, for an int-format conv, its im2col not yet built
    B: np.ndarray         # (K, N)
    weight_is_param: bool
    key: bytes = b""      # content hash of the operands (see module docstring)

    @property
    def A(self) -> np.ndarray:
        """A (M, K) as an array (a conv's im2col is built on first use and kept)."""
        if isinstance(self.ifmap, ConvIfmap):
            self.ifmap = self.ifmap.materialize()
        return self.ifmap


def _qmax(fmt):
    return 2 ** (OPERAND_BITS[fmt] - 1) - 1


def quantize_tensor(x: torch.Tensor, fmt: str) -> torch.Tensor:
    """Symmetric per-tensor quantization to integers (int formats); floats pass.
    (The reference in torch; `lower` runs `_quantize_np`, which equals it.)"""
    if fmt in FLOAT_FORMATS:
        return x.float()
    amax = x.abs().max()
    scale = amax / _qmax(fmt) if amax > 0 else torch.tensor(1.0)
    return torch.clamp(torch.round(x / scale), -_qmax(fmt) - 1, _qmax(fmt))


def quantize_per_channel(w: torch.Tensor, fmt: str) -> torch.Tensor:
    """Symmetric per-output-channel (dim 0) quantization of a weight.
    (The reference in torch; `lower` runs `_quantize_np`, which equals it.)"""
    if fmt in FLOAT_FORMATS:
        return w.float()
    flat = w.reshape(w.shape[0], -1)
    amax = flat.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / _qmax(fmt), torch.ones_like(amax))
    q = torch.clamp(torch.round(flat / scale[:, None]), -_qmax(fmt) - 1, _qmax(fmt))
    return q.reshape(w.shape)


_TORCH_INT = {"int8": torch.int8, "int16": torch.int16}


def _np(t: torch.Tensor, fmt: str) -> np.ndarray:
    """A quantized tensor as a C-contiguous numpy array of the format's storage dtype."""
    dtype = torch.float32 if fmt in FLOAT_FORMATS else _TORCH_INT[fmt]
    return t.detach().to(dtype).contiguous().numpy()


_ABS_BITS = np.uint32(0x7FFFFFFF)   # float32 without its sign bit


@njit(parallel=True, cache=True)
def _row_amax_bits(u):
    """max |x| of each row of a float32 matrix given as its uint32 bits: for
    non-negative floats the bit patterns order like the values, and an
    integer max vectorises where a float max (NaN rules) does not. Inf and
    NaN order above every finite value: a row holding one has max bits >=
    `_NONFINITE_BITS`."""
    out = np.zeros(u.shape[0], np.uint32)
    n = u.shape[1]
    for i in prange(u.shape[0]):
        m = np.uint32(0)
        for j in range(n):          # an index loop vectorises; iterating u[i] does not
            m = max(m, u[i, j] & _ABS_BITS)
        out[i] = m
    return out


@njit(parallel=True, cache=True)
def _amax_bits(flat):
    """`_row_amax_bits` of one long row, split over threads."""
    m = np.uint32(0)
    for i in prange(flat.shape[0]):
        m = max(m, flat[i] & _ABS_BITS)
    return m


@njit(parallel=True, cache=True)
def _quantize_rows(x, scale, qmax, out):
    """out[i, j] = clip(rint(x[i, j] / scale[i]), -qmax - 1, qmax), in float32."""
    lo, hi = np.float32(-qmax - 1), np.float32(qmax)
    for i in prange(x.shape[0]):
        s = scale[i]
        for j in range(x.shape[1]):
            out[i, j] = min(max(np.rint(x[i, j] / s), lo), hi)


@njit(parallel=True, cache=True)
def _quantize_flat(x, scale, qmax, out):
    """out[i] = clip(rint(x[i] / scale), -qmax - 1, qmax), in float32, split over threads."""
    lo, hi = np.float32(-qmax - 1), np.float32(qmax)
    chunk = 1 << 16
    for c in prange((x.shape[0] + chunk - 1) // chunk):
        for i in range(c * chunk, min(x.shape[0], (c + 1) * chunk)):
            out[i] = min(max(np.rint(x[i] / scale), lo), hi)


@njit(parallel=True, cache=True)
def _quantize_rows_transposed(x, scale, qmax, out):
    """`_quantize_rows` written transposed, out[j, i]: per 64 x 64 tile, its
    rows quantized along x's contiguous rows into a local tile, then written
    along out's (whole cache lines)."""
    lo, hi = np.float32(-qmax - 1), np.float32(qmax)
    rows, cols = x.shape
    block = 64
    row_tiles, col_tiles = (rows + block - 1) // block, (cols + block - 1) // block
    for t in prange(row_tiles * col_tiles):
        i0, j0 = (t // col_tiles) * block, (t % col_tiles) * block
        i1, j1 = min(rows, i0 + block), min(cols, j0 + block)
        tile = np.empty((block, block), out.dtype)
        for i in range(i0, i1):
            s = scale[i]
            for j in range(j0, j1):
                tile[i - i0, j - j0] = min(max(np.rint(x[i, j] / s), lo), hi)
        for j in range(j0, j1):
            for i in range(i0, i1):
                out[j, i] = tile[i - i0, j - j0]


_NONFINITE_BITS = 0x7F800000   # |x| bits at or above this: Inf or NaN


def _quantize_np(t: torch.Tensor, fmt: str, per_channel: bool, transposed: bool = False,
                 what: str = "a tensor"):
    """`quantize_per_channel` (per_channel) or `quantize_tensor` as a numpy array of
    the storage dtype, in one pass of a Numba kernel for float32 tensors (the
    same float32 arithmetic as the torch reference, so the same integers).
    `transposed` (per_channel only): the (prod(shape[1:]), shape[0]) matrix
    W^T that a GEMM's B operand is, written directly. NaN or Inf in `t` is a
    JoulesimError naming it as `what` (found by the max-|x| pass, at no cost
    for float32)."""
    if fmt in FLOAT_FORMATS or t.dtype != torch.float32:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise JoulesimError(f"{what} contains NaN or Inf")
        q = _np(quantize_per_channel(t, fmt) if per_channel else quantize_tensor(t, fmt), fmt)
        return np.ascontiguousarray(q.reshape(q.shape[0], -1).T) if transposed else q
    x = t.detach().contiguous().numpy()
    rows = x.reshape(x.shape[0], -1) if per_channel else x.reshape(1, -1)
    if not rows.size:
        amax_bits = np.zeros(rows.shape[0], np.uint32)
    elif per_channel:
        amax_bits = _row_amax_bits(rows.view(np.uint32))
    else:
        amax_bits = np.array([_amax_bits(rows.reshape(-1).view(np.uint32))], np.uint32)
    if amax_bits.size and amax_bits.max() >= _NONFINITE_BITS:
        raise JoulesimError(f"{what} contains NaN or Inf")
    amax = amax_bits.view(np.float32)
    qmax = _qmax(fmt)
    scale = np.where(amax > 0, amax / np.float32(qmax), np.float32(1.0)).astype(np.float32)
    if transposed:
        out = np.empty(rows.shape[::-1], INT_STORAGE[fmt])
        _quantize_rows_transposed(rows, scale, qmax, out)
        return out
    out = np.empty(rows.shape, INT_STORAGE[fmt])
    if per_channel:
        _quantize_rows(rows, scale, qmax, out)
    else:
        _quantize_flat(rows.reshape(-1), scale[0], qmax, out.reshape(-1))
    return out.reshape(x.shape)


@njit(parallel=True, cache=True)
def _im2col_segments(x, kh, kw, sh, sw, ph, pw, dh, dw, c0, cg, rows, k0s, out):
    """Segments of the im2col matrix A of channels c0 .. c0+cg-1 of x (N, C, H, W),
    A[m, (c, i, j)] = x[n, c0 + c, oh*sh - ph + i*dh, ow*sw - pw + j*dw] (0 outside)
    for row m = (n, oh, ow), the layout of `torch.nn.functional.unfold`:
    out[u, r] = A[rows[u], k0s[u] + r], 0 where rows[u] < 0 or past A's last column
    (all rows from column 0, out as wide as A: the whole matrix)."""
    N, _, H, W = x.shape
    OH = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    K = cg * kh * kw
    width = out.shape[1]
    for u in prange(rows.shape[0]):
        m = rows[u]
        if m < 0:
            out[u, :] = 0
            continue
        n, oh, ow = m // (OH * OW), (m // OW) % OH, m % OW
        k = k0s[u]
        c, i, j = k // (kh * kw), (k // kw) % kh, k % kw
        for r in range(width):
            ih = oh * sh - ph + i * dh
            iw = ow * sw - pw + j * dw
            if k < K and 0 <= ih < H and 0 <= iw < W:
                out[u, r] = x[n, c0 + c, ih, iw]
            else:
                out[u, r] = 0
            k += 1
            j += 1
            if j == kw:
                j = 0
                i += 1
                if i == kh:
                    i = 0
                    c += 1


@njit(parallel=True, cache=True)
def _conv_stream_toggles(xb, x8, kh, kw, sh, sw, ph, pw, dh, dw, c0, cg, out):
    """Toggles of the im2col matrix's columns streamed row after row (rise
    from zero included, fall to zero excluded), from the bits xb of the input
    (x8: the same C-order array as bytes), without building the matrix.
    out (N, cg): the toggles of the columns of channel c0 + c over the rows of
    image n (the transition into its first row included).

    Within an output row, consecutive A rows read pixels `sw` apart: column
    (c, i, j) toggles popcount(x[y, q] ^ x[y, q - sw]) at q = ow*sw - pw + j*dw,
    ow = 1 .. OW-1 (0 outside the image), counted once for every (i, oh) that
    reads input row y. With sw == 1 the pairs of one j are one run of bytes
    compared with itself shifted by one pixel (`xor_popcount_bytes`, 8 bytes
    per popcount); otherwise prefix sums along each residue class mod sw of
    the zero-padded row. The transitions from one output row (or image) to the
    next are counted one by one."""
    N, CT, H, W = xb.shape
    isz = x8.shape[0] // max(1, xb.size)
    OH = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    Wp = W + 2 * pw
    strided = sw > 1
    for task in prange(N * cg):
        n, c = task // cg, task % cg
        ch = c0 + c
        S = np.zeros(Wp if strided else 0, np.int64)    # prefix sums along a padded row
        P = np.zeros(Wp if strided else 0, xb.dtype)    # the zero-padded row
        tot = 0
        if OW > 1:
            for y in range(H):
                readers = 0           # (i, oh) pairs whose window row is y
                for i in range(kh):
                    d = y + ph - i * dh
                    if d >= 0 and d % sh == 0 and d // sh < OH:
                        readers += 1
                if readers == 0:
                    continue
                part = 0
                if not strided:       # pairs (u, u - 1) of the unpadded row, u in [lo, hi]
                    base = ((n * CT + ch) * H + y) * W * isz
                    for j in range(kw):
                        lo, hi = j * dw + 1 - pw, OW - 1 + j * dw - pw
                        a, b = max(lo, 1), min(hi, W - 1)
                        if b >= a:
                            part += xor_popcount_bytes(x8, base + a * isz, base + (a - 1) * isz,
                                                       (b - a + 1) * isz)
                        if lo <= 0 <= hi:         # the first pixel after the left padding
                            part += popcount_bytes(x8, base, isz)
                        if lo <= W <= hi:         # the right padding after the last pixel
                            part += popcount_bytes(x8, base + (W - 1) * isz, isz)
                else:
                    for q in range(W):
                        P[pw + q] = xb[n, ch, y, q]
                    for r in range(min(sw, Wp)):
                        acc = 0
                        S[r] = 0
                        for q in range(r + sw, Wp, sw):
                            acc += popcount(P[q] ^ P[q - sw])
                            S[q] = acc
                    for j in range(kw):
                        part += S[(OW - 1) * sw + j * dw] - S[j * dw]
                tot += readers * part
        for oh in range(OH):          # into (n, oh, 0) from the row before (or the image before)
            pn, poh = n, oh - 1
            if oh == 0:
                pn, poh = n - 1, OH - 1
            for i in range(kh):
                y = oh * sh - ph + i * dh
                py = poh * sh - ph + i * dh
                cur_in = 0 <= y < H
                prv_in = pn >= 0 and 0 <= py < H
                if not (cur_in or prv_in):
                    continue
                for j in range(kw):
                    xc = j * dw - pw
                    xp = (OW - 1) * sw - pw + j * dw
                    cur = np.uint64(0)
                    prv = np.uint64(0)
                    if cur_in and 0 <= xc < W:
                        cur = np.uint64(xb[n, ch, y, xc])
                    if prv_in and 0 <= xp < W:
                        prv = np.uint64(xb[pn, ch, py, xp])
                    tot += popcount(cur ^ prv)
        out[n, c] = tot


class ConvIfmap:
    """The im2col matrix A (M, K) of one group of an int-format conv, not built:
    sampled mode on a dense weight-stationary array needs only its stream
    toggles (`stream_toggles`, from the input itself) and the sampled steps'
    rows over their folds' K ranges (`segments`); anything else calls
    `materialize`."""

    def __init__(self, x: np.ndarray, kh: int, kw: int, params: dict, c0: int, cg: int):
        (sh, sw), (ph, pw), (dh, dw) = params["stride"], params["padding"], params["dilation"]
        self.x, self.c0, self.cg = x, c0, cg
        self.geometry = (kh, kw, sh, sw, ph, pw, dh, dw)
        n, _, h, w = x.shape
        oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        self.shape = (n * oh * ow, cg * kh * kw)
        self.dtype = x.dtype

    def materialize(self) -> np.ndarray:
        return self.rows(np.arange(self.shape[0]))

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """A[rows] (len(rows), K)."""
        return self.segments(rows, np.zeros(len(rows), np.int64), self.shape[1])

    def segments(self, rows: np.ndarray, k0s: np.ndarray, width: int) -> np.ndarray:
        """out[u, r] = A[rows[u], k0s[u] + r] (len(rows), width); 0 where rows[u] < 0 or
        past the last column."""
        out = np.empty((len(rows), width), self.dtype)
        _im2col_segments(self.x, *self.geometry, self.c0, self.cg, np.asarray(rows, np.int64),
                         np.asarray(k0s, np.int64), out)
        return out

    def stream_toggles(self, bits_dtype) -> int:
        """Toggles of all columns streamed row after row, rise from zero included,
        fall to zero excluded (what `toggles.stream_toggles` counts on the built A)."""
        out = np.zeros((self.x.shape[0], self.cg), np.int64)
        xb = self.x.view(bits_dtype)
        _conv_stream_toggles(xb, xb.reshape(-1).view(np.uint8), *self.geometry, self.c0, self.cg, out)
        return int(out.sum())


def _key(*parts) -> bytes:
    """128-bit content hash of quantized tensors (numpy arrays) and small descriptors."""
    h = xxhash.xxh3_128()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(str((p.shape, p.dtype.str)).encode())
            h.update(np.ascontiguousarray(p).view(np.uint8).data)
        else:
            h.update(repr(p).encode())
    return h.digest()


def conv_to_gemms(x_q, w_q, params: dict, w_t=None, lazy: bool = False):
    """im2col of quantized conv operands (numpy arrays or tensors, converted):
    yields (group, A (M, K), B (K, N)) as C-contiguous numpy arrays. `w_t`:
    the weight already as W^T (Cin/g*kh*kw, Cout), to slice B from. `lazy`:
    A is a `ConvIfmap` (built when used)."""
    x = x_q.detach().numpy() if isinstance(x_q, torch.Tensor) else x_q
    w = w_q.detach().numpy() if isinstance(w_q, torch.Tensor) else w_q
    x = np.ascontiguousarray(x)
    groups = params["groups"]
    kh, kw = w.shape[2], w.shape[3]
    cin_g = x.shape[1] // groups
    cout_g = w.shape[0] // groups
    for g in range(groups):
        A = ConvIfmap(x, kh, kw, params, g * cin_g, cin_g)
        if not lazy:
            A = A.materialize()
        if w_t is None:
            B = np.ascontiguousarray(w[g * cout_g:(g + 1) * cout_g].reshape(cout_g, -1).T)
        else:
            B = np.ascontiguousarray(w_t[:, g * cout_g:(g + 1) * cout_g])
        yield g, A, B


def _input(op: MacOp) -> str:
    return f"the input of layer {op.name}"


def _weight(op: MacOp) -> str:
    if not op.weight_is_param:
        return f"the second operand of layer {op.name}"
    return f"the weight of layer {op.name}" + (" (its BatchNorm folded in)" if op.folded_bn else "")


def lower(op: MacOp, fmt: str):
    """The GEMMs of one MAC op, quantized to `fmt`."""
    if op.kind == "conv2d":
        x_n = _quantize_np(op.x, fmt, per_channel=False, what=_input(op))
        w_t = _quantize_np(op.w, fmt, per_channel=True, transposed=True, what=_weight(op))
        base = (fmt, op.kind, sorted(op.params.items()), tuple(op.w.shape))
        return [LoweredGemm(op.name, g, A, B, True, _key(x_n, w_t, base, g))
                for g, A, B in conv_to_gemms(x_n, op.w, op.params, w_t=w_t,
                                             lazy=fmt in INT_STORAGE)]
    if op.kind == "linear":
        A = _quantize_np(op.x, fmt, per_channel=False, what=_input(op)).reshape(-1, op.x.shape[-1])
        B = _quantize_np(op.w, fmt, per_channel=True, transposed=True, what=_weight(op))
        return [LoweredGemm(op.name, 0, A, B, True, _key(A, B, fmt, op.kind))]
    a = torch.from_numpy(_quantize_np(op.x, fmt, per_channel=False, what=_input(op)))
    b = torch.from_numpy(_quantize_np(op.w, fmt, per_channel=False, what=_weight(op)))
    if a.dim() == 1:
        a = a[None, :]
    if b.dim() == 1:
        b = b[:, None]
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = a.expand(*batch, *a.shape[-2:]).reshape(-1, *a.shape[-2:]).contiguous().numpy()
    b = b.expand(*batch, *b.shape[-2:]).reshape(-1, *b.shape[-2:]).contiguous().numpy()
    return [LoweredGemm(op.name, i, a[i], b[i], op.weight_is_param, _key(a[i], b[i], fmt, op.kind))
            for i in range(a.shape[0])]
