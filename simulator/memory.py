"""Memory hierarchy of one GEMM: tiling into the SRAM buffers, DRAM traffic, and its timing.

Owns how one layer's GEMM ``C[m,n] = A[m,k] @ B[k,n]`` (A = ifmap, B = filter)
moves between DRAM and the three on-chip buffers (ifmap, filter, ofmap): the
tile sizes, the DRAM bytes of each operand (with compression and bursts), the
DRAM energy, and the latency once DRAM transfers overlap with compute.
Units: bytes, cycles (of ``technology.frequency_mhz``), pJ.

Rules (``simulate_memory``):

Tiling. A compute tile is ``tile_m x tile_k`` of A, ``tile_k x tile_n`` of B
and ``tile_m x tile_n`` partial sums. Every buffer is double-buffered, so each
tile must fit in HALF of its buffer, with dense footprints (the buffer must
hold a tile whatever its sparsity pattern): ``tile_m*tile_k*operand_bytes``
in ifmap, ``tile_k*tile_n*operand_bytes`` in filter,
``tile_m*tile_n*acc_bytes`` in ofmap. Loop order: output tiles (m, then n)
outer, k tiles inner, so partial sums stay on chip across k. Candidates per
dimension are the powers of two below it and the dimension itself; the
tiling with the fewest total DRAM bytes wins, ties go to the fewest tile
steps, then the largest tile_k, tile_n, tile_m. The A-tile limit applies
even when A is already on chip. If even 1x1x1 does not fit, JoulesimError
names the buffer.

DRAM reads. A (ifmap) is read ``ceil(n / tile_n)`` times (once per output
column tile), but once if the whole of A (dense) fits in half the ifmap
buffer, and never if ``ifmap_on_chip``. B (filter) is read ``ceil(m / tile_m)``
times (once per output row tile), but once if the whole of B fits in half the
filter buffer. C (ofmap) is written once, at ``output_bytes`` per element,
unless ``keep_output_on_chip`` and the whole of C fits in the ofmap buffer
(then ``output_on_chip`` and nothing is written; the check is against the
whole buffer: finished output tiles replace the drained partial sums).
Byte totals are closed-form sums over the loop nest (``_prefix``), never a
per-step array, so a layer of any size costs the same to count.

Compression (``sparsity.compression``) of an operand tile with ``numel``
elements, ``rows`` rows (tile_m for A, tile_k for B), ``b`` bytes per element
and density ``d < 1`` -- a first-order model that assumes every tile has the
layer's average density: ``bitmap`` = d*numel*b + numel/8 (one bit per
element); ``csr`` = d*numel*(b + 2) + (rows + 1)*4 (a 2-byte column index per
non-zero, 4-byte row pointers); ``rle`` = d*numel*(b + 1) (one run-length byte
per non-zero). The format the config names is used, never the cheaper of it
and dense; ``none``, or ``d == 1``, is dense. Outputs are written dense.

N:M-compressed weights (``filter_nm`` = (N, M), set on an array with
``sparsity.structured``). The fraction ``f = filter_nm_fraction`` of B's
columns that lie in conforming weight strips (``simulator.mapping``: the
array runs them compressed) is stored as the array reads it: per column,
``N * ceil(rows / M)`` kept values of ``b`` bytes plus ``log2(M)`` metadata
bits each, so a B tile of ``rows x cols`` stores
``f*cols*N*ceil(rows/M)*(b + log2(M)/8) + (1 - f) * <the rule above>`` bytes
(int8 2:4: 0.625 bytes per element instead of 1). When every column conforms
(``f == 1``) the format guarantees that size for every tile, so it is also
the B tile's footprint in the filter buffer (and the test of B fitting whole);
otherwise the footprint stays dense.

Bursts. Every transfer (one tile of one operand) moves its stored size rounded
up to whole bytes, then to whole ``memory.dram.burst_bytes``; every byte count here includes that rounding.
Energy: ``dram_energy_pj = dram_bytes * 8 * dram_pj_per_bit`` (price from
``resolve_prices``: ``memory.dram.pj_per_bit`` or the kind's preset).

Timing. DRAM moves ``bandwidth_gbps * 1e9 / (frequency_mhz * 1e6)`` bytes per
cycle. A SimPy discrete-event simulation with one event chain per tile step,
never per cycle, and one generator per engine:
- DMA-in waits for a free half of the ifmap/filter double buffer (the step
  two before has been computed), holds the DRAM channel (one transfer at a
  time) for ``bytes / bytes_per_cycle`` cycles to load the step's A and
  B tiles (steps whose tiles are already on chip skip the channel), and hands
  the step over.
- Compute waits, at an output tile's first step, for a free half of the ofmap
  double buffer (the output tile two before has been written back), spends
  the step's share of ``compute_cycles`` on each loaded step, which frees its
  input half, and hands each finished output tile to write-back. The share of
  step i is ``round(C*cum_i/T) - round(C*cum_{i-1}/T)`` (C = compute_cycles,
  cum_i = MACs of steps 0..i, T = all MACs): proportional to the step's MACs
  within one cycle, integers that sum to compute_cycles exactly.
- Write-back holds the DRAM channel for each finished output tile, which
  frees its ofmap half. DMA-in and write-back queue for the channel first
  come, first served (without write-back the loads have it to themselves).
Each hand-over is one SimPy event (loaded, computed, finished, written), and
the channel is a first-come-first-served lock (`_Channel`) that costs an event
only when a transfer has to wait for it, so a tile step costs about four
events. (It replaced a capacity-1 ``simpy.Resource``, whose request and release
events made the DES 1.6x slower, with identical latencies on 6,000 random
pipelines, ties included.)
``latency_cycles`` is when the last write-back ends (the last compute when
the output stays on chip), rounded up to a whole cycle; ``stall_cycles`` =
latency - compute_cycles, so it includes the unavoidable fill (the first
step's load) and drain (the last output tile's write-back).

Event cap. Simulating a tile step costs ~15-30 us of Python, so above
``max_sim_steps`` tile steps (default ``MAX_SIM_STEPS`` = 512: ~15 ms on a
2-core CI machine) the
DES runs on super-steps of ``g = ceil(n_tiles / max_sim_steps)`` consecutive
tile steps: their loads, compute and finished output tiles are summed, and a
super-step is loaded, computed and written back as one unit. Byte counts and
energy are unaffected and the total DRAM and compute times are exact; only
the overlap is coarser (fill and drain become one super-step's), so latency
can exceed the per-tile value by about one super-step's load + compute +
write-back. ``MemoryResult.sim_steps`` says how many steps were simulated
(== n_tiles when exact); ``max_sim_steps=None`` always simulates every tile
(time and memory then grow with n_tiles).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Optional

import numpy as np
import simpy

from simulator.config import HardwareConfig, resolve_prices
from simulator.errors import JoulesimError

__all__ = ["GemmTraffic", "MemoryResult", "simulate_memory", "MAX_SIM_STEPS"]

BYTES_PER_KIB = 1024
BITS_PER_BYTE = 8
BUFFER_SLOTS = 2              # every SRAM buffer is double-buffered
BITMAP_BITS_PER_ELEMENT = 1   # bitmap: one presence bit per element
CSR_INDEX_BYTES = 2           # csr: column index per non-zero
CSR_POINTER_BYTES = 4         # csr: row pointer, rows + 1 of them per tile
RLE_RUN_BYTES = 1             # rle: run length per non-zero
MAX_SIM_STEPS = 512           # DES steps above which tile steps are grouped (see module docstring)
_ROUNDING_SLACK = 1e-9        # float noise tolerated before rounding bytes/cycles up


@dataclass
class GemmTraffic:
    """One layer's GEMM as the memory system sees it: C[m,n] = A[m,k] @ B[k,n], A = ifmap, B = filter."""

    m: int
    k: int
    n: int
    compute_cycles: int           # array cycles of the whole GEMM (from the array model)
    operand_bytes: float          # bytes per A/B element (1 int8, 2 int16/fp16/bf16, 4 fp32)
    output_bytes: float           # bytes per output element written (requantized to the operand format)
    acc_bytes: float              # bytes per partial sum held on chip (accumulator width / 8)
    density_ifmap: float = 1.0    # fraction of non-zeros of A, for compressed formats
    density_filter: float = 1.0   # fraction of non-zeros of B
    ifmap_on_chip: bool = False   # A already in SRAM (previous layer's output stayed on chip): no DRAM read
    keep_output_on_chip: bool = False  # leave C on chip if it fits the ofmap buffer
    filter_nm: Optional[tuple] = None  # (N, M): B's conforming strips are stored N:M-compressed
    filter_nm_fraction: float = 0.0    # fraction of B's columns in conforming strips

    def __post_init__(self) -> None:
        if min(self.m, self.k, self.n) < 1:
            raise ValueError(f"GEMM dimensions must be >= 1, got m={self.m} k={self.k} n={self.n}")
        if self.compute_cycles < 0:
            raise ValueError(f"compute_cycles must be >= 0, got {self.compute_cycles}")
        if min(self.operand_bytes, self.output_bytes, self.acc_bytes) <= 0:
            raise ValueError("operand_bytes, output_bytes and acc_bytes must be > 0")
        if self.filter_nm is not None:
            n_keep, m_group = self.filter_nm
            if not (1 <= n_keep < m_group and m_group & (m_group - 1) == 0):
                raise ValueError(f"filter_nm must be (N, M) with 1 <= N < M, M a power of two, got {self.filter_nm}")
        for name in ("density_ifmap", "density_filter", "filter_nm_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass
class MemoryResult:
    """Tiling, DRAM traffic, time and DRAM energy of one GEMM (bytes, cycles, pJ)."""

    tile_m: int
    tile_k: int
    tile_n: int
    n_tiles: int                  # compute tile steps, one per (m, n, k) tile
    dram_read_bytes_ifmap: int
    dram_read_bytes_filter: int
    dram_write_bytes_ofmap: int
    dram_bytes: int               # total, bursts rounded up
    output_on_chip: bool          # C stayed in the ofmap buffer (no DRAM write)
    latency_cycles: int           # with overlap and stalls
    stall_cycles: int             # latency - compute_cycles (>= 0), fill and drain included
    dram_energy_pj: float         # dram_bytes * 8 * dram pJ/bit
    sim_steps: int = 0            # steps the DES ran (== n_tiles unless grouped by max_sim_steps)


# ----------------------------------------------------------------- bytes
def _nm_stored_bytes(rows, cols, elem_bytes: float, nm):
    """Bytes of a rows x cols block stored N:M-compressed: N kept values per M rows per column, log2(M)
    metadata bits per kept value."""
    n_keep, m_group = nm
    kept = n_keep * -(-np.asarray(rows) // m_group) * cols
    return kept * (elem_bytes + math.log2(m_group) / BITS_PER_BYTE)


def _transfer_bytes(rows, cols, elem_bytes: float, density: float, compression: str, burst: int,
                    nm=None, nm_fraction: float = 0.0):
    """DRAM bytes of one tile transfer (rows x cols elements): stored size, whole bytes, whole bursts.
    ``nm``/``nm_fraction``: that fraction of the columns is stored N:M-compressed (module docstring)."""
    if nm is not None and nm_fraction > 0:
        stored = (nm_fraction * _nm_stored_bytes(rows, cols, elem_bytes, nm)
                  + (1 - nm_fraction) * _stored_bytes(rows, cols, elem_bytes, density, compression))
    else:
        stored = _stored_bytes(rows, cols, elem_bytes, density, compression)
    whole = np.ceil(np.asarray(stored, dtype=np.float64) - _ROUNDING_SLACK)
    return (np.ceil(whole / burst) * burst).astype(np.int64)


def _stored_bytes(rows, cols, elem_bytes: float, density: float, compression: str):
    """Stored size of a rows x cols tile in the config's compression format (float bytes)."""
    numel = rows * cols
    if compression == "none" or density >= 1.0:
        stored = numel * elem_bytes
    elif compression == "bitmap":
        stored = density * numel * elem_bytes + numel * BITMAP_BITS_PER_ELEMENT / BITS_PER_BYTE
    elif compression == "csr":
        stored = density * numel * (elem_bytes + CSR_INDEX_BYTES) + (rows + 1) * CSR_POINTER_BYTES
    elif compression == "rle":
        stored = density * numel * (elem_bytes + RLE_RUN_BYTES)
    else:
        raise ValueError(f"unknown compression {compression!r}")
    return stored


def _sum_tiles(dim: int, tile, count, f):
    """Sum of ``f(size)`` over the first ``count`` tiles of ``dim`` cut every ``tile`` (the last tile may be
    short): full tiles, then the remainder. Broadcasts over arrays."""
    full, rem = dim // tile, dim % tile
    return np.minimum(count, full) * f(tile) + (count > full) * f(rem)


def _tile_size(dim: int, tile, i):
    """Size of tile ``i`` of ``dim`` (0 past the end)."""
    return np.clip(dim - i * tile, 0, tile)


def _loads(j, once: bool, never: bool):
    """How many of the first ``j`` outer tiles (re)load an operand: each of them, only the first, or none."""
    return j * 0 if never else (np.minimum(j, 1) if once else j)


@dataclass
class _Plan:
    """What the rules decide before any tiling: buffer halves, re-reads, output placement, transfer formats."""

    half_bytes: dict          # buffer -> half its capacity, bytes
    a_once: bool              # A fits whole in half the ifmap buffer: read once
    b_once: bool              # B fits whole in half the filter buffer: read once
    output_on_chip: bool      # keep_output_on_chip and C fits the ofmap buffer
    fmt_a: dict               # _transfer_bytes keywords of A, B, C tiles
    fmt_b: dict
    fmt_c: dict


def _filter_footprint(t: GemmTraffic, tk, tn):
    """Bytes a tk x tn B tile occupies in the filter buffer: N:M-compressed when every column conforms
    (the format then guarantees that size), else dense."""
    if t.filter_nm is not None and t.filter_nm_fraction >= 1.0:
        return _nm_stored_bytes(tk, tn, t.operand_bytes, t.filter_nm)
    return tk * tn * t.operand_bytes


def _plan(t: GemmTraffic, cfg: HardwareConfig) -> _Plan:
    half = {name: cfg.memory.sram[name].size_kib * BYTES_PER_KIB / BUFFER_SLOTS for name in cfg.memory.sram}
    burst = cfg.memory.dram.burst_bytes
    comp = cfg.sparsity.compression
    return _Plan(
        half_bytes=half,
        a_once=t.m * t.k * t.operand_bytes <= half["ifmap"],
        b_once=_filter_footprint(t, t.k, t.n) <= half["filter"],
        output_on_chip=t.keep_output_on_chip
        and t.m * t.n * t.output_bytes <= cfg.memory.sram["ofmap"].size_kib * BYTES_PER_KIB,
        fmt_a=dict(elem_bytes=t.operand_bytes, density=t.density_ifmap, compression=comp, burst=burst),
        fmt_b=dict(elem_bytes=t.operand_bytes, density=t.density_filter, compression=comp, burst=burst,
                   nm=t.filter_nm, nm_fraction=t.filter_nm_fraction),
        fmt_c=dict(elem_bytes=t.output_bytes, density=1.0, compression="none", burst=burst),
    )


def _prefix(s, t: GemmTraffic, p: _Plan, tm, tk, tn) -> dict:
    """Totals over tile steps ``0 .. s-1`` (loop order: m, n outer; k inner), in closed form.

    Keys: ``a``, ``b`` (DRAM bytes read of A, B), ``c`` (bytes written: output tiles finished),
    ``macs``, ``outputs`` (output tiles finished). Broadcasts over ``s`` and over tile sizes, so the
    tiling search and the DES step boundaries share one formula and no per-step array is ever built.
    """
    kt, nt = -(-t.k // tk), -(-t.n // tn)
    mi, rest = np.divmod(s, nt * kt)
    ni, ki = np.divmod(rest, kt)
    sm, sn = _tile_size(t.m, tm, mi), _tile_size(t.n, tn, ni)

    # A tile (mi, ki) is loaded at step (mi, ni, ki) for the column tiles ni that _loads counts
    def a_loads(j):
        return _loads(j, p.a_once, t.ifmap_on_chip)

    def a_row(r):  # one row of A tiles (r rows high)
        return _sum_tiles(t.k, tk, kt, lambda c: _transfer_bytes(r, c, **p.fmt_a))

    # the terms of the row tile mi in progress are all zero where every s ends a row of output tiles
    # (ni == ki == 0: the tiling search's totals): skipped there
    partial = bool(np.any(ni) or np.any(ki))
    a = _sum_tiles(t.m, tm, mi, a_row) * a_loads(nt)
    if partial:
        a = a + (a_row(sm) * a_loads(ni) + (a_loads(ni + 1) - a_loads(ni))
                 * _sum_tiles(t.k, tk, ki, lambda c: _transfer_bytes(sm, c, **p.fmt_a)))

    # B tile (ki, ni) is loaded at step (mi, ni, ki) for the row tiles mi that _loads counts
    def b_loads(j):
        return _loads(j, p.b_once, False)

    def b_col(c):  # one column of B tiles (c columns wide)
        return _sum_tiles(t.k, tk, kt, lambda r: _transfer_bytes(r, c, **p.fmt_b))

    b = b_loads(mi) * _sum_tiles(t.n, tn, nt, b_col)
    if partial:
        b = b + ((b_loads(mi + 1) - b_loads(mi))
                 * (_sum_tiles(t.n, tn, ni, b_col)
                    + _sum_tiles(t.k, tk, ki, lambda r: _transfer_bytes(r, sn, **p.fmt_b))))

    # output tile (mi, ni) is finished, and written unless C stays on chip, by its last k step
    c = s * 0
    if not p.output_on_chip:
        def c_row(r):
            return _sum_tiles(t.n, tn, nt, lambda cc: _transfer_bytes(r, cc, **p.fmt_c))
        c = _sum_tiles(t.m, tm, mi, c_row)
        if partial:
            c = c + _sum_tiles(t.n, tn, ni, lambda cc: _transfer_bytes(sm, cc, **p.fmt_c))

    macs = (np.minimum(mi * tm, t.m) * (float(t.n) * t.k) + sm * (np.minimum(ni * tn, t.n) * float(t.k))
            + sm * (sn * np.minimum(ki * tk, t.k).astype(np.float64)))
    return {"a": a, "b": b, "c": c, "macs": macs, "outputs": mi * nt + ni}


def _candidates(dim: int) -> np.ndarray:
    """Tile sizes tried along a dimension: powers of two below it, and the dimension itself."""
    return np.array(sorted({1 << i for i in range(dim.bit_length()) if 1 << i < dim} | {dim}), dtype=np.int64)


def _choose_tiles(t: GemmTraffic, p: _Plan) -> tuple[int, int, int]:
    """The fitting (tile_m, tile_k, tile_n) with the fewest DRAM bytes (ties: fewest steps, larger k, n, m)."""
    tm, tk, tn = (g.ravel() for g in np.meshgrid(_candidates(t.m), _candidates(t.k), _candidates(t.n),
                                                 indexing="ij"))
    fits = ((tm * tk * t.operand_bytes <= p.half_bytes["ifmap"])
            & (_filter_footprint(t, tk, tn) <= p.half_bytes["filter"])
            & (tm * tn * t.acc_bytes <= p.half_bytes["ofmap"]))
    if not fits.any():
        need = {"ifmap": t.operand_bytes, "filter": t.operand_bytes, "ofmap": t.acc_bytes}
        buf = next(b for b in ("ifmap", "filter", "ofmap") if need[b] > p.half_bytes[b])
        raise JoulesimError(f"memory.sram.{buf}.size_kib is too small: half of it (double-buffered) must hold "
                            f"at least one element of {need[buf]:g} bytes")
    tm, tk, tn = tm[fits], tk[fits], tn[fits]
    steps = -(-t.m // tm) * -(-t.k // tk) * -(-t.n // tn)
    at_end = _prefix(steps, t, p, tm, tk, tn)
    total = at_end["a"] + at_end["b"] + at_end["c"]
    best = np.lexsort((-tm, -tn, -tk, steps, total))[0]
    return int(tm[best]), int(tk[best]), int(tn[best])


# ----------------------------------------------------------------- time
class _Channel:
    """The DRAM channel of `_run_pipeline`: one transfer at a time, first come, first served (a
    capacity-1 SimPy resource without its request and release events: taking a free channel and
    giving it back with nobody waiting cost no event; a waiter gets one, succeeded at the release)."""

    def __init__(self, env: simpy.Environment):
        self.env, self.busy, self.waiting = env, False, deque()

    def acquire(self) -> Optional[simpy.Event]:
        """None if the channel is taken now, else the event that hands it over."""
        if not self.busy:
            self.busy = True
            return None
        handover = self.env.event()
        self.waiting.append(handover)
        return handover

    def release(self) -> None:
        if self.waiting:
            self.waiting.popleft().succeed()      # straight to the next in line: still busy
        else:
            self.busy = False


def _run_pipeline(load_cycles, compute_cycles, write_cycles, finishes, write_back: bool) -> float:
    """Tile-level DES of DMA-in, compute and write-back (one generator each); the time the last one ends.

    Step s's input tiles need a free half of the double buffer (step s - BUFFER_SLOTS computed: event
    ``computed[s - 2]``) and are then loaded over the DRAM channel; its compute needs them loaded (event
    ``loaded[s]``). With write-back, the j-th output tile's compute needs a free half of the ofmap
    buffer (output tile j - BUFFER_SLOTS written: ``written[j - 2]``); finished (``finished[j]``), it is
    written over the DRAM channel, which it shares with the loads (`_Channel`, FIFO); without write-back
    the loads have the channel to themselves."""
    load_cycles, compute_cycles = load_cycles.tolist(), compute_cycles.tolist()
    write_cycles, finishes = write_cycles.tolist(), finishes.tolist()
    steps = len(load_cycles)
    outputs = [s for s in range(steps) if finishes[s]] if write_back else []
    env = simpy.Environment()
    loaded = [env.event() for _ in range(steps)]      # step s's A and B tiles are in SRAM
    computed = [env.event() for _ in range(steps)]    # step s computed: its input half is free
    finished = [env.event() for _ in outputs]         # output tile j is complete in the ofmap buffer
    written = [env.event() for _ in outputs]          # ... and written back: its half is free
    dram = _Channel(env) if write_back else None    # the DRAM channel
    end = {"compute": 0.0, "write_back": 0.0}

    def dma_in():
        for s in range(steps):
            if s >= BUFFER_SLOTS:
                yield computed[s - BUFFER_SLOTS]
            if load_cycles[s] > 0:
                if dram is not None:
                    queued = dram.acquire()
                    if queued is not None:
                        yield queued
                yield env.timeout(load_cycles[s])
                if dram is not None:
                    dram.release()
            loaded[s].succeed()

    def compute():
        j = 0                 # the output tile being computed
        for s in range(steps):
            if write_back and j >= BUFFER_SLOTS and (s == 0 or finishes[s - 1]):
                yield written[j - BUFFER_SLOTS]           # its ofmap half, at the tile's first step
            yield loaded[s]
            yield env.timeout(compute_cycles[s])
            computed[s].succeed()
            if write_back and finishes[s]:
                finished[j].succeed()
                j += 1
        end["compute"] = env.now

    def write_back_engine():
        for j, s in enumerate(outputs):
            yield finished[j]
            queued = dram.acquire()
            if queued is not None:
                yield queued
            yield env.timeout(write_cycles[s])
            dram.release()
            written[j].succeed()
        end["write_back"] = env.now

    env.process(dma_in())
    env.process(compute())
    if write_back:
        env.process(write_back_engine())
    env.run()
    return max(end.values())


# ----------------------------------------------------------------- entry point
def simulate_memory(t: GemmTraffic, cfg: HardwareConfig,
                    max_sim_steps: Optional[int] = MAX_SIM_STEPS) -> MemoryResult:
    """Tiling, DRAM bytes, latency and DRAM energy of one GEMM on ``cfg`` (rules in the module docstring).

    ``max_sim_steps``: DES steps above which consecutive tile steps are grouped (None: never group).
    """
    if max_sim_steps is not None and max_sim_steps < 1:
        raise ValueError(f"max_sim_steps must be >= 1 or None, got {max_sim_steps}")
    p = _plan(t, cfg)
    tile_m, tile_k, tile_n = _choose_tiles(t, p)
    n_steps = -(-t.m // tile_m) * -(-t.k // tile_k) * -(-t.n // tile_n)
    group = 1 if max_sim_steps is None or n_steps <= max_sim_steps else -(-n_steps // max_sim_steps)
    bounds = np.minimum(np.arange(-(-n_steps // group) + 1, dtype=np.int64) * group, n_steps)
    pre = _prefix(bounds, t, p, tile_m, tile_k, tile_n)

    # compute cycles at each boundary: round(C * MACs so far / all MACs); differences are the steps' shares
    compute_done = np.rint(pre["macs"] / (float(t.m) * t.k * t.n) * t.compute_cycles)
    bytes_per_cycle = cfg.memory.dram.bandwidth_gbps * 1e9 / (cfg.technology.frequency_mhz * 1e6)
    end = _run_pipeline(load_cycles=np.diff(pre["a"] + pre["b"]) / bytes_per_cycle,
                        compute_cycles=np.diff(compute_done),
                        write_cycles=np.diff(pre["c"]) / bytes_per_cycle,
                        finishes=np.diff(pre["outputs"]) > 0,
                        write_back=not p.output_on_chip)
    latency = max(math.ceil(end - _ROUNDING_SLACK * max(1.0, end)), t.compute_cycles)

    read_a, read_b, write_c = int(pre["a"][-1]), int(pre["b"][-1]), int(pre["c"][-1])
    dram_bytes = read_a + read_b + write_c
    return MemoryResult(
        tile_m=tile_m, tile_k=tile_k, tile_n=tile_n, n_tiles=n_steps,
        dram_read_bytes_ifmap=read_a, dram_read_bytes_filter=read_b, dram_write_bytes_ofmap=write_c,
        dram_bytes=dram_bytes, output_on_chip=p.output_on_chip,
        latency_cycles=latency, stall_cycles=latency - t.compute_cycles,
        dram_energy_pj=dram_bytes * BITS_PER_BYTE * resolve_prices(cfg).dram_pj_per_bit,
        sim_steps=len(bounds) - 1,
    )
