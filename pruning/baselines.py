"""Baselines on the same simulated hardware, fine-tuned with the same budget.

Owns the two reference methods every result is set beside:
- `global_magnitude`: unstructured pruning by |w| with one threshold across
  all Conv2d/Linear weights (what `torch.nn.utils.prune.global_unstructured`
  with L1Unstructured does), sparsity raised along a ladder;
- `uniform_channel`: the same fraction of output channels removed from every
  prunable layer by L1 norm (Torch-Pruning's MetaPruner with
  MagnitudeImportance(p=1)), the fraction raised along a ladder.
Both are iterative like the energy-aware loop: apply the next amount,
fine-tune once (the same `finetune` and seed rule), evaluate, and stop before
the first amount that breaks the accuracy budget; the last amount kept then gets
the same `final_finetune` as the energy-aware result. Neither looks at the
hardware; the simulator only measures what they did.
"""
from __future__ import annotations

import copy
import time
from typing import Callable, Optional

import pandas as pd
import torch
import torch.nn as nn

from pruning.importance import mac_layers
from pruning.loop import FINAL_SEED_OFFSET
from pruning.results import PruneResult, layer_report
from pruning.scoring import EnergyMeter
from pruning.structure import channel_prunable_layers
from pruning.training import apply_masks

MAGNITUDE_LADDER = (0.5, 0.7, 0.8, 0.875, 0.9, 0.925, 0.95)
CHANNEL_LADDER = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75)


def _global_masks(model: nn.Module, sparsity: float) -> dict[str, torch.Tensor]:
    weights = {f"{n}.weight": m.weight.detach() for n, m in mac_layers(model).items()}
    scores = torch.cat([w.abs().flatten() for w in weights.values()])
    k = int(round(sparsity * scores.numel()))
    if k == 0:
        return {n: torch.ones_like(w) for n, w in weights.items()}
    threshold = torch.kthvalue(scores, k).values
    return {n: (w.abs() > threshold).to(w.dtype) for n, w in weights.items()}


def _uniform_channels(model: nn.Module, inputs, fraction_of_current: float) -> None:
    import torch_pruning as tp
    prunable = set(channel_prunable_layers(model, inputs))
    ignored = [m for n, m in mac_layers(model).items() if n not in prunable]
    pruner = tp.pruner.MetaPruner(
        model, example_inputs=inputs, importance=tp.importance.MagnitudeImportance(p=1),
        global_pruning=False, pruning_ratio=fraction_of_current, pruning_ratio_dict={},
        ignored_layers=ignored, round_to=None, iterative_steps=1, customized_pruners={},
        unwrapped_parameters=[], root_module_types=[nn.Conv2d, nn.Linear])
    pruner.step()


def _ladder_run(method: str, model: nn.Module, hw, inputs, apply: Callable, ladder, *,
                evaluate: Callable, finetune: Optional[Callable], test: Optional[Callable],
                final_finetune: Optional[Callable], max_acc_drop: float, seed: int,
                model_name: Optional[str], sample_error: Optional[float], progress: bool) -> PruneResult:
    t0 = time.perf_counter()
    test = test or evaluate
    meter = EnergyMeter(hw, inputs, sample_error=sample_error, seed=seed)
    dense = copy.deepcopy(model).eval()
    before = meter.measure(dense)
    acc_dense = evaluate(dense)
    current, masks, history, stop = dense, {}, [], "ladder exhausted"
    previous_amount = 0.0
    from simulator.report import progress_bar
    with progress_bar(progress) as bar:
        task = bar.add_task(method, total=len(ladder)) if bar else None
        for step, amount in enumerate(ladder):
            trial = copy.deepcopy(current)
            trial_masks = apply(trial, amount, previous_amount, masks)
            apply_masks(trial, trial_masks)
            if finetune is not None:
                finetune(trial, trial_masks, seed + 1000 * step)
                apply_masks(trial, trial_masks)
            acc = evaluate(trial)
            meas = meter.measure(trial)
            ok = acc_dense - acc <= max_acc_drop + 1e-9
            history.append({"step": step + 1, "layer": "all", "granularity": method,
                            "detail": f"amount {amount:g}", "accepted": ok,
                            "energy_after_uj": meas.energy_uj,
                            "energy_vs_dense": meas.energy_uj / before.energy_uj,
                            "latency_cycles": meas.latency_cycles, "val_acc_after": acc})
            if bar:
                bar.advance(task)
            if not ok:
                stop = f"amount {amount:g} broke the accuracy budget"
                break
            current, masks, previous_amount = trial, trial_masks, amount
    val_before_final = None
    if final_finetune is not None and previous_amount > 0:
        val_before_final = evaluate(current)
        final_finetune(current, masks, seed + FINAL_SEED_OFFSET)
        apply_masks(current, masks)
    after = meter.measure(current)
    acc_before, acc_after = test(dense), test(current)
    decisions = {n: [f"{method} (kept {previous_amount:g})"] for n in mac_layers(dense)}
    summary = {
        "method": method, "model": model_name or type(model).__name__, "config": meter.cfg.name,
        "energy_before_uj": before.energy_uj, "energy_after_uj": after.energy_uj,
        "energy_reduction_x": before.energy_uj / after.energy_uj,
        "acc_before": acc_before, "acc_after": acc_after,
        "acc_drop_points": 100 * (acc_before - acc_after),
        "val_acc_before": acc_dense, "val_acc_after": evaluate(current),
        "val_acc_before_final_finetune": val_before_final,
        "latency_before_cycles": before.latency_cycles, "latency_after_cycles": after.latency_cycles,
        "cycles_reduction_x": before.latency_cycles / max(after.latency_cycles, 1),
        "amount": previous_amount, "stop_reason": stop,
        "finetune_calls": (len(history) if finetune else 0) + (val_before_final is not None),
        "wall_s": time.perf_counter() - t0}
    report = layer_report(dense, current, before, after, decisions, {})
    return PruneResult(current, report, pd.DataFrame(history), summary)


def global_magnitude(model, hw, example_inputs, *, evaluate, finetune=None, test=None,
                     final_finetune=None, max_acc_drop: float = 0.01, ladder=MAGNITUDE_LADDER, seed: int = 0,
                     model_name=None, sample_error=None, progress=False) -> PruneResult:
    """Global L1 unstructured pruning along `ladder` (total weight sparsities)."""
    def apply(model, amount, previous, masks):
        return _global_masks(model, amount)
    return _ladder_run("global magnitude", model, hw, example_inputs, apply, ladder,
                       evaluate=evaluate, finetune=finetune, test=test, final_finetune=final_finetune,
                       max_acc_drop=max_acc_drop, seed=seed, model_name=model_name, sample_error=sample_error, progress=progress)


def uniform_channel(model, hw, example_inputs, *, evaluate, finetune=None, test=None,
                    final_finetune=None, max_acc_drop: float = 0.01, ladder=CHANNEL_LADDER, seed: int = 0,
                    model_name=None, sample_error=None, progress=False) -> PruneResult:
    """Uniform L1 channel pruning along `ladder` (fractions of the original channels removed)."""
    def apply(model, amount, previous, masks):
        _uniform_channels(model, example_inputs, 1 - (1 - amount) / (1 - previous))
        return {}
    return _ladder_run("uniform L1 channel", model, hw, example_inputs, apply, ladder,
                       evaluate=evaluate, finetune=finetune, test=test, final_finetune=final_finetune,
                       max_acc_drop=max_acc_drop, seed=seed, model_name=model_name, sample_error=sample_error, progress=progress)
