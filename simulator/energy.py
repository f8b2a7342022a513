"""Energy accounting: event counts x per-event prices, in pJ.

Owns the calibration of the value-dependent MAC model and the breakdown of a
simulated GEMM into components. Every component is one event count times one
price named by the config (see `simulator.config.resolve_prices`, which says
where each price comes from):

| component | event (count) | price |
|---|---|---|
| mac_mult | multiplier-input bit toggles | mult_pj / operand_bits |
| mac_add | adder-output (partial-sum) bit toggles | add_pj / adder_toggles_per_op |
| gating_overhead | issued MACs (zero-gating only) | gating_overhead_pj_per_mac |
| reg_forwarding, reg_stationary, reg_psum, reg_mult_inputs | register bit toggles | register_pj_per_bit |
| sram_ifmap / sram_filter | operand bits read | the buffer's read pJ/bit |
| sram_ofmap_write / sram_psum_read | partial-sum bits (accumulator width) written / read back | the ofmap buffer's write / read pJ/bit |
| sram_metadata | metadata bits read | metadata_pj_per_bit |
| leakage | cycles | static_power_w / frequency_hz |

Calibration (DESIGN.md): uniformly random operands must cost the table's
per-operation energy. Each multiplier input bit of a uniformly random
operand stream flips with probability 1/2, i.e. `operand_bits` toggles per
multiply over both inputs, hence mult_pj / operand_bits per toggle. The adder
output is not uniformly random even for random operands (high accumulator
bits flip rarely), so its toggles per operation are measured once per
(format, accumulator width) by `adder_toggles_per_op`: a plain-numpy run of
uniformly random operand products accumulated over `CALIBRATION_DEPTH`
steps, the output-stationary accumulation. Shorter accumulations flip more
bits per add, longer ones fewer (about +-6% between depth 64 and 1024 for int8).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from simulator.formats import FLOAT_FORMATS, OPERAND_BITS, encode, random_operand

CALIBRATION_DEPTH = 512
CALIBRATION_STREAMS = 256

REGISTER_CLASSES = ("forwarding", "stationary", "psum", "mult_inputs")


@lru_cache(maxsize=None)
def adder_toggles_per_op(fmt: str, acc_bits: int) -> float:
    """Mean accumulator bit toggles per add for uniformly random operands."""
    rng = np.random.default_rng(20261128)
    shape = (CALIBRATION_STREAMS, CALIBRATION_DEPTH)
    a = encode(random_operand(shape, fmt, rng), fmt, acc_bits).values
    b = encode(random_operand(shape, fmt, rng), fmt, acc_bits).values
    if fmt in FLOAT_FORMATS:
        prod = a.astype(np.float32) * b.astype(np.float32)
        sums = np.cumsum(prod, axis=1, dtype=np.float32)
        bits = sums.view(np.uint32).astype(np.uint64)
    else:
        sums = np.cumsum(a.astype(np.int64) * b.astype(np.int64), axis=1)
        bits = sums.astype(np.uint64) & np.uint64((1 << acc_bits) - 1)
    prev = np.roll(bits[:, -1], 1)   # each stream starts from the previous one's result
    seq = np.concatenate([prev[:, None], bits], axis=1)
    toggles = np.bitwise_count(seq[:, 1:] ^ seq[:, :-1]).sum()
    return float(toggles) / (shape[0] * shape[1])


def energy_breakdown(prices, fmt: str, acc_bits: int, toggles: dict, counts, macs_gated: int,
                     zero_gating: bool):
    """Return ({component: pJ}, {component: (event count, event unit, pJ per event)})."""
    bits = OPERAND_BITS[fmt]
    events = {
        "mac_mult": (toggles["mult_inputs"], "mult-input toggles",
                     prices.mult_pj / bits),
        "mac_add": (toggles["psum"], "adder-out toggles",
                    prices.add_pj / adder_toggles_per_op(fmt, acc_bits)),
        "gating_overhead": (counts.macs_issued if zero_gating else 0, "issued MACs",
                            prices.gating_overhead_pj_per_mac),
    }
    for cls in REGISTER_CLASSES:
        events[f"reg_{cls}"] = (toggles[cls], "bit toggles", prices.register_pj_per_bit)
    sram = prices.sram_pj_per_bit
    events["sram_ifmap"] = (counts.sram_reads_ifmap * bits, "bits read", sram["ifmap"])
    events["sram_filter"] = (counts.sram_reads_filter * bits, "bits read", sram["filter"])
    events["sram_ofmap_write"] = (counts.sram_writes_ofmap * acc_bits, "bits written",
                                  prices.sram_write_pj_per_bit["ofmap"])
    events["sram_psum_read"] = (counts.sram_reads_psum * acc_bits, "bits read", sram["ofmap"])
    events["sram_metadata"] = (counts.metadata_bits, "bits read",
                               prices.metadata_pj_per_bit)
    events["leakage"] = (counts.cycles, "cycles", prices.leakage_w / prices.frequency_hz * 1e12)
    energy = {k: float(n) * float(p) for k, (n, _, p) in events.items()}
    return energy, events
