"""Lowering: every captured MAC op becomes one or more GEMMs with real,
quantized operands, in the order the array streams them.

Owns the quantization to the array's number format (int8/int16: symmetric
per-tensor activations, per-output-channel weights; fp16/bf16/fp32: casts,
done by `simulator.formats.encode`) and the conv -> GEMM transform:
- conv2d: im2col (`F.unfold`): A rows = output pixels (batch folded into M,
  order n, oh, ow), A columns = (c, kh, kw) of one group; B = that group's
  filters (K x Cout/g). A grouped conv is one GEMM per group (depthwise: K = kh*kw).
- linear: A = input rows (all leading dims folded into M), B = W^T.
- matmul/bmm: one GEMM per batch index; both operands are activations.
The integer GEMM of a lowered conv equals `F.conv2d` on the same quantized
integers (tests/test_lowering.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from simulator.capture import MacOp
from simulator.formats import FLOAT_FORMATS, OPERAND_BITS


@dataclass
class LoweredGemm:
    layer: str            # the MacOp's name
    part: int             # group / batch index within the layer
    A: np.ndarray         # (M, K) quantized integers (int formats) or floats
    B: np.ndarray         # (K, N)
    weight_is_param: bool


def _qmax(fmt):
    return 2 ** (OPERAND_BITS[fmt] - 1) - 1


def quantize_tensor(x: torch.Tensor, fmt: str) -> torch.Tensor:
    """Symmetric per-tensor quantization to integers (int formats); floats pass."""
    if fmt in FLOAT_FORMATS:
        return x.float()
    amax = x.abs().max()
    scale = amax / _qmax(fmt) if amax > 0 else torch.tensor(1.0)
    return torch.clamp(torch.round(x / scale), -_qmax(fmt) - 1, _qmax(fmt))


def quantize_per_channel(w: torch.Tensor, fmt: str) -> torch.Tensor:
    """Symmetric per-output-channel (dim 0) quantization of a weight."""
    if fmt in FLOAT_FORMATS:
        return w.float()
    flat = w.reshape(w.shape[0], -1)
    amax = flat.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / _qmax(fmt), torch.ones_like(amax))
    q = torch.clamp(torch.round(flat / scale[:, None]), -_qmax(fmt) - 1, _qmax(fmt))
    return q.reshape(w.shape)


def _np(t: torch.Tensor, fmt: str) -> np.ndarray:
    if fmt in FLOAT_FORMATS:
        return np.ascontiguousarray(t.detach().float().numpy())
    return np.ascontiguousarray(t.detach().to(torch.int64).numpy())


def conv_to_gemms(x_q: torch.Tensor, w_q: torch.Tensor, params: dict):
    """im2col of quantized conv operands: yields (group, A (M, K), B (K, N))."""
    groups = params["groups"]
    kh, kw = w_q.shape[2], w_q.shape[3]
    cin_g = x_q.shape[1] // groups
    cout_g = w_q.shape[0] // groups
    cols = F.unfold(x_q.double(), (kh, kw), dilation=params["dilation"],
                    padding=params["padding"], stride=params["stride"])   # (N, C*kh*kw, L)
    n, _, L = cols.shape
    cols = cols.reshape(n, groups, cin_g * kh * kw, L)
    for g in range(groups):
        A = cols[:, g].permute(0, 2, 1).reshape(n * L, cin_g * kh * kw)
        B = w_q[g * cout_g:(g + 1) * cout_g].reshape(cout_g, -1).T
        yield g, A, B


def lower(op: MacOp, fmt: str):
    """The GEMMs of one MAC op, quantized to `fmt`."""
    if op.kind == "conv2d":
        x_q = quantize_tensor(op.x, fmt)
        w_q = quantize_per_channel(op.w, fmt)
        return [LoweredGemm(op.name, g, _np(A, fmt), _np(B, fmt), True)
                for g, A, B in conv_to_gemms(x_q, w_q, op.params)]
    if op.kind == "linear":
        A = quantize_tensor(op.x, fmt).reshape(-1, op.x.shape[-1])
        B = quantize_per_channel(op.w, fmt).T
        return [LoweredGemm(op.name, 0, _np(A, fmt), _np(B, fmt), True)]
    a, b = quantize_tensor(op.x, fmt), quantize_tensor(op.w, fmt)
    if a.dim() == 1:
        a = a[None, :]
    if b.dim() == 1:
        b = b[:, None]
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = a.expand(*batch, *a.shape[-2:]).reshape(-1, *a.shape[-2:])
    b = b.expand(*batch, *b.shape[-2:]).reshape(-1, *b.shape[-2:])
    return [LoweredGemm(op.name, i, _np(a[i], fmt), _np(b[i], fmt), op.weight_is_param)
            for i in range(a.shape[0])]
