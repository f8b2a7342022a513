"""Design comparison: one model (and models pruned for other designs) on several accelerators.

`compare(model, configs)` simulates the model on every config and returns a
`Comparison`: one row per (model, config) with the energy per inference by
component (µJ), latency (cycles, µs), energy-delay product (µJ·µs),
utilization, DRAM traffic and inferences per joule. With `pruned_for`, each
pruned model (a directory holding `model.pt`, as `joulesim prune` writes) is
evaluated on every config too: the cross matrix of "pruned for X, run on Y".

The model's real tensors are captured once per model (`network.Workload`);
only the hardware-dependent work is repeated per config.

`write_comparison` writes compare.csv, compare_energy.png (stacked bars by
component), compare_latency.png (energy vs latency) and compare.html (the
tables and both plots, images embedded as base64: one self-contained file).
"""
from __future__ import annotations

import hashlib
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from simulator.errors import JoulesimError
from simulator.html_report import format_value, html_image, html_page, html_table
from simulator.report import progress_bar

__all__ = ["COMPONENTS", "COMPONENT_COLUMNS", "METRIC_COLUMNS", "Comparison", "compare",
           "design_metrics", "load_pruned_model", "resolve_workload", "write_comparison",
           "print_comparison", "workload_fingerprint"]

# (column in Report.total and in the tables, label)
COMPONENTS = [("mac_uj", "MAC"), ("registers_uj", "registers"), ("sram_uj", "SRAM"),
              ("dram_uj", "DRAM"), ("vector_uj", "vector"), ("leakage_uj", "leakage")]
COMPONENT_COLUMNS = [c for c, _ in COMPONENTS]
METRIC_COLUMNS = (["energy_uj_per_inference"] + COMPONENT_COLUMNS +
                  ["latency_cycles", "latency_us", "stall_cycles", "edp_uj_us", "utilization",
                   "dram_bytes_per_inference", "inferences_per_joule", "average_power_mw",
                   "macs_per_inference", "batch", "mode"])
# units of the table columns (CSV headers stay plain identifiers; the units are here and in the docs)
UNITS = {"energy_uj_per_inference": "µJ", **{c: "µJ" for c in COMPONENT_COLUMNS},
         "latency_cycles": "cycles", "latency_us": "µs", "stall_cycles": "cycles",
         "edp_uj_us": "µJ·µs", "utilization": "fraction of PE-cycles",
         "dram_bytes_per_inference": "bytes", "inferences_per_joule": "1/J",
         "average_power_mw": "mW", "macs_per_inference": "MACs"}
PRUNED_FILE = "model.pt"


def design_metrics(report) -> dict:
    """The per-design summary of one `network.Report`.

    - energy_uj_per_inference and its components (mac_uj ... leakage_uj, µJ; they add up to it);
    - latency_cycles / latency_us: one forward pass of the batch, stalls included;
    - edp_uj_us: energy per inference (µJ) x latency (µs);
    - utilization: issued MACs / (compute cycles x PEs) over the MAC layers, i.e. the
      compute-cycle-weighted mean of the per-layer utilization (stall cycles excluded);
    - dram_bytes_per_inference: DRAM traffic of the forward pass / batch;
    - inferences_per_joule: 1e6 / energy_uj_per_inference.
    """
    t = report.total
    layers = report.layers
    mac = layers[layers["macs"] > 0]
    cycles = float(mac["cycles"].sum())
    util = float((mac["utilization"] * mac["cycles"]).sum() / cycles) if cycles else 0.0
    energy = float(t["energy_uj_per_inference"])
    batch = int(t["batch"])
    return {
        "energy_uj_per_inference": energy,
        **{c: float(t[c]) for c in COMPONENT_COLUMNS},
        "latency_cycles": int(t["latency_cycles"]),
        "latency_us": float(t["latency_us"]),
        "stall_cycles": int(t["stall_cycles"]),
        "edp_uj_us": energy * float(t["latency_us"]),
        "utilization": util,
        "dram_bytes_per_inference": float(t["dram_bytes"]) / batch,
        "inferences_per_joule": 1e6 / energy if energy > 0 else math.inf,
        "average_power_mw": float(t["average_power_mw"]),
        "macs_per_inference": int(t["macs_per_inference"]),
        "batch": batch,
        "mode": t["mode"],
    }


# ----------------------------------------------------------------- models and inputs
def resolve_workload(model, inputs=None, seed: int = 0, label: str | None = None):
    """(Workload, label, inputs) for a model given as a `network.Workload`, an nn.Module or a
    model spec (built-in name, path/to/file.py:factory, a model saved with torch.save).
    `inputs`: a tensor, a shape (tuple or "1,1,28,28"), or None for the model's default shape
    (spec models only)."""
    import torch

    from simulator.models import check_inputs, load_model
    from simulator.network import Workload

    if isinstance(model, Workload):
        return model, label or "workload", None
    default_shape = None
    if isinstance(model, (str, Path)):
        label = label or str(model)
        model, default_shape = load_model(str(model))
    elif isinstance(model, torch.nn.Module):
        label = label or type(model).__name__
        model = model.eval()
    else:
        raise JoulesimError(f"model: expected a model spec, an nn.Module or a Workload, "
                            f"got {type(model).__name__}")
    x = _make_x(inputs, default_shape, label, seed, model)
    check_inputs(model, x)
    torch.manual_seed(seed)
    return Workload(model, x), label, x


def _make_x(inputs, default_shape, label, seed, model=None):
    import torch

    from simulator.models import example_inputs, parse_shape

    if isinstance(inputs, torch.Tensor):
        return inputs
    if isinstance(inputs, (tuple, list)) and inputs and all(isinstance(i, torch.Tensor) for i in inputs):
        return inputs[0] if len(inputs) == 1 else tuple(inputs)
    shape = parse_shape(inputs) if isinstance(inputs, str) else inputs
    shape = shape if shape is not None else default_shape
    if shape is None:
        raise JoulesimError(f"{label}: no default input shape; give an input shape")
    return example_inputs(model, shape, seed=seed)


def load_pruned_model(directory):
    """(label, nn.Module) from a directory holding `model.pt`: a whole nn.Module saved with
    torch.save(model, DIR/model.pt) (what `joulesim prune` writes)."""
    import torch

    d = Path(directory)
    if not d.is_dir():
        raise JoulesimError(f"--pruned-for {directory}: not a directory (expected a directory "
                            f"holding {PRUNED_FILE}, as `joulesim prune` writes)")
    f = d / PRUNED_FILE
    if not f.is_file():
        raise JoulesimError(f"--pruned-for {directory}: no {PRUNED_FILE} in it (expected a whole "
                            "nn.Module saved with torch.save(model, DIR/model.pt))")
    try:
        obj = torch.load(f, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error
        reason = " ".join(f"{type(e).__name__}: {e}".split())[:200]
        raise JoulesimError(f"{f}: cannot load ({reason})") from None
    if not isinstance(obj, torch.nn.Module):
        raise JoulesimError(f"{f}: holds a {type(obj).__name__}, not a whole nn.Module (save it "
                            "with torch.save(model, path), not model.state_dict())")
    return d.resolve().name or str(d), obj.eval()


def _load_configs(configs) -> list:
    from simulator.config import HardwareConfig, load_config

    out = []
    for c in configs:
        out.append(c if isinstance(c, HardwareConfig) else load_config(c))
    if not out:
        raise JoulesimError("compare: give at least one hardware config")
    return out


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        n = seen.get(lab, 0) + 1
        seen[lab] = n
        out.append(lab if n == 1 else f"{lab} #{n}")
    return out


# ----------------------------------------------------------------- the comparison
@dataclass
class Comparison:
    """`table`: one row per (model, config) with `METRIC_COLUMNS`; `reports`: the full
    `network.Report` of each row, keyed by (model, config) labels; `files`: what was written."""

    table: pd.DataFrame
    reports: dict = field(default_factory=dict)
    files: list = field(default_factory=list)

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(self.table["model"]))

    @property
    def configs(self) -> list[str]:
        return list(dict.fromkeys(self.table["config"]))

    def matrix(self, metric: str = "energy_uj_per_inference") -> pd.DataFrame:
        """model (rows) x config (columns) of one metric: the pruned-for cross matrix."""
        m = self.table.pivot(index="model", columns="config", values=metric)
        return m.loc[self.models, self.configs]


def compare(model, configs: Iterable, *, inputs=None, pruned_for: Iterable = (),
            sample_error: float | None = None, seed: int = 0, out_dir=None,
            progress: bool = False, label: str | None = None) -> Comparison:
    """Simulate `model` on every config in `configs` (paths or HardwareConfig).

    model: a spec (built-in name, path/to/file.py:factory, a model saved with torch.save), an
    nn.Module or a `network.Workload`; inputs: a tensor, a shape, or None for the spec's default shape;
    label: the model's name in the table (default: the spec, or the module's class name).
    pruned_for: directories holding `model.pt` (whole nn.Modules saved with torch.save, as
    `joulesim prune` writes); each is evaluated on every config on the same inputs, after the
    model itself. sample_error / seed: as in `network.simulate`. out_dir: also write the CSV,
    plots and HTML page there (`write_comparison`). Every argument is checked (configs
    loaded, pruned models loaded, inputs accepted) before anything is simulated."""
    from simulator.network import simulate_workload

    cfgs = _load_configs(configs)
    cfg_labels = _unique([c.name for c in cfgs])
    pruned = [load_pruned_model(d) for d in pruned_for]
    work, label, x = resolve_workload(model, inputs, seed, label)
    models = [(label, work)]
    for plabel, pmodel in pruned:
        if x is None:
            raise JoulesimError("compare: pruned models need inputs; give a model, not a Workload")
        pwork, _, _ = resolve_workload(pmodel, x, seed)
        models.append((f"pruned:{plabel}", pwork))
    labels = _unique([m for m, _ in models])
    models = [(lab, w) for lab, (_, w) in zip(labels, models)]

    rows, reports = [], {}
    total = len(models) * len(cfgs)
    with progress_bar(progress) as bar:
        task = bar.add_task("comparing", total=total) if bar else None
        for mlabel, w in models:
            for clabel, cfg in zip(cfg_labels, cfgs):
                if bar:
                    bar.update(task, description=f"{mlabel} on {clabel}"[:50])
                rep = simulate_workload(w, cfg, sample_error=sample_error, seed=seed)
                reports[(mlabel, clabel)] = rep
                rows.append({"model": mlabel, "config": clabel, **design_metrics(rep)})
                if bar:
                    bar.advance(task)
    result = Comparison(pd.DataFrame(rows, columns=["model", "config"] + METRIC_COLUMNS), reports)
    if out_dir is not None:
        result.files = write_comparison(result, out_dir)
    return result




# ----------------------------------------------------------------- output
_TERM_COLUMNS = [  # (header, column, format)
    ("MAC", "mac_uj", "{:.3f}"), ("regs", "registers_uj", "{:.3f}"), ("SRAM", "sram_uj", "{:.3f}"),
    ("DRAM", "dram_uj", "{:.3f}"), ("vector", "vector_uj", "{:.3f}"), ("leak", "leakage_uj", "{:.3f}"),
    ("total µJ", "energy_uj_per_inference", "{:.3f}"), ("cycles", "latency_cycles", "{:,}"),
    ("µs", "latency_us", "{:,.1f}"), ("EDP µJ·µs", "edp_uj_us", "{:,.1f}"),
    ("util %", "utilization", "pct"), ("DRAM B/inf", "dram_bytes_per_inference", "{:,.0f}"),
    ("inf/J", "inferences_per_joule", "{:,.0f}"),
]


def print_comparison(result: Comparison, console=None) -> None:
    """One table, a row per (model,) config; energies per inference by component in µJ."""
    from rich.table import Table

    from simulator.report import _console

    console = console or _console(190)
    t = result.table
    many = len(result.models) > 1
    mode = ", ".join(dict.fromkeys(t["mode"])) if len(t) else ""
    tab = Table(title=f"energy per inference by component (µJ), latency, EDP ({mode})")
    if many:
        tab.add_column("model")
    tab.add_column("config")
    for head, _, _ in _TERM_COLUMNS:
        tab.add_column(head, justify="right")
    for _, r in t.iterrows():
        cells = ([r["model"]] if many else []) + [r["config"]]
        cells += [format_value(f, r[c]) for _, c, f in _TERM_COLUMNS]
        tab.add_row(*cells)
    console.print(tab)
    console.print("latency: one forward pass (batch "
                  f"{', '.join(str(b) for b in dict.fromkeys(t['batch']))}), stalls included; "
                  "EDP = energy per inference x latency; util = issued MACs / (compute cycles x PEs)")


def _plot_energy(table: pd.DataFrame):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    many = table["model"].nunique() > 1
    labels = [f"{m}\non {c}" if many else c for m, c in zip(table["model"], table["config"])]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(table) + 2), 4.8))
    bottom = np.zeros(len(table))
    for col, name in COMPONENTS:
        vals = table[col].to_numpy(dtype=float)
        ax.bar(range(len(table)), vals, bottom=bottom, label=name)
        bottom += vals
    ax.set_xticks(range(len(table)), labels, rotation=30 if len(table) > 3 else 0, ha="right"
                  if len(table) > 3 else "center", fontsize=8)
    ax.set_ylabel("energy per inference (µJ)")
    ax.set_title("energy per inference by component")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _plot_latency(table: pd.DataFrame):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for model, part in table.groupby("model", sort=False):
        ax.scatter(part["latency_us"], part["energy_uj_per_inference"], label=model)
        for _, r in part.iterrows():
            ax.annotate(r["config"], (r["latency_us"], r["energy_uj_per_inference"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("latency (µs)")
    ax.set_ylabel("energy per inference (µJ)")
    ax.set_title("energy vs latency")
    if table["model"].nunique() > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _png_bytes(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


_HTML_FORMATS = {"energy_uj_per_inference": "{:.4f}", **{c: "{:.4f}" for c in COMPONENT_COLUMNS},
                 "latency_cycles": "{:,}", "latency_us": "{:,.2f}", "stall_cycles": "{:,}",
                 "edp_uj_us": "{:,.2f}", "utilization": "pct", "dram_bytes_per_inference": "{:,.0f}",
                 "inferences_per_joule": "{:,.0f}", "average_power_mw": "{:,.2f}",
                 "macs_per_inference": "{:,}"}


def _atomic(path: Path, data: bytes | str) -> None:
    from simulator.report import atomic_write

    if isinstance(data, str):
        atomic_write(path, lambda p: p.write_text(data, encoding="utf-8"))
    else:
        atomic_write(path, lambda p: p.write_bytes(data))


def write_comparison(result: Comparison, out_dir) -> list[Path]:
    """compare.csv (one row per model x config), compare_matrix.csv (energy per inference,
    model x config; only with pruned models), compare_energy.png, compare_latency.png and
    compare.html (self-contained: tables and plots, images as base64) in `out_dir`.
    Every file is written under a temporary name, then renamed."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise JoulesimError(f"--out {out_dir}: cannot create ({e.strerror})") from None
    table = result.table
    written = []
    from simulator.report import atomic_write

    atomic_write(out / "compare.csv", lambda p: table.to_csv(p, index=False))
    written.append(out / "compare.csv")
    many = len(result.models) > 1
    if many:
        atomic_write(out / "compare_matrix.csv", lambda p: result.matrix().to_csv(p))
        written.append(out / "compare_matrix.csv")
    energy_png = _png_bytes(_plot_energy(table))
    latency_png = _png_bytes(_plot_latency(table))
    _atomic(out / "compare_energy.png", energy_png)
    _atomic(out / "compare_latency.png", latency_png)
    written += [out / "compare_energy.png", out / "compare_latency.png"]
    _atomic(out / "compare.html", _html_page(result, energy_png, latency_png))
    written.append(out / "compare.html")
    return written


def _html_page(result: Comparison, energy_png: bytes, latency_png: bytes) -> str:
    table = result.table
    shown = table if len(result.models) > 1 else table.drop(columns=["model"])
    units = "".join(f"<li><code>{html.escape(c)}</code>: {html.escape(u)}</li>" for c, u in UNITS.items())
    parts = [f"<h2>Designs ({html.escape(', '.join(dict.fromkeys(table['mode'])))})</h2>",
             html_table(shown, _HTML_FORMATS)]
    if len(result.models) > 1:
        mat = result.matrix().reset_index()
        parts += ["<h2>Energy per inference (µJ): model (rows, pruned for a config) on config "
                  "(columns)</h2>", html_table(mat, {c: "{:.4f}" for c in result.configs})]
        lat = result.matrix("latency_us").reset_index()
        parts += ["<h2>Latency (µs): model on config</h2>",
                  html_table(lat, {c: "{:,.2f}" for c in result.configs})]

    parts += ["<h2>Energy per inference by component</h2>", html_image(energy_png, "energy by component"),
              "<h2>Energy vs latency</h2>", html_image(latency_png, "energy vs latency"),
              f"<h2>Units</h2><ul>{units}</ul>",
              "<p>Latency: one forward pass of the batch, stalls included. EDP = energy per "
              "inference x latency. Utilization = issued MACs / (compute cycles x PEs) over the "
              "MAC layers. Inferences per joule = 1e6 / energy per inference (µJ).</p>"]
    title = f"joulesim compare: {', '.join(result.models)} on {len(result.configs)} configs"
    return html_page(title, parts)


def workload_fingerprint(work) -> str:
    """A content hash of a captured workload (MAC operands, op list, batch): identifies the
    model and inputs a sweep was made with, for resuming it."""
    h = hashlib.blake2b(digest_size=16)
    cap = work.capture
    h.update(str(work.batch).encode())
    for op in sorted(cap.mac_ops, key=lambda o: o.seq):
        h.update(f"{op.seq}|{op.name}|{op.kind}|{sorted(op.params.items())}|{op.folded_bn}".encode())
        for t in (op.x, op.w, op.bias):
            if t is not None:
                a = t.detach().cpu().float().contiguous().numpy()
                h.update(str(a.shape).encode())
                h.update(a.tobytes())
    for op in sorted(cap.vector_ops, key=lambda o: o.seq):
        h.update(f"{op.seq}|{op.kind}|{op.elements}|{op.ops}".encode())
    return h.hexdigest()
