"""Tests of the hardware config layer: schema, one-line errors, overrides, technology tables, prices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from simulator import tech
from simulator.config import (
    OPERAND_BITS, SHIPPED_CONFIG_DIR, HardwareConfig, apply_overrides, config_from_dict, load_config,
    resolve_prices, shipped_config_paths,
)
from simulator.errors import JoulesimError

SHIPPED = [
    "tpu_v1_like_256x256_int8.yaml",
    "edge_npu_16x16_int8.yaml",
    "edge_npu_16x16_int8_zero_gating.yaml",
    "eyeriss_like_12x14_int16.yaml",
    "sparse_2of4_32x32_int8.yaml",
    "os_zero_skip_16x16_int8.yaml",
]


def _base() -> dict:
    return yaml.safe_load((SHIPPED_CONFIG_DIR / "edge_npu_16x16_int8.yaml").read_text())


# ----------------------------------------------------------------- shipped configs
def test_shipped_names_are_present():
    names = {p.name for p in shipped_config_paths()}
    assert set(SHIPPED) <= names


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_loads_and_prices(name):
    path = SHIPPED_CONFIG_DIR / name
    assert path.read_text().startswith("#"), "each config starts with a comment saying where its numbers come from"
    cfg = load_config(path)
    assert isinstance(cfg, HardwareConfig)
    assert cfg.name == path.stem
    prices = resolve_prices(cfg)
    records = prices.as_records()
    for r in records:
        assert math.isfinite(r["value"]) and r["value"] >= 0, r
        assert r["source"], f"price {r['price']} has no source"
    assert set(prices.sram_pj_per_bit) == {"ifmap", "filter", "ofmap"}
    assert prices.metadata_pj_per_bit == prices.sram_pj_per_bit["filter"]
    assert prices.frequency_hz == cfg.technology.frequency_mhz * 1e6
    if cfg.sparsity.zero_gating:
        frac = cfg.sparsity.gating_overhead_fraction
        assert prices.gating_overhead_pj_per_mac == pytest.approx(frac * (prices.mult_pj + prices.add_pj))
    else:
        assert prices.gating_overhead_pj_per_mac == 0.0


def test_shipped_config_specifics():
    tpu = load_config(SHIPPED_CONFIG_DIR / "tpu_v1_like_256x256_int8.yaml")
    assert (tpu.array.rows, tpu.array.cols, tpu.technology.frequency_mhz) == (256, 256, 700)
    assert tpu.memory.dram.kind == "ddr3" and resolve_prices(tpu).dram_pj_per_bit == 70.0
    eye = load_config(SHIPPED_CONFIG_DIR / "eyeriss_like_12x14_int16.yaml")
    assert (eye.array.rows, eye.array.cols, eye.array.operand_format) == (12, 14, "int16")
    assert sum(b.size_kib for b in eye.memory.sram.values()) == 108
    assert load_config(SHIPPED_CONFIG_DIR / "sparse_2of4_32x32_int8.yaml").structured_nm == (2, 4)
    osz = load_config(SHIPPED_CONFIG_DIR / "os_zero_skip_16x16_int8.yaml")
    assert osz.array.dataflow == "output_stationary" and osz.sparsity.zero_skipping
    gated = load_config(SHIPPED_CONFIG_DIR / "edge_npu_16x16_int8_zero_gating.yaml")
    dense = load_config(SHIPPED_CONFIG_DIR / "edge_npu_16x16_int8.yaml")
    assert gated.sparsity.zero_gating and gated.sparsity.compression == "bitmap"
    assert not dense.sparsity.zero_gating
    assert gated.memory == dense.memory and gated.array == dense.array and gated.technology == dense.technology


def test_bare_name_finds_shipped_config():
    assert load_config("edge_npu_16x16_int8").name == "edge_npu_16x16_int8"
    assert load_config("edge_npu_16x16_int8.yaml").name == "edge_npu_16x16_int8"


# ----------------------------------------------------------------- technology tables and rule
def test_45nm_table_exact_at_45nm():
    for (op, fmt), e in tech.HOROWITZ_45NM.ops_pj.items():
        assert tech.op_energy_pj(op, fmt, 45) == e
        assert tech.op_energy_pj(op, fmt, 45, voltage_v=0.9) == e
    for size, e64 in tech.HOROWITZ_45NM.sram_pj_per_64b.items():
        assert tech.sram_energy_pj_per_bit(size, 45) == e64 / 64
    assert tech.op_energy_pj("mult", "bf16", 45) == tech.op_energy_pj("mult", "fp16", 45) == 1.1


def test_7nm_table_hit_at_7nm():
    for (op, fmt), e in tech.JOUPPI_7NM.ops_pj.items():
        assert tech.op_energy_pj(op, fmt, 7) == pytest.approx(e, rel=1e-12)
    for size, e64 in tech.JOUPPI_7NM.sram_pj_per_64b.items():
        assert tech.sram_energy_pj_per_bit(size, 7) == pytest.approx(e64 / 64, rel=1e-12)


def test_named_tables_ignore_node():
    assert tech.op_energy_pj("mult", "int8", 28, table="horowitz45") == 0.2
    assert tech.op_energy_pj("mult", "int8", 28, table="jouppi7") == 0.07
    assert tech.sram_energy_pj_per_bit(1024, 65, table="jouppi7") == 14 / 64


OPS = [(op, fmt) for op in ("mult", "add") for fmt in ("int8", "int16", "int32", "int48", "fp16", "bf16", "fp32")]


@pytest.mark.parametrize("op,fmt", OPS)
def test_node_interpolation_monotone(op, fmt):
    nodes = np.geomspace(3, 130, 40)
    e = [tech.op_energy_pj(op, fmt, n) for n in nodes]
    assert all(b > a for a, b in zip(e, e[1:]))
    # power law through both tables: a straight line in log-log
    e45, e7 = tech.op_energy_pj(op, fmt, 45), tech.op_energy_pj(op, fmt, 7)
    alpha = math.log(e45 / e7) / math.log(45 / 7)
    assert tech.op_energy_pj(op, fmt, 16) == pytest.approx(e45 * (16 / 45) ** alpha)


def test_sram_monotone_in_node_and_size():
    nodes = np.geomspace(3, 130, 25)
    sizes = [0.5, 2, 8, 16, 32, 100, 1024, 4096, 24576]
    grid = np.array([[tech.sram_energy_pj_per_bit(s, n) for s in sizes] for n in nodes])
    assert np.all(np.diff(grid, axis=0) >= 0), "non-decreasing with node"
    assert np.all(np.diff(grid, axis=1) > 0), "increasing with size"


def test_sram_size_interpolation():
    # log-log between the 45 nm points: 16 KiB is the geometric middle of 8 (10 pJ) and 32 KiB (20 pJ)
    assert tech.sram_energy_pj_per_bit(16, 45) * 64 == pytest.approx(math.sqrt(10 * 20))
    # extrapolation with the end slopes
    assert tech.sram_energy_pj_per_bit(2, 45) * 64 == pytest.approx(10 * (2 / 8) ** 0.5)
    slope = math.log(100 / 20) / math.log(1024 / 32)
    assert tech.sram_energy_pj_per_bit(4096, 45) * 64 == pytest.approx(100 * 4 ** slope)
    # 7 nm 32 KiB from the 7 nm table's own sizes
    assert tech.sram_energy_pj_per_bit(32, 7) * 64 == pytest.approx(7.5 * 4 ** (math.log(14 / 7.5) / math.log(128)))


def test_width_format_and_missing_entry_rules():
    assert tech.op_energy_pj("mult", "int16", 45) == pytest.approx(0.2 * 4)
    assert tech.op_energy_pj("add", "int16", 45) == pytest.approx(0.03 * 2)
    assert tech.op_energy_pj("mult", "int64", 45) == pytest.approx(3.1 * 4)
    assert tech.op_energy_pj("mult", "int32", 7) == pytest.approx(0.07 * 16)
    ratios = [tech.JOUPPI_7NM.ops_pj[k] / tech.HOROWITZ_45NM.ops_pj[k] for k in tech.JOUPPI_7NM.ops_pj]
    gm = math.exp(sum(map(math.log, ratios)) / len(ratios))
    assert tech.LOGIC_RATIO_7_45 == pytest.approx(gm)
    assert tech.op_energy_pj("add", "fp16", 7) == pytest.approx(0.4 * gm)
    assert tech.op_energy_pj("mult", "bf16", 7) == pytest.approx(1.1 * gm)


def test_voltage_register_and_dram():
    assert tech.op_energy_pj("mult", "int8", 45, voltage_v=0.45) == pytest.approx(0.2 / 4)
    assert tech.op_energy_pj("mult", "int8", 7, voltage_v=0.75) == pytest.approx(0.07)
    for node in (7, 28, 45, 65):
        assert tech.register_energy_pj_per_bit(node) == pytest.approx(tech.op_energy_pj("add", "int8", node) / 8)
    assert dict(tech.DRAM_PJ_PER_BIT) == {"hbm2": 3.9, "lpddr4": 8.0, "gddr5": 14.0, "ddr3": 70.0}
    with pytest.raises(JoulesimError):
        tech.dram_pj_per_bit("custom")
    with pytest.raises(JoulesimError):
        tech.op_energy_pj("div", "int8", 45)
    with pytest.raises(JoulesimError):
        tech.op_energy_pj("add", "fp8", 45)


# ----------------------------------------------------------------- prices
def test_prices_follow_formats_and_overrides():
    cfg = config_from_dict(_base())
    p = resolve_prices(cfg)
    assert p.mult_pj == pytest.approx(0.07) and p.add_pj == pytest.approx(0.03)  # int8 mult, int32 add at 7 nm
    assert p.vector_op_pj == pytest.approx(0.007)
    assert OPERAND_BITS["bf16"] == 16

    fp = apply_overrides(cfg, {"array.operand_format": "bf16", "technology.node_nm": 45})
    pf = resolve_prices(fp)
    assert (pf.mult_pj, pf.add_pj, pf.vector_op_pj) == (1.1, 0.9, 0.4)

    d = _base()
    d["technology"]["overrides"] = {"mult_pj": 1.5, "sram_pj_per_bit": 0.3}
    d["memory"]["sram"]["ifmap"].update(read_pj_per_bit=0.2, write_pj_per_bit=0.25)
    d["memory"]["dram"].update(kind="custom", pj_per_bit=5.0)
    d["vector_unit"]["energy_pj_per_op"] = 0.5
    d["sparsity"].update(zero_gating=True, gating_overhead_fraction=0.1)
    p = resolve_prices(config_from_dict(d))
    assert p.mult_pj == 1.5 and "override" in p.sources["mult_pj"]
    assert p.sram_pj_per_bit == {"ifmap": 0.2, "filter": 0.3, "ofmap": 0.3}
    assert p.sram_write_pj_per_bit == {"ifmap": 0.25, "filter": 0.3, "ofmap": 0.3}
    assert p.dram_pj_per_bit == 5.0 and p.vector_op_pj == 0.5
    assert p.gating_overhead_pj_per_mac == pytest.approx(0.1 * (1.5 + p.add_pj))


# ----------------------------------------------------------------- one-line errors
def _error_for(tmp_path, text: str, name: str = "bad.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(JoulesimError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: ")
    return msg


def _mutated(mut) -> str:
    d = _base()
    mut(d)
    return yaml.safe_dump(d)


@pytest.mark.parametrize("mut,expected", [
    (lambda d: d["array"].pop("rows"), "array.rows: missing required field"),
    (lambda d: d["memory"]["sram"]["ifmap"].update(size_kib=-16), "memory.sram.ifmap.size_kib = -16: must be > 0"),
    (lambda d: d["array"].update(rows=-4), "array.rows = -4: must be >= 1"),
    (lambda d: d["array"].update(dataflow="diagonal"),
     "array.dataflow = 'diagonal': allowed: weight_stationary, output_stationary, input_stationary"),
    (lambda d: d["array"].update(colums=16), "array.colums = 16: unknown field; allowed fields of array: rows,"),
    (lambda d: (d["array"].update(dataflow="input_stationary"), d["sparsity"].update(structured="2:4")),
     "sparsity.structured = '2:4': N:M structured sparsity is not supported with array.dataflow = input_stationary"),
    (lambda d: d["array"].update(operand_format="fp16", accumulator_bits=24),
     "array.accumulator_bits = 24: must be 32 for float operand formats"),
    (lambda d: d["sparsity"].update(structured="3:6"), "sparsity.structured = '3:6': M of N:M must be a power of two"),
    (lambda d: d["memory"]["dram"].update(kind="custom"), "memory.dram.pj_per_bit: required when kind is custom"),
])
def test_bad_config_one_line(tmp_path, mut, expected):
    msg = _error_for(tmp_path, _mutated(mut))
    assert expected in msg, msg


def test_yaml_syntax_error_one_line(tmp_path):
    msg = _error_for(tmp_path, "name: x\narray:\n  rows: [1, 2\n  cols: 3\n")
    assert "YAML syntax error at line 4, column 7" in msg
    msg = _error_for(tmp_path, "name: x\nname: y\n", "dup.yaml")
    assert "line 2" in msg and "duplicate key 'name'" in msg
    assert "the config is empty" in _error_for(tmp_path, "", "empty.yaml")


def test_missing_file_one_line(tmp_path):
    with pytest.raises(JoulesimError) as exc:
        load_config(tmp_path / "nope.yaml")
    assert "nope.yaml: no such file" in str(exc.value) and "\n" not in str(exc.value)


# ----------------------------------------------------------------- overrides
def test_apply_overrides():
    cfg = load_config(SHIPPED_CONFIG_DIR / "edge_npu_16x16_int8.yaml")
    new = apply_overrides(cfg, {"array.rows": 8, "memory.sram.ifmap.size_kib": 128, "sparsity.zero_gating": True})
    assert (new.array.rows, new.memory.sram["ifmap"].size_kib, new.sparsity.zero_gating) == (8, 128, True)
    assert cfg.array.rows == 16 and not cfg.sparsity.zero_gating
    with pytest.raises(JoulesimError, match=r"unknown field 'array.rowz'; allowed fields of array: rows"):
        apply_overrides(cfg, {"array.rowz": 8})
    with pytest.raises(JoulesimError, match=r"array.rows = -3: must be >= 1"):
        apply_overrides(cfg, {"array.rows": -3})
    with pytest.raises(JoulesimError, match=r"sparsity.structured = '2:4': N:M"):
        apply_overrides(cfg, {"array.dataflow": "input_stationary", "sparsity.structured": "2:4"})
