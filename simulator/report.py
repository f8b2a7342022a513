"""Report: human-readable tables of simulation results (terminal, via rich).
Units are in every header."""
from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.table import Table


def _console(width: int = 110) -> Console:
    probe = Console()
    # pipes and CI logs report 80 columns; tables read better wider
    return probe if probe.is_terminal else Console(width=width)


class _NoBar:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def progress_bar(enabled: bool, eta: bool = False):
    """A transient rich progress bar (a context giving the Progress), or a
    context giving None when disabled (JSON output, library calls)."""
    if not enabled:
        return _NoBar()
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    extra = (TimeRemainingColumn(),) if eta else ()
    return Progress(TextColumn("{task.description:50s}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), *extra, transient=True)


def _si(v: float) -> str:
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.2f}{unit}"
    return f"{v:.0f}"


def print_gemm(res, console: Console | None = None) -> None:
    console = console or _console()
    c = res.counts
    head = Table(title=f"GEMM {res.m}x{res.k}x{res.n} on {res.config} "
                       f"({res.rows}x{res.cols} {res.dataflow}, {res.operand_format}, {res.mode})",
                 show_header=True)
    head.add_column("quantity")
    head.add_column("value", justify="right")
    head.add_column("unit")
    rows = [
        ("cycles", f"{c.cycles:,}", "cycles"),
        ("latency", f"{res.latency_us:,.3f}", "µs"),
        ("folds executed / planned", f"{c.folds:,} / {c.folds_planned:,}", "folds"),
        ("utilization", f"{100 * res.utilization:.1f}", "% of PE-cycles"),
        ("MACs total / issued", f"{c.macs_total:,} / {c.macs_issued:,}", "MACs"),
        ("MACs gated / skipped", f"{res.macs['gated']:,} / {res.macs['skipped']:,}", "MACs"),
        ("SRAM reads ifmap / filter", f"{c.sram_reads_ifmap:,} / {c.sram_reads_filter:,}", "elements"),
        ("SRAM writes ofmap / psum reads", f"{c.sram_writes_ofmap:,} / {c.sram_reads_psum:,}", "elements"),
        ("metadata read", f"{c.metadata_bits:,}", "bits"),
    ]
    for name, val in res.toggles.items():
        lo, hi = res.toggles_ci95[name]
        ci = "" if res.mode == "exact" else f"  (95% CI {lo:,.0f} – {hi:,.0f})"
        rows.append((f"toggles {name}", f"{val:,}{ci}", "bit flips"))
    for r in rows:
        head.add_row(*r)
    console.print(head)
    en = Table(title="Energy by component", show_header=True)
    for col, just in (("component", "left"), ("events", "right"), ("event", "left"),
                      ("pJ/event", "right"), ("energy (pJ)", "right"), ("share", "right")):
        en.add_column(col, justify=just)
    total = res.energy_pj_total
    for name, (n, unit, price) in res.events.items():
        e = res.energy_pj[name]
        en.add_row(name, f"{int(n):,}", unit, f"{price:.4g}", f"{e:,.1f}",
                   f"{100 * e / total:.1f}%" if total else "-")
    en.add_row("total", "", "", "", f"{total:,.1f}", "100%", style="bold")
    console.print(en)
    console.print(f"energy per MAC: {total / max(c.macs_total, 1):.4f} pJ "
                  f"({total / 1e6:.4f} µJ total)")


def print_network(report, console: Console | None = None) -> None:
    """Per-layer table (µJ per inference) and the totals."""
    console = console or _console(150)
    t = Table(title=f"{report.total['config']}: energy per inference by layer (µJ)")
    cols = [("layer", "layer", "left"), ("kind", "kind", "left"), ("MACs", "macs", "right"),
            ("cycles", "cycles", "right"), ("stall", "stall_cycles", "right"),
            ("util %", "utilization", "right"), ("MAC", "energy_mac_uj", "right"),
            ("regs", "energy_registers_uj", "right"), ("SRAM", "energy_sram_uj", "right"),
            ("DRAM", "energy_dram_uj", "right"), ("vector", "energy_vector_uj", "right"),
            ("leak", "energy_leakage_uj", "right"), ("total", "energy_total_uj", "right")]
    for head, _, just in cols:
        t.add_column(head, justify=just)
    for _, r in report.layers.iterrows():
        vals = []
        for _, key, _ in cols:
            v = r[key]
            if key == "utilization":
                vals.append(f"{100 * v:.0f}" if r["macs"] else "")
            elif key == "macs":
                vals.append(_si(v) if v else "")
            elif key in ("cycles", "stall_cycles"):
                vals.append(f"{int(v):,}")
            elif isinstance(v, float):
                vals.append(f"{v:.3f}")
            else:
                vals.append(str(v))
        t.add_row(*vals)
    console.print(t)
    tot = report.total
    console.print(
        f"[bold]energy per inference {tot['energy_uj_per_inference']:.3f} µJ[/bold] "
        f"(MAC {tot['mac_uj']:.3f}, registers {tot['registers_uj']:.3f}, SRAM {tot['sram_uj']:.3f}, "
        f"DRAM {tot['dram_uj']:.3f}, vector {tot['vector_uj']:.3f}, leakage {tot['leakage_uj']:.3f} µJ); "
        f"latency {tot['latency_cycles']:,} cycles = {tot['latency_us']:.1f} µs "
        f"({tot['stall_cycles']:,} stall cycles); average power {tot['average_power_mw']:.1f} mW; "
        f"DRAM traffic {tot['dram_bytes']:,} bytes; batch {tot['batch']}")
    if len(report.unmodeled):
        names = ", ".join(sorted(set(report.unmodeled["kind"])))
        console.print(f"[yellow]unmodeled ops ({len(report.unmodeled)}: {names}) — "
                      f"{100 * tot['unmodeled_share_of_operations']:.2f}% of the model's operations, "
                      f"not priced[/yellow]")


def atomic_write(path, write):
    """Call `write(tmp)` on a temporary name beside `path`, then rename it onto
    `path`: a crash or Ctrl-C never leaves a half-written file (shared by every
    writer of reports, comparisons and sweeps)."""
    import os
    from pathlib import Path

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_network_report(report, out_dir) -> list:
    """layers.csv, unmodeled.csv, summary.json and energy_breakdown.png in
    `out_dir`; each file is written under a temporary name, then renamed."""
    import json
    from pathlib import Path

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    atomic_write(out / "layers.csv", lambda p: report.layers.to_csv(p, index=False))
    atomic_write(out / "unmodeled.csv", lambda p: report.unmodeled.to_csv(p, index=False))
    atomic_write(out / "summary.json",
                  lambda p: p.write_text(json.dumps(report.total, indent=2, default=float)))
    written += [out / "layers.csv", out / "unmodeled.csv", out / "summary.json"]

    comps = ["energy_mac_uj", "energy_registers_uj", "energy_sram_uj", "energy_dram_uj",
             "energy_vector_uj", "energy_leakage_uj"]
    mac_layers = report.layers[report.layers["macs"] > 0]
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(mac_layers) + 2), 4.5))
    bottom = np.zeros(len(mac_layers))
    for c in comps:
        vals = mac_layers[c].to_numpy()
        ax.bar(range(len(mac_layers)), vals, bottom=bottom, label=c[7:-3])
        bottom += vals
    ax.set_xticks(range(len(mac_layers)), mac_layers["layer"], rotation=90, fontsize=7)
    ax.set_ylabel("energy per inference (µJ)")
    ax.set_title(f"{report.total['config']}: energy by MAC layer and component")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(out / "energy_breakdown.png", lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)
    written.append(out / "energy_breakdown.png")
    return written
