"""Transformer granularities: whole attention heads and FFN neurons, removed physically.

Owns the two structural candidates for BERT-style encoders (the layers of
`simulator.encoders`), in the shape of `pruning.candidates` (`propose`,
`apply`, registered in `candidates.BY_NAME`):

* `Heads` ("head"): proposed on any of an attention's Q/K/V/output
  projections, reported under its query projection (one candidate per
  attention, whichever projection the loop ranks); removes the heads with
  the smallest contribution to the attention's output and every weight they
  own (rows of Q, K, V, columns of the output projection). The two attention
  matmuls and the softmax shrink with them.
* `FFNNeurons` ("ffn"): proposed on either FFN Linear, reported under the
  first; removes intermediate neurons (rows of W1, columns of W2).

Both find their layers by the `transformer_role` attribute the encoder puts
on its projections, so they propose nothing for any other model (CNN runs
are unchanged). Kept counts sit on the array's fold boundaries where a step
can reach one: a head's or neuron's outputs are GEMM columns of Q/K/V and W1
(output features map to the array's columns), its inputs GEMM rows of the
output projection and W2.

After either removal the projection that reads the removed outputs (the
attention's output projection, W2) is refitted by ridge least squares to
reproduce its unpruned outputs on the real tokens of the training texts
(`pruning.reconstruction.refit`), unless it carries a pruning mask. On MiniLM
with 4 of 12 heads and 512 of 1536 FFN neurons removed in every layer this
took validation fidelity from 0.796 to 0.900 before any fine-tuning (one-off).

Importance (no labels needed): a head's score is the RMS norm of its term
in the attention output, ctx_h · W_O[:, h]ᵀ; a neuron's is mean |GELU
activation| × ‖W2[:, j]‖₂ — what removing it takes out of the block's
output, to first order. Both are measured over the real tokens of a text
model's training sentences, one sentence a row (`simulator.text.
calibration_inputs`): the embeddings the fidelity is about are of single
sentences, and statistics from them chose better heads than those from
the simulator's packed 128-token sequence (MiniLM, 4 of 12 heads removed
per layer: fidelity 0.929 against 0.885, before fine-tuning). A model that
is not a text model uses the example inputs. Scores are unitless.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from pruning.reconstruction import layer_gram, refit
from pruning.structure import run_no_grad
from simulator.encoders import ATTENTION_ROLES, FFN_ROLES, BertBlock, SelfAttention
from simulator.text import calibration_inputs, is_text_model

HEAD_KEEP_FRACTIONS = (0.75, 0.5)          # besides the previous fold boundary
FFN_REMOVE_FRACTIONS = (0.125, 0.25, 0.5)


def _base():
    """pruning.candidates, which imports this module at its end to register the two
    granularities: its names are looked up when used, not at import time (no cycle)."""
    from pruning import candidates
    return candidates


def _parent(layer: str) -> str:
    return layer.rpartition(".")[0]


def _join(parent: str, child: str) -> str:
    return f"{parent}.{child}" if parent else child


def _importance_inputs(model: nn.Module, example_inputs):
    """(inputs, token mask or None): a text model's training sentences, one a row (its
    embeddings are of single sentences; padding is left out of the statistics), else the
    example inputs."""
    if is_text_model(model):
        ids, mask = calibration_inputs(model)
        return (ids, mask), mask.reshape(-1).bool()
    return example_inputs, None


def _input_of(model: nn.Module, module: nn.Module, example_inputs) -> torch.Tensor:
    """The rows (tokens) `module` receives when `model` runs on its importance inputs."""
    inputs, keep = _importance_inputs(model, example_inputs)
    seen = {}

    def hook(_m, inp):
        seen["x"] = inp[0].detach()
    handle = module.register_forward_pre_hook(hook)
    was_training = model.training
    model.eval()
    try:
        run_no_grad(model, inputs)
    finally:
        handle.remove()
        model.train(was_training)
    x = seen["x"].reshape(-1, seen["x"].shape[-1])
    return x if keep is None else x[keep]


def head_scores(model: nn.Module, attention: nn.Module, example_inputs) -> torch.Tensor:
    """Per head: RMS over tokens of ‖ctx_h · W_O[:, h]ᵀ‖₂, its term in the attention output."""
    ctx = _input_of(model, attention.output, example_inputs)               # (tokens, h*d)
    d, h = attention.head_dim, attention.num_heads
    w = attention.output.weight.detach()                                   # (hidden, h*d)
    terms = torch.einsum("thd,ohd->tho", ctx.reshape(-1, h, d), w.reshape(w.shape[0], h, d))
    return terms.pow(2).sum(-1).mean(0).sqrt()


def neuron_scores(model: nn.Module, block: nn.Module, example_inputs) -> torch.Tensor:
    """Per FFN neuron j: mean |activation_j| × ‖W2[:, j]‖₂."""
    act = _input_of(model, block.ffn_output, example_inputs)               # (tokens, ffn)
    return act.abs().mean(0) * block.ffn_output.weight.detach().norm(dim=0)


def _refit_plan(ctx, model: nn.Module, name: str, masks: dict):
    """(weight, bias, Gram) of the Linear `name` before surgery (`reconstruction.layer_gram`:
    once per step and Linear); None when the Linear carries a pruning mask (a refit would
    fill its zeros and undo the earlier step) or has no bias."""
    linear = model.get_submodule(name)
    mask = masks.get(f"{name}.weight")
    if (mask is not None and bool((mask == 0).any())) or linear.bias is None:
        return None
    return linear.weight.detach().clone(), linear.bias.detach().clone(), layer_gram(ctx, model, name)


def _ffn_keeps(width: int, cols: int) -> set[int]:
    """Kept neuron counts for removing each of FFN_REMOVE_FRACTIONS, rounded down to a
    multiple of the array's columns when that still keeps at least one fold of them."""
    keeps = set()
    for f in FFN_REMOVE_FRACTIONS:
        k = math.floor(width * (1 - f))
        aligned = k // cols * cols
        keeps.add(aligned if aligned >= cols else k)
    return {k for k in keeps if 1 <= k < width}


def _remove_lowest(ctx, key, compute_scores, n_remove: int) -> list[int]:
    """Indices of the `n_remove` lowest scores of the step's model; the scores are computed
    once per step and layer (`Context.scores`), not once per candidate."""
    if key not in ctx.scores:
        ctx.scores[key] = compute_scores()
    return torch.argsort(ctx.scores[key], stable=True)[:n_remove].tolist()


class Heads:
    """Whole attention heads, removed physically from Q, K, V and the output projection."""

    name = "head"

    def propose(self, ctx, layer: str, module: nn.Module) -> list:
        role = getattr(module, "transformer_role", None)
        if role not in ATTENTION_ROLES or not isinstance(module, nn.Linear):
            return []
        d = module.head_dim
        width = module.in_features if role == "attn_output" else module.out_features
        h = width // d
        if h < 2:
            return []
        keeps = {math.ceil(h * f) for f in HEAD_KEEP_FRACTIONS}
        if width > ctx.cols:     # the previous multiple of the array's columns
            keeps.add(((width - 1) // ctx.cols * ctx.cols) // d)
        anchor = _join(_parent(layer), SelfAttention.PRUNE_ANCHOR)
        return [_base().Candidate(anchor, self.name, 1 - k / h, f"{h}->{k} heads", keep=k)
                for k in sorted(keeps, reverse=True) if 1 <= k < h]

    def apply(self, cand, model: nn.Module, masks: dict, ctx) -> None:
        parent = _parent(cand.layer)
        attention = model.get_submodule(parent)
        removed = _remove_lowest(ctx, (self.name, cand.layer),
                                 lambda: head_scores(model, attention, ctx.inputs),
                                 attention.num_heads - cand.keep)
        plan = _refit_plan(ctx, model, _join(parent, "output"), masks)
        kept = attention.prune_heads(removed)
        if plan is not None:
            refit(attention.output, *plan, kept)
        _base().refresh_masks(model, masks)


class FFNNeurons:
    """Intermediate FFN neurons, removed physically from W1's rows and W2's columns."""

    name = "ffn"

    def propose(self, ctx, layer: str, module: nn.Module) -> list:
        role = getattr(module, "transformer_role", None)
        if role not in FFN_ROLES or not isinstance(module, nn.Linear):
            return []
        width = module.out_features if role == "ffn_in" else module.in_features
        anchor = _join(_parent(layer), BertBlock.FFN_ANCHOR)
        keeps = _ffn_keeps(width, ctx.cols)
        return [_base().Candidate(anchor, self.name, 1 - k / width, f"{width}->{k} neurons", keep=k)
                for k in sorted(keeps, reverse=True)]

    def apply(self, cand, model: nn.Module, masks: dict, ctx) -> None:
        parent = _parent(cand.layer)
        block = model.get_submodule(parent)
        removed = _remove_lowest(ctx, (self.name, cand.layer),
                                 lambda: neuron_scores(model, block, ctx.inputs),
                                 block.intermediate.out_features - cand.keep)
        plan = _refit_plan(ctx, model, _join(parent, "ffn_output"), masks)
        kept = block.prune_ffn(removed)
        if plan is not None:
            refit(block.ffn_output, *plan, kept)
        _base().refresh_masks(model, masks)


# --------------------------------------------------------------------------
# how the loop ranks an encoder's layers
# --------------------------------------------------------------------------

def charge_attention_to_anchor(report, model: nn.Module):
    """A copy of `report` whose attention matmul rows (scores, context) are named under the
    attention's query projection, the anchor of its head candidates: the loop ranks MAC
    *modules* by energy, and an attention's matmuls run in the attention module, which is
    not a Linear, so without this its heads would rank by one projection's energy alone
    (MiniLM on tpu_v1_like: 163 µJ of the attention's 710 µJ of MAC-array energy) and never
    come up while the FFN's Linears (550 µJ each) are ahead. Totals are unchanged."""
    from dataclasses import replace

    from pruning.scoring import module_of

    modules = dict(model.named_modules())

    def rename(row_layer: str) -> str:
        owner = module_of(row_layer)
        anchor = modules.get(f"{owner}.{SelfAttention.PRUNE_ANCHOR}")
        if getattr(anchor, "transformer_role", None) == "query":
            return f"{owner}.{SelfAttention.PRUNE_ANCHOR}.{row_layer.rsplit('.', 1)[1]}"
        return row_layer

    layers = report.layers.copy()
    is_matmul = layers["kind"] == "matmul"
    layers.loc[is_matmul, "layer"] = layers.loc[is_matmul, "layer"].map(rename)
    return replace(report, layers=layers)


def encoder_pruner(model: nn.Module, hw, example_inputs, **kwargs):
    """An `EnergyAwarePruner` for an encoder: its layer ranking and per-layer report charge
    each attention's two matmuls to the attention's query projection
    (`charge_attention_to_anchor`), so head pruning competes with FFN pruning on the whole
    attention's energy. Arguments as for `EnergyAwarePruner`."""
    from pruning.loop import EnergyAwarePruner
    from pruning.scoring import EnergyMeter, Measurement

    class _AnchoredMeter(EnergyMeter):
        def measure(self, m: nn.Module) -> Measurement:
            meas = super().measure(m)
            return Measurement(meas.energy_uj, meas.latency_cycles,
                               charge_attention_to_anchor(meas.report, m))

    pruner = EnergyAwarePruner(model, hw, example_inputs, **kwargs)
    base = pruner.meter
    pruner.meter = _AnchoredMeter(base.cfg, base.inputs, sample_error=base.sample_error, seed=base.seed)
    return pruner
