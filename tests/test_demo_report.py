"""The demo end to end on a few images (--quick), and its report.html opened
in headless Chromium: every table present, every plot decoded and drawn."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# A page that loads the report in a frame and writes what the browser made of it into its own DOM.
PROBE_PAGE = """<!DOCTYPE html><html><body><div id="result">pending</div>
<iframe id="f" src="{src}" width="1400" height="3000"></iframe>
<script>
document.getElementById('f').onload = function () {{
  const d = this.contentDocument;
  const imgs = Array.from(d.images);
  document.getElementById('result').textContent = JSON.stringify({{
    images: imgs.length, drawn: imgs.filter(i => i.complete && i.naturalWidth > 100).length,
    tables: d.querySelectorAll('table').length,
    headings: Array.from(d.querySelectorAll('h2')).map(h => h.textContent),
    text: d.body.innerText.slice(0, 4000)}});
}};
</script></body></html>"""


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("Fashion-MNIST (Debian package dataset-fashion-mnist) is not installed")
    out = tmp_path_factory.mktemp("demo")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stdout


def test_demo_prints_the_headline_and_writes_every_result(demo_out):
    out, stdout = demo_out
    assert "µJ per inference" in stdout and "report:" in stdout
    for name in ("report.html", "compare/compare.csv", "compare/compare_matrix.csv",
                 "pruned_for_edge_npu_16x16_int8/model.pt", "pruned_for_edge_npu_16x16_int8/summary.json"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "pruned_for_edge_npu_16x16_int8" / "summary.json").read_text())
    assert f"{summary['energy_after_uj']:.3f}" in (out / "report.html").read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (scripts/setup.sh installs it as root)")
def test_report_renders_in_headless_chromium(demo_out, tmp_path):
    out, _ = demo_out
    report = out / "report.html"
    probe = tmp_path / "probe.html"
    probe.write_text(PROBE_PAGE.format(src=report.resolve().as_uri()))
    dom = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'u1'}",
                          "--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom",
                          probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    start = dom.index('<div id="result">') + len('<div id="result">')
    seen = json.loads(dom[start:dom.index("</div>", start)].replace("&amp;", "&").replace("&lt;", "<")
                      .replace("&gt;", ">").replace("&quot;", '"'))
    assert seen["images"] == 3 and seen["drawn"] == 3          # trajectory, energy bars, energy vs latency
    assert seen["tables"] >= 5
    assert [h.split(".")[0] for h in seen["headings"]] == ["1", "2", "3"]
    assert "edge_npu_16x16_int8_zero_gating" in seen["text"] and "Per-layer decisions" in seen["text"]

    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'u2'}", f"--screenshot={shot}",
                    "--window-size=1400,2400", "--hide-scrollbars", report.resolve().as_uri()],
                   capture_output=True, timeout=120)
    import matplotlib.image
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2400, 1400)
    coloured = (pixels.max(-1) - pixels.min(-1)) > 0.3        # plot lines and bars, not text or white
    assert coloured.mean() > 0.005
