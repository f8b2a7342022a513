"""Whole-network simulation: capture, BatchNorm folding, unmodeled ops,
caching, the `joulesim simulate` CLI and its one-line errors."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

from simulator import network
from simulator.capture import capture
from simulator.cli import cli
from simulator.config import load_config

ROOT = Path(__file__).resolve().parents[1]
EDGE = ROOT / "hw_configs" / "edge_npu_16x16_int8.yaml"


class Small(nn.Module):
    def __init__(self, with_fft=False):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, 10)
        self.with_fft = with_fft

    def forward(self, x):
        y = self.pool(torch.relu(self.bn(self.conv(x))))
        if self.with_fft:
            y = torch.fft.fft(y).real          # something the simulator cannot price
        return self.fc(y.flatten(1))


def _small(**kw):
    torch.manual_seed(0)
    m = Small(**kw).eval()
    with torch.no_grad():
        m.bn.running_mean.uniform_(-1, 1)
        m.bn.running_var.uniform_(0.5, 2)
    return m


def test_batchnorm_is_folded_into_the_conv():
    m = _small()
    x = torch.randn(2, 1, 8, 8)
    cap = capture(m, x)
    conv = cap.mac_ops[0]
    assert conv.folded_bn and not any(v.kind == "batch_norm" for v in cap.vector_ops)
    ref = m.bn(m.conv(x))
    got = torch.nn.functional.conv2d(x, conv.w, conv.bias, padding=1)
    assert torch.allclose(got, ref, atol=1e-5)


def test_unsupported_op_is_listed_not_dropped():
    rep = network.simulate(_small(with_fft=True), torch.randn(1, 1, 8, 8), load_config(EDGE))
    assert list(rep.unmodeled["kind"]) == ["fft_fft"]
    assert rep.total["unmodeled_ops"] >= 1
    assert 0 < rep.total["unmodeled_share_of_operations"] < 1
    assert rep.total["energy_uj_per_inference"] > 0


def test_components_add_up_and_vector_ops_are_priced():
    rep = network.simulate(_small(), torch.randn(1, 1, 8, 8), load_config(EDGE))
    L = rep.layers
    parts = L[network.ENERGY_COLUMNS].sum(axis=1)
    assert ((parts - L["energy_total_uj"]).abs() < 1e-12).all()
    assert set(L["kind"]) >= {"conv2d", "linear", "relu", "max_pool2d"}
    assert (L.loc[L["kind"] == "relu", "energy_vector_uj"] > 0).all()
    assert abs(rep.total["energy_uj_per_inference"] - L["energy_total_uj"].sum()) < 1e-12


def test_cache_hits_every_layer_and_resimulates_only_a_changed_one():
    network.clear_cache()
    cfg = load_config(EDGE)
    m, x = _small(), torch.randn(1, 1, 8, 8)
    first = network.simulate(m, x, cfg)
    assert not first.layers.loc[first.layers["macs"] > 0, "cached"].any()
    again = network.simulate(m, x, cfg)
    assert again.layers.loc[again.layers["macs"] > 0, "cached"].all()
    assert again.total == first.total
    with torch.no_grad():
        m.fc.weight[0, 0] += 1.0
    third = network.simulate(m, x, cfg)
    mac = third.layers[third.layers["macs"] > 0].set_index("layer")["cached"]
    assert mac.to_dict() == {"conv.conv2d": True, "fc.linear": False}


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_cli_simulate_fashion_cnn_writes_the_report(tmp_path):
    out = tmp_path / "rep"
    r = run("simulate", "fashion_cnn", "--hw", str(EDGE), "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "energy per inference" in r.stdout and "µJ" in r.stdout
    for f in ("layers.csv", "summary.json", "energy_breakdown.png", "unmodeled.csv"):
        assert (out / f).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["energy_uj_per_inference"] > 0 and summary["latency_cycles"] > 0
    r = run("simulate", "fashion_cnn", "--hw", str(EDGE), "--json", "--batch", "2",
            "--sample-error", "0.05")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["batch"] == 2


def _factory_file(tmp_path, body):
    f = tmp_path / "mymodel.py"
    f.write_text("import torch, torch.nn as nn\n" + body)
    return f


@pytest.mark.parametrize("case", ["unknown_model", "missing_factory", "bad_shape", "nan_weights",
                                  "missing_config", "failing_factory"])
def test_bad_input_one_line_exit_2(tmp_path, case):
    out = tmp_path / "out"
    hw = str(EDGE)
    model = "fashion_cnn"
    extra = []
    if case == "unknown_model":
        model = "resnet1000"
    elif case == "missing_factory":
        model = f"{_factory_file(tmp_path, 'def other(): return nn.Linear(2, 2)')}:make"
    elif case == "failing_factory":
        failing = "def make():\n    raise RuntimeError('boom')\n"
        model = f"{_factory_file(tmp_path, failing)}:make"
    elif case == "bad_shape":
        extra = ["--input-shape", "1,3,5,5"]
    elif case == "nan_weights":
        body = ("def make():\n    m = nn.Linear(4, 3)\n    with torch.no_grad():\n"
                "        m.weight[0, 0] = float('nan')\n    return m\n")
        model = f"{_factory_file(tmp_path, body)}:make"
        extra = ["--input-shape", "1,4"]
    elif case == "missing_config":
        hw = str(tmp_path / "nope.yaml")
    r = run("simulate", model, "--hw", hw, "--out", str(out), *extra)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("joulesim: error:"), r.stderr
    assert "Traceback" not in r.output
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
def test_cli_simulate_resnet18_224():
    r = run("simulate", "resnet18", "--hw", str(EDGE), "--input-shape", "1,3,224,224", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["macs_per_inference"] > 1.7e9


def test_nm_array_fetches_conforming_weights_compressed():
    """A 64->64 Linear on 8 tokens, on a 32x32 2:4 array (int8): A = 8*64 = 512 B read, the output
    (512 B) stays on chip. Weights, by hand: dense 64*64 = 4096 B; 2:4 in both 32-column strips
    64 * 32 kept * (1 B + 2 bits) = 2560 B; 2:4 in the first strip only 1280 + 32*64 = 3328 B."""
    from conftest import make_config

    cfg = make_config(array={"rows": 32, "cols": 32}, sparsity={"structured": "2:4"})
    torch.manual_seed(0)
    lin = nn.Linear(64, 64, bias=False).eval()
    x = torch.randn(1, 8, 64)
    with torch.no_grad():   # |w| in [0.5, 1]: no weight quantizes to zero
        w = torch.empty(64, 64).uniform_(0.5, 1.0) * torch.sign(torch.randn(64, 64))
        keep = (torch.arange(64) % 4 < 2).float()          # 2 of every 4 inputs (GEMM K)
        cases = {"dense": (w, 4096), "both": (w * keep, 2560), "first": (w.clone(), 3328)}
        cases["first"][0][:32] *= keep                    # output neurons 0..31 = the first strip
    for name, (weight, b_bytes) in cases.items():
        with torch.no_grad():
            lin.weight.copy_(weight)
        network.clear_cache()
        row = network.simulate(lin, x, cfg).layers.iloc[0]
        assert row["dram_bytes"] == 512 + b_bytes, name
        assert row["energy_dram_uj"] == pytest.approx((512 + b_bytes) * 8 * 8.0 / 1e6), name
