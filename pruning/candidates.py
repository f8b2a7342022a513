"""Pruning candidates: one small class per granularity, one call signature.

Owns what a candidate *is* and how it changes a model, in the spirit of
`torch.nn.utils.prune` (a class per method, masks a user can inspect):

    granularity.propose(ctx, layer) -> [Candidate, ...]
    candidate.apply(model, masks, ctx)      # in place

Masks are 0/1 tensors keyed by parameter name ("features.0.0.weight"); the
caller keeps them applied during fine-tuning. Amounts are the fraction of the
layer's weights that are zero after the step (unstructured, N:M, block), or
the number of output channels kept (channel), chosen on the array's fold
boundaries: output channels map to the array's columns, so a count that does
not cross a multiple of `cols` saves no cycles. GEMM view of a weight (as the
simulator lowers it): B = weight.reshape(out, -1).T, K rows × N columns.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn

from pruning.importance import CalibrationStats, channel_scores, weight_scores
from pruning.structure import drop_block, group_channel_scores, out_channels, remove_channels

GRANULARITIES = ("unstructured", "nm", "block", "channel", "depth")
DENSITY_STEPS = (0.5, 0.75)     # proposed density multipliers for mask-based granularities


@dataclass
class Context:
    """What candidates need to know: the array, the N:M pattern, the criterion."""

    rows: int
    cols: int
    nm: tuple[int, int]
    criterion: str
    stats: CalibrationStats
    inputs: object                      # example inputs, for the dependency graph
    channel_layers: frozenset = frozenset()
    blocks: tuple = ()
    # scores a granularity computed on this step's model, by (granularity, layer): the loop
    # builds one Context per step and every candidate's trial is a copy of that model
    scores: dict = field(default_factory=dict)


@dataclass
class Candidate:
    layer: str              # module name (a block name for depth)
    granularity: str
    amount: float           # weight sparsity after the step, or fraction of channels removed
    detail: str             # human-readable, e.g. "2:4", "64->48 channels", "sparsity 75%"
    keep: Optional[int] = None   # channels kept (channel)

    @property
    def key(self) -> tuple:
        return (self.layer, self.granularity, self.detail)

    def apply(self, model: nn.Module, masks: dict, ctx: Context) -> None:
        BY_NAME[self.granularity].apply(self, model, masks, ctx)


def weight_sparsity(module: nn.Module) -> float:
    w = module.weight.detach()
    return 1.0 - float(torch.count_nonzero(w)) / w.numel()


def _combine(masks: dict, name: str, new: torch.Tensor) -> torch.Tensor:
    old = masks.get(name)
    masks[name] = new if old is None or old.shape != new.shape else old * new
    return masks[name]


def _apply_weight_mask(model: nn.Module, layer: str, masks: dict, mask: torch.Tensor) -> None:
    module = model.get_submodule(layer)
    mask = _combine(masks, f"{layer}.weight", mask.to(module.weight.dtype))
    with torch.no_grad():
        module.weight.mul_(mask)


def _reconstructed(cand: Candidate, model: nn.Module, masks: dict, ctx: Context, **target) -> bool:
    """Apply a mask candidate with OBS and weight compensation (`reconstruction.obs_prune`,
    `target` its nm or sparsity) where the layer is a text model's Linear projection, whose
    input Gram the reconstruction texts give; False (nothing done) for any other layer, which
    the criterion `ctx.criterion` prunes."""
    from pruning.reconstruction import layer_gram, obs_prune, reconstructs

    if not reconstructs(model, cand.layer):
        return False
    module = model.get_submodule(cand.layer)
    weight, mask = obs_prune(module.weight, layer_gram(ctx, model, cand.layer), **target)
    with torch.no_grad():
        module.weight.copy_(weight)
    _apply_weight_mask(model, cand.layer, masks, mask)
    return True


def _lowest(scores: torch.Tensor, alive: torch.Tensor, n_remove: int) -> torch.Tensor:
    """0/1 mask removing the `n_remove` lowest-scoring alive entries."""
    mask = torch.ones_like(scores)
    if n_remove <= 0:
        return mask
    s = torch.where(alive, scores, torch.full_like(scores, float("inf")))
    idx = torch.argsort(s.flatten(), stable=True)[:n_remove]
    mask.view(-1)[idx] = 0
    return mask


class Unstructured:
    """Individual weights by importance, up to a layer sparsity."""

    name = "unstructured"

    def propose(self, ctx: Context, layer: str, module: nn.Module) -> list[Candidate]:
        density = 1.0 - weight_sparsity(module)
        out = []
        for f in DENSITY_STEPS:
            target = 1.0 - density * f
            if target < 0.99:
                out.append(Candidate(layer, self.name, target, f"sparsity {target:.0%}"))
        return out

    def apply(self, cand: Candidate, model: nn.Module, masks: dict, ctx: Context) -> None:
        if _reconstructed(cand, model, masks, ctx, sparsity=cand.amount):
            return
        module = model.get_submodule(cand.layer)
        w = module.weight.detach()
        scores = weight_scores(cand.layer, module, ctx.criterion, ctx.stats)
        n_zero = int(round(cand.amount * w.numel())) - int((w == 0).sum())
        _apply_weight_mask(model, cand.layer, masks, _lowest(scores, w != 0, n_zero))


class NM:
    """N:M along the GEMM's K dimension (consecutive input weights of one filter)."""

    name = "nm"

    def propose(self, ctx: Context, layer: str, module: nn.Module) -> list[Candidate]:
        n, m = ctx.nm
        flat = module.weight.detach().reshape(out_channels(module), -1)
        if flat.shape[1] < m or self._conforms(flat, n, m):
            return []
        return [Candidate(layer, self.name, 1 - n / m, f"{n}:{m}")]

    @staticmethod
    def _conforms(flat: torch.Tensor, n: int, m: int) -> bool:
        k = flat.shape[1] - flat.shape[1] % m
        groups = flat[:, :k].reshape(flat.shape[0], -1, m)
        return bool(((groups != 0).sum(-1) <= n).all())

    def apply(self, cand: Candidate, model: nn.Module, masks: dict, ctx: Context) -> None:
        if _reconstructed(cand, model, masks, ctx, nm=ctx.nm):
            return
        n, m = ctx.nm
        module = model.get_submodule(cand.layer)
        w = module.weight.detach()
        scores = weight_scores(cand.layer, module, ctx.criterion, ctx.stats).reshape(w.shape[0], -1)
        scores = torch.where(w.reshape(w.shape[0], -1) != 0, scores, torch.zeros_like(scores))
        k = scores.shape[1] - scores.shape[1] % m      # a ragged tail group stays dense
        mask = torch.ones_like(scores)
        groups = scores[:, :k].reshape(scores.shape[0], -1, m)
        drop = torch.argsort(groups, dim=-1, stable=True)[..., :m - n]
        gmask = torch.ones_like(groups).scatter_(-1, drop, 0.0)
        mask[:, :k] = gmask.reshape(scores.shape[0], k)
        _apply_weight_mask(model, cand.layer, masks, mask.reshape(w.shape))


class Block:
    """Whole rows×cols tiles of the GEMM weight B (K×N): on an array that
    skips zero work, a zero tile removes a whole fold."""

    name = "block"

    def _tiles(self, module, ctx):
        flat = module.weight.detach().reshape(out_channels(module), -1)   # N x K
        return math.ceil(flat.shape[1] / ctx.rows), math.ceil(flat.shape[0] / ctx.cols)

    def propose(self, ctx: Context, layer: str, module: nn.Module) -> list[Candidate]:
        tk, tn = self._tiles(module, ctx)
        total = tk * tn
        if total < 2:
            return []
        bt = self._tile_sums(module.weight.detach() != 0, ctx)
        alive = int((bt > 0).sum())
        out = []
        for f in DENSITY_STEPS:
            keep = max(1, int(math.floor(alive * f)))
            if keep < alive:
                out.append(Candidate(layer, self.name, 1 - keep / total,
                                     f"{keep}/{total} tiles of {ctx.rows}x{ctx.cols}"))
        return out

    def _tile_sums(self, w: torch.Tensor, ctx: Context) -> torch.Tensor:
        """(K tiles, N tiles) sums of `w` (any per-weight tensor) in GEMM layout."""
        b = w.reshape(w.shape[0], -1).T.float()             # K x N
        K, N = b.shape
        pad = torch.zeros(math.ceil(K / ctx.rows) * ctx.rows, math.ceil(N / ctx.cols) * ctx.cols)
        pad[:K, :N] = b
        return pad.reshape(pad.shape[0] // ctx.rows, ctx.rows, pad.shape[1] // ctx.cols, ctx.cols).sum((1, 3))

    def apply(self, cand: Candidate, model: nn.Module, masks: dict, ctx: Context) -> None:
        module = model.get_submodule(cand.layer)
        w = module.weight.detach()
        scores = self._tile_sums(weight_scores(cand.layer, module, ctx.criterion, ctx.stats), ctx)
        alive = self._tile_sums(w != 0, ctx) > 0
        keep = int(cand.detail.split("/")[0])
        tile_mask = _lowest(scores, alive, int(alive.sum()) - keep)
        full = tile_mask.repeat_interleave(ctx.rows, 0).repeat_interleave(ctx.cols, 1)
        K = w.reshape(w.shape[0], -1).shape[1]
        b_mask = full[:K, :w.shape[0]]                       # K x N
        _apply_weight_mask(model, cand.layer, masks, b_mask.T.reshape(w.shape))


class Channel:
    """Output channels (filters) removed physically, with every coupled layer."""

    name = "channel"

    def propose(self, ctx: Context, layer: str, module: nn.Module) -> list[Candidate]:
        if layer not in ctx.channel_layers:
            return []
        c = out_channels(module)
        keeps = set()
        if c > ctx.cols:
            keeps.add((c - 1) // ctx.cols * ctx.cols)                    # previous fold boundary (columns)
            keeps.add(max(ctx.cols, math.ceil(c / 2 / ctx.cols) * ctx.cols))   # about half, aligned
        # a half-fold step: no column fold saved here, but the next layer's K (rows) shrinks
        half = max(1, ctx.cols // 2)
        keeps.add((c - 1) // half * half)
        if c <= ctx.cols:
            keeps.add(c // 2)
        return [Candidate(layer, self.name, 1 - k / c, f"{c}->{k} channels", keep=k)
                for k in sorted(keeps, reverse=True) if 1 <= k < c]

    def apply(self, cand: Candidate, model: nn.Module, masks: dict, ctx: Context) -> None:
        module = model.get_submodule(cand.layer)
        if ctx.criterion in ("l1", "l2"):    # magnitude of the whole coupled group, not the filter alone
            scores = group_channel_scores(model, cand.layer, 1 if ctx.criterion == "l1" else 2, ctx.inputs)
        else:
            scores = channel_scores(cand.layer, module, ctx.criterion, ctx.stats)
        order = torch.argsort(scores, stable=True)
        n_remove = out_channels(module) - cand.keep
        remove_channels(model, cand.layer, order[:n_remove].tolist(), ctx.inputs)
        refresh_masks(model, masks)


class Depth:
    """A whole shape-preserving block dropped (replaced by identity)."""

    name = "depth"

    def propose(self, ctx: Context, layer: str, module: nn.Module) -> list[Candidate]:
        return [Candidate(b, self.name, 1.0, "block dropped") for b in ctx.blocks
                if layer == b or layer.startswith(b + ".")]

    def apply(self, cand: Candidate, model: nn.Module, masks: dict, ctx: Context) -> None:
        drop_block(model, cand.layer)
        refresh_masks(model, masks)


def refresh_masks(model: nn.Module, masks: dict) -> None:
    """After surgery: drop masks of removed parameters and re-derive the
    masks whose parameter changed shape from its zeros."""
    params = dict(model.named_parameters())
    for name in list(masks):
        p = params.get(name)
        if p is None:
            del masks[name]
        elif p.shape != masks[name].shape:
            masks[name] = (p.detach() != 0).to(p.dtype)


BY_NAME = {g.name: g for g in (Unstructured(), NM(), Block(), Channel(), Depth())}


# transformer granularities (pruning/transformer.py): they propose nothing for layers that are
# not an encoder's attention or FFN projections, so CNN runs are unchanged
from pruning.transformer import FFNNeurons, Heads  # noqa: E402

GRANULARITIES = GRANULARITIES + (Heads.name, FFNNeurons.name)
BY_NAME.update({g.name: g for g in (Heads(), FFNNeurons())})
