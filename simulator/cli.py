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
@click.option("--input-shape", default=None,
              help="Input tensor shape with batch, e.g. 1,3,224,224 (default: the model's own).")
@click.option("--data", type=click.Choice(["fashion-mnist"]), default=None,
              help="Feed real test images instead of random inputs (needs the Debian package "
                   "dataset-fashion-mnist, or --data-dir).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder with the Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist).")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Batch size (overrides the first dimension of the input shape; default 1).")
@click.option("--exact", "mode", flag_value="exact", default=True, help="Count every toggle (default).")
@click.option("--sample-error", type=float, default=None,
              help="Sampled mode: relative error target of each GEMM's toggle counts (e.g. 0.01).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random inputs and sampling.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write layers.csv, unmodeled.csv, summary.json and energy_breakdown.png here.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def simulate(model, hw_path, input_shape, data, data_dir, batch, mode, sample_error, seed,
             out_dir, as_json):
    """Simulate one forward pass of MODEL on an accelerator: energy per layer and
    component (µJ per inference), cycles, stalls, utilization, DRAM traffic.

    MODEL is a built-in name (fashion_cnn, resnet18, mobilenet_v2, bert_block),
    path/to/file.py:factory, or a TorchScript file."""
    try:
        import torch

        from simulator.config import load_config
        from simulator.models import load_model, make_inputs, parse_shape
        from simulator.network import simulate as simulate_network

        cfg = load_config(hw_path)
        net, default_shape = load_model(model)
        if data == "fashion-mnist":
            from simulator.datasets import load_fashion_mnist

            x, _ = load_fashion_mnist("test", data_dir, limit=batch or 1)
        else:
            shape = parse_shape(input_shape) if input_shape else default_shape
            if shape is None:
                raise JoulesimError(f"{model}: no default input shape; give --input-shape")
            if batch:
                shape = (batch,) + tuple(shape[1:])
            x = make_inputs(shape, seed=seed)
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
    for p in written:
        click.echo(f"wrote {p}")


def main():
    cli(prog_name="joulesim")


if __name__ == "__main__":
    main()
