"""The generated documentation is current."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_config_reference_is_generated_from_the_current_schema():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_config_reference.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_schema_field_is_documented():
    text = (ROOT / "docs" / "hardware-config.md").read_text()
    for field in ("array.rows", "sparsity.structured", "memory.dram.bandwidth_gbps",
                  "memory.sram.<buffer>.size_kib", "leakage.static_power_w"):
        assert f"`{field}`" in text
