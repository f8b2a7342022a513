"""`joulesim gemm` end to end: JSON output and one-line errors with exit code 2."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from simulator import load_config, simulate_gemm
from simulator.cli import cli

ROOT = Path(__file__).resolve().parents[1]
EDGE = ROOT / "hw_configs" / "edge_npu_16x16_int8.yaml"


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_gemm_json_has_the_documented_keys_and_matches_the_api():
    r = run("gemm", "--m", "40", "--k", "30", "--n", "20", "--hw", str(EDGE), "--json",
            "--seed", "3", "--dataflow", "os")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    for key in ("cycles", "folds", "sram_reads_ifmap", "sram_reads_filter", "sram_writes_ofmap",
                "macs", "energy_pj", "energy_pj_total"):
        assert key in out
    assert set(out["macs"]) == {"total", "issued", "gated", "skipped"}
    assert abs(sum(out["energy_pj"].values()) - out["energy_pj_total"]) < 1e-6 * out["energy_pj_total"]
    rng = np.random.default_rng(3)
    from simulator.formats import random_operand
    A = random_operand((40, 30), "int8", rng)
    B = random_operand((30, 20), "int8", rng)
    api = simulate_gemm(A, B, load_config(EDGE), dataflow="os")
    assert out["cycles"] == api.cycles
    assert out["toggles"] == {k: int(v) for k, v in api.toggles.items()}


def test_gemm_table_and_npz_operands(tmp_path):
    f = tmp_path / "ops.npz"
    np.savez(f, A=np.arange(-60, 60).reshape(12, 10), B=np.ones((10, 7), np.int64))
    r = run("gemm", "--hw", str(EDGE), "--operands", str(f), "--rows", "4", "--cols", "4")
    assert r.exit_code == 0, r.output
    assert "Energy by component" in r.stdout and "pJ" in r.stdout
    r = run("gemm", "--hw", str(EDGE), "--operands", str(f), "--k", "11")
    assert r.exit_code == 2 and "--k 11 does not match" in r.stderr


def _write_bad(tmp_path, mutate):
    d = yaml.safe_load(EDGE.read_text())
    mutate(d)
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


BAD = {
    "missing_field": lambda d: d["array"].pop("rows"),
    "negative_size": lambda d: d["memory"]["sram"]["ifmap"].update(size_kib=-4),
    "unknown_dataflow": lambda d: d["array"].update(dataflow="diagonal"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_one_line_exit_2(tmp_path, case):
    p = _write_bad(tmp_path, BAD[case])
    r = run("gemm", "--m", "8", "--k", "8", "--n", "8", "--hw", str(p))
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("joulesim: error:")
    assert "bad.yaml" in lines[0]
    assert "Traceback" not in r.output


def test_yaml_syntax_error_and_missing_file(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("array:\n  rows: [16\n")
    for path in (p, tmp_path / "nope.yaml"):
        r = run("gemm", "--m", "8", "--k", "8", "--n", "8", "--hw", str(path))
        assert r.exit_code == 2
        assert len(r.stderr.strip().splitlines()) == 1
        assert path.name in r.stderr


def test_other_bad_input_is_one_line():
    for args in (["--operands", "random"],                                  # no dims
                 ["--m", "8", "--k", "8", "--n", "8", "--sample-error", "2"],
                 ["--m", "8", "--k", "8", "--n", "8", "--operands", "x.txt"]):
        r = run("gemm", "--hw", str(EDGE), *args)
        assert r.exit_code == 2, r.output
        assert len(r.stderr.strip().splitlines()) == 1


def test_help_lists_options_with_units():
    r = run("gemm", "--help")
    assert r.exit_code == 0
    for opt in ("--m", "--k", "--n", "--hw", "--dataflow", "--rows", "--cols", "--operands",
                "--exact", "--sample-error", "--json"):
        assert opt in r.output
