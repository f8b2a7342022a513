"""Process heap settings for whole-network simulation.

A network simulation allocates and frees many arrays of 0.1-50 MB per layer
(captured activations, quantized weights, sampled rows). glibc's malloc serves
such sizes with fresh mmap()s, or trims them off the heap when freed, so the
next layer touches new pages: on a 2-core VM about 10,000 page faults per
sampled ResNet-18 simulation, some 8% of its time (A/B runs with and without). `keep_freed_memory` raises the
mmap threshold to 32 MiB (glibc's maximum) and the trim threshold to 256 MiB,
so freed memory stays in the heap and is reused; peak RSS is unchanged, but the
process keeps up to 256 MiB of freed heap instead of returning it to the OS.

Applied once, on importing `simulator.network`, where the C library is glibc;
set JOULESIM_KEEP_FREED_MEMORY=0 to leave malloc as it is.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1           # mallopt parameters (glibc <malloc.h>)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20   # the largest glibc accepts on 64-bit
TRIM_THRESHOLD_BYTES = 256 << 20

_applied = False


def keep_freed_memory() -> bool:
    """Set the thresholds above (once per process); True if they are in effect."""
    global _applied
    if _applied:
        return True
    if os.environ.get("JOULESIM_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):     # not glibc (macOS, musl, Windows): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                    and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    return _applied
