"""Transformer energy breakdown: a simulated Report grouped by encoder layer and component.

Owns how the rows of a `network.Report` of a BERT-style encoder
(`simulator.encoders`) map onto what a transformer is made of:

| part      | op          | report rows (module names of `simulator.encoders`)            |
|-----------|-------------|----------------------------------------------------------------|
| attention | qkv         | `<layer>.attention.query/key/value` Linear                     |
|           | scores      | the attention's 1st matmul, Q·Kᵀ (`attn_scores` for SDPA)      |
|           | scale_mask  | the scores' scaling and mask add (vector unit)                 |
|           | softmax     | softmax (vector unit)                                          |
|           | context     | the attention's 2nd matmul, softmax·V (`attn_context` for SDPA)|
|           | out_proj    | `<layer>.attention.output` Linear                              |
| ffn       | ffn_in, gelu, ffn_out | `<layer>.intermediate`, `.gelu`, `.ffn_output`       |
| other     | layernorm, residual   | the two LayerNorms and residual adds of each layer   |
|           | embeddings, mask      | embedding adds and LayerNorm; the additive attention |
|           |                       | mask (made before the first layer)                   |
|           | pooling               | mean pooling and L2 normalisation (after the last)   |

The attention share is attention / (attention + ffn + other), likewise the
FFN share. Energies are µJ per sequence (the Report's per-inference figures:
one inference is one sequence) and µJ per token (divided by the tokens per
sequence the caller gives: the real, unpadded tokens).
"""
from __future__ import annotations

import re

import pandas as pd

from simulator.network import ENERGY_COLUMNS, Report

PARTS = ("attention", "ffn", "other")
_LAYER = re.compile(r"^(?P<layer>(?:.*\.)?layers\.\d+)\.(?P<rest>.+)$")
_ATTENTION_OPS = {"query": "qkv", "key": "qkv", "value": "qkv", "output": "out_proj",
                  "softmax": "softmax", "attn_scores": "scores", "attn_context": "context"}
_FFN_OPS = {"intermediate": "ffn_in", "gelu": "gelu", "ffn_output": "ffn_out"}
_VALUE_COLUMNS = ["macs", "latency_cycles"] + ENERGY_COLUMNS + ["energy_total_uj"]


def classify(row_layer: str) -> tuple[str, str, str]:
    """(encoder layer, part, op) of one report row, e.g.
    'layers.3.attention.matmul#2' -> ('layers.3', 'attention', 'context')."""
    m = _LAYER.match(row_layer)
    layer, rest = (m["layer"], m["rest"]) if m else ("", row_layer)
    head, _, tail = rest.partition(".")
    if head == "attention":
        sub = tail.split(".")[0]
        if sub.startswith("matmul"):
            return layer, "attention", "context" if "#" in sub else "scores"
        return layer, "attention", _ATTENTION_OPS.get(sub.split("#")[0], "scale_mask")
    if head in _FFN_OPS:
        return layer, "ffn", _FFN_OPS[head]
    if head.endswith("_norm"):
        return layer, "other", "layernorm"
    if head == "embeddings":
        return "embeddings", "other", "embeddings"
    if layer:
        return layer, "other", "residual"
    return "pooling", "other", "pooling"


def encoder_breakdown(report: Report, tokens_per_sequence: int) -> pd.DataFrame:
    """One row per (encoder layer, part, op), execution order: MACs, cycles and energy by
    hardware component in µJ per sequence, and the total in µJ per token."""
    rows = report.layers.copy()
    keys, in_layers = [], False
    for name in rows["layer"]:
        key = classify(name)
        in_layers |= key[0] not in ("embeddings", "pooling")
        if key[0] == "pooling" and not in_layers:     # the attention mask, made before layer 0
            key = ("embeddings", "other", "mask")
        keys.append(key)
    rows["block"] = [k[0] for k in keys]
    rows["part"] = [k[1] for k in keys]
    rows["op"] = [k[2] for k in keys]
    out = rows.groupby(["block", "part", "op"], sort=False)[_VALUE_COLUMNS].sum().reset_index()
    out["energy_total_uj_per_token"] = out["energy_total_uj"] / tokens_per_sequence
    return out


def part_shares(breakdown: pd.DataFrame) -> pd.DataFrame:
    """Per part (attention, ffn, other): energy per sequence and per token, share of the total."""
    parts = breakdown.groupby("part")[["macs", "energy_total_uj", "energy_total_uj_per_token"]].sum()
    parts = parts.reindex(list(PARTS), fill_value=0)
    total = float(parts["energy_total_uj"].sum())
    parts["share"] = parts["energy_total_uj"] / total if total else 0.0
    return parts.reset_index()


def layer_table(breakdown: pd.DataFrame) -> pd.DataFrame:
    """Per encoder layer: energy (µJ per sequence) of attention, ffn and other, and the total."""
    table = breakdown.pivot_table(index="block", columns="part", values="energy_total_uj",
                                  aggfunc="sum", sort=False).reindex(columns=list(PARTS)).fillna(0.0)
    table["total"] = table.sum(axis=1)
    table.columns = [f"{c}_uj" for c in table.columns]
    return table.reset_index()


def before_after(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Two breakdowns side by side per (layer, part, op): energy per sequence and per token
    before and after, and the reduction × (inf for an op that is gone)."""
    cols = ["energy_total_uj", "energy_total_uj_per_token", "macs"]
    merged = before[["block", "part", "op"] + cols].merge(
        after[["block", "part", "op"] + cols], on=["block", "part", "op"], how="outer",
        suffixes=("_before", "_after"), sort=False).fillna(0.0)
    merged["reduction_x"] = merged["energy_total_uj_before"] / merged["energy_total_uj_after"].where(
        merged["energy_total_uj_after"] > 0)
    merged["reduction_x"] = merged["reduction_x"].fillna(float("inf"))
    return merged


def summary(breakdown: pd.DataFrame, tokens_per_sequence: int) -> dict:
    """Energy per sequence and per token (µJ) and the attention/FFN/other shares."""
    shares = part_shares(breakdown).set_index("part")
    total = float(breakdown["energy_total_uj"].sum())
    return {"energy_uj_per_sequence": total,
            "energy_uj_per_token": total / tokens_per_sequence,
            "tokens_per_sequence": tokens_per_sequence,
            **{f"{p}_share": float(shares.loc[p, "share"]) for p in PARTS}}


def print_breakdown(breakdown: pd.DataFrame, tokens_per_sequence: int, title: str = "",
                    after: pd.DataFrame | None = None, console=None) -> None:
    """Per encoder layer, the energy of attention, FFN and the rest (µJ per sequence; with
    `after`, "before → after"), the totals per sequence and per token, then the shares."""
    from rich.table import Table

    from simulator.report import _console
    console = console or _console()
    frames = [breakdown] + ([after] if after is not None else [])
    tables = [layer_table(b).set_index("block") for b in frames]
    t = Table(title=title or f"energy by encoder layer and part (µJ per sequence of "
                             f"{tokens_per_sequence} tokens" + ("; before → after)" if after is not None else ")"))
    t.add_column("layer")
    for col in PARTS + ("total",):
        t.add_column(col, justify="right")

    def cell(values):
        return " → ".join(f"{v:.2f}" for v in values)
    for block in tables[0].index:
        t.add_row(block, *[cell(tab.loc[block, f"{p}_uj"] if block in tab.index else 0.0 for tab in tables)
                           for p in PARTS + ("total",)])
    sums = [summary(b, tokens_per_sequence) for b in frames]
    parts = [part_shares(b).set_index("part") for b in frames]
    for label, scale in (("per sequence", 1.0), ("per token", 1.0 / tokens_per_sequence)):
        row = [cell(ps.loc[p, "energy_total_uj"] * scale for ps in parts) for p in PARTS]
        row.append(cell(s["energy_uj_per_sequence"] * scale for s in sums))
        t.add_row(f"total {label}", *row, style="bold")
    console.print(t)
    for label, s in zip(("before", "after") if after is not None else ("",), sums):
        console.print(f"{label + ': ' if label else ''}{s['energy_uj_per_sequence']:.2f} µJ per sequence, "
                      f"{s['energy_uj_per_token']:.3f} µJ per token; attention {s['attention_share']:.1%}, "
                      f"FFN {s['ffn_share']:.1%}, other {s['other_share']:.1%}")
    if after is not None:
        console.print(f"reduction: {sums[0]['energy_uj_per_sequence'] / sums[1]['energy_uj_per_sequence']:.2f}×")
