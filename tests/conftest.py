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
