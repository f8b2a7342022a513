"""The energy-aware pruning loop: `EnergyAwarePruner(...).run() -> PruneResult`.

Owns the decision procedure of DESIGN.md ("The pruning plugin"):
1. simulate the current model on the config; rank its MAC layers by energy;
2. for the highest-energy layers, build every candidate (granularity ×
   amount), apply it to a copy, and *measure* its saving with the simulator
   (µJ/inference, from the real masked or shrunk tensors); a candidate that
   saves less than `min_saving` × the dense energy is never taken;
3. probe the accuracy of the admissible ones; take the best saving per point
   of accuracy lost; fine-tune; re-evaluate; keep the step if the accuracy
   budget still holds, otherwise undo it and rule that layer/granularity out;
4. repeat until the energy target is met, the budget is spent (too many
   rejected steps in a row) or no candidate is left.
Each completed step is checkpointed atomically in `out_dir`; `resume=True`
continues from the last one. Every step's fine-tune uses seed `seed + step`,
so a resumed run ends where an uninterrupted one does.
"""
from __future__ import annotations

import copy
import hashlib
import json
import time
from pathlib import Path
from typing import Callable, Optional

import pandas as pd
import torch
import torch.nn as nn

from pruning.candidates import BY_NAME, GRANULARITIES, Candidate, Context
from pruning.importance import calibrate, check_criterion, mac_layers
from pruning.results import PruneResult, layer_report
from pruning.scoring import EnergyMeter, Measurement, layer_table
from pruning.structure import channel_prunable_layers, droppable_blocks
from pruning.training import apply_masks
from simulator.errors import JoulesimError
from simulator.network import _config_key, cache_stats
from simulator.report import atomic_write

ACC_FLOOR = 0.005        # accuracy loss floor in the score (half a point): no division by zero
PROBE_LOSS_BUDGETS = 5   # a candidate losing more than 5 budgets on the probe (before fine-tuning)
MIN_PROBE_LOSS_LIMIT = 0.05   # ... and more than 5 points is not tried
SCHEDULES = ("iterative", "recover")
FINAL_SEED_OFFSET = 1_000_003   # the final fine-tune's seed: seed + this (no step's seed)
CLOSING_SEED_OFFSET = 2_000_003  # a closing fine-tune's seed: seed + this + its index
FINAL_STOPS = ("energy target met", "step limit")   # stop reasons no later stage can lift
CHECKPOINT = "checkpoint.pt"
RUN_FILE = "run.json"


def parse_granularities(spec) -> tuple[str, ...]:
    """'auto' (all), one name, or a comma-separated list."""
    names = spec if isinstance(spec, (list, tuple)) else str(spec).split(",")
    names = [n.strip() for n in names if n.strip()]
    if names == ["auto"]:
        return GRANULARITIES
    bad = [n for n in names if n not in GRANULARITIES]
    if bad or not names:
        raise JoulesimError(f"granularity {','.join(bad) or spec!r}: allowed auto, {', '.join(GRANULARITIES)}")
    return tuple(names)


def _undone_steps(n: int) -> str:
    return f"{n} undone step{'s' * (n != 1)}"


def model_digest(model: nn.Module) -> str:
    h = hashlib.blake2b(digest_size=12)
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class EnergyAwarePruner:
    """Prune `model` for the hardware `hw` with the simulator in the loop.

    evaluate(model) -> accuracy on held-out data (fraction), decides the budget;
    probe(model) -> a quick accuracy (default: evaluate) for scoring candidates;
    finetune(model, masks, seed) -> None, trains in place keeping masks applied;
    final_finetune(model, masks, seed) -> None, once on the finished model (a longer
    recovery fine-tune; default none);
    test(model) -> accuracy reported before/after (default: evaluate);
    calibration = (x, y): a batch for the taylor/activation criteria.
    energy_target: fraction of the dense energy to reach (0.4 = 2.5× less).
    max_acc_drop: accuracy budget as a fraction (0.01 = one point).
    stages: with a final fine-tune, how many times the loop may run. When a stage ends
    for want of accuracy (the budget spent, or every candidate left was rejected), the
    final fine-tune recovers the model and the next stage goes on from it with the budget
    it freed; rejected steps open again, except those that cost more accuracy than that
    whole budget. A stage that keeps no step, the energy target or
    the step limit ends the run; the final fine-tune runs again only on steps kept after
    its last run.
    closing: after the last stage, the final fine-tune runs this many more times on the
    finished model, each with its own seed (more recovery where no stage is left to use it).
    """

    def __init__(self, model: nn.Module, hw, example_inputs, *, evaluate: Callable,
                 finetune: Optional[Callable] = None, probe: Optional[Callable] = None,
                 test: Optional[Callable] = None, final_finetune: Optional[Callable] = None,
                 energy_target: float = 0.4,
                 max_acc_drop: float = 0.01, granularity="auto", importance: str = "l1",
                 calibration=None, min_saving: float = 0.005, layers_per_step: int = 3,
                 max_steps: int = 40, max_rejections: int = 3, schedule: str = "iterative",
                 recover_rounds: int = 3, stages: int = 1, closing: int = 0, out_dir=None,
                 resume: bool = False,
                 seed: int = 0, sample_error: Optional[float] = None, progress: bool = False,
                 on_step: Optional[Callable] = None, model_name: Optional[str] = None):
        if not (0 < energy_target <= 1):
            raise JoulesimError(f"energy target {energy_target:g}: must be in (0, 1] (a fraction of the dense energy)")
        if max_acc_drop < 0:
            raise JoulesimError(f"accuracy budget {max_acc_drop:g}: must be >= 0")
        if schedule not in SCHEDULES:
            raise JoulesimError(f"schedule {schedule!r}: allowed {', '.join(SCHEDULES)}")
        if stages < 1:
            raise JoulesimError(f"stages {stages}: must be at least 1")
        if closing < 0:
            raise JoulesimError(f"closing fine-tunes {closing}: must be at least 0")
        if resume and out_dir is None:
            raise JoulesimError("resume needs the output directory of the run to resume")
        self.granularities = parse_granularities(granularity)
        self.criterion = check_criterion(importance)
        self.model = model.eval()
        self.inputs = example_inputs
        self.meter = EnergyMeter(hw, example_inputs, sample_error=sample_error, seed=seed)
        cfg = self.meter.cfg
        if not mac_layers(model):
            raise JoulesimError(f"model {model_name or type(model).__name__} has no prunable layer "
                                "(no Conv2d or Linear)")
        self.evaluate, self.probe = evaluate, probe or evaluate
        self.finetune, self.test = finetune, test or evaluate
        self.final_finetune = final_finetune
        self.calibration = calibration
        self.energy_target, self.max_acc_drop = energy_target, max_acc_drop
        self.min_saving, self.layers_per_step = min_saving, layers_per_step
        self.max_steps, self.max_rejections = max_steps, max_rejections
        self.schedule, self.recover_rounds = schedule, recover_rounds
        self.stages = stages if final_finetune is not None else 1
        self.closing = closing if final_finetune is not None else 0
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.resume, self.seed, self.progress, self.on_step = resume, seed, progress, on_step
        self.name = model_name or type(model).__name__
        nm = cfg.structured_nm
        self.nm = tuple(nm) if nm else (2, 4)
        self.rows, self.cols = cfg.array.rows, cfg.array.cols
        self.fingerprint = {
            "model": self.name, "model_digest": model_digest(model), "config": cfg.name,
            "config_digest": _config_key(cfg), "energy_target": energy_target,
            "max_acc_drop": max_acc_drop, "granularity": list(self.granularities),
            "importance": importance, "schedule": schedule, "seed": seed}
        if self.stages > 1:
            self.fingerprint["stages"] = self.stages
        if self.closing:
            self.fingerprint["closing"] = self.closing

    # ------------------------------------------------------------------ state
    def _check_resume(self) -> Optional[dict]:
        run_file, ckpt = self.out_dir / RUN_FILE, self.out_dir / CHECKPOINT
        if not run_file.is_file() or not ckpt.is_file():
            raise JoulesimError(f"--resume {self.out_dir}: no checkpoint of an earlier run there")
        try:
            old = json.loads(run_file.read_text())
        except ValueError:
            raise JoulesimError(f"--resume {self.out_dir}: {RUN_FILE} is not valid JSON") from None
        for key, what in (("model", "model"), ("model_digest", "model weights"), ("config", "config"),
                          ("config_digest", "config contents")):
            if old.get(key) != self.fingerprint[key]:
                raise JoulesimError(
                    f"--resume {self.out_dir}: that run pruned {old.get('model')} on {old.get('config')}; "
                    f"this one is {self.name} on {self.fingerprint['config']} (different {what})")
        fill = {"stages": 1, "closing": 0}     # keys written only when not at their default
        for key in sorted(set(old) | set(self.fingerprint)):
            was, now = old.get(key, fill.get(key)), self.fingerprint.get(key, fill.get(key))
            if was != now and key not in ("stages", "closing"):   # both go on from where it ended
                raise JoulesimError(f"--resume {self.out_dir}: that run used {key} {was}, this one {now}")
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is the user's file
            raise JoulesimError(f"--resume {self.out_dir}: cannot read {CHECKPOINT}: {e}") from None
        state.setdefault("stage", 1)
        if "final_finetunes" not in state:      # a checkpoint written before stages existed
            before = state.pop("val_acc_before_final", None)
            state["final_finetunes"] = [] if before is None else [
                {"stage": 1, "after_step": state["step"], "val_acc_before": before,
                 "val_acc_after": state["val_acc"]}]
        for b in state["blocked"]:      # rejected before their cost was kept: the next stage opens them
            if len(b) == 3:
                b.append(0.0)
        if state["stage"] > self.stages:
            raise JoulesimError(f"--resume {self.out_dir}: that run already reached stage {state['stage']}; "
                                f"stages {self.stages} cannot take it back (give {state['stage']} or more)")
        state.setdefault("closing_finetunes", [])
        if (old.get("stages", 1), old.get("closing", 0)) != (self.stages, self.closing):
            self._write_run_file()
        return state

    def _write_run_file(self) -> None:
        atomic_write(self.out_dir / RUN_FILE,
                     lambda p: Path(p).write_text(json.dumps(self.fingerprint, indent=2) + "\n"))

    def _save(self, state: dict) -> None:
        if self.out_dir is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.out_dir / CHECKPOINT, lambda p: torch.save(state, p))

    def _start(self) -> dict:
        if self.resume:
            return self._check_resume()
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._write_run_file()
        dense = self.meter.measure(self.model)
        acc = self.evaluate(self.model)
        state = {"step": 0, "model": self.model, "dense_model": copy.deepcopy(self.model),
                 "masks": {}, "history": [], "candidates": [], "blocked": [], "rejections": 0,
                 "decisions": {}, "reasons": {}, "dense_energy_uj": dense.energy_uj,
                 "val_acc_dense": acc, "val_acc": acc, "finetune_calls": 0, "wall_s": 0.0,
                 "stop_reason": None, "stage": 1, "final_finetunes": [], "closing_finetunes": []}
        self._save(state)
        return state

    # ------------------------------------------------------------------ steps
    def _context(self, model: nn.Module) -> Context:
        x, y = self.calibration if self.calibration is not None else (self.inputs, None)
        return Context(self.rows, self.cols, self.nm, self.criterion,
                       calibrate(model, x, y, self.criterion), self.inputs,
                       frozenset(channel_prunable_layers(model, self.inputs))
                       if "channel" in self.granularities else frozenset(),
                       tuple(droppable_blocks(model, self.inputs)) if "depth" in self.granularities else ())

    def _score(self, state: dict, current: Measurement, ctx: Context) -> list[dict]:
        model, masks = state["model"], state["masks"]
        table = layer_table(current.report)
        layers = mac_layers(model)
        ranked = [n for n in table.sort_values("energy_total_uj", ascending=False).index if n in layers]
        blocked = state["blocked"]
        probe_now = self.probe(model)
        threshold = self.min_saving * state["dense_energy_uj"]
        max_probe_loss = max(MIN_PROBE_LOSS_LIMIT, PROBE_LOSS_BUDGETS * self.max_acc_drop)
        rows, seen = [], set()
        for i, layer in enumerate(ranked):
            if i >= self.layers_per_step and any(r["score"] is not None for r in rows):
                break      # the highest-energy layers first; lower ones only when those offer nothing
            for g in self.granularities:
                for cand in BY_NAME[g].propose(ctx, layer, layers[layer]):
                    if cand.key in seen or any(cand.layer == b[0] and cand.granularity == b[1]
                                               and cand.amount >= b[2] - 1e-9 for b in blocked):
                        continue
                    seen.add(cand.key)
                    trial, trial_masks = copy.deepcopy(model), {k: v.clone() for k, v in masks.items()}
                    cand.apply(trial, trial_masks, ctx)
                    meas = self.meter.measure(trial)
                    saving = current.energy_uj - meas.energy_uj
                    row = {"step": state["step"], "layer": cand.layer, "granularity": g,
                           "detail": cand.detail, "energy_uj": meas.energy_uj, "saving_uj": saving,
                           "latency_cycles": meas.latency_cycles,
                           "admissible": bool(saving >= threshold), "probe_acc": None,
                           "acc_loss": None, "score": None, "candidate": cand}
                    if row["admissible"]:
                        acc = self.probe(trial)
                        loss = max(0.0, probe_now - acc)
                        row.update(probe_acc=acc, acc_loss=loss)
                        if loss <= max_probe_loss:    # beyond it, one fine-tune will not bring it back
                            row["score"] = saving / (loss + ACC_FLOOR)
                    rows.append(row)
        return rows

    def _why(self, best: dict, rows: list[dict]) -> str:
        others = [r for r in rows if r["layer"] == best["layer"] and r["granularity"] != best["granularity"]]
        if not others:
            return f"{best['granularity']} ({best['detail']}) saved {best['saving_uj']:.3f} µJ; no other granularity applies"
        ru = max(others, key=lambda r: (r["score"] is not None, r["score"] or r["saving_uj"]))
        tail = "" if ru["admissible"] else ", below the saving threshold"
        loss = f", probe loss {100 * ru['acc_loss']:.1f} pt" if ru["acc_loss"] is not None else ""
        return (f"{best['granularity']} ({best['detail']}) saved {best['saving_uj']:.3f} µJ at "
                f"{100 * best['acc_loss']:.1f} pt probe loss; runner-up {ru['granularity']} "
                f"({ru['detail']}) {ru['saving_uj']:.3f} µJ{loss}{tail}")

    def _finetune(self, state: dict, model: nn.Module, masks: dict) -> float:
        step = state["step"]
        rounds = self.recover_rounds if self.schedule == "recover" else 1
        acc = self.evaluate(model)
        for r in range(rounds if self.finetune else 0):
            self.finetune(model, masks, self.seed + 1000 * step + r)
            apply_masks(model, masks)
            state["finetune_calls"] += 1
            acc = self.evaluate(model)
            if self.schedule == "recover" and acc >= state["val_acc_dense"] - self.max_acc_drop / 2:
                break
        return acc

    def _stop_reason(self, state: dict, current: Measurement) -> Optional[str]:
        if current.energy_uj <= self.energy_target * state["dense_energy_uj"]:
            return FINAL_STOPS[0]
        if state["step"] >= self.max_steps:
            return f"{FINAL_STOPS[1]} ({self.max_steps}) reached"
        if state["rejections"] >= self.max_rejections:
            return f"accuracy budget spent ({self.max_rejections} steps in a row exceeded it)"
        return None

    def _step(self, state: dict, current: Measurement) -> Optional[str]:
        t0 = time.perf_counter()
        ctx = self._context(state["model"])
        rows = self._score(state, current, ctx)
        state["candidates"].extend({k: v for k, v in r.items() if k != "candidate"} for r in rows)
        admissible = [r for r in rows if r["score"] is not None]
        if not admissible:
            n = len(state["blocked"])
            ruled_out = f" ({_undone_steps(n)} ruled out)" if n else ""
            return (f"no candidate saves at least {self.min_saving:.1%} of the dense energy on "
                    f"{self.meter.cfg.name}{ruled_out}")
        best = max(admissible, key=lambda r: r["score"])
        cand: Candidate = best["candidate"]
        trial, masks = copy.deepcopy(state["model"]), {k: v.clone() for k, v in state["masks"].items()}
        cand.apply(trial, masks, ctx)
        acc = self._finetune(state, trial, masks)
        after = self.meter.measure(trial)
        accepted = state["val_acc_dense"] - acc <= self.max_acc_drop + 1e-9
        state["history"].append({
            "step": state["step"] + 1, "layer": cand.layer, "granularity": cand.granularity,
            "detail": cand.detail, "accepted": accepted, "energy_before_uj": current.energy_uj,
            "energy_after_uj": after.energy_uj, "saving_uj": current.energy_uj - after.energy_uj,
            "energy_vs_dense": after.energy_uj / state["dense_energy_uj"],
            "latency_cycles": after.latency_cycles, "probe_acc": best["probe_acc"],
            "val_acc_after": acc, "candidates_scored": len(rows), "why": self._why(best, rows),
            "wall_s": time.perf_counter() - t0})
        if accepted:
            state["model"], state["masks"], state["val_acc"] = trial, masks, acc
            state["rejections"] = 0
            state["decisions"].setdefault(cand.layer, []).append(f"{cand.granularity} {cand.detail}")
            state["reasons"][cand.layer] = self._why(best, rows)
        else:
            # gentler steps stay open; the cost decides whether a later stage opens this one again
            state["blocked"].append([cand.layer, cand.granularity, cand.amount, state["val_acc"] - acc])
            state["rejections"] += 1
        state["step"] += 1
        state["wall_s"] += time.perf_counter() - t0
        return None

    # ------------------------------------------------------------------ run
    def run(self) -> PruneResult:
        t_start = time.perf_counter()
        state = self._start()
        from simulator.report import _console, progress_bar
        console = _console() if self.progress else None
        with progress_bar(self.progress) as bar:
            task = bar.add_task("pruning", total=None) if bar else None
            while self._stage_open(state, console):
                self._run_stage(state, bar, task, console)
                if not self._final_finetune(state, bar, task, console):
                    break           # nothing new to recover: the last stage kept no step
            self._close(state, bar, task, console)
        return self._result(state, time.perf_counter() - t_start)

    def _stage_open(self, state: dict, console) -> bool:
        """True while the current stage has not had its final fine-tune; after it, opens the
        next stage when one is left (also for a finished run resumed with more stages)."""
        done = state["final_finetunes"]
        if not done or done[-1]["stage"] != state["stage"]:
            return True
        if state["stage"] >= self.stages or state["stop_reason"].startswith(FINAL_STOPS):
            return False
        state["stage"] += 1
        kept = self._reopen(state)
        self._save(state)
        if console:
            still = (f"; {_undone_steps(kept)} cost more than the "
                     f"{100 * self._budget_left(state):.2f} pt left and stay ruled out" if kept else "")
            console.print(f"stage {state['stage']}: going on from the fine-tuned model{still}")
        return True

    def _budget_left(self, state: dict) -> float:
        return state["val_acc"] - (state["val_acc_dense"] - self.max_acc_drop)

    def _reopen(self, state: dict) -> int:
        """Start a stage: the undone steps open again, except those that cost more accuracy
        than the whole budget the stage starts with (they would be undone again and spend
        three of its tries). Returns how many stay ruled out."""
        left = self._budget_left(state)
        state["blocked"] = [b for b in state["blocked"] if b[3] > left + 1e-9]
        state["rejections"], state["stop_reason"] = 0, None
        return len(state["blocked"])

    def _run_stage(self, state: dict, bar, task, console) -> None:
        while state["stop_reason"] is None:
            current = self.meter.measure(state["model"])
            reason = self._stop_reason(state, current)
            if reason is None:
                if bar:
                    bar.update(task, description=(
                        f"step {state['step'] + 1}: {current.energy_uj:.2f} µJ "
                        f"({current.energy_uj / state['dense_energy_uj']:.0%} of dense), "
                        f"val acc {state['val_acc']:.2%}"))
                reason = self._step(state, current)
                if reason is None:
                    h = state["history"][-1]
                    if console:
                        console.print(
                            f"step {h['step']:2d} {'took' if h['accepted'] else 'undid'} "
                            f"{h['granularity']} {h['detail']} on {h['layer']}: "
                            f"{h['energy_after_uj']:.2f} µJ ({h['energy_vs_dense']:.0%} of dense), "
                            f"val acc {h['val_acc_after']:.2%}")
                    self._save(state)
                    if self.on_step:
                        self.on_step(state["step"], h)
                    continue
            state["stop_reason"] = reason
            self._save(state)

    def _final_finetune(self, state: dict, bar, task, console) -> bool:
        """The final fine-tune on the steps kept since the last one; False when there are none."""
        done = state["final_finetunes"]
        since = done[-1]["after_step"] if done else 0
        if self.final_finetune is None or not any(h["accepted"] for h in state["history"][since:]):
            return False
        stage = f" (stage {state['stage']})" if self.stages > 1 else ""
        self._refinetune(state, self.seed + FINAL_SEED_OFFSET + len(done), self.evaluate(state["model"]),
                         done, {"stage": state["stage"], "after_step": state["step"]},
                         f"final fine-tune{stage}", f"final fine-tune of the pruned model{stage}",
                         bar, task, console)
        return True

    def _refinetune(self, state: dict, seed: int, before: float, record: list, entry: dict,
                    label: str, bar_text: str, bar, task, console) -> None:
        """Run the final fine-tune once more on the current model, masks kept; appends `entry`
        with the validation accuracy before and after to `record` and saves the state."""
        if bar:
            bar.update(task, description=bar_text)
        self.final_finetune(state["model"], state["masks"], seed)
        apply_masks(state["model"], state["masks"])
        state["finetune_calls"] += 1
        state["val_acc"] = self.evaluate(state["model"])
        record.append({**entry, "val_acc_before": before, "val_acc_after": state["val_acc"]})
        self._save(state)
        if console:
            console.print(f"{label}: val acc {before:.2%} -> {state['val_acc']:.2%}")

    def _close(self, state: dict, bar, task, console) -> None:
        """The closing fine-tunes of the finished model: the final fine-tune `closing` times
        more, counted from the last kept step (a run resumed with more closing ones adds the
        difference; one whose later stage kept nothing does not repeat them)."""
        kept = [h["step"] for h in state["history"] if h["accepted"]]
        if not kept:
            return
        closed = state["closing_finetunes"]
        while sum(c["after_step"] == kept[-1] for c in closed) < self.closing:
            self._refinetune(state, self.seed + CLOSING_SEED_OFFSET + len(closed), state["val_acc"],
                             closed, {"after_step": kept[-1]}, "closing fine-tune",
                             "closing fine-tune of the pruned model", bar, task, console)

    def _result(self, state: dict, wall_s: float) -> PruneResult:
        dense, model = state["dense_model"], state["model"]
        apply_masks(model, state["masks"])
        before, after = self.meter.measure(dense), self.meter.measure(model)
        acc_before, acc_after = self.test(dense), self.test(model)
        report = layer_report(dense, model, before, after, state["decisions"], state["reasons"])
        history = pd.DataFrame(state["history"])
        summary = {
            "method": "energy-aware", "model": self.name, "config": self.meter.cfg.name,
            "energy_before_uj": before.energy_uj, "energy_after_uj": after.energy_uj,
            "energy_reduction_x": before.energy_uj / after.energy_uj,
            "acc_before": acc_before, "acc_after": acc_after,
            "acc_drop_points": 100 * (acc_before - acc_after),
            "val_acc_before": state["val_acc_dense"], "val_acc_after": state["val_acc"],
            "latency_before_cycles": before.latency_cycles, "latency_after_cycles": after.latency_cycles,
            "cycles_reduction_x": before.latency_cycles / max(after.latency_cycles, 1),
            "energy_target": self.energy_target, "max_acc_drop": self.max_acc_drop,
            "val_acc_before_final_finetune": (state["final_finetunes"][-1]["val_acc_before"]
                                              if state["final_finetunes"] else None),
            "stages": state["stage"], "final_finetunes": state["final_finetunes"],
            "closing_finetunes": state["closing_finetunes"],
            "stop_reason": state["stop_reason"], "steps": state["step"],
            "steps_accepted": int(history["accepted"].sum()) if not history.empty else 0,
            "finetune_calls": state["finetune_calls"], "simulations": self.meter.calls,
            "simulator_cache": dict(cache_stats), "wall_s": wall_s,
            "granularity": list(self.granularities), "importance": self.criterion,
            "schedule": self.schedule, "seed": self.seed}
        return PruneResult(model, report, history, summary, pd.DataFrame(state["candidates"]))
