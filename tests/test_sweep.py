"""Design-space sweeps: grid parsing and validation, the Pareto front, resuming, the local
process pool vs Dask distributed, and `joulesim sweep`."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import one_line_error, run_cli

from simulator.comparison import COMPONENT_COLUMNS
from simulator.config import load_config
from simulator.errors import JoulesimError
from simulator.exploration import (JOURNAL, TABLE_CSV, TABLE_PARQUET, grid_points, pareto_front,
                             parse_grid, point_key, sweep)

ROOT = Path(__file__).resolve().parents[1]
EDGE = ROOT / "hw_configs" / "edge_npu_16x16_int8.yaml"
GRID = {"array.rows": [8, 16, 32], "array.cols": [8, 16],
        "array.dataflow": ["weight_stationary", "output_stationary"]}   # 12 points
KEYS = list(GRID)


run = run_cli
_one_line_error = one_line_error


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "out"
    res = sweep("fashion_cnn", EDGE, GRID, jobs=2, sample_error=0.05, out_dir=out)
    return res, out


def _dominated(t: pd.DataFrame, i) -> bool:
    e, lat = t.loc[i, "energy_uj_per_inference"], t.loc[i, "latency_us"]
    other = t.drop(index=i)
    le = (other["energy_uj_per_inference"] <= e) & (other["latency_us"] <= lat)
    lt = (other["energy_uj_per_inference"] < e) | (other["latency_us"] < lat)
    return bool((le & lt).any())


def test_twelve_point_sweep_table_and_pareto_front(full):
    res, out = full
    t = res.table
    assert len(t) == 12 and res.computed == 12 and res.reused == 0
    assert t["point"].is_unique
    for k in KEYS + COMPONENT_COLUMNS + ["energy_uj_per_inference", "latency_cycles",
                                         "latency_us", "edp_uj_us", "pareto", "area_mm2"]:
        assert k in t.columns, k
    assert t["area_mm2"].isna().all() and t["area_note"].str.contains("not modeled").all()
    got = sorted(zip(t["array.rows"], t["array.cols"], t["array.dataflow"]))
    assert got == sorted((r, c, d) for r in GRID["array.rows"] for c in GRID["array.cols"]
                         for d in GRID["array.dataflow"])
    parts = t[COMPONENT_COLUMNS].sum(axis=1)
    assert np.allclose(parts, t["energy_uj_per_inference"], rtol=1e-12)
    front = t.index[t["pareto"]]
    assert len(front) >= 1
    for i in t.index:
        assert bool(t.loc[i, "pareto"]) == (not _dominated(t, i))
    # the files hold the same table
    pq = pd.read_parquet(out / TABLE_PARQUET)
    pd.testing.assert_frame_equal(pq, t)
    assert len(pd.read_csv(out / TABLE_CSV)) == 12
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_computes_only_the_missing_points(full, tmp_path):
    res, out = full
    half = tmp_path / "half"
    shutil.copytree(out, half)
    # an interrupted run: no table yet, six finished points in the journal, a line cut short
    (half / TABLE_PARQUET).unlink()
    (half / TABLE_CSV).unlink()
    lines = (half / JOURNAL).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 12
    keep = lines[:6]
    (half / JOURNAL).write_text("\n".join(keep) + "\n" + lines[6][:40], encoding="utf-8")
    again = sweep("fashion_cnn", EDGE, GRID, jobs=1, sample_error=0.05, out_dir=half, resume=True)
    assert again.computed == 6 and again.reused == 6
    new_keys = {json.loads(ln)["point"] for ln in
                (half / JOURNAL).read_text(encoding="utf-8").splitlines()[6:] if ln.startswith("{")
                and ln.endswith("}")}
    assert new_keys == set(res.table["point"]) - {json.loads(ln)["point"] for ln in keep}
    pd.testing.assert_frame_equal(again.table, res.table)
    # nothing left to do; a finished table is read back from Parquet
    (half / JOURNAL).unlink()
    done = sweep("fashion_cnn", EDGE, GRID, jobs=1, sample_error=0.05, out_dir=half, resume=True)
    assert done.computed == 0 and done.reused == 12
    # another sample error is refused rather than mixed in
    with pytest.raises(JoulesimError, match="another sample error"):
        sweep("fashion_cnn", EDGE, GRID, jobs=1, sample_error=0.1, out_dir=half, resume=True)


def test_dask_executor_gives_the_same_table(full):
    res, _ = full
    d = sweep("fashion_cnn", EDGE, GRID, jobs=2, executor="dask", sample_error=0.05)
    assert d.computed == 12
    pd.testing.assert_frame_equal(d.table, res.table)


def test_grid_values_are_typed_and_string_fields_stay_text():
    base = load_config(EDGE)
    g = parse_grid(["array.rows=8,16", "sparsity.structured=none,2:4", "sparsity.zero_gating=true,false",
                    "technology.voltage_v=null,0.7", "memory.sram.ifmap.size_kib=64,1e3,0.5"], base)
    assert g["array.rows"] == [8, 16]
    assert g["sparsity.structured"] == ["none", "2:4"]          # not YAML 1.1's sexagesimal 124
    assert g["sparsity.zero_gating"] == [True, False]
    assert g["technology.voltage_v"] == [None, 0.7]
    assert g["memory.sram.ifmap.size_kib"] == [64, 1000.0, 0.5]
    pts = grid_points(base, g)
    assert len(pts) == 2 * 2 * 2 * 2 * 3
    assert pts[0].config.array.rows == 8 and pts[-1].config.memory.sram["ifmap"].size_kib == 0.5
    assert point_key({"b": 1, "a": "x"}) == point_key({"a": "x", "b": 1})


@pytest.mark.parametrize("item, expect", [
    ("array.foo=1,2", "unknown field 'array.foo'"),
    ("memory.sram.ifmap.bogus=3", "unknown field"),
    ("array.rows=8,0", "array.rows = 0: must be >= 1"),
    ("array.dataflow=weight_stationary,diagonal", "allowed: weight_stationary"),
    ("memory.dram.kind=lpddr4,sdram", "allowed: hbm2"),
    ("array.rows", "expected KEY=V1,V2"),
    ("array.rows=8,,16", "empty value"),
])
def test_bad_grid_is_one_line_exit_2_and_nothing_runs(tmp_path, item, expect):
    out = tmp_path / "out"
    line = _one_line_error(run("sweep", "fashion_cnn", "--base", EDGE, "--grid", "array.cols=8,16",
                               item, "--out", out))
    assert expect in line
    assert not out.exists()


def test_an_invalid_combination_names_the_point(tmp_path):
    line = _one_line_error(run("sweep", "fashion_cnn", "--base", EDGE, "--grid",
                               "array.dataflow=weight_stationary,input_stationary",
                               "sparsity.structured=none,2:4"))
    assert "array.dataflow=input_stationary, sparsity.structured=2:4" in line


def test_cli_sweep_writes_the_table_and_resumes(tmp_path):
    out = tmp_path / "s"
    args = ("sweep", "fashion_cnn", "--base", EDGE, "--grid", "array.rows=8,16",
            "memory.dram.kind=lpddr4,hbm2", "--jobs", "1", "--sample-error", "0.05", "--out", out)
    r = run(*args)
    assert r.exit_code == 0, r.output
    assert "Pareto front" in r.stdout and "4 computed" in r.stdout
    t = pd.read_parquet(out / TABLE_PARQUET)
    assert len(t) == 4 and set(t["memory.dram.kind"]) == {"lpddr4", "hbm2"}
    r = run(*args, "--resume")
    assert r.exit_code == 0, r.output
    assert "0 computed, 4 already in the output" in r.stdout
    _one_line_error(run("sweep", "fashion_cnn", "--base", EDGE, "--grid", "array.rows=8",
                        "--resume"))
    _one_line_error(run("sweep", "fashion_cnn", "--base", EDGE, "--grid", "array.rows=8",
                        "--scheduler", "tcp://127.0.0.1:1"))


def test_pareto_front_by_hand():
    e = [1.0, 2.0, 3.0, 1.0, 2.0, 0.5]
    lat = [5.0, 3.0, 1.0, 5.0, 4.0, 9.0]
    # (2,4) is dominated by (2,3); the two (1,5) points tie and both stay
    assert list(pareto_front(e, lat)) == [True, True, True, True, False, True]
    assert list(pareto_front([1.0], [1.0])) == [True]
    assert list(pareto_front([], [])) == []
