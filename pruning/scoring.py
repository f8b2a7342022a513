"""Scoring: what a pruning step saves on this hardware, measured by the simulator.

Owns the simulator calls of the pruner. A model is captured on the example
inputs and simulated on the config; the simulator's per-GEMM cache (keyed by
operand contents and config) means that after a change only the GEMMs whose
operands changed are simulated again — the changed layer and the layers
downstream whose activations it changed. Energies in µJ per inference.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch.nn as nn

from simulator.gemm import _resolve_hw
from simulator.network import ENERGY_COLUMNS, Report, Workload, simulate_workload

MAC_KINDS = ("conv2d", "linear", "matmul")


@dataclass
class Measurement:
    energy_uj: float          # per inference
    latency_cycles: int
    report: Report


class EnergyMeter:
    """Simulate models on one config and one set of example inputs."""

    def __init__(self, hw, inputs, sample_error: float | None = None, seed: int = 0):
        self.cfg = _resolve_hw(hw)
        self.inputs = inputs
        self.sample_error = sample_error
        self.seed = seed
        self.calls = 0

    def measure(self, model: nn.Module) -> Measurement:
        self.calls += 1
        model.eval()
        rep = simulate_workload(Workload(model, self.inputs), self.cfg,
                                sample_error=self.sample_error, seed=self.seed)
        return Measurement(float(rep.total["energy_uj_per_inference"]),
                           int(rep.total["latency_cycles"]), rep)


def module_of(row_layer: str) -> str:
    """Report rows are named '<module>.<op>' (e.g. 'features.0.0.conv2d')."""
    return row_layer.rsplit(".", 1)[0]


def layer_table(report: Report) -> pd.DataFrame:
    """Per MAC module: energies by component (µJ/inference), cycles, MACs."""
    rows = report.layers[report.layers["kind"].isin(MAC_KINDS)].copy()
    rows["module"] = rows["layer"].map(module_of)
    cols = ENERGY_COLUMNS + ["energy_total_uj", "cycles", "latency_cycles", "macs"]
    return rows.groupby("module", sort=False)[cols].sum()
