"""Design comparison: `simulator.comparison.compare` and `joulesim compare` (tables, files,
models pruned for other configs evaluated on every config)."""
import json
from pathlib import Path

import pytest
from conftest import one_line_error, run_cli
import torch

from simulator.comparison import COMPONENT_COLUMNS, compare, design_metrics
from simulator.config import apply_overrides, load_config
from simulator.models import load_model

ROOT = Path(__file__).resolve().parents[1]
EDGE = ROOT / "hw_configs" / "edge_npu_16x16_int8.yaml"


def _small_and_big():
    small = apply_overrides(load_config(EDGE), {"name": "small_8x8", "array.rows": 8, "array.cols": 8})
    big = apply_overrides(load_config(EDGE), {
        "name": "big_32x32", "array.rows": 32, "array.cols": 32, "technology.frequency_mhz": 2000,
        "memory.dram.kind": "hbm2", "memory.dram.bandwidth_gbps": 256})
    return small, big


run = run_cli
_one_line_error = one_line_error


def test_bigger_faster_design_has_lower_latency_and_components_add_up():
    small, big = _small_and_big()
    res = compare("fashion_cnn", [small, big])
    t = res.table.set_index("config")
    assert list(t.index) == ["small_8x8", "big_32x32"]
    assert t.loc["big_32x32", "latency_cycles"] < t.loc["small_8x8", "latency_cycles"]
    assert t.loc["big_32x32", "latency_us"] < t.loc["small_8x8", "latency_us"]
    assert t.loc["big_32x32", "edp_uj_us"] < t.loc["small_8x8", "edp_uj_us"]
    for _, r in t.iterrows():
        parts = sum(r[c] for c in COMPONENT_COLUMNS)
        assert parts == pytest.approx(r["energy_uj_per_inference"], rel=1e-12)
        assert r["inferences_per_joule"] == pytest.approx(1e6 / r["energy_uj_per_inference"])
        assert r["edp_uj_us"] == pytest.approx(r["energy_uj_per_inference"] * r["latency_us"])
        assert 0 < r["utilization"] <= 1
        assert r["dram_bytes_per_inference"] > 0
    # the per-row report is kept, and the table is its summary
    rep = res.reports[("fashion_cnn", "big_32x32")]
    assert design_metrics(rep)["latency_cycles"] == t.loc["big_32x32", "latency_cycles"]


def test_out_writes_csv_png_and_a_self_contained_html(tmp_path):
    small, big = _small_and_big()
    res = compare("fashion_cnn", [small, big], sample_error=0.05, out_dir=tmp_path / "cmp")
    names = {p.name for p in res.files}
    assert {"compare.csv", "compare_energy.png", "compare.html"} <= names
    import pandas as pd
    csv = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert list(csv["config"]) == ["small_8x8", "big_32x32"]
    assert (tmp_path / "cmp" / "compare_energy.png").read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "cmp" / "compare.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 2
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "small_8x8" in page and "big_32x32" in page
    assert not list((tmp_path / "cmp").glob(".*.tmp"))


def _save_pruned(directory: Path, fraction: float) -> Path:
    """A fashion_cnn with the smallest `fraction` of each conv/linear weight set to zero,
    saved whole as `joulesim prune` would (DIR/model.pt)."""
    model, _ = load_model("fashion_cnn")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                w = m.weight
                k = int(fraction * w.numel())
                thresh = w.abs().flatten().kthvalue(k).values
                w[w.abs() <= thresh] = 0
    directory.mkdir(parents=True)
    torch.save(model, directory / "model.pt")
    return directory


def test_pruned_for_gives_the_cross_matrix(tmp_path):
    small, big = _small_and_big()
    a = _save_pruned(tmp_path / "for_small", 0.5)
    b = _save_pruned(tmp_path / "for_big", 0.8)
    res = compare("fashion_cnn", [small, big], pruned_for=[a, b], out_dir=tmp_path / "out")
    assert res.models == ["fashion_cnn", "pruned:for_small", "pruned:for_big"]
    assert len(res.table) == 6
    m = res.matrix("mac_uj")
    assert m.shape == (3, 2)
    # zeroed weights toggle fewer multiplier bits: less MAC energy than the dense model
    for cfg in ("small_8x8", "big_32x32"):
        assert m.loc["pruned:for_big", cfg] < m.loc["pruned:for_small", cfg] < m.loc["fashion_cnn", cfg]
    assert (tmp_path / "out" / "compare_matrix.csv").is_file()
    assert "pruned:for_big" in (tmp_path / "out" / "compare.html").read_text(encoding="utf-8")


def test_cli_compare_takes_several_configs_after_one_flag(tmp_path):
    d = _save_pruned(tmp_path / "p", 0.5)
    r = run("compare", "fashion_cnn", "--hw", EDGE, "tpu_v1_like_256x256_int8",
            "--pruned-for", d, "--sample-error", "0.05", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [(x["model"], x["config"]) for x in rows] == [
        ("fashion_cnn", "edge_npu_16x16_int8"), ("fashion_cnn", "tpu_v1_like_256x256_int8"),
        ("pruned:p", "edge_npu_16x16_int8"), ("pruned:p", "tpu_v1_like_256x256_int8")]
    r = run("compare", "fashion_cnn", "--hw", EDGE, "--sample-error", "0.05", "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    assert "total µJ" in r.stdout and "wrote" in r.stdout
    assert (tmp_path / "o" / "compare.html").is_file()


def test_cli_compare_errors_are_one_line(tmp_path):
    line = _one_line_error(run("compare", "fashion_cnn", "--hw", EDGE, tmp_path / "nope.yaml"))
    assert "nope.yaml" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    line = _one_line_error(run("compare", "fashion_cnn", "--hw", EDGE, "--pruned-for", empty))
    assert "model.pt" in line
    sd = tmp_path / "state_dict"
    sd.mkdir()
    torch.save(load_model("fashion_cnn")[0].state_dict(), sd / "model.pt")
    line = _one_line_error(run("compare", "fashion_cnn", "--hw", EDGE, "--pruned-for", sd))
    assert "not a whole nn.Module" in line
    _one_line_error(run("compare", "fashion_cnn", "--hw", EDGE, "--input-shape", "1,3,8,8"))
