"""Shared test helpers: small hardware configs built in memory."""
import copy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

BASE_CONFIG = {
    "name": "test_array",
    "technology": {"node_nm": 45, "frequency_mhz": 1000},
    "array": {"rows": 4, "cols": 4, "dataflow": "weight_stationary",
              "operand_format": "int8", "accumulator_bits": 32},
    "memory": {"sram": {"ifmap": {"size_kib": 64}, "filter": {"size_kib": 64},
                        "ofmap": {"size_kib": 64}},
               "dram": {"kind": "lpddr4", "bandwidth_gbps": 16}},
}


def make_config(**sections):
    """BASE_CONFIG with sections updated, e.g. make_config(array={"rows": 2})."""
    from simulator.config import config_from_dict

    d = copy.deepcopy(BASE_CONFIG)
    for key, val in sections.items():
        if isinstance(val, dict):
            d.setdefault(key, {}).update(val)
        else:
            d[key] = val
    return config_from_dict(d, source="<test>")


@pytest.fixture
def config_factory():
    return make_config


def run_cli(*args):
    """Run the joulesim CLI in-process; stdout and stderr are kept apart."""
    from click.testing import CliRunner

    from simulator.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result):
    """Assert a CLI failure is exit code 2 with exactly one `joulesim: error:` line."""
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("joulesim: error: "), result.stderr
    return lines[0]
