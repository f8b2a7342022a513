"""The hardware config: its schema (hw_configs/*.yaml), loading with one-line errors, overrides, and prices.

A config file describes one accelerator (see ``hw_configs/`` for the shipped
ones). ``load_config`` validates it against the pydantic models below and turns
any problem into a single-line ``JoulesimError`` naming the file, the field
(dotted path), the bad value and what is allowed. ``resolve_prices`` turns a
valid config into ``Prices``: every per-event energy the simulator multiplies
event counts by, each with a note saying where it came from (the technology
table and rule in ``simulator.tech``, or an explicit value in the config).

Precedence of prices (first that is given wins):
- SRAM read energy of buffer X: ``memory.sram.X.read_pj_per_bit`` >
  ``technology.overrides.sram_pj_per_bit`` > table rule at X's ``size_kib``
  (per whole buffer: ``banks`` and ``width_bits`` do not change the per-bit price).
  Writes: ``memory.sram.X.write_pj_per_bit`` > the read price (Accelergy also
  prices writes as reads [V], REFERENCES 2.5).
- Vector-unit op: ``vector_unit.energy_pj_per_op`` > ``technology.overrides.vector_op_pj``
  > one add at the operand format (int<bits> add; fp16 add for fp16/bf16; fp32 add for
  fp32): an element-wise op (ReLU, max, add) on one output element; multi-op functions
  (softmax, normalization) are counted as several ops by the caller.
- DRAM: ``memory.dram.pj_per_bit`` > the preset of ``memory.dram.kind``.
- mult / add / register: ``technology.overrides.*`` > table rule.
"""

from __future__ import annotations

import math
import types
import typing
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from simulator import tech
from simulator.errors import JoulesimError

__all__ = [
    "OPERAND_BITS", "FLOAT_FORMATS", "SRAM_BUFFERS", "SHIPPED_CONFIG_DIR",
    "EnergyOverrides", "Technology", "ArrayConfig", "SparsityConfig", "SramBuffer", "DramConfig",
    "MemoryConfig", "VectorUnitConfig", "LeakageConfig", "HardwareConfig",
    "load_config", "config_from_dict", "apply_overrides", "shipped_config_paths",
    "Prices", "resolve_prices", "parse_structured",
]

OPERAND_BITS = {"int8": 8, "int16": 16, "fp16": 16, "bf16": 16, "fp32": 32}
FLOAT_FORMATS = frozenset({"fp16", "bf16", "fp32"})
SRAM_BUFFERS = ("ifmap", "filter", "ofmap")
SHIPPED_CONFIG_DIR = Path(__file__).resolve().parent.parent / "hw_configs"


def _problem(allowed: str, field: str = "", value: Any = ..., show_value: bool = True) -> PydanticCustomError:
    """A validation error whose text we control; ``field`` is appended to the error's location."""
    ctx = {"field": field, "allowed": allowed, "show_value": show_value}
    if value is not ...:
        ctx["value"] = _fmt_value(value)
    return PydanticCustomError("joulesim", "{allowed}", ctx)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ----------------------------------------------------------------- schema
class EnergyOverrides(_Model):
    """Explicit per-event energies that replace the technology table's (all optional)."""

    mult_pj: Optional[float] = Field(None, ge=0, description="energy of one multiply at the operand format, pJ")
    add_pj: Optional[float] = Field(None, ge=0, description="energy of one accumulator add, pJ")
    register_pj_per_bit: Optional[float] = Field(None, ge=0, description="register energy per bit toggle, pJ/bit")
    sram_pj_per_bit: Optional[float] = Field(
        None, ge=0, description="SRAM access energy for every buffer that gives none itself, pJ/bit")
    vector_op_pj: Optional[float] = Field(None, ge=0, description="energy of one vector-unit op, pJ")


class Technology(_Model):
    node_nm: float = Field(gt=0, description="technology node, nm (> 0); prices scale with it unless a named table")
    voltage_v: Optional[float] = Field(
        None, gt=0, description="supply voltage, V (> 0); null = the tables' nominal voltage for the node")
    frequency_mhz: float = Field(gt=0, description="clock frequency, MHz (> 0)")
    energy_table: Literal["auto", "horowitz45", "jouppi7"] = Field(
        "auto", description="auto = Horowitz 45 nm / Jouppi 7 nm tables scaled to node_nm (simulator.tech rule); "
                            "horowitz45 / jouppi7 = that table as published, node_nm not used")
    overrides: EnergyOverrides = Field(default_factory=EnergyOverrides,
                                       description="explicit per-event energies, pJ (replace the table's)")


class ArrayConfig(_Model):
    rows: int = Field(ge=1, le=4096, description="PE rows (integer 1..4096)")
    cols: int = Field(ge=1, le=4096, description="PE columns (integer 1..4096)")
    dataflow: Literal["weight_stationary", "output_stationary", "input_stationary"] = Field(
        description="which operand stays in the PEs: weight_stationary, output_stationary or input_stationary")
    operand_format: Literal["int8", "int16", "fp16", "bf16", "fp32"] = Field(
        description="number format of both MAC operands: int8, int16, fp16, bf16 or fp32")
    accumulator_bits: int = Field(ge=8, le=64, description="partial-sum width, bits (8..64; 32 for float formats)")

    @model_validator(mode="after")
    def _float_accumulates_in_fp32(self) -> "ArrayConfig":
        if self.operand_format in FLOAT_FORMATS and self.accumulator_bits != 32:
            raise _problem(f"must be 32 for float operand formats (operand_format is {self.operand_format}: "
                           "the array accumulates in fp32)", "accumulator_bits", self.accumulator_bits)
        return self


def parse_structured(spec: str) -> Optional[tuple[int, int]]:
    """``"none"`` -> None; ``"N:M"`` -> (N, M) with 1 <= N < M and M a power of two; else ValueError."""
    if spec == "none":
        return None
    parts = spec.split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError("allowed: 'none' or 'N:M' (e.g. '2:4')")
    n, m = int(parts[0]), int(parts[1])
    if not 1 <= n < m:
        raise ValueError("N:M needs 1 <= N < M")
    if m & (m - 1):
        raise ValueError("M of N:M must be a power of two")
    return n, m


class SparsityConfig(_Model):
    zero_gating: bool = Field(False, description="a zero operand holds the multiplier inputs (no toggles, no "
                                                 "cycle saved)")
    gating_overhead_fraction: float = Field(
        0.02, ge=0, le=1, description="zero-detector cost per issued MAC when zero_gating is on, as a fraction "
                                      "(0..1) of one MAC's table energy (mult + add)")
    zero_skipping: bool = Field(False, description="zero operands are not issued (saves the cycle; metadata paid)")
    structured: str = Field("none", description="'none' or 'N:M' structured sparsity (1 <= N < M, M a power of "
                                                "two); not with input_stationary")
    compression: Literal["none", "bitmap", "csr", "rle"] = Field(
        "none", description="DRAM/SRAM compression format: none, bitmap, csr or rle")

    @field_validator("structured")
    @classmethod
    def _check_structured(cls, v: str) -> str:
        try:
            parse_structured(v)
        except ValueError as e:
            raise _problem(str(e)) from None
        return v


class SramBuffer(_Model):
    size_kib: float = Field(gt=0, description="capacity, KiB (> 0)")
    banks: int = Field(1, ge=1, description="number of banks (>= 1)")
    width_bits: int = Field(64, ge=1, description="access width, bits (>= 1)")
    read_pj_per_bit: Optional[float] = Field(None, ge=0, description="read energy, pJ/bit; null = table by size")
    write_pj_per_bit: Optional[float] = Field(None, ge=0, description="write energy, pJ/bit; null = the read energy")


class DramConfig(_Model):
    kind: Literal["hbm2", "lpddr4", "gddr5", "ddr3", "custom"] = Field(
        description="DRAM type: hbm2, lpddr4, gddr5, ddr3 (Accelergy pJ/bit presets) or custom")
    bandwidth_gbps: float = Field(gt=0, description="bandwidth, GB/s (gigabytes per second, > 0)")
    pj_per_bit: Optional[float] = Field(
        None, ge=0, description="energy per bit moved, pJ/bit; required for custom, else overrides the preset")
    burst_bytes: int = Field(64, ge=1, description="transfer granularity, bytes (>= 1); transfers round up to it")

    @model_validator(mode="after")
    def _custom_needs_energy(self) -> "DramConfig":
        if self.kind == "custom" and self.pj_per_bit is None:
            raise _problem("required when kind is custom (energy per bit moved, pJ/bit)", "pj_per_bit",
                           show_value=False)
        return self


class MemoryConfig(_Model):
    registers_per_pe: int = Field(3, ge=1, description="registers per PE (>= 1)")
    sram: dict[str, SramBuffer] = Field(description="on-chip buffers: exactly ifmap, filter and ofmap")
    dram: DramConfig

    @field_validator("sram")
    @classmethod
    def _three_buffers(cls, v: dict[str, SramBuffer]) -> dict[str, SramBuffer]:
        for name in v:
            if name not in SRAM_BUFFERS:
                raise _problem(f"unknown buffer; allowed: {', '.join(SRAM_BUFFERS)}", name, show_value=False)
        for name in SRAM_BUFFERS:
            if name not in v:
                raise _problem(f"missing buffer; required: {', '.join(SRAM_BUFFERS)}", name, show_value=False)
        return {name: v[name] for name in SRAM_BUFFERS}


class VectorUnitConfig(_Model):
    lanes: int = Field(16, ge=1, description="elements processed per cycle (>= 1)")
    energy_pj_per_op: Optional[float] = Field(
        None, ge=0, description="energy per element op, pJ; null = one add at the operand format at the node")


class LeakageConfig(_Model):
    static_power_w: float = Field(0.0, ge=0, description="static (leakage) power, W (>= 0)")


class HardwareConfig(_Model):
    name: str = Field(min_length=1, description="short name of the design")
    description: str = Field("", description="free text")
    technology: Technology
    array: ArrayConfig
    sparsity: SparsityConfig = Field(default_factory=SparsityConfig)
    memory: MemoryConfig
    vector_unit: VectorUnitConfig = Field(default_factory=VectorUnitConfig)
    leakage: LeakageConfig = Field(default_factory=LeakageConfig)

    _source: str = PrivateAttr(default="<config>")

    @model_validator(mode="after")
    def _structured_needs_ws_or_os(self) -> "HardwareConfig":
        if self.sparsity.structured != "none" and self.array.dataflow == "input_stationary":
            raise _problem("N:M structured sparsity is not supported with array.dataflow = input_stationary "
                           "(use 'none', or a weight_stationary / output_stationary array)",
                           "sparsity.structured", self.sparsity.structured)
        return self

    @property
    def source(self) -> str:
        """Where the config came from (file path, '<dict>', ...), as used in error messages."""
        return self._source

    @property
    def operand_bits(self) -> int:
        return OPERAND_BITS[self.array.operand_format]

    @property
    def structured_nm(self) -> Optional[tuple[int, int]]:
        """``sparsity.structured`` as (N, M), or None."""
        return parse_structured(self.sparsity.structured)


# ----------------------------------------------------------------- one-line errors
def _fmt_value(v: Any) -> str:
    """A bad value as the user wrote it in YAML terms, on one short line."""
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    if isinstance(v, dict):
        s = "{" + ", ".join(f"{k}: ..." for k in list(v)[:4]) + (", ...}" if len(v) > 4 else "}")
    else:
        s = repr(v)
    s = " ".join(s.split())
    return s if len(s) <= 60 else s[:57] + "..."


def _unwrap(ann: Any) -> Any:
    """Optional[X] -> X."""
    if typing.get_origin(ann) in (Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return ann


def _schema_at(loc: tuple) -> tuple[Any, Any]:
    """(annotation, FieldInfo or None) of the field at ``loc`` in HardwareConfig; (None, None) if unknown."""
    ann: Any = HardwareConfig
    info = None
    for part in loc:
        ann = _unwrap(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            if part not in ann.model_fields:
                return None, None
            info = ann.model_fields[part]
            ann = info.annotation
        elif typing.get_origin(ann) is dict:
            ann, info = typing.get_args(ann)[1], None
        else:
            return None, None
    return _unwrap(ann), info


def _fields_of(loc: tuple) -> str:
    ann, _ = _schema_at(loc)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ", ".join(ann.model_fields)
    return ""


def _describe(err: dict) -> str:
    """One pydantic error -> 'dotted.path = value: what is allowed'."""
    loc = tuple(str(p) for p in err["loc"])
    ctx = err.get("ctx") or {}
    typ = err["type"]
    if typ == "joulesim":
        loc = loc + tuple(p for p in ctx.get("field", "").split(".") if p)
        path = ".".join(loc) or "(top level)"
        if not ctx.get("show_value", True):
            return f"{path}: {ctx['allowed']}"
        return f"{path} = {ctx.get('value', _fmt_value(err['input']))}: {ctx['allowed']}"
    path = ".".join(loc) or "(top level)"
    ann, info = _schema_at(loc)
    if typ == "missing":
        if info is not None and info.description:
            what = f" ({info.description})"
        else:
            fields = _fields_of(loc)
            what = f" (a mapping with fields {fields})" if fields else ""
        return f"{path}: missing required field{what}"
    value = _fmt_value(err["input"])
    if typ == "extra_forbidden":
        parent = ".".join(loc[:-1]) or "the top level"
        return f"{path} = {value}: unknown field; allowed fields of {parent}: {_fields_of(loc[:-1])}"
    if typ == "literal_error":
        if typing.get_origin(ann) is Literal:
            return f"{path} = {value}: allowed: {', '.join(str(a) for a in typing.get_args(ann))}"
        return f"{path} = {value}: allowed: {ctx.get('expected', '')}"
    bounds = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"),
              "less_than_equal": ("<=", "le"), "less_than": ("<", "lt")}
    if typ in bounds:
        op, key = bounds[typ]
        return f"{path} = {value}: must be {op} {ctx[key]:g}"
    if typ in ("int_type", "int_parsing", "int_from_float"):
        return f"{path} = {value}: must be an integer"
    if typ in ("float_type", "float_parsing", "finite_number"):
        return f"{path} = {value}: must be a number"
    if typ in ("bool_type", "bool_parsing"):
        return f"{path} = {value}: must be true or false"
    if typ in ("string_type", "string_too_short"):
        return f"{path} = {value}: must be a non-empty string"
    if typ in ("model_type", "model_attributes_type", "dict_type"):
        fields = _fields_of(loc)
        return f"{path} = {value}: must be a mapping" + (f" with fields {fields}" if fields else "")
    msg = err.get("msg", "invalid value")
    return f"{path} = {value}: {msg[:1].lower()}{msg[1:]}"


def _one_line(source: str, exc: ValidationError) -> JoulesimError:
    errors = exc.errors()
    text = f"{source}: {_describe(errors[0])}"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return JoulesimError(" ".join(text.split("\n")))


# ----------------------------------------------------------------- loading
class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML silently keeps the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen[key] = True
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def config_from_dict(d: Any, source: str = "<dict>") -> HardwareConfig:
    """Validate a parsed config (a mapping); any problem -> one-line JoulesimError prefixed by ``source``."""
    if not isinstance(d, Mapping):
        kind = "empty" if d is None else f"a {type(d).__name__}"
        raise JoulesimError(f"{source}: the config is {kind}; expected a mapping with fields "
                            f"{', '.join(HardwareConfig.model_fields)}")
    try:
        cfg = HardwareConfig.model_validate(dict(d))
    except ValidationError as e:
        raise _one_line(source, e) from None
    cfg._source = source
    return cfg


def _resolve_path(path: Path) -> Path:
    """``path`` itself, or a bare name (with or without .yaml) found in the shipped hw_configs/."""
    if path.exists() or path.parent != Path("."):
        return path
    for candidate in (SHIPPED_CONFIG_DIR / path.name, SHIPPED_CONFIG_DIR / f"{path.name}.yaml"):
        if candidate.is_file():
            return candidate
    return path


def load_config(path: str | Path) -> HardwareConfig:
    """Load and validate a YAML hardware config; any problem -> one-line JoulesimError naming file and field.

    A bare name that is not a file here (``edge_npu_16x16_int8`` or ``edge_npu_16x16_int8.yaml``) is also
    looked up in the shipped ``hw_configs/``.
    """
    source = str(path)
    p = _resolve_path(Path(path))
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JoulesimError(f"{source}: no such file (shipped configs are in {SHIPPED_CONFIG_DIR})") from None
    except IsADirectoryError:
        raise JoulesimError(f"{source}: is a directory, not a YAML file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise JoulesimError(f"{source}: cannot read: {' '.join(str(e).split())}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(e.problem or e.context or "invalid YAML").split())
        raise JoulesimError(f"{source}: YAML syntax error{where}: {problem}") from None
    except yaml.YAMLError as e:
        raise JoulesimError(f"{source}: YAML syntax error: {' '.join(str(e).split())}") from None
    return config_from_dict(data, source=source)


def shipped_config_paths() -> list[Path]:
    """The YAML files shipped in hw_configs/, sorted by name."""
    return sorted(SHIPPED_CONFIG_DIR.glob("*.yaml"))


def apply_overrides(cfg: HardwareConfig, overrides: Mapping[str, Any], source: Optional[str] = None) -> HardwareConfig:
    """A new config with dotted-key overrides applied (``{"array.rows": 8}``), re-validated as a whole.

    Unknown keys and invalid values raise a one-line JoulesimError. ``cfg`` is not modified.
    """
    src = source or f"{cfg.source} (with overrides)"
    data = cfg.model_dump(mode="python")
    for key, value in overrides.items():
        parts = str(key).split(".")
        node: Any = data
        for i, part in enumerate(parts):
            here = ".".join(parts[:i + 1])
            if not isinstance(node, dict):
                raise JoulesimError(f"{src}: override {key!r}: {'.'.join(parts[:i])} is a value, not a section")
            if part not in node:
                parent = ".".join(parts[:i]) or "the top level"
                raise JoulesimError(f"{src}: override {key!r}: unknown field {here!r}; allowed fields of "
                                    f"{parent}: {', '.join(map(str, node))}")
            if i == len(parts) - 1:
                node[part] = value
            else:
                node = node[part]
    return config_from_dict(data, source=src)


# ----------------------------------------------------------------- prices
@dataclass(frozen=True)
class Prices:
    """Every per-event energy of a config (pJ unless the name says otherwise), and where each came from."""

    mult_pj: float  # one multiply at the operand format
    add_pj: float  # one accumulator add: int<accumulator_bits> add, or fp32 add for float formats
    register_pj_per_bit: float  # one register bit toggle (an estimate unless overridden)
    sram_pj_per_bit: dict[str, float]  # read energy per bit, per buffer name (ifmap, filter, ofmap)
    sram_write_pj_per_bit: dict[str, float]  # write energy per bit, per buffer name
    metadata_pj_per_bit: float  # a metadata (index/bitmap) bit read = the filter buffer's read energy per bit
    dram_pj_per_bit: float  # one bit moved to or from DRAM
    vector_op_pj: float  # one vector-unit element op
    gating_overhead_pj_per_mac: float  # per issued MAC when zero_gating is on (0.0 when it is off)
    leakage_w: float  # static power, W
    frequency_hz: float  # clock, Hz
    sources: dict[str, str] = field(default_factory=dict)  # price name (dotted for per-buffer) -> origin

    def as_records(self) -> list[dict[str, Any]]:
        """One row per price: {"price", "value", "unit", "source"} (for reports and audits)."""
        items = [("mult_pj", self.mult_pj, "pJ"), ("add_pj", self.add_pj, "pJ"),
                 ("register_pj_per_bit", self.register_pj_per_bit, "pJ/bit")]
        items += [(f"sram_pj_per_bit.{b}", v, "pJ/bit") for b, v in self.sram_pj_per_bit.items()]
        items += [(f"sram_write_pj_per_bit.{b}", v, "pJ/bit") for b, v in self.sram_write_pj_per_bit.items()]
        items += [("metadata_pj_per_bit", self.metadata_pj_per_bit, "pJ/bit"),
                  ("dram_pj_per_bit", self.dram_pj_per_bit, "pJ/bit"), ("vector_op_pj", self.vector_op_pj, "pJ"),
                  ("gating_overhead_pj_per_mac", self.gating_overhead_pj_per_mac, "pJ/MAC"),
                  ("leakage_w", self.leakage_w, "W"), ("frequency_hz", self.frequency_hz, "Hz")]
        rows = [{"price": n, "value": v, "unit": u, "source": self.sources.get(n, "")} for n, v, u in items]
        return rows


def _vector_fmt(operand_format: str) -> str:
    return {"bf16": "fp16"}.get(operand_format, operand_format)


_PRICES_CACHE: dict = {}
_PINNED_PRICES: dict = {}     # id(cfg) -> (cfg, prices), while a caller holds cfg unchanged


@contextmanager
def pinned_prices(cfg: HardwareConfig):
    """Within the block, ``resolve_prices(cfg)`` on this very object returns the prices resolved on
    entry (the caller does not change ``cfg`` meanwhile: a whole-network simulation, which asks for
    them once per layer). Yields the prices."""
    prices = resolve_prices(cfg)
    entry = _PINNED_PRICES[id(cfg)] = (cfg, prices)
    try:
        yield prices
    finally:          # unpin (a nested or concurrent pin of the same object unpins it too: safe)
        if _PINNED_PRICES.get(id(cfg)) is entry:
            del _PINNED_PRICES[id(cfg)]


def resolve_prices(cfg: HardwareConfig) -> Prices:
    """Price every event of ``cfg`` from its technology (``simulator.tech`` rule) and its explicit values.
    Memoised on the config's contents (a simulation asks once per layer); inside ``pinned_prices(cfg)``
    on the object itself, without serialising it again."""
    pinned = _PINNED_PRICES.get(id(cfg))
    if pinned is not None and pinned[0] is cfg:
        return pinned[1]
    key = (cfg.source, cfg.model_dump_json())
    prices = _PRICES_CACHE.get(key)
    if prices is None:
        if len(_PRICES_CACHE) > 256:
            _PRICES_CACHE.clear()
        prices = _PRICES_CACHE[key] = _resolve_prices(cfg)
    return prices


def _resolve_prices(cfg: HardwareConfig) -> Prices:
    t = cfg.technology
    ov = t.overrides
    node, volt, table = t.node_nm, t.voltage_v, t.energy_table
    fmt = cfg.array.operand_format
    acc_fmt = "fp32" if fmt in FLOAT_FORMATS else f"int{cfg.array.accumulator_bits}"
    sources: dict[str, str] = {}

    def pick(name: str, given: Optional[float], given_where: str, rule) -> float:
        if given is not None:
            sources[name] = f"config {given_where} = {given:g}"
            return float(given)
        priced = rule()
        sources[name] = priced.source
        return priced.pj

    mult = pick("mult_pj", ov.mult_pj, "technology.overrides.mult_pj",
                lambda: tech.op_energy_with_source("mult", fmt, node, volt, table))
    add = pick("add_pj", ov.add_pj, "technology.overrides.add_pj",
               lambda: tech.op_energy_with_source("add", acc_fmt, node, volt, table))
    reg = pick("register_pj_per_bit", ov.register_pj_per_bit, "technology.overrides.register_pj_per_bit",
               lambda: tech.register_energy_with_source(node, volt, table))

    sram_read: dict[str, float] = {}
    sram_write: dict[str, float] = {}
    for name, buf in cfg.memory.sram.items():
        if buf.read_pj_per_bit is not None:
            given, where = buf.read_pj_per_bit, f"memory.sram.{name}.read_pj_per_bit"
        else:
            given, where = ov.sram_pj_per_bit, "technology.overrides.sram_pj_per_bit"
        sram_read[name] = pick(f"sram_pj_per_bit.{name}", given, where,
                               lambda b=buf: tech.sram_energy_with_source(b.size_kib, node, volt, table))
        if buf.write_pj_per_bit is not None:
            sram_write[name] = pick(f"sram_write_pj_per_bit.{name}", buf.write_pj_per_bit,
                                    f"memory.sram.{name}.write_pj_per_bit", None)
        else:
            sram_write[name] = sram_read[name]
            sources[f"sram_write_pj_per_bit.{name}"] = f"= read energy of {name} (writes priced as reads)"

    meta = sram_read["filter"]
    sources["metadata_pj_per_bit"] = "= read energy per bit of the filter buffer (metadata lives beside the weights)"

    dram = cfg.memory.dram
    if dram.pj_per_bit is not None:
        dram_pj = float(dram.pj_per_bit)
        sources["dram_pj_per_bit"] = f"config memory.dram.pj_per_bit = {dram.pj_per_bit:g}"
    else:
        dram_pj = tech.dram_pj_per_bit(dram.kind)
        sources["dram_pj_per_bit"] = f"{dram.kind} preset {dram_pj:g} pJ/bit [Accelergy DRAM table, V]"

    vu = cfg.vector_unit
    vfmt = _vector_fmt(fmt)
    if vu.energy_pj_per_op is not None:
        vec = pick("vector_op_pj", vu.energy_pj_per_op, "vector_unit.energy_pj_per_op", None)
    else:
        vec = pick("vector_op_pj", ov.vector_op_pj, "technology.overrides.vector_op_pj",
                   lambda: tech.op_energy_with_source("add", vfmt, node, volt, table))

    sp = cfg.sparsity
    if sp.zero_gating:
        gate = sp.gating_overhead_fraction * (mult + add)
        sources["gating_overhead_pj_per_mac"] = (f"sparsity.gating_overhead_fraction {sp.gating_overhead_fraction:g} "
                                                 f"x (mult_pj + add_pj) [estimate]")
    else:
        gate = 0.0
        sources["gating_overhead_pj_per_mac"] = "0: sparsity.zero_gating is off"

    sources["leakage_w"] = "config leakage.static_power_w"
    sources["frequency_hz"] = "config technology.frequency_mhz x 1e6"
    prices = Prices(mult_pj=mult, add_pj=add, register_pj_per_bit=reg, sram_pj_per_bit=sram_read,
                    sram_write_pj_per_bit=sram_write, metadata_pj_per_bit=meta, dram_pj_per_bit=dram_pj,
                    vector_op_pj=vec, gating_overhead_pj_per_mac=gate, leakage_w=float(cfg.leakage.static_power_w),
                    frequency_hz=float(t.frequency_mhz) * 1e6, sources=sources)
    bad = [r["price"] for r in prices.as_records() if not math.isfinite(r["value"])]
    if bad:
        raise JoulesimError(f"{cfg.source}: price {bad[0]} is not finite (check technology.node_nm and voltage_v)")
    return prices
