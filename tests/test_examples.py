"""The scripts in examples/ run (with --tiny), write their files and print positive energies."""
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"


def _run(script, out_dir):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--tiny", "--out", str(out_dir)],
                       capture_output=True, text=True, timeout=300, cwd=out_dir.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _non_empty(path):
    assert path.is_file() and path.stat().st_size > 0, path


def test_simulate_your_own_model(tmp_path):
    out_dir = tmp_path / "out"
    stdout = _run("simulate_your_own_model.py", out_dir)
    energies_uj = [float(v) for v in re.findall(rf"^energy_uj_per_inference\s+{NUMBER}\s*$", stdout, re.M)]
    assert len(energies_uj) == 2 and all(e > 0 for e in energies_uj), stdout
    configs = ("edge_npu_16x16_int8", "edge_npu_16x16_int8_zero_gating")
    for config, energy_uj in zip(configs, energies_uj):
        csv_path = out_dir / f"layers_{config}.csv"
        _non_empty(csv_path)
        assert f"wrote {csv_path}" in stdout
        assert pd.read_csv(csv_path)["energy_total_uj"].sum() == pytest.approx(energy_uj, rel=1e-5)


def test_sweep_pareto(tmp_path):
    out_dir = tmp_path / "out"
    stdout = _run("sweep_pareto.py", out_dir)
    front = re.search(r"Pareto front: (\d+) of (\d+) points", stdout)
    assert front and 1 <= int(front[1]) <= int(front[2]) == 4, stdout
    lowest_uj = re.search(rf"lowest energy: energy_uj_per_inference = {NUMBER}", stdout)
    assert lowest_uj and float(lowest_uj[1]) > 0, stdout
    for name in ("sweep.csv", "sweep.parquet", "pareto.png"):
        _non_empty(out_dir / "sweep" / name)
    table = pd.read_csv(out_dir / "sweep" / "sweep.csv")
    assert len(table) == 4 and table["pareto"].sum() == int(front[1])
    assert table["energy_uj_per_inference"].min() == pytest.approx(float(lowest_uj[1]), rel=1e-5)
    assert (out_dir / "sweep" / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_prune_for_two_chips(tmp_path):
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("Fashion-MNIST (Debian package dataset-fashion-mnist) is not installed")
    out_dir = tmp_path / "out"
    stdout = _run("prune_for_two_chips.py", out_dir)
    runs = re.findall(rf"pruned for (\S+): {NUMBER} -> {NUMBER} µJ per inference", stdout)
    assert [r[0] for r in runs] == ["edge_npu_16x16_int8", "edge_npu_16x16_int8_zero_gating"], stdout
    assert all(float(after) < float(before) for _, before, after in runs)
    table = pd.read_csv(out_dir / "cross" / "compare.csv")
    assert len(table) == 6                                   # 3 models x 2 chips
    for chip, before, _ in runs:
        dense = table[(table["model"] == "fashion_cnn") & (table["config"] == chip)]
        assert float(dense["energy_uj_per_inference"].iloc[0]) == pytest.approx(float(before), rel=1e-3)
