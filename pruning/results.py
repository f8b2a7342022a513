"""Results of a pruning run: the per-layer table, the summary, the files.

Owns `PruneResult` and what it writes: `model.pt` (the whole pruned module,
masks folded into the weights: it loads with `torch.load(..., weights_only=False)`
without `pruning/`), `report.csv` (per layer), `history.csv` (per step),
`candidates.csv` (every scored candidate), `summary.json` and
`trajectory.png` (energy against accuracy, step by step). Every file is
written atomically. Energies in µJ per inference, accuracies as fractions.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn

from pruning.candidates import weight_sparsity
from pruning.importance import mac_layers
from pruning.scoring import Measurement, layer_table
from pruning.structure import out_channels
from simulator.network import ENERGY_COLUMNS
from simulator.report import atomic_write

SUMMARY_COLUMNS = ["method", "model", "config", "energy_before_uj", "energy_after_uj",
                   "energy_reduction_x", "acc_before", "acc_after", "acc_drop_points",
                   "cycles_reduction_x"]


@dataclass
class PruneResult:
    model: nn.Module
    report: pd.DataFrame
    history: pd.DataFrame
    summary: dict
    candidates: pd.DataFrame = field(default_factory=pd.DataFrame)

    def save(self, out_dir) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "model.pt", lambda p: torch.save(self.model, p))
        atomic_write(out / "report.csv", lambda p: self.report.to_csv(p, index=False))
        atomic_write(out / "history.csv", lambda p: self.history.to_csv(p, index=False))
        atomic_write(out / "candidates.csv", lambda p: self.candidates.to_csv(p, index=False))
        atomic_write(out / "summary.json",
                     lambda p: Path(p).write_text(json.dumps(self.summary, indent=2, default=str) + "\n"))
        plot_trajectory([self], out / "trajectory.png")
        return out


def stop_line(summary: dict) -> str:
    """Why and when the loop stopped and, for a run in stages, what each stage's final
    fine-tune gave back, then each closing fine-tune (validation accuracy or fidelity, as
    fractions)."""
    line = (f"stopped: {summary['stop_reason']} after {summary['steps']} steps "
            f"({summary['steps_accepted']} kept), {summary['wall_s']:.0f} s")
    if summary.get("stages", 1) > 1:
        for f in summary["final_finetunes"]:
            line += (f"\nstage {f['stage']}: final fine-tune after step {f['after_step']}, "
                     f"validation {f['val_acc_before']:.4f} -> {f['val_acc_after']:.4f}")
    for f in summary.get("closing_finetunes", []):
        line += (f"\nclosing fine-tune after step {f['after_step']}: "
                 f"validation {f['val_acc_before']:.4f} -> {f['val_acc_after']:.4f}")
    return line


def summary_row(result: PruneResult) -> dict:
    """The paper-style line: model, energy before/after, ×, accuracy before/after."""
    return {k: result.summary.get(k) for k in SUMMARY_COLUMNS}


def layer_report(dense: nn.Module, pruned: nn.Module, before: Measurement, after: Measurement,
                 decisions: dict[str, list[str]], reasons: dict[str, str]) -> pd.DataFrame:
    """One row per MAC layer of the dense model: what was done and what it changed."""
    tb, ta = layer_table(before.report), layer_table(after.report)
    dense_layers, pruned_layers = mac_layers(dense), mac_layers(pruned)
    rows = []
    for name, module in dense_layers.items():
        now = pruned_layers.get(name)
        row = {"layer": name, "kind": type(module).__name__,
               "granularity": "; ".join(decisions.get(name, [])) or "kept dense",
               "why": reasons.get(name, ""),
               "out_channels_before": out_channels(module),
               "out_channels_after": out_channels(now) if now is not None else 0,
               "weight_sparsity_after": weight_sparsity(now) if now is not None else 1.0}
        for col in ENERGY_COLUMNS + ["energy_total_uj", "cycles"]:
            row[f"{col}_before"] = float(tb[col].get(name, 0.0))
            row[f"{col}_after"] = float(ta[col].get(name, 0.0))
        rows.append(row)
    return pd.DataFrame(rows)


def plot_trajectory(results: list[PruneResult], path) -> None:
    """Energy (µJ/inference) against validation accuracy, one line per method."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for res in results:
        h = res.history
        if h.empty:
            continue
        ok = h[h["accepted"]]
        e = [res.summary["energy_before_uj"]] + ok["energy_after_uj"].tolist()
        a = [res.summary["val_acc_before"] * 100] + (ok["val_acc_after"] * 100).tolist()
        ax.plot(e, a, marker="o", label=res.summary.get("method", ""))
        bad = h[~h["accepted"]]
        if not bad.empty:
            ax.scatter(bad["energy_after_uj"], bad["val_acc_after"] * 100, marker="x", color="grey",
                       label="rejected steps" if res is results[0] else None)
    ax.set_xlabel("energy per inference (µJ)")
    ax.set_ylabel("validation accuracy (%)")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("energy–accuracy trajectory (right = less energy)")
    fig.tight_layout()
    atomic_write(Path(path), lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)
