"""`joulesim prune`: the command-line face of `pruning.prune_classifier`.

Registered on the `joulesim` group by `simulator.cli.main` (the CLI is the
one place that sees both packages). User errors: one line, exit code 2;
Ctrl-C: the last completed step is on disk, exit code 130.
"""
from __future__ import annotations

import sys

import click

from simulator.errors import JoulesimError


@click.command()
@click.argument("model")
@click.option("--hw", "hw_path", required=True, type=click.Path(dir_okay=False),
              help="Hardware config YAML to prune for, e.g. hw_configs/edge_npu_16x16_int8.yaml.")
@click.option("--data", default="fashion-mnist", show_default=True,
              help="Labelled data: fashion-mnist (Debian package dataset-fashion-mnist) or "
                   "FILE.npz with arrays x (N,C,H,W float32) and y (N,) labels [x_test, y_test].")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder with the Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist).")
@click.option("--energy-target", type=float, default=0.4, show_default=True,
              help="Stop when the energy per inference is this fraction of the dense model's, "
                   "in (0, 1] (0.4 = 2.5x less).")
@click.option("--max-acc-drop", type=float, default=0.01, show_default=True,
              help="Accuracy budget on the validation split, as a fraction (0.01 = 1 point).")
@click.option("--max-fidelity-drop", type=float, default=0.02, show_default=True,
              help="Text models (tiny_bert, minilm): budget on the mean cosine similarity of the "
                   "sentence embeddings to the dense model's, held-out sentences (0.02 = down to 0.98).")
@click.option("--seq-len", type=click.IntRange(min=3), default=128, show_default=True,
              help="Text models: tokens per simulated sequence (real sentences packed).")
@click.option("--granularity", default="auto", show_default=True,
              help="auto (all that apply), or one or a comma list of: unstructured, nm, block, "
                   "channel, depth; for text models also head (attention heads), ffn (FFN neurons).")
@click.option("--importance", type=click.Choice(["l1", "l2", "taylor", "activation"]), default="l1",
              show_default=True, help="Which weights/channels go first.")
@click.option("--schedule", type=click.Choice(["iterative", "recover"]), default="iterative",
              show_default=True,
              help="iterative: one fine-tune per step; recover: fine-tune up to 3 times until the "
                   "validation accuracy is back within half the budget, then prune again. "
                   "Text models, unless given: recover.")
@click.option("--stages", type=click.IntRange(min=1), default=1, show_default=True,
              help="Prune in up to this many stages: when one ends with the budget spent, the "
                   "final fine-tune recovers the model and the next goes on from it (a stage "
                   "that keeps no step ends the run). Text models, unless given: 5.")
@click.option("--closing", type=click.IntRange(min=0), default=0, show_default=True,
              help="After the last stage, run the final fine-tune this many more times on the "
                   "finished model. Text models, unless given: 1.")
@click.option("--finetune-epochs", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Fine-tune per step, in epochs of the training split (fractions allowed; 0 = none). "
                   "Text models, unless given: 0.2 passes over their training texts.")
@click.option("--final-epochs", type=click.FloatRange(min=0), default=3.0, show_default=True,
              help="One longer fine-tune of the finished model, in epochs (the baselines get the "
                   "same; 0 = none). Text models, unless given: 2 passes.")
@click.option("--lr", type=float, default=1e-3, show_default=True,
              help="Fine-tune learning rate (cosine decay to 0). Text models, unless given: 1e-4.")
@click.option("--optimizer", type=click.Choice(["adam", "adamw", "sgd"]), default="adam", show_default=True,
              help="Fine-tune optimizer (sgd: momentum 0.9).")
@click.option("--weight-decay", type=float, default=0.0, show_default=True,
              help="Fine-tune weight decay (L2 coefficient, per step of the optimizer).")
@click.option("--distill", type=click.FloatRange(0, 1), default=0.7, show_default=True,
              help="Weight of the dense model's soft targets while fine-tuning (0 = labels only).")
@click.option("--min-saving", type=click.FloatRange(min=0), default=0.005, show_default=True,
              help="A candidate saving less than this fraction of the dense energy is never taken.")
@click.option("--max-steps", type=click.IntRange(min=1), default=40, show_default=True,
              help="At most this many pruning steps (taken or undone).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Held-out images per simulated inference (energies are per inference).")
@click.option("--sample-error", type=float, default=None,
              help="Sampled simulation: relative error target (e.g. 0.02); default exact.")
@click.option("--baselines", is_flag=True,
              help="Also run global magnitude and uniform L1 channel pruning with the same "
                   "fine-tune budget, side by side.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output directory [default: prune_out/MODEL_CONFIG]: model.pt, report.csv, "
                   "history.csv, candidates.csv, summary.json, trajectory.png, checkpoint.pt.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last completed step; with a larger "
                   "--stages or --closing, a finished run goes on with the next stage or the "
                   "missing closing fine-tunes.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the fine-tune batches and dropout (a resumed run reproduces an uninterrupted one).")
@click.pass_context
def prune(ctx, model, hw_path, data, data_dir, energy_target, max_acc_drop, max_fidelity_drop,
          seq_len, granularity, importance, schedule, stages, closing, finetune_epochs, final_epochs,
          lr, optimizer, weight_decay, distill, min_saving, max_steps, batch, sample_error, baselines,
          out_dir, resume, seed):
    """Prune MODEL so that it saves energy on this hardware, with the simulator in the loop.

    Each step measures every candidate (layer x granularity x amount) on the config from the
    real masked or shrunk tensors, takes the best energy saved per accuracy point lost,
    fine-tunes and checks the accuracy budget. Energies in µJ per inference; accuracies are
    test-set top-1. MODEL: a built-in name (fashion_cnn, ...), path/to/file.py:factory, or a
    saved model. A text model (tiny_bert, minilm) is pruned against --max-fidelity-drop on
    shipped sentences instead of labelled data (energies then per sequence and per token)."""
    from simulator.cli import _fail
    try:
        from pathlib import Path

        import torch

        from pruning.loop import parse_granularities
        from pruning.tasks import load_task
        from pruning.training import FinetuneSettings
        from pruning.workflow import print_results, prune_classifier
        from simulator.config import load_config
        from simulator.models import load_model
        from simulator.text import is_text_model

        if not (0 < energy_target <= 1):
            raise JoulesimError(f"--energy-target {energy_target:g}: must be in (0, 1]")
        if max_acc_drop < 0:
            raise JoulesimError(f"--max-acc-drop {max_acc_drop:g}: must be >= 0")
        parse_granularities(granularity)
        cfg = load_config(hw_path)
        net, _ = load_model(model)
        out_dir = out_dir or str(Path("prune_out") / f"{Path(model).stem}_{cfg.name}")
        if is_text_model(net):
            _prune_text_model(ctx, net, cfg, model, out_dir, energy_target, max_fidelity_drop,
                              seq_len, granularity, importance, schedule, stages, closing,
                              finetune_epochs, final_epochs, lr, optimizer, weight_decay, min_saving,
                              max_steps, batch, sample_error, baselines, resume, seed)
            return
        settings = FinetuneSettings(epochs=finetune_epochs, final_epochs=final_epochs, lr=lr,
                                    weight_decay=weight_decay, optimizer=optimizer, distill=distill)
        task = load_task(data, data_dir, settings)
        torch.manual_seed(seed)
        results = prune_classifier(
            net, cfg, task, model_name=model, out_dir=out_dir, energy_target=energy_target,
            max_acc_drop=max_acc_drop, granularity=granularity, importance=importance,
            schedule=schedule, stages=stages, closing=closing, min_saving=min_saving,
            max_steps=max_steps, resume=resume, seed=seed, batch=batch, sample_error=sample_error,
            baselines=baselines, progress=True)
    except JoulesimError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        click.echo(f"joulesim: interrupted; completed steps are in {out_dir}: continue with "
                   f"--resume --out {out_dir}", err=True)
        sys.exit(130)
    print_results(results)
    click.echo(f"wrote {out_dir}/ (model.pt, report.csv, history.csv, summary.json, trajectory.png)")


def _given(ctx, **params) -> dict:
    """Those of `params` (click parameter name -> value) the user gave on the command line:
    the others keep the text-model defaults of `pruning.fidelity`."""
    return {name: value for name, value in params.items()
            if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT}


def _prune_text_model(ctx, net, cfg, model, out_dir, energy_target, max_fidelity_drop, seq_len,
                      granularity, importance, schedule, stages, closing, finetune_epochs,
                      final_epochs, lr, optimizer, weight_decay, min_saving, max_steps, batch, sample_error,
                      baselines, resume, seed):
    """The text branch of `prune`: fidelity on the shipped sentences is the budget; fine-tune
    and loop options the user did not give keep the encoder defaults
    (`encoder_finetune_settings`, `ENCODER_SCHEDULE`, `ENCODER_STAGES`, `ENCODER_CLOSING`)."""
    import dataclasses

    import torch

    from pruning.fidelity import (FidelityTask, encoder_finetune_settings, print_encoder_results,
                                  prune_encoder)

    if max_fidelity_drop < 0:
        raise JoulesimError(f"--max-fidelity-drop {max_fidelity_drop:g}: must be >= 0")
    if baselines:
        raise JoulesimError("--baselines: the baselines are for image classifiers; a text model "
                            "is pruned energy-aware only")
    given = _given(ctx, finetune_epochs=finetune_epochs, final_epochs=final_epochs, lr=lr,
                   optimizer=optimizer, weight_decay=weight_decay)
    settings = dataclasses.replace(encoder_finetune_settings(), **{
        "epochs" if name == "finetune_epochs" else name: value for name, value in given.items()})
    torch.manual_seed(seed)
    task = FidelityTask.for_model(net, settings)
    results = prune_encoder(
        net, cfg, task, model_name=model, out_dir=out_dir, energy_target=energy_target,
        max_fidelity_drop=max_fidelity_drop, granularity=granularity, importance=importance,
        min_saving=min_saving, max_steps=max_steps, resume=resume, seed=seed, batch=batch,
        seq_len=seq_len, sample_error=sample_error, progress=True,
        **_given(ctx, schedule=schedule, stages=stages, closing=closing))
    print_encoder_results(results)
    click.echo(f"wrote {out_dir}/ (model.pt, report.csv, history.csv, breakdown.csv, summary.json, "
               "trajectory.png)")
