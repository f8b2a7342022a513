"""Report: human-readable tables of simulation results (terminal, via rich).
Units are in every header."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _console() -> Console:
    probe = Console()
    # pipes and CI logs report 80 columns; tables read better a little wider
    return probe if probe.is_terminal else Console(width=110)


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
