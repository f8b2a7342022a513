"""Number formats: operands as the bit patterns the hardware registers hold.

Owns the encoding of real tensors into the array's operand format:
int8/int16 as two's complement with a symmetric per-tensor scale, fp16/fp32 as
IEEE bit patterns, bf16 as the upper half of fp32 rounded to nearest even.
An `Operand` carries both the raw bits (unsigned ints, for toggle counting)
and the values the multiplier sees (int32/int64 or float32, for partial sums).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.errors import JoulesimError

OPERAND_BITS = {"int8": 8, "int16": 16, "fp16": 16, "bf16": 16, "fp32": 32}
BITS_DTYPE = {8: np.uint8, 16: np.uint16, 32: np.uint32}   # unsigned dtype of a bit pattern, by width
INT_STORAGE = {"int8": np.int8, "int16": np.int16}   # signed dtype that holds an int format's codes
FLOAT_FORMATS = ("fp16", "bf16", "fp32")


@dataclass(frozen=True)
class Operand:
    """One GEMM operand in the array's number format.

    bits:   unsigned bit patterns, shape (rows, cols), dtype uint8/16/32.
    values: what the multiplier computes with: int32 (accumulator <= 32 bits),
            int64 (wider accumulator) or float32 (float formats).
    scale:  real value = values * scale (1.0 for float formats).
    """

    bits: np.ndarray
    values: np.ndarray
    scale: float
    fmt: str


def value_dtype(fmt: str, acc_bits: int):
    if fmt in FLOAT_FORMATS:
        return np.float32
    return np.int32 if acc_bits <= 32 else np.int64


def _bf16_bits(x32: np.ndarray) -> np.ndarray:
    u = np.ascontiguousarray(x32, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounding = ((u >> 16) & 1) + 0x7FFF
    return ((u + rounding) >> 16).astype(np.uint16)


def encode(x, fmt: str, acc_bits: int = 32, name: str = "operand") -> Operand:
    """Encode a real or integer array into `fmt`.

    Integer input for int formats is taken as already quantized (must fit the
    width); float input is quantized symmetric per tensor:
    scale = max|x| / (2^(b-1) - 1), q = clip(round(x / scale)).
    """
    if fmt not in OPERAND_BITS:
        raise JoulesimError(f"unknown operand format {fmt!r}: allowed {', '.join(OPERAND_BITS)}")
    a = np.asarray(x)
    if a.ndim != 2:
        raise JoulesimError(f"{name} must be a 2-D matrix, got shape {a.shape}")
    if a.dtype.kind not in "iuf b":
        raise JoulesimError(f"{name} has non-numeric dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise JoulesimError(f"{name} contains NaN or Inf")
    bits = OPERAND_BITS[fmt]
    vdt = value_dtype(fmt, acc_bits)
    if fmt in ("int8", "int16"):
        qmax = 2 ** (bits - 1) - 1
        storage = INT_STORAGE[fmt]
        if a.dtype == storage:      # already quantized in the storage dtype (lowering's output)
            return Operand(np.ascontiguousarray(a).view(BITS_DTYPE[bits]),
                           np.ascontiguousarray(a, dtype=vdt), 1.0, fmt)
        if a.dtype.kind in "iub":
            q = a.astype(np.int64)
            if q.size and (q.min() < -qmax - 1 or q.max() > qmax):
                raise JoulesimError(
                    f"{name} has integers outside the {fmt} range [{-qmax - 1}, {qmax}]")
            scale = 1.0
        else:
            amax = float(np.max(np.abs(a))) if a.size else 0.0
            scale = amax / qmax if amax > 0 else 1.0
            q = np.clip(np.rint(a / scale), -qmax - 1, qmax).astype(np.int64)
        signed = q.astype(storage)
        return Operand(np.ascontiguousarray(signed.view(BITS_DTYPE[bits])),
                       np.ascontiguousarray(q.astype(vdt)), scale, fmt)
    if fmt == "fp16":
        h = a.astype(np.float16)
        if not np.all(np.isfinite(h)):
            raise JoulesimError(f"{name} overflows fp16 (|x| > 65504)")
        return Operand(np.ascontiguousarray(h.view(np.uint16)),
                       np.ascontiguousarray(h.astype(np.float32)), 1.0, fmt)
    if fmt == "bf16":
        b = _bf16_bits(a.astype(np.float32))
        vals = (b.astype(np.uint32) << 16).view(np.float32)
        return Operand(np.ascontiguousarray(b), np.ascontiguousarray(vals), 1.0, fmt)
    f = np.ascontiguousarray(a.astype(np.float32))
    return Operand(f.view(np.uint32).copy(), f, 1.0, fmt)


def random_operand(shape, fmt: str, rng: np.random.Generator, zero_fraction: float = 0.0):
    """Uniformly random operand values of the format (ints: every code equally
    likely; floats: standard normal), with a fraction of exact zeros."""
    bits = OPERAND_BITS[fmt]
    if fmt in ("int8", "int16"):
        x = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), size=shape)
    else:
        x = rng.standard_normal(shape).astype(np.float32)
    if zero_fraction > 0:
        x = np.where(rng.random(shape) < zero_fraction, 0, x)
    return x
