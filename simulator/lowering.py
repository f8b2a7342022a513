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
from simulator.formats import FLOAT_FORMATS, INT_STORAGE, OPERAND_BITS
from simulator.toggles import popcount


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
    integer max vectorises where a float max (NaN rules) does not."""
    out = np.zeros(u.shape[0], np.uint32)
    for i in prange(u.shape[0]):
        m = np.uint32(0)
        for v in u[i]:
            m = max(m, v & _ABS_BITS)
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
def _quantize_rows_transposed(x, scale, qmax, out):
    """`_quantize_rows` written transposed: out[j, i], in 32 x 32 blocks."""
    lo, hi = np.float32(-qmax - 1), np.float32(qmax)
    rows, cols = x.shape
    block = 32
    for jb in prange((cols + block - 1) // block):
        j0, j1 = jb * block, min(cols, (jb + 1) * block)
        for i0 in range(0, rows, block):
            for j in range(j0, j1):
                for i in range(i0, min(rows, i0 + block)):
                    out[j, i] = min(max(np.rint(x[i, j] / scale[i]), lo), hi)


def _quantize_np(t: torch.Tensor, fmt: str, per_channel: bool, transposed: bool = False):
    """`quantize_per_channel` (per_channel) or `quantize_tensor` as a numpy array of
    the storage dtype, in one pass of a Numba kernel for float32 tensors (the
    same float32 arithmetic as the torch reference, so the same integers).
    `transposed` (per_channel only): the (prod(shape[1:]), shape[0]) matrix
    W^T that a GEMM's B operand is, written directly."""
    if fmt in FLOAT_FORMATS or t.dtype != torch.float32:
        q = _np(quantize_per_channel(t, fmt) if per_channel else quantize_tensor(t, fmt), fmt)
        return np.ascontiguousarray(q.reshape(q.shape[0], -1).T) if transposed else q
    x = t.detach().contiguous().numpy()
    rows = x.reshape(x.shape[0], -1) if per_channel else x.reshape(1, -1)
    if not rows.size:
        amax = np.zeros(rows.shape[0], np.float32)
    elif per_channel:
        amax = _row_amax_bits(rows.view(np.uint32)).view(np.float32)
    else:
        amax = np.array([_amax_bits(rows.reshape(-1).view(np.uint32))], np.uint32).view(np.float32)
    qmax = _qmax(fmt)
    scale = np.where(amax > 0, amax / np.float32(qmax), np.float32(1.0)).astype(np.float32)
    if transposed:
        out = np.empty(rows.shape[::-1], INT_STORAGE[fmt])
        _quantize_rows_transposed(rows, scale, qmax, out)
        return out
    out = np.empty(rows.shape, INT_STORAGE[fmt])
    _quantize_rows(rows, scale, qmax, out)
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


@njit(cache=True)
def _bits_at(xb, n, c, y, x):
    """Bits of x[n, c, y, x], 0 outside the image (the zero padding)."""
    if 0 <= y < xb.shape[2] and 0 <= x < xb.shape[3]:
        return np.uint64(xb[n, c, y, x])
    return np.uint64(0)


@njit(parallel=True, cache=True)
def _conv_stream_toggles(xb, kh, kw, sh, sw, ph, pw, dh, dw, c0, cg, out):
    """Toggles of the im2col matrix's columns streamed row after row (rise
    from zero included, fall to zero excluded), from the bits xb of the input,
    without building the matrix. out (N, cg): the toggles of the columns of
    channel c0 + c over the rows of image n (the transition into its first row
    included).

    Within an output row, consecutive A rows read pixels `sw` apart: column
    (c, i, j) toggles popcount(x[y, q] ^ x[y, q - sw]) at q = ow*sw - pw + j*dw,
    ow = 1 .. OW-1. Per padded input row these are prefix sums S along each
    residue class mod sw, summed over j, counted once for every (i, oh) that
    reads the row; the transitions from one output row (or image) to the next
    are counted one by one."""
    N, _, H, W = xb.shape
    OH = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    Wp = W + 2 * pw
    for task in prange(N * cg):
        n, c = task // cg, task % cg
        ch = c0 + c
        S = np.zeros(Wp, np.int64)
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
                for q in range(Wp):
                    if q < sw:
                        S[q] = 0
                    else:
                        S[q] = S[q - sw] + popcount(_bits_at(xb, n, ch, y, q - pw)
                                                    ^ _bits_at(xb, n, ch, y, q - pw - sw))
                row = 0
                for j in range(kw):
                    row += S[(OW - 1) * sw + j * dw] - S[j * dw]
                tot += readers * row
        for oh in range(OH):          # into (n, oh, 0) from the row before (or the image before)
            pn, poh = n, oh - 1
            if oh == 0:
                pn, poh = n - 1, OH - 1
            for i in range(kh):
                y = oh * sh - ph + i * dh
                py = poh * sh - ph + i * dh
                for j in range(kw):
                    cur = _bits_at(xb, n, ch, y, j * dw - pw)
                    prv = np.uint64(0)
                    if pn >= 0:
                        prv = _bits_at(xb, pn, ch, py, (OW - 1) * sw - pw + j * dw)
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
        _conv_stream_toggles(self.x.view(bits_dtype), *self.geometry, self.c0, self.cg, out)
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


def lower(op: MacOp, fmt: str):
    """The GEMMs of one MAC op, quantized to `fmt`."""
    if op.kind == "conv2d":
        x_n = _quantize_np(op.x, fmt, per_channel=False)
        w_t = _quantize_np(op.w, fmt, per_channel=True, transposed=True)
        base = (fmt, op.kind, sorted(op.params.items()), tuple(op.w.shape))
        return [LoweredGemm(op.name, g, A, B, True, _key(x_n, w_t, base, g))
                for g, A, B in conv_to_gemms(x_n, op.w, op.params, w_t=w_t,
                                             lazy=fmt in INT_STORAGE)]
    if op.kind == "linear":
        A = _quantize_np(op.x, fmt, per_channel=False).reshape(-1, op.x.shape[-1])
        B = _quantize_np(op.w, fmt, per_channel=True, transposed=True)
        return [LoweredGemm(op.name, 0, A, B, True, _key(A, B, fmt, op.kind))]
    a = torch.from_numpy(_quantize_np(op.x, fmt, per_channel=False))
    b = torch.from_numpy(_quantize_np(op.w, fmt, per_channel=False))
    if a.dim() == 1:
        a = a[None, :]
    if b.dim() == 1:
        b = b[:, None]
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = a.expand(*batch, *a.shape[-2:]).reshape(-1, *a.shape[-2:]).contiguous().numpy()
    b = b.expand(*batch, *b.shape[-2:]).reshape(-1, *b.shape[-2:]).contiguous().numpy()
    return [LoweredGemm(op.name, i, a[i], b[i], op.weight_is_param, _key(a[i], b[i], fmt, op.kind))
            for i in range(a.shape[0])]
