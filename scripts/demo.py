"""joulesim demo: simulate, prune with the simulator in the loop, compare, report.

On the shipped trained `fashion_cnn` (simulator/checkpoints/fashion_cnn.pt) and
a real Fashion-MNIST test image:
  1. simulate it on three shipped accelerators (edge NPU dense, edge NPU with
     zero-gating and compression, a 32x32 array with 2:4 sparsity support);
  2. prune it for the edge NPU with `joulesim prune`'s engine (energy target
     0.4 of the dense energy, one accuracy point of budget on held-out data);
  3. compare dense and pruned on all three accelerators;
  4. write demo_out/report.html (tables and plots, one self-contained file)
     and print the headline numbers.

    .venv/bin/python scripts/demo.py [--out demo_out] [--quick]

--quick is a smoke run for the tests (a few hundred images, one pruning step).
Needs the Debian package dataset-fashion-mnist (scripts/setup.sh installs it).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.errors import JoulesimError  # noqa: E402

CONFIGS = ["edge_npu_16x16_int8.yaml", "edge_npu_16x16_int8_zero_gating.yaml",
           "sparse_2of4_32x32_int8.yaml"]
PRUNE_FOR = CONFIGS[0]


def _png(path: Path) -> bytes:
    return path.read_bytes()


def run(out: Path, quick: bool) -> dict:
    import torch
    from rich.table import Table

    from pruning.tasks import load_task
    from pruning.training import FinetuneSettings
    from pruning.workflow import print_results, prune_classifier
    from simulator.comparison import compare, print_comparison
    from simulator.config import load_config
    from simulator.models import CHECKPOINT_DIR, fashion_cnn
    from simulator.network import simulate
    from simulator.report import _console

    console = _console()
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    cfgs = [load_config(ROOT / "hw_configs" / c) for c in CONFIGS]
    settings = (FinetuneSettings(epochs=0.02, final_epochs=0.02) if quick else FinetuneSettings())
    task = load_task("fashion-mnist", settings=settings, train_limit=2000 if quick else None)
    if quick:
        task.val_x, task.val_y = task.val_x[:500], task.val_y[:500]
        task.test_x, task.test_y = task.test_x[:500], task.test_y[:500]
    model = fashion_cnn()
    meta_file = Path(CHECKPOINT_DIR) / "fashion_cnn.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    x = task.example_inputs()
    console.rule("[bold]1. simulate the trained fashion_cnn on three accelerators")
    console.print(f"fashion_cnn: shipped checkpoint, test accuracy {meta.get('test_accuracy', float('nan')):.2%} "
                  f"(measured by scripts/train_reference.py); input: one held-out Fashion-MNIST image")
    sims = {}
    t = Table(title="dense fashion_cnn, energy per inference (µJ)")
    for col in ("config", "MAC", "registers", "SRAM", "DRAM", "vector", "leakage", "total µJ", "latency µs"):
        t.add_column(col, justify="left" if col == "config" else "right")
    for cfg in cfgs:
        rep = simulate(model, x, cfg, progress=True)
        sims[cfg.name] = rep
        s = rep.total
        t.add_row(cfg.name, *(f"{s[k]:.3f}" for k in ("mac_uj", "registers_uj", "sram_uj", "dram_uj",
                                                      "vector_uj", "leakage_uj", "energy_uj_per_inference")),
                  f"{s['latency_us']:.1f}")
    console.print(t)

    console.rule(f"[bold]2. prune for {cfgs[0].name}, the simulator deciding")
    prune_dir = out / f"pruned_for_{cfgs[0].name}"
    results = prune_classifier(model, cfgs[0], task, model_name="fashion_cnn", out_dir=prune_dir,
                               energy_target=0.4, max_acc_drop=0.01, max_steps=1 if quick else 40,
                               progress=True)
    print_results(results, console)
    ours = results["energy-aware"]

    console.rule("[bold]3. compare dense and pruned on all three accelerators")
    cmp = compare(fashion_cnn(), cfgs, inputs=x, pruned_for=[prune_dir], out_dir=out / "compare",
                  progress=True, label="fashion_cnn")
    print_comparison(cmp, console)

    report = out / "report.html"
    write_report(report, sims, ours, cmp, prune_dir, out / "compare", meta, quick)
    wall = time.perf_counter() - t0
    s = ours.summary
    console.rule("[bold]summary")
    console.print(f"fashion_cnn on {s['config']}: {s['energy_before_uj']:.3f} -> {s['energy_after_uj']:.3f} "
                  f"µJ per inference ({s['energy_reduction_x']:.2f}x less energy, "
                  f"{s['cycles_reduction_x']:.2f}x fewer cycles); test accuracy "
                  f"{s['acc_before']:.2%} -> {s['acc_after']:.2%}")
    mat = cmp.matrix()
    for cfg in cmp.configs:
        dense, pruned = mat.iloc[0][cfg], mat.iloc[1][cfg]
        console.print(f"  on {cfg}: dense {dense:.3f} µJ, pruned {pruned:.3f} µJ ({dense / pruned:.2f}x)")
    console.print(f"report: {report.resolve()}   ({wall / 60:.1f} min)")
    return {"report": str(report), "wall_s": wall, **s}


def write_report(path: Path, sims, ours, cmp, prune_dir: Path, compare_dir: Path, meta, quick) -> None:
    import pandas as pd

    from simulator.html_report import html_image, html_page, html_table
    from simulator.report import atomic_write

    s = ours.summary
    parts = [f'<p class="headline">Pruned for <b>{s["config"]}</b> with the simulator in the loop: '
             f'{s["energy_before_uj"]:.3f} → {s["energy_after_uj"]:.3f} µJ per inference '
             f'(<b>{s["energy_reduction_x"]:.2f}× less energy</b>, {s["cycles_reduction_x"]:.2f}× fewer '
             f'cycles); test accuracy {100 * s["acc_before"]:.2f}% → {100 * s["acc_after"]:.2f}%.</p>']
    if quick:
        parts.append("<p><b>Quick smoke run</b> (few images, one step): not a result.</p>")
    totals = pd.DataFrame([{"config": c, **{k: r.total[k] for k in (
        "mac_uj", "registers_uj", "sram_uj", "dram_uj", "vector_uj", "leakage_uj",
        "energy_uj_per_inference", "latency_cycles", "latency_us", "dram_bytes")}} for c, r in sims.items()])
    fmt4 = {c: "{:.4f}" for c in totals.columns if c.endswith("_uj") or c == "energy_uj_per_inference"}
    parts += ["<h2>1. Dense fashion_cnn on three accelerators (µJ per inference)</h2>",
              f"<p>Shipped checkpoint, test accuracy {100 * meta.get('test_accuracy', float('nan')):.2f}%; "
              "one held-out Fashion-MNIST image.</p>",
              html_table(totals, {**fmt4, "latency_cycles": "{:,}", "latency_us": "{:.2f}", "dram_bytes": "{:,}"})]
    first = next(iter(sims.values()))
    layer_cols = ["layer", "kind", "macs", "cycles", "energy_mac_uj", "energy_registers_uj", "energy_sram_uj",
                  "energy_dram_uj", "energy_vector_uj", "energy_leakage_uj", "energy_total_uj"]
    parts += [f"<h3>Per layer on {first.config} (µJ per inference)</h3>",
              html_table(first.layers[layer_cols], {c: "{:.4f}" for c in layer_cols if c.startswith("energy")})]
    summary_cols = ["method", "model", "config", "energy_before_uj", "energy_after_uj", "energy_reduction_x",
                    "acc_before", "acc_after", "cycles_reduction_x"]
    parts += [f"<h2>2. Energy-aware pruning for {s['config']}</h2>",
              html_table(pd.DataFrame([{k: s[k] for k in summary_cols}]),
                         {"energy_before_uj": "{:.4f}", "energy_after_uj": "{:.4f}", "energy_reduction_x": "{:.2f}",
                          "acc_before": "pct", "acc_after": "pct", "cycles_reduction_x": "{:.2f}"}),
              f"<p>Stopped: {s['stop_reason']} after {s['steps']} steps ({s['steps_accepted']} kept).</p>",
              "<h3>Per-layer decisions (µJ per inference, cycles)</h3>"]
    rep_cols = ["layer", "granularity", "out_channels_before", "out_channels_after", "weight_sparsity_after",
                "energy_total_uj_before", "energy_total_uj_after", "cycles_before", "cycles_after", "why"]
    parts.append(html_table(ours.report[rep_cols], {"weight_sparsity_after": "pct",
                                                    "energy_total_uj_before": "{:.4f}",
                                                    "energy_total_uj_after": "{:.4f}",
                                                    "cycles_before": "{:,.0f}", "cycles_after": "{:,.0f}"}))
    if not ours.history.empty:
        hist_cols = ["step", "layer", "granularity", "detail", "accepted", "energy_after_uj", "val_acc_after"]
        parts += ["<h3>Steps</h3>", html_table(ours.history[hist_cols],
                                               {"energy_after_uj": "{:.4f}", "val_acc_after": "pct"})]
    parts += ["<h3>Energy–accuracy trajectory</h3>", html_image(_png(prune_dir / "trajectory.png"), "trajectory")]
    mat = cmp.matrix().reset_index()
    parts += ["<h2>3. Dense and pruned on every accelerator (µJ per inference)</h2>",
              html_table(mat, {c: "{:.4f}" for c in cmp.configs}),
              html_image(_png(compare_dir / "compare_energy.png"), "energy by component"),
              html_image(_png(compare_dir / "compare_latency.png"), "energy vs latency"),
              "<p>Files: pruned model and tables in <code>"
              f"{prune_dir.name}/</code>, comparison tables in <code>{compare_dir.name}/</code>.</p>"]
    page = html_page("joulesim demo: fashion_cnn simulated, pruned for the edge NPU, compared", parts)
    atomic_write(path, lambda p: p.write_text(page, encoding="utf-8"))


def main():
    ap = argparse.ArgumentParser(description="joulesim demo: simulate, prune, compare, write report.html")
    ap.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    ap.add_argument("--quick", action="store_true", help="smoke run on a few images (for tests)")
    args = ap.parse_args()
    try:
        run(Path(args.out), args.quick)
    except JoulesimError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"demo: interrupted; finished parts are in {args.out}/", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
