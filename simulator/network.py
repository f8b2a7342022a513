"""Whole-network simulation: `simulate(model, inputs, hw) -> Report`.

Owns the pipeline of DESIGN.md for a PyTorch model: capture (real tensors)
-> lower (quantized GEMMs) -> array simulation per GEMM (`simulate_gemm`)
-> memory hierarchy per GEMM (`simulate_memory`: DRAM traffic, stalls)
-> vector-unit pricing of the non-MAC ops -> a per-layer table.

Layers run one after another (latency adds up). A layer's output stays on
chip when it fits the ofmap buffer; the next MAC layer in execution order
then reads its input from SRAM instead of DRAM (the report's `output_on_chip`
column says which layers did). Leakage is charged over each layer's latency
(stalls included). Results of each GEMM are cached in memory by (operand
content hash, shape, config, mode), so a caller that changes one layer
re-simulates that layer only; memory-hierarchy results, which depend on the
GEMM's shape, cycles and (with compression) densities only, are cached by
those, so layers of one shape share one SimPy run.

Units: energies in µJ in the report (pJ inside), cycles, µs, bytes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from simulator.allocator import keep_freed_memory
from simulator.capture import capture
from simulator.config import HardwareConfig, pinned_prices
from simulator.formats import OPERAND_BITS
from simulator.gemm import _resolve_hw, simulate_gemm
from simulator.lowering import lower
from simulator.mapping import nm_conforming_columns
from simulator.memory import GemmTraffic, simulate_memory
from simulator.report import progress_bar

keep_freed_memory()      # see simulator.allocator: fewer page faults between layers

CACHE_SIZE = 8192
_cache: "OrderedDict[tuple, tuple]" = OrderedDict()
_memory_cache: "OrderedDict[tuple, object]" = OrderedDict()
cache_stats = {"hits": 0, "misses": 0}

ENERGY_COLUMNS = ["energy_mac_uj", "energy_registers_uj", "energy_sram_uj", "energy_dram_uj",
                  "energy_vector_uj", "energy_leakage_uj"]


@dataclass
class Report:
    """`layers`: one row per layer (MAC layers and vector ops, execution
    order); `total`: the per-inference summary; `unmodeled`: ops the
    simulator could not price, with their share of the model's operations."""

    layers: pd.DataFrame
    total: dict
    unmodeled: pd.DataFrame
    config: str
    extra: dict = field(default_factory=dict)


def clear_cache() -> None:
    _cache.clear()
    _memory_cache.clear()
    cache_stats.update(hits=0, misses=0)


def _bounded_put(cache: OrderedDict, key, value) -> None:
    cache[key] = value
    if len(cache) > CACHE_SIZE:
        cache.popitem(last=False)


def _memory(traffic: GemmTraffic, cfg: HardwareConfig, cfg_key: str):
    """`simulate_memory`, memoised on (config, traffic): its result is a function of both alone."""
    key = (cfg_key, dataclasses.astuple(traffic))
    mem = _memory_cache.get(key)
    if mem is None:
        mem = simulate_memory(traffic, cfg)
        _bounded_put(_memory_cache, key, mem)
    return mem


def _config_key(cfg: HardwareConfig) -> str:
    return hashlib.blake2b(cfg.model_dump_json().encode(), digest_size=16).hexdigest()


def _gemm_with_memory(g, cfg, cfg_key, sample_error, seed, ifmap_on_chip):
    key = (cfg_key, g.key, g.weight_is_param, sample_error, seed, ifmap_on_chip)
    hit = _cache.get(key)
    if hit is not None:
        _cache.move_to_end(key)
        cache_stats["hits"] += 1
        return hit + (True,)
    cache_stats["misses"] += 1
    res = simulate_gemm(g.ifmap, g.B, cfg, sample_error=sample_error, seed=seed)
    bits = OPERAND_BITS[cfg.array.operand_format]
    compressed = cfg.sparsity.compression != "none"   # densities only matter when compressed
    # on an N:M array, a weight's conforming strips are stored as the array reads them (compressed)
    nm = cfg.structured_nm if g.weight_is_param else None
    nm_cols = nm_conforming_columns(g.B, cfg.array.cols, nm) if nm is not None else 0
    traffic = GemmTraffic(
        m=res.m, k=res.k, n=res.n, compute_cycles=res.cycles, operand_bytes=bits / 8,
        output_bytes=bits / 8, acc_bytes=cfg.array.accumulator_bits / 8,
        density_ifmap=float(np.count_nonzero(g.A)) / g.A.size if compressed else 1.0,
        density_filter=float(np.count_nonzero(g.B)) / g.B.size if compressed else 1.0,
        ifmap_on_chip=ifmap_on_chip, keep_output_on_chip=True,
        filter_nm=nm if nm_cols else None, filter_nm_fraction=nm_cols / g.B.shape[1])
    mem = _memory(traffic, cfg, cfg_key)
    _bounded_put(_cache, key, (res, mem))
    return res, mem, False


class Workload:
    """A model's captured forward pass, ready to be simulated on many configs:
    the real tensors are captured once, and lowered (quantized, im2col) once
    per operand format on first use."""

    def __init__(self, model, inputs):
        self.capture = capture(model, inputs)
        first = inputs[0] if isinstance(inputs, (tuple, list)) else inputs
        self.batch = int(first.shape[0]) if getattr(first, "dim", lambda: 0)() > 0 else 1
        self._lowered = {}

    def gemms(self, op, fmt):
        key = (op.seq, fmt)
        if key not in self._lowered:
            self._lowered[key] = lower(op, fmt)
        return self._lowered[key]

    def __getstate__(self):   # ship the capture to worker processes, not the lowered copies
        state = dict(self.__dict__)
        state["_lowered"] = {}
        return state


def simulate(model, inputs, hw, *, sample_error: float | None = None, seed: int = 0,
             progress: bool = False) -> Report:
    """Simulate one forward pass of `model` on `inputs` (a batch) on `hw`.
    Energies per inference divide by the batch size."""
    return simulate_workload(Workload(model, inputs), hw, sample_error=sample_error, seed=seed,
                             progress=progress)


def simulate_workload(work: Workload, hw, *, sample_error: float | None = None, seed: int = 0,
                      progress: bool = False) -> Report:
    """Simulate a captured `Workload` on `hw` (see `simulate`)."""
    cfg = _resolve_hw(hw)
    with pinned_prices(cfg) as prices:      # resolved once, not once per layer
        return _simulate_workload(work, cfg, prices, sample_error, seed, progress)


def _simulate_workload(work, cfg, prices, sample_error, seed, progress) -> Report:
    cfg_key = _config_key(cfg)
    cap = work.capture
    batch = work.batch
    fmt = cfg.array.operand_format
    R, C = cfg.array.rows, cfg.array.cols
    freq = prices.frequency_hz
    leak_pj_per_cycle = prices.leakage_w / freq * 1e12
    rows = []
    ops = sorted(cap.mac_ops + cap.vector_ops, key=lambda o: o.seq)
    progress_ctx = progress_bar(progress)
    prev_on_chip = False
    with progress_ctx as bar:
        task = bar.add_task("simulating layers", total=len(ops)) if bar else None
        for op in ops:
            if bar:
                bar.update(task, description=f"{op.name[:40]:40s}")
            if hasattr(op, "macs"):
                row = _mac_layer(op, work.gemms(op, fmt), cfg, cfg_key, sample_error, seed,
                                 prev_on_chip, R, C)
                prev_on_chip = row["output_on_chip"]
            else:
                cycles = math.ceil(op.ops / cfg.vector_unit.lanes)
                row = dict(layer=op.name, kind=op.kind, gemm_shape="", macs=0,
                           cycles=cycles, stall_cycles=0, latency_cycles=cycles, utilization=0.0,
                           energy_mac_uj=0.0, energy_registers_uj=0.0, energy_sram_uj=0.0,
                           energy_dram_uj=0.0, energy_vector_uj=op.ops * prices.vector_op_pj / 1e6,
                           dram_bytes=0, output_on_chip=prev_on_chip, cached=False)
            row["energy_leakage_uj"] = row["latency_cycles"] * leak_pj_per_cycle / 1e6
            row["energy_total_uj"] = sum(row[c] for c in ENERGY_COLUMNS)
            rows.append(row)
            if bar:
                bar.advance(task)
    layers = pd.DataFrame(rows, columns=_COLUMNS)
    for c in ENERGY_COLUMNS + ["energy_total_uj"]:
        layers[c] = layers[c] / batch
    total_ops = cap.total_macs + sum(v.ops for v in cap.vector_ops) + sum(u.elements for u in cap.unmodeled)
    unmodeled = pd.DataFrame(
        [dict(op=u.name, kind=u.kind, output_elements=u.elements,
              share_of_operations=u.elements / total_ops if total_ops else 0.0)
         for u in cap.unmodeled], columns=["op", "kind", "output_elements", "share_of_operations"])
    latency = int(layers["latency_cycles"].sum())
    energy = float(layers["energy_total_uj"].sum())
    total = {
        "config": cfg.name, "batch": batch, "macs_per_inference": cap.total_macs // batch,
        "energy_uj_per_inference": energy,
        **{c.replace("energy_", "").replace("_uj", "") + "_uj": float(layers[c].sum())
           for c in ENERGY_COLUMNS},
        "latency_cycles": latency, "latency_us": latency / freq * 1e6,
        "stall_cycles": int(layers["stall_cycles"].sum()),
        "average_power_mw": energy * batch / (latency / freq * 1e6) * 1e3 if latency else 0.0,
        "dram_bytes": int(layers["dram_bytes"].sum()),
        "layers_output_on_chip": int(layers.loc[layers["kind"].isin(["conv2d", "linear", "matmul"]),
                                                "output_on_chip"].sum()),
        "unmodeled_ops": len(cap.unmodeled),
        "unmodeled_share_of_operations": float(unmodeled["share_of_operations"].sum()),
        "mode": "exact" if sample_error is None else f"sampled ({sample_error:g})",
    }
    return Report(layers, total, unmodeled, cfg.name)


_COLUMNS = ["layer", "kind", "gemm_shape", "macs", "cycles", "stall_cycles", "latency_cycles",
            "utilization"] + ENERGY_COLUMNS + ["energy_total_uj", "dram_bytes", "output_on_chip",
                                               "cached"]


def _mac_layer(op, gemms, cfg, cfg_key, sample_error, seed, prev_on_chip, R, C):
    acc = dict(cycles=0, stall=0, latency=0, mac=0.0, reg=0.0, sram=0.0, dram=0.0, dram_bytes=0,
               issued=0)
    on_chip, cached = True, True
    for g in gemms:
        res, mem, hit = _gemm_with_memory(g, cfg, cfg_key, sample_error, seed,
                                          prev_on_chip and g.part == 0 and len(gemms) == 1)
        e = res.energy_pj
        acc["cycles"] += res.cycles
        acc["stall"] += mem.stall_cycles
        acc["latency"] += mem.latency_cycles
        acc["mac"] += e["mac_mult"] + e["mac_add"] + e["gating_overhead"]
        acc["reg"] += sum(v for k, v in e.items() if k.startswith("reg_"))
        acc["sram"] += sum(v for k, v in e.items() if k.startswith("sram_"))
        acc["dram"] += mem.dram_energy_pj
        acc["dram_bytes"] += mem.dram_bytes
        acc["issued"] += res.counts.macs_issued
        on_chip &= mem.output_on_chip
        cached &= hit
    shape = gemms[0].ifmap.shape[0], gemms[0].ifmap.shape[1], gemms[0].B.shape[1]
    gshape = f"{shape[0]}x{shape[1]}x{shape[2]}" + (f" x{len(gemms)}" if len(gemms) > 1 else "")
    return dict(layer=op.name, kind=op.kind, gemm_shape=gshape, macs=op.macs, cycles=acc["cycles"],
                stall_cycles=acc["stall"], latency_cycles=acc["latency"],
                utilization=acc["issued"] / (acc["cycles"] * R * C) if acc["cycles"] else 0.0,
                energy_mac_uj=acc["mac"] / 1e6, energy_registers_uj=acc["reg"] / 1e6,
                energy_sram_uj=acc["sram"] / 1e6, energy_dram_uj=acc["dram"] / 1e6,
                energy_vector_uj=0.0, dram_bytes=acc["dram_bytes"], output_on_chip=on_chip,
                cached=cached)
