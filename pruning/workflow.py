"""One call from a model and labelled data to a pruned model and its reports.

Owns what `joulesim prune`, the demo and the benchmark share: build the
classification task, run the energy-aware pruner (and, on request, the two
baselines with the same fine-tune budget), write every result under `out_dir`
(`out_dir/` for the energy-aware run, `out_dir/baselines/<method>/` for the
others, `methods.csv` and `trajectory.png` side by side), print the tables.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pandas as pd
import torch.nn as nn

from pruning.baselines import global_magnitude, uniform_channel
from pruning.loop import EnergyAwarePruner
from pruning.results import PruneResult, plot_trajectory, stop_line, summary_row
from pruning.tasks import ClassificationTask
from simulator.report import atomic_write


def prune_classifier(model: nn.Module, hw, task: ClassificationTask, *, model_name: str,
                     out_dir=None, energy_target: float = 0.4, max_acc_drop: float = 0.01,
                     granularity="auto", importance: str = "l1", schedule: str = "iterative",
                     stages: int = 1, closing: int = 0, min_saving: float = 0.005, max_steps: int = 40,
                     resume: bool = False, seed: int = 0, batch: int = 1, sample_error=None,
                     baselines: bool = False, progress: bool = False) -> dict[str, PruneResult]:
    """Prune `model` for `hw` on `task`; returns {method: PruneResult}."""
    if task.teacher is None:
        task.teacher = copy.deepcopy(model).eval()
    inputs = task.example_inputs(batch)
    final = task.final_finetune if task.settings.final_epochs > 0 else None
    common = dict(evaluate=task.evaluate, finetune=task.finetune, test=task.test, final_finetune=final)
    pruner = EnergyAwarePruner(
        model, hw, inputs, probe=task.probe, calibration=task.calibration(),
        energy_target=energy_target, max_acc_drop=max_acc_drop, granularity=granularity,
        importance=importance, schedule=schedule, stages=stages, closing=closing, min_saving=min_saving,
        max_steps=max_steps, out_dir=out_dir, resume=resume, seed=seed, sample_error=sample_error,
        progress=progress, model_name=model_name, **common)
    results = {"energy-aware": pruner.run()}
    if baselines:
        for fn in (global_magnitude, uniform_channel):
            res = fn(task.teacher, hw, inputs, max_acc_drop=max_acc_drop, seed=seed,
                     model_name=model_name, sample_error=sample_error, progress=progress, **common)
            results[res.summary["method"]] = res
    if out_dir is not None:
        write_results(results, out_dir)
    return results


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def methods_table(results: dict[str, PruneResult]) -> pd.DataFrame:
    return pd.DataFrame([summary_row(r) for r in results.values()])


def write_results(results: dict[str, PruneResult], out_dir) -> list[Path]:
    out = Path(out_dir)
    written = []
    for method, res in results.items():
        target = out if method == "energy-aware" else out / "baselines" / _slug(method)
        written.append(res.save(target))
    if len(results) > 1:
        atomic_write(out / "methods.csv", lambda p: methods_table(results).to_csv(p, index=False))
        plot_trajectory(list(results.values()), out / "trajectory.png")
    return written


def print_results(results: dict[str, PruneResult], console=None) -> None:
    """The paper-style table, then the energy-aware run's per-layer decisions."""
    from rich.table import Table

    from simulator.report import _console
    console = console or _console()
    t = Table(title="pruning result (energy per inference; test accuracy)")
    for col in ("method", "model", "config", "energy before (µJ/inference)", "energy after (µJ)",
                "×", "acc before", "acc after", "cycles ×"):
        t.add_column(col, justify="left" if col in ("method", "model", "config") else "right")
    for r in methods_table(results).to_dict("records"):
        t.add_row(r["method"], r["model"], r["config"], f"{r['energy_before_uj']:.3f}",
                  f"{r['energy_after_uj']:.3f}", f"{r['energy_reduction_x']:.2f}",
                  f"{r['acc_before']:.2%}", f"{r['acc_after']:.2%}", f"{r['cycles_reduction_x']:.2f}")
    console.print(t)
    ours = results["energy-aware"]
    layers = Table(title="energy-aware: per-layer decisions (µJ per inference, cycles)")
    for col in ("layer", "granularity", "channels", "sparsity", "energy before", "energy after",
                "cycles before", "cycles after", "why"):
        layers.add_column(col, overflow="fold")
    for r in ours.report.to_dict("records"):
        layers.add_row(r["layer"], r["granularity"], f"{r['out_channels_before']}→{r['out_channels_after']}",
                       f"{r['weight_sparsity_after']:.0%}", f"{r['energy_total_uj_before']:.3f}",
                       f"{r['energy_total_uj_after']:.3f}", f"{r['cycles_before']:,.0f}",
                       f"{r['cycles_after']:,.0f}", r["why"])
    console.print(layers)
    console.print(stop_line(ours.summary))
