"""Benchmark energy-aware pruning against the two baselines on real data.

Runs, for each config (default: the edge NPU with and without zero-gating),
on the shipped trained `fashion_cnn` and Fashion-MNIST (Debian package
dataset-fashion-mnist):
  - energy-aware pruning (`pruning.prune_classifier`, all granularities),
  - global magnitude pruning and uniform L1 channel pruning,
each fine-tuned with the same per-step budget and checked against the same
accuracy budget on the validation split. Prints per method and config: energy
per inference before/after (µJ, batch 1 on a real held-out image), energy
reduction ×, test accuracy drop (points), cycles reduction ×, wall time; then
the targets, computed from the figures of this run:
  - edge NPU: >= 2.5x energy reduction at <= 1.0 point test-accuracy drop;
  - energy saved (µJ) by energy-aware >= 1.3x that of the better baseline
    within the same accuracy budget;
  - one energy-aware run <= 15 min on 2 cores.
Results go to --out (default bench_prune_out/<config>/).

    python scripts/bench_prune.py [--configs A.yaml B.yaml] [--energy-target 0.4]
        [--max-acc-drop 0.01] [--finetune-epochs 1] [--final-epochs 3] [--out DIR]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = [ROOT / "hw_configs" / "edge_npu_16x16_int8.yaml",
           ROOT / "hw_configs" / "edge_npu_16x16_int8_zero_gating.yaml"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+", default=[str(c) for c in CONFIGS])
    ap.add_argument("--energy-target", type=float, default=0.4)
    ap.add_argument("--max-acc-drop", type=float, default=0.01)
    ap.add_argument("--finetune-epochs", type=float, default=None,
                    help="per step (default: the CLI's default)")
    ap.add_argument("--final-epochs", type=float, default=None,
                    help="final fine-tune of each method's result (default: the CLI's default)")
    ap.add_argument("--lr", type=float, default=None, help="fine-tune lr (default: the CLI's default)")
    ap.add_argument("--schedule", default="iterative")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--out", default="bench_prune_out")
    args = ap.parse_args()

    import torch

    from pruning.tasks import load_task
    from pruning.training import FinetuneSettings
    from pruning.workflow import prune_classifier
    from simulator.config import load_config
    from simulator.models import fashion_cnn

    settings = FinetuneSettings()
    if args.finetune_epochs is not None:
        settings.epochs = args.finetune_epochs
    if args.final_epochs is not None:
        settings.final_epochs = args.final_epochs
    if args.lr is not None:
        settings.lr = args.lr
    print(f"fashion_cnn (shipped checkpoint), Fashion-MNIST; energy target {args.energy_target}, "
          f"accuracy budget {100 * args.max_acc_drop:.1f} pt (validation); fine-tune per step "
          f"{settings.epochs} epoch, {settings.optimizer} lr {settings.lr:g}, distill {settings.distill}; "
          f"final fine-tune {settings.final_epochs} epochs (every method); "
          f"{torch.get_num_threads()} threads")
    rows = []
    for path in args.configs:
        cfg = load_config(path)
        task = load_task("fashion-mnist", settings=settings)
        t0 = time.perf_counter()
        results = prune_classifier(fashion_cnn(), cfg, task, model_name="fashion_cnn",
                                   out_dir=Path(args.out) / cfg.name, energy_target=args.energy_target,
                                   max_acc_drop=args.max_acc_drop, schedule=args.schedule,
                                   baselines=not args.no_baselines, progress=True)
        print(f"{cfg.name}: all methods {time.perf_counter() - t0:.0f} s")
        for method, res in results.items():
            s = res.summary
            rows.append(dict(config=cfg.name, method=method, before=s["energy_before_uj"],
                             after=s["energy_after_uj"], x=s["energy_reduction_x"],
                             drop=s["acc_drop_points"], acc=s["acc_after"], cycles_x=s["cycles_reduction_x"],
                             wall=s["wall_s"], saved=s["energy_before_uj"] - s["energy_after_uj"]))
    print()
    print(f"{'config':34s} {'method':20s} {'µJ before':>9s} {'µJ after':>9s} {'energy x':>8s} "
          f"{'test acc':>8s} {'drop pt':>7s} {'cycles x':>8s} {'wall s':>7s}")
    for r in rows:
        print(f"{r['config']:34s} {r['method']:20s} {r['before']:9.3f} {r['after']:9.3f} {r['x']:8.2f} "
              f"{100 * r['acc']:7.2f}% {r['drop']:7.2f} {r['cycles_x']:8.2f} {r['wall']:7.0f}")
    print()
    for cfg_name in dict.fromkeys(r["config"] for r in rows):
        mine = next(r for r in rows if r["config"] == cfg_name and r["method"] == "energy-aware")
        ok_x = mine["x"] >= 2.5 and mine["drop"] <= 1.0
        print(f"{cfg_name}: energy-aware {mine['x']:.2f}x at {mine['drop']:.2f} pt drop "
              f"(target >= 2.5x at <= 1.0 pt: {'met' if ok_x else 'MISSED'}); "
              f"run {mine['wall'] / 60:.1f} min (target <= 15: {'met' if mine['wall'] <= 900 else 'MISSED'})")
        base = [r for r in rows if r["config"] == cfg_name and r["method"] != "energy-aware"
                and r["drop"] <= 100 * args.max_acc_drop]
        if base:
            best = max(base, key=lambda r: r["saved"])
            ratio = mine["saved"] / best["saved"] if best["saved"] > 0 else float("inf")
            print(f"  saved {mine['saved']:.3f} µJ vs {best['saved']:.3f} µJ by the better baseline within "
                  f"the budget ({best['method']}): {ratio:.2f}x (target >= 1.3x: "
                  f"{'met' if ratio >= 1.3 else 'MISSED'})")
        else:
            print("  no baseline stayed within the accuracy budget on the test set")


if __name__ == "__main__":
    main()
