"""The `joulesim` command line: a thin layer over the Python API.

Every user error is printed as one line `joulesim: error: ...` with exit
code 2; tracebacks are left for bugs.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from simulator.errors import JoulesimError


def _fail(msg: str):
    click.echo(f"joulesim: error: {msg}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def cli():
    """joulesim: how much energy a network costs on an accelerator, counted
    from the real values in its tensors.

    Energies are in pJ, time in cycles and microseconds (at the config's
    clock). Hardware configs are YAML files (see hw_configs/)."""


def _load_operands(spec: str, m, k, n, fmt: str, seed: int, zero_fraction: float):
    from simulator.formats import random_operand

    if spec in ("random", "zeros"):
        if None in (m, k, n):
            raise JoulesimError("--m, --k and --n are required with --operands random|zeros")
        if spec == "zeros":
            return np.zeros((m, k), np.int64 if fmt.startswith("int") else np.float32), \
                np.zeros((k, n), np.int64 if fmt.startswith("int") else np.float32)
        rng = np.random.default_rng(seed)
        return (random_operand((m, k), fmt, rng, zero_fraction),
                random_operand((k, n), fmt, rng, zero_fraction))
    path = Path(spec)
    if path.suffix != ".npz":
        raise JoulesimError(f"--operands {spec!r}: expected random, zeros or a .npz file")
    if not path.is_file():
        raise JoulesimError(f"--operands {spec}: file not found")
    try:
        data = np.load(path)
        A, B = data["A"], data["B"]
    except KeyError:
        raise JoulesimError(f"{spec}: the .npz must hold arrays named 'A' (M x K) and 'B' (K x N)")
    except Exception as exc:  # unreadable archive
        raise JoulesimError(f"{spec}: cannot read ({exc})")
    for name, want, got in (("--m", m, A.shape[0]), ("--k", k, A.shape[1] if A.ndim == 2 else None),
                            ("--n", n, B.shape[1] if B.ndim == 2 else None)):
        if want is not None and got is not None and want != got:
            raise JoulesimError(f"{name} {want} does not match {spec} (shape gives {got})")
    return A, B


_WORKLOAD_OPTIONS = [
    click.option("--input-shape", default=None,
                 help="Input tensor shape with batch, e.g. 1,3,224,224 (default: the model's own)."),
    click.option("--batch", type=click.IntRange(min=1), default=None,
                 help="Batch size (overrides the first dimension of the input shape; default 1)."),
    click.option("--sample-error", type=float, default=None,
                 help="Sampled mode: relative error target of each GEMM's toggle counts, as a "
                      "fraction (0.05 = 5%); default: exact."),
    click.option("--seed", type=int, default=0, show_default=True,
                 help="Seed for random inputs and sampling."),
]


def _workload_options(f):
    """The options that say which inputs a model runs on, shared by simulate,
    compare and sweep."""
    for option in reversed(_WORKLOAD_OPTIONS):
        f = option(f)
    return f


@cli.command()
@click.option("--m", type=click.IntRange(min=1), help="Rows of A (output pixels x batch).")
@click.option("--k", type=click.IntRange(min=1), help="Reduction dimension (columns of A, rows of B).")
@click.option("--n", type=click.IntRange(min=1), help="Columns of B (output channels).")
@click.option("--hw", "hw_path", required=True, type=click.Path(dir_okay=False),
              help="Hardware config YAML, e.g. hw_configs/edge_npu_16x16_int8.yaml.")
@click.option("--dataflow", type=click.Choice(["ws", "os", "is"]), default=None,
              help="Override the config's dataflow: weight-, output- or input-stationary.")
@click.option("--rows", type=click.IntRange(min=1), default=None, help="Override the array's rows (PEs).")
@click.option("--cols", type=click.IntRange(min=1), default=None, help="Override the array's columns (PEs).")
@click.option("--operands", default="random", show_default=True,
              help="random (uniform over the format's codes; floats: standard normal), zeros, "
                   "or FILE.npz holding arrays A (MxK, ifmap) and B (KxN, filter).")
@click.option("--zero-fraction", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="With --operands random: fraction of exact zeros in each operand.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random operands and sampling.")
@click.option("--exact", "mode", flag_value="exact", default=True,
              help="Count every toggle (default).")
@click.option("--sample-error", type=float, default=None,
              help="Sampled mode: simulate a random subset of folds so that each toggle count's "
                   "95% interval is within this relative error (e.g. 0.01).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def gemm(m, k, n, hw_path, dataflow, rows, cols, operands, zero_fraction, seed, mode,
         sample_error, as_json):
    """Price one GEMM C = A @ B (A: MxK activations, B: KxN weights) on one
    accelerator, from the operand values: cycles, SRAM accesses, MACs
    (issued, gated, skipped), register bit toggles and energy per component
    (pJ)."""
    try:
        from simulator.config import load_config
        from simulator.gemm import simulate_gemm

        cfg = load_config(hw_path)
        A, B = _load_operands(operands, m, k, n, cfg.array.operand_format, seed, zero_fraction)
        res = simulate_gemm(A, B, cfg, dataflow=dataflow, rows=rows, cols=cols,
                            sample_error=sample_error, seed=seed)
    except JoulesimError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(res.to_dict()))
        return
    from simulator.report import print_gemm

    print_gemm(res)


@cli.command()
@click.argument("model")
@click.option("--hw", "hw_path", required=True, type=click.Path(dir_okay=False),
              help="Hardware config YAML, e.g. hw_configs/edge_npu_16x16_int8.yaml.")
@_workload_options
@click.option("--data", type=click.Choice(["fashion-mnist"]), default=None,
              help="Feed real test images instead of random inputs (needs the Debian package "
                   "dataset-fashion-mnist, or --data-dir).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder with the Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist).")
@click.option("--exact", "mode", flag_value="exact", default=True, help="Count every toggle (default).")
@click.option("--seq-len", type=click.IntRange(min=3), default=None,
              help="Text models (tiny_bert, minilm): tokens per sequence, packed from real "
                   "held-out sentences (default 128); energies are then per sequence.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write layers.csv, unmodeled.csv, summary.json and energy_breakdown.png here.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def simulate(model, hw_path, input_shape, data, data_dir, batch, mode, seq_len, sample_error, seed,
             out_dir, as_json):
    """Simulate one forward pass of MODEL on an accelerator: energy per layer and
    component (µJ per inference), cycles, stalls, utilization, DRAM traffic.

    MODEL is a built-in name (fashion_cnn, resnet18, mobilenet_v2, bert_block, tiny_bert,
    minilm), path/to/file.py:factory, or a model saved whole with torch.save (prune's
    model.pt). A text model also gets its energy per encoder layer and part (attention, FFN)
    per sequence and per token."""
    try:
        import torch

        from simulator.config import load_config
        from simulator.network import simulate as simulate_network

        cfg = load_config(hw_path)
        net, x = _model_and_inputs(model, input_shape, batch, seed, data, data_dir, seq_len)
        torch.manual_seed(seed)
        report = simulate_network(net, x, cfg, sample_error=sample_error, seed=seed,
                                  progress=not as_json)
        written = []
        if out_dir:
            from simulator.report import write_network_report

            written = write_network_report(report, out_dir)
    except JoulesimError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(report.total, default=float))
        return
    from simulator.report import print_network

    print_network(report)
    if isinstance(x, tuple):    # a text model: energy per encoder layer and part, per token
        from simulator.transformer_report import encoder_breakdown, print_breakdown

        print_breakdown(encoder_breakdown(report, x[0].shape[1]), x[0].shape[1])
    for p in written:
        click.echo(f"wrote {p}")


class _ManyValuesCommand(click.Command):
    """A command whose options in `many_values` take several values after one flag, as in
    `--hw a.yaml b.yaml`: the arguments are rewritten to `--hw a.yaml --hw b.yaml` before
    click parses them. Values run until the next option (or `--`); so MODEL comes first."""

    many_values: tuple = ()

    def parse_args(self, ctx, args):
        out, current, i = [], None, 0
        while i < len(args):
            tok = args[i]
            if tok == "--":
                out += args[i:]
                break
            if tok.startswith("-") and len(tok) > 1:
                name = tok.split("=", 1)[0]
                current = name if name in self.many_values else None
                out.append(tok)
                if current and "=" not in tok and i + 1 < len(args):
                    out.append(args[i + 1])
                    i += 1
            elif current is not None:
                out += [current, tok]
            else:
                out.append(tok)
            i += 1
        return super().parse_args(ctx, out)


class _CompareCommand(_ManyValuesCommand):
    many_values = ("--hw", "--pruned-for")


class _SweepCommand(_ManyValuesCommand):
    many_values = ("--grid",)


def _model_and_inputs(model, input_shape, batch, seed, data=None, data_dir=None, seq_len=None):
    """(module, inputs) for MODEL: real test images with --data; for a text model, token ids
    of real sentences (BATCH,SEQ_LEN from --input-shape, --batch, --seq-len); else random
    inputs of --input-shape (or the model's own shape) with --batch."""
    from simulator.models import load_model, make_inputs, parse_shape
    from simulator.text import inputs_from_options, is_text_model

    net, default_shape = load_model(model)
    if data == "fashion-mnist":
        from simulator.datasets import load_fashion_mnist

        return net, load_fashion_mnist("test", data_dir, limit=batch or 1)[0]
    if is_text_model(net):
        return net, inputs_from_options(net, input_shape, batch, seq_len, default_shape, seed)
    if seq_len:
        raise JoulesimError(f"--seq-len applies to text models (tiny_bert, minilm), not {model}")
    shape = parse_shape(input_shape) if input_shape else default_shape
    if shape is None:
        raise JoulesimError(f"{model}: no default input shape; give --input-shape")
    if batch:
        shape = (batch,) + tuple(shape[1:])
    return net, make_inputs(shape, seed=seed)


@cli.command(cls=_CompareCommand)
@click.argument("model")
@click.option("--hw", "hw_paths", required=True, multiple=True, metavar="YAML [YAML ...]",
              help="Hardware configs to compare (one row each), e.g. --hw hw_configs/a.yaml "
                   "hw_configs/b.yaml; a bare name is looked up in hw_configs/.")
@click.option("--pruned-for", "pruned_dirs", multiple=True, metavar="DIR [DIR ...]",
              help="Directories holding model.pt, a whole nn.Module saved with torch.save "
                   "(`joulesim prune` writes such a directory per config it prunes for). Each "
                   "pruned model is evaluated on every --hw config too: the cross matrix.")
@_workload_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write compare.csv, compare_energy.png (stacked bars), compare_latency.png and "
                   "compare.html (self-contained page) here; compare_matrix.csv with --pruned-for.")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON (one object per row).")
def compare(model, hw_paths, pruned_dirs, input_shape, batch, sample_error, seed, out_dir, as_json):
    """Compare accelerators on MODEL: one row per config with energy per inference by
    component (µJ: MAC, registers, SRAM, DRAM, vector, leakage, total), latency (cycles, µs),
    energy-delay product (µJ·µs), utilization (% of PE-cycles), DRAM traffic (bytes per
    inference) and inferences per joule.

    MODEL is a built-in name (fashion_cnn, resnet18, mobilenet_v2, bert_block, tiny_bert,
    minilm), path/to/file.py:factory, or a model saved whole with torch.save (prune's
    model.pt); it comes before the options."""
    try:
        from simulator.comparison import compare as compare_designs

        net, x = _model_and_inputs(model, input_shape, batch, seed)
        result = compare_designs(net, list(hw_paths), inputs=x, pruned_for=list(pruned_dirs),
                                 sample_error=sample_error, seed=seed, out_dir=out_dir,
                                 progress=not as_json, label=model)
    except JoulesimError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(result.table.to_json(orient="records"))
        return
    from simulator.comparison import print_comparison

    print_comparison(result)
    for p in result.files:
        click.echo(f"wrote {p}")


@cli.command(cls=_SweepCommand)
@click.argument("model")
@click.option("--base", "base_path", required=True, type=click.Path(dir_okay=False),
              help="The config every grid point starts from, e.g. hw_configs/edge_npu_16x16_int8.yaml.")
@click.option("--grid", "grid_items", required=True, multiple=True, metavar="KEY=V1,V2,... [...]",
              help="Values to sweep, per dotted config key, e.g. --grid array.rows=8,16,32 "
                   "memory.sram.ifmap.size_kib=64,256 memory.dram.kind=lpddr4,hbm2 (units as in "
                   "the config: KiB, MHz, GB/s, ...). Every combination is a point. Values are "
                   "YAML (8, 0.5, true, null).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: the CPUs available to this process).")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="local: a process pool on this machine; dask: Dask distributed (a local cluster "
                   "of --jobs workers, or --scheduler).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="With --executor dask: address of a running Dask scheduler, e.g. "
                   "tcp://10.0.0.5:8786 (default: start a local cluster).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write sweep.parquet and sweep.csv (one row per point), pareto.png, "
                   "sweep_points.jsonl (finished points, as they finish) and sweep_meta.json here.")
@click.option("--resume", is_flag=True,
              help="Keep the points already in --out (table or finished-points file) and compute "
                   "only the missing ones.")
@_workload_options
def sweep(model, base_path, grid_items, jobs, executor, scheduler, out_dir, resume, input_shape,
          batch, sample_error, seed):
    """Sweep a grid of config changes on MODEL: every point's energy per inference by
    component (µJ), latency (cycles, µs), EDP (µJ·µs), utilization and DRAM traffic, one row
    per point, with the energy-latency Pareto front marked (column pareto) and plotted. Area
    is not modeled (the configs give none): the table's area_mm2 column is empty.

    Every grid point is checked before anything runs: an unknown key or a value the config
    schema rejects is one error (exit code 2). MODEL is a built-in name, path/to/file.py:factory
    or a model saved whole with torch.save; it comes before the options."""
    try:
        from simulator.config import load_config
        from simulator.exploration import parse_grid, points_of, print_sweep
        from simulator.exploration import sweep as run_sweep

        if scheduler and executor != "dask":
            raise JoulesimError("--scheduler needs --executor dask")
        if resume and not out_dir:
            raise JoulesimError("--resume needs --out DIR (the sweep to resume)")
        base = load_config(base_path)
        points_of(grid_items, base)  # grid errors before the model is loaded
        net, x = _model_and_inputs(model, input_shape, batch, seed)
        result = run_sweep(net, base, parse_grid(grid_items, base), inputs=x, jobs=jobs,
                           executor=executor, scheduler=scheduler, out_dir=out_dir, resume=resume,
                           sample_error=sample_error, seed=seed, progress=True, label=model)
    except JoulesimError as exc:
        _fail(str(exc))
    print_sweep(result, out_dir=out_dir)
    for p in result.files:
        click.echo(f"wrote {p}")


def _add_prune_verb():
    """`joulesim prune` lives with the pruning plugin; the CLI is the one layer
    that sees both packages (simulator modules never import pruning)."""
    from pruning.cli import prune

    cli.add_command(prune)


_add_prune_verb()


def main():
    cli(prog_name="joulesim")


if __name__ == "__main__":
    main()
