"""Technology energy tables and the rule that prices any node, width and SRAM size (all energies in pJ).

This module owns the *published* per-event energies and the documented way to
derive every other price from them. It knows nothing about configs; the
config layer (``simulator.config.resolve_prices``) calls it.

Tables (evidence tags as in ``shared/REFERENCES.md``)
------------------------------------------------------
``HOROWITZ_45NM`` -- Horowitz, "Computing's Energy Problem", ISSCC 2014, 45 nm,
0.9 V [S] (REFERENCES 2.1; reproduced by several independent sources, the
primary was not opened). Per operation: int8 add 0.03, int8 mult 0.2, int32
add 0.1, int32 mult 3.1, fp16 add 0.4, fp16 mult 1.1, fp32 add 0.9, fp32 mult
3.7 pJ. SRAM per 64-bit access: 8 KiB 10 pJ, 32 KiB 20 pJ, 1 MiB 100 pJ.

``JOUPPI_7NM`` -- Jouppi et al., "Ten Lessons From Three Generations Shaped
Google's TPUv4i", ISCA 2021, which updates Horowitz's table to 7 nm [V for the
update, S for the values] (REFERENCES 2.3): int8 add 0.007, int32 add 0.03,
int8 mult 0.07, fp32 add 0.38, fp32 mult 1.31 pJ; SRAM 8 KiB 7.5 pJ, 1 MiB
14 pJ. Caveat: reproductions disagree on the SRAM access width (one says
32-bit reads, another 64-bit); we *assume* 64-bit accesses like the 45 nm
table. The table's supply voltage is not given in the copies read: we
*assume* 0.75 V [U].

``DRAM_PJ_PER_BIT`` -- Accelergy DRAM table (``hwcomponents-cacti``
``type2energy``) [V] (REFERENCES 2.5): hbm2 3.9, lpddr4 8, gddr5 14, ddr3 70
pJ/bit (device level, not the whole SoC path).

The pricing rule (every function below applies it, in this order)
-----------------------------------------------------------------
1. *Formats within one table.* ``bf16`` and ``fp16`` use the fp16 entries.
   A missing integer width takes the table's nearest integer entry of the
   same operation (nearest in bits; a tie goes to the narrower one) and
   scales it: multiply by ``(bits/bits_entry)**2``, add by
   ``bits/bits_entry``. So int16 mult at 45 nm = 0.2 * 4 = 0.8 pJ.
2. *Missing from the 7 nm table* (no entry of that operation and kind, e.g.
   fp16): the 45 nm entry times ``LOGIC_RATIO_7_45``, the geometric mean of
   the 7nm/45nm ratios over the logic entries both tables have (int8 add,
   int32 add, int8 mult, fp32 add, fp32 mult; = 0.326).
3. *SRAM size.* Per 64-bit access, log-log interpolation between the
   table's sizes, extrapolated beyond them with the end segments' slopes. An
   access of ``w`` bits costs ``E64 * w / 64``, so the price per bit is
   ``E64 / 64``. The 7 nm 32 KiB entry comes from this interpolation
   (8.96 pJ), not from rule 2 (which would give 6.48 pJ, *below* the 8 KiB
   entry: energy would fall with size).
4. *Node.* Inside [7, 45] nm, per entry, a power law through both tables:
   ``E(node) = E45 * (node/45)**alpha``, ``alpha = log(E45/E7)/log(45/7)``;
   it returns the tables exactly at 45 and 7 nm. Outside, the same kind of
   power law continues from the nearer table, but with one exponent per kind
   (``ALPHA_LOGIC`` = 0.603 from ``LOGIC_RATIO_7_45``, ``ALPHA_SRAM`` = 0.605
   from ``SRAM_RATIO_7_45`` = 0.324, the geometric mean over the SRAM sizes
   both tables have). Why not each entry's own alpha: the SRAM alphas range
   from 0.15 (8 KiB) to 1.06 (1 MiB), so below ~3.5 nm a 1 MiB SRAM would
   cost less per access than an 8 KiB one; one exponent keeps the nearer
   table's ordering. Where ``E7 >= E45`` (only SRAM sizes below ~3.7 KiB, both
   tables extrapolated) the 7 nm value is taken as ``E45``: energy never
   rises as the node shrinks. The result is continuous, increasing with the
   node, and (for SRAM) increasing with the size.
5. *Voltage* (only when the config gives one): times ``(V / V_nom)**2``
   (dynamic energy ~ C V^2), with ``V_nom`` = 0.9 V at 45 nm, 0.75 V at 7 nm
   [U], and the same log-log law in between (its own exponent beyond).
6. *Register (flip-flop) energy per bit toggle*: no verified figure exists;
   we *estimate* it as the int8 add energy at the node / 8.

Named tables (``table=``): ``"auto"`` applies the rule above at the node;
``"horowitz45"`` / ``"jouppi7"`` price from that one table as published (rules
1-3, 5 and 6 only: ``node_nm`` is not used, and rule 2 still fills 7 nm gaps).

Sanity check (not a fit): at 65 nm the rule gives an int16 MAC (int16 mult +
int32 add) of ~1.1 pJ and a 64 KiB SRAM 16-bit read of ~8.6 pJ, i.e. ~7.7x the
MAC, against Eyeriss's normalized 6x for its 100-500 kB global buffer [S]
(REFERENCES 2.2).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, NamedTuple

from simulator.errors import JoulesimError

__all__ = [
    "EnergyTable",
    "HOROWITZ_45NM",
    "JOUPPI_7NM",
    "TABLES",
    "DRAM_PJ_PER_BIT",
    "LOGIC_RATIO_7_45",
    "SRAM_RATIO_7_45",
    "ALPHA_LOGIC",
    "ALPHA_SRAM",
    "PricedEnergy",
    "nominal_voltage_v",
    "op_energy_pj",
    "op_energy_with_source",
    "sram_energy_pj_per_bit",
    "sram_energy_with_source",
    "register_energy_pj_per_bit",
    "register_energy_with_source",
    "dram_pj_per_bit",
]

OPS = ("mult", "add")
SRAM_ACCESS_BITS = 64  # the tables' SRAM entries are per 64-bit access


@dataclass(frozen=True)
class EnergyTable:
    """One published energy table: per-op energies (pJ/op) and SRAM energies (pJ per 64-bit access)."""

    name: str
    citation: str
    node_nm: float
    voltage_v: float
    ops_pj: Mapping[tuple[str, str], float]  # (op, fmt) -> pJ per operation
    sram_pj_per_64b: Mapping[float, float]  # size in KiB -> pJ per 64-bit access


HOROWITZ_45NM = EnergyTable(
    name="horowitz45",
    citation="Horowitz ISSCC'14 [S]",
    node_nm=45.0,
    voltage_v=0.9,
    ops_pj=MappingProxyType({
        ("add", "int8"): 0.03, ("mult", "int8"): 0.2,
        ("add", "int32"): 0.1, ("mult", "int32"): 3.1,
        ("add", "fp16"): 0.4, ("mult", "fp16"): 1.1,
        ("add", "fp32"): 0.9, ("mult", "fp32"): 3.7,
    }),
    sram_pj_per_64b=MappingProxyType({8.0: 10.0, 32.0: 20.0, 1024.0: 100.0}),
)

JOUPPI_7NM = EnergyTable(
    name="jouppi7",
    citation="Jouppi ISCA'21 [S]",
    node_nm=7.0,
    voltage_v=0.75,  # [U] assumption: the copies read do not state the voltage
    ops_pj=MappingProxyType({
        ("add", "int8"): 0.007, ("add", "int32"): 0.03, ("mult", "int8"): 0.07,
        ("add", "fp32"): 0.38, ("mult", "fp32"): 1.31,
    }),
    # per 64-bit access *assumed*: reproductions disagree on the width (REFERENCES 2.3)
    sram_pj_per_64b=MappingProxyType({8.0: 7.5, 1024.0: 14.0}),
)

TABLES: Mapping[str, EnergyTable] = MappingProxyType({t.name: t for t in (HOROWITZ_45NM, JOUPPI_7NM)})

# Accelergy DRAM table [V] (REFERENCES 2.5), pJ per bit moved.
DRAM_PJ_PER_BIT: Mapping[str, float] = MappingProxyType({"hbm2": 3.9, "lpddr4": 8.0, "gddr5": 14.0, "ddr3": 70.0})


def _geomean_ratio(num: EnergyTable, den: EnergyTable) -> float:
    common = sorted(set(num.ops_pj) & set(den.ops_pj))
    logs = [math.log(num.ops_pj[k] / den.ops_pj[k]) for k in common]
    return math.exp(sum(logs) / len(logs))


def _geomean_sram_ratio(num: EnergyTable, den: EnergyTable) -> float:
    common = sorted(set(num.sram_pj_per_64b) & set(den.sram_pj_per_64b))
    logs = [math.log(num.sram_pj_per_64b[k] / den.sram_pj_per_64b[k]) for k in common]
    return math.exp(sum(logs) / len(logs))


_LOG_NODE_SPAN = math.log(45.0 / 7.0)
LOGIC_RATIO_7_45 = _geomean_ratio(JOUPPI_7NM, HOROWITZ_45NM)  # ~0.326 (rules 2 and 4)
SRAM_RATIO_7_45 = _geomean_sram_ratio(JOUPPI_7NM, HOROWITZ_45NM)  # ~0.324 (rule 4)
ALPHA_LOGIC = -math.log(LOGIC_RATIO_7_45) / _LOG_NODE_SPAN  # ~0.603: node exponent outside [7, 45] nm
ALPHA_SRAM = -math.log(SRAM_RATIO_7_45) / _LOG_NODE_SPAN  # ~0.605


class PricedEnergy(NamedTuple):
    """A price and a one-line note saying where it came from."""

    pj: float
    source: str


def _g(x: float) -> str:
    return f"{x:.4g}"


# ----------------------------------------------------------------- formats
_INT_RE = re.compile(r"^int(\d+)$")


def _parse_fmt(fmt: str) -> tuple[str, int]:
    """'int8' -> ('int', 8); 'fp16'/'bf16' -> ('fp', 16); 'fp32' -> ('fp', 32)."""
    if fmt in ("fp16", "bf16"):
        return "fp", 16
    if fmt == "fp32":
        return "fp", 32
    m = _INT_RE.match(fmt)
    if m and 1 <= int(m.group(1)) <= 128:
        return "int", int(m.group(1))
    raise JoulesimError(f"number format {fmt!r}: allowed: int<bits> (1..128, e.g. int8, int32), fp16, bf16, fp32")


def _check_op(op: str) -> None:
    if op not in OPS:
        raise JoulesimError(f"operation {op!r}: allowed: {', '.join(OPS)}")


def _table_entry(table: EnergyTable, op: str, fmt: str) -> PricedEnergy:
    """Rules 1-2: the energy of (op, fmt) in ``table``, derived when the table lacks it."""
    kind, bits = _parse_fmt(fmt)
    key = f"{kind}{bits}"
    alias = f" ({fmt} priced as fp16)" if fmt == "bf16" else ""
    if (op, key) in table.ops_pj:
        v = table.ops_pj[(op, key)]
        return PricedEnergy(v, f"{key} {op} {_g(v)} pJ{alias} [{table.citation}]")
    if kind == "int":
        entries = [(int(f[3:]), e) for (o, f), e in table.ops_pj.items() if o == op and f.startswith("int")]
        if entries:
            b0, e0 = min(entries, key=lambda be: (abs(be[0] - bits), be[0]))
            exponent = 2 if op == "mult" else 1
            v = e0 * (bits / b0) ** exponent
            return PricedEnergy(
                v, f"{key} {op} = int{b0} {_g(e0)} pJ x ({bits}/{b0})^{exponent} = {_g(v)} pJ "
                   f"[{table.citation}; width rule]")
    if table is not HOROWITZ_45NM:
        ref = _table_entry(HOROWITZ_45NM, op, fmt)
        ratio = _geomean_ratio(table, HOROWITZ_45NM)
        v = ref.pj * ratio
        return PricedEnergy(v, f"{key} {op}{alias} = 45 nm {_g(ref.pj)} pJ x {table.name}/45nm geomean ratio "
                               f"{ratio:.3f} = {_g(v)} pJ [missing-entry rule]")
    raise JoulesimError(f"no {op} energy for {fmt} in table {table.name}")


def _sram_table_entry(table: EnergyTable, size_kib: float) -> float:
    """Rule 3: pJ per 64-bit access at ``size_kib`` by log-log interpolation in one table."""
    if not size_kib > 0:
        raise JoulesimError(f"SRAM size {size_kib!r} KiB: must be > 0")
    pts = sorted(table.sram_pj_per_64b.items())
    if size_kib in table.sram_pj_per_64b:
        return table.sram_pj_per_64b[size_kib]
    if size_kib < pts[0][0]:
        (s0, e0), (s1, e1) = pts[0], pts[1]
    elif size_kib > pts[-1][0]:
        (s0, e0), (s1, e1) = pts[-2], pts[-1]
    else:
        i = max(j for j, (s, _) in enumerate(pts) if s < size_kib)
        (s0, e0), (s1, e1) = pts[i], pts[i + 1]
    slope = math.log(e1 / e0) / math.log(s1 / s0)
    return e0 * (size_kib / s0) ** slope


# ----------------------------------------------------------------- node and voltage
def _power_law(e45: float, e7: float, node_nm: float, alpha_out: float | None) -> float:
    """Rule 4: through (45 nm, e45) and (7 nm, e7) inside [7, 45]; exponent ``alpha_out`` outside.

    ``alpha_out=None`` continues with the entry's own exponent (used for the nominal voltage).
    """
    e7 = min(e7, e45)  # energy never rises as the node shrinks
    if node_nm == HOROWITZ_45NM.node_nm:
        return e45
    if node_nm == JOUPPI_7NM.node_nm:
        return e7
    alpha = math.log(e45 / e7) / _LOG_NODE_SPAN
    if node_nm > HOROWITZ_45NM.node_nm:
        return e45 * (node_nm / HOROWITZ_45NM.node_nm) ** (alpha if alpha_out is None else alpha_out)
    if node_nm < JOUPPI_7NM.node_nm:
        return e7 * (node_nm / JOUPPI_7NM.node_nm) ** (alpha if alpha_out is None else alpha_out)
    return e45 * (node_nm / HOROWITZ_45NM.node_nm) ** alpha


def _check_node(node_nm: float) -> None:
    if not (isinstance(node_nm, (int, float)) and node_nm > 0 and math.isfinite(node_nm)):
        raise JoulesimError(f"technology node {node_nm!r} nm: must be a number > 0")


def _check_table(table: str) -> None:
    if table != "auto" and table not in TABLES:
        raise JoulesimError(f"energy table {table!r}: allowed: auto, {', '.join(TABLES)}")


def nominal_voltage_v(node_nm: float, table: str = "auto") -> float:
    """The voltage the prices at ``node_nm`` assume (rule 5): 0.9 V at 45 nm, 0.75 V at 7 nm [U], log-log between."""
    _check_table(table)
    if table != "auto":
        return TABLES[table].voltage_v
    _check_node(node_nm)
    return _power_law(HOROWITZ_45NM.voltage_v, JOUPPI_7NM.voltage_v, node_nm, None)


def _voltage_factor(node_nm: float, voltage_v: float | None, table: str) -> tuple[float, str]:
    if voltage_v is None:
        return 1.0, ""
    if not (isinstance(voltage_v, (int, float)) and voltage_v > 0):
        raise JoulesimError(f"voltage {voltage_v!r} V: must be a number > 0")
    v_nom = nominal_voltage_v(node_nm, table)
    f = (voltage_v / v_nom) ** 2
    return f, f"; x ({_g(voltage_v)} V / {_g(v_nom)} V nominal)^2 = x{f:.3f} [voltage rule, V_nom U]"


def _scaled(get45, get7, table: str, node_nm: float, voltage_v: float | None, what: str,
            alpha_out: float) -> PricedEnergy:
    """Apply rules 4-5 to a (45 nm, 7 nm) pair of PricedEnergy getters."""
    _check_table(table)
    vf, vnote = _voltage_factor(node_nm, voltage_v, table)
    if table == HOROWITZ_45NM.name:
        base = get45()
        return PricedEnergy(base.pj * vf, f"{what}: {base.source} (table used as published){vnote}")
    if table == JOUPPI_7NM.name:
        base = get7()
        return PricedEnergy(base.pj * vf, f"{what}: {base.source} (table used as published){vnote}")
    _check_node(node_nm)
    p45, p7 = get45(), get7()
    e = _power_law(p45.pj, p7.pj, node_nm, alpha_out)
    rule = "log-log node rule" if 7 <= node_nm <= 45 else f"node rule, extrapolated with alpha {alpha_out:.3f}"
    return PricedEnergy(
        e * vf, f"{what}: 45 nm {p45.source} -> 7 nm {p7.source}; {rule} at {_g(node_nm)} nm "
                f"= {_g(e)} pJ{vnote}")


# ----------------------------------------------------------------- public API
def op_energy_with_source(op: str, fmt: str, node_nm: float, voltage_v: float | None = None,
                          table: str = "auto") -> PricedEnergy:
    """Energy (pJ) of one ``op`` ("mult" or "add") on ``fmt`` operands, with a note on its derivation."""
    _check_op(op)
    _parse_fmt(fmt)
    return _scaled(lambda: _table_entry(HOROWITZ_45NM, op, fmt), lambda: _table_entry(JOUPPI_7NM, op, fmt),
                   table, node_nm, voltage_v, f"{fmt} {op}", ALPHA_LOGIC)


def op_energy_pj(op: str, fmt: str, node_nm: float, voltage_v: float | None = None, table: str = "auto") -> float:
    """Energy (pJ) of one ``op`` ("mult"/"add") on ``fmt`` ("int<bits>", "fp16", "bf16", "fp32") at ``node_nm``.

    ``voltage_v``: the supply voltage; None means the tables' nominal voltage.
    ``table``: "auto" (node rule), "horowitz45" or "jouppi7" (that table as published).
    """
    return op_energy_with_source(op, fmt, node_nm, voltage_v, table).pj


def sram_energy_with_source(size_kib: float, node_nm: float, voltage_v: float | None = None,
                            table: str = "auto") -> PricedEnergy:
    """SRAM access energy per bit (pJ/bit) of a ``size_kib`` array, with a note on its derivation."""
    def get(t: EnergyTable):
        def f() -> PricedEnergy:
            e64 = _sram_table_entry(t, size_kib)
            kind = "table entry" if size_kib in t.sram_pj_per_64b else "log-log size rule"
            return PricedEnergy(e64, f"{_g(e64)} pJ/64b ({kind}) [{t.citation}]")
        return f

    p = _scaled(get(HOROWITZ_45NM), get(JOUPPI_7NM), table, node_nm, voltage_v,
                f"SRAM {size_kib:g} KiB per 64-bit access", ALPHA_SRAM)
    return PricedEnergy(p.pj / SRAM_ACCESS_BITS, f"{p.source}; / 64 bits = {_g(p.pj / SRAM_ACCESS_BITS)} pJ/bit")


def sram_energy_pj_per_bit(size_kib: float, node_nm: float, voltage_v: float | None = None,
                           table: str = "auto") -> float:
    """SRAM access energy (pJ per bit read or written) of a ``size_kib`` KiB array at ``node_nm``.

    A ``w``-bit access costs ``w`` times this (rule 3).
    """
    return sram_energy_with_source(size_kib, node_nm, voltage_v, table).pj


def register_energy_with_source(node_nm: float, voltage_v: float | None = None,
                                table: str = "auto") -> PricedEnergy:
    """Flip-flop energy per bit toggle (pJ) -- an estimate (rule 6) -- with a note on its derivation."""
    add8 = op_energy_with_source("add", "int8", node_nm, voltage_v, table)
    return PricedEnergy(add8.pj / 8, f"ESTIMATE (no verified figure): int8 add / 8 bits, where {add8.source}")


def register_energy_pj_per_bit(node_nm: float, voltage_v: float | None = None, table: str = "auto") -> float:
    """Flip-flop energy per bit toggle (pJ): *estimated* as the int8 add energy at the node / 8 (rule 6)."""
    return register_energy_with_source(node_nm, voltage_v, table).pj


def dram_pj_per_bit(kind: str) -> float:
    """DRAM energy (pJ per bit moved) of a preset kind: hbm2, lpddr4, gddr5, ddr3 (Accelergy table [V])."""
    try:
        return DRAM_PJ_PER_BIT[kind]
    except KeyError:
        raise JoulesimError(
            f"DRAM kind {kind!r}: allowed presets: {', '.join(DRAM_PJ_PER_BIT)} "
            "(for another kind give pj_per_bit with kind: custom)") from None
