"""Importance criteria: how much each weight, tile or output channel matters.

Owns the four criteria of the pruning CLI (`--importance`):
- l1: |w|;  l2: w² (per channel: the L2 norm of the filter);
- taylor: |w · ∂L/∂w|, the first-order Taylor estimate of the loss change
  when the weight is removed (Molchanov et al., CVPR'19), from one labelled
  calibration batch;
- activation: |w| · ‖x_j‖ for weights (the input feature's RMS activation,
  as in Wanda, Sun et al. 2023), and the mean |output| of a channel for
  channels, from the calibration inputs.

Scores are unitless and only compared within one layer. A low score means
"cheap to remove". For channels under l1/l2 the candidates use the magnitude
of the whole dependency group instead (`structure.group_channel_scores`):
a filter followed by BatchNorm says little on its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from simulator.errors import JoulesimError

CRITERIA = ("l1", "l2", "taylor", "activation")


@dataclass
class CalibrationStats:
    """Per-layer gradients and activation statistics from one calibration batch."""

    grads: dict[str, torch.Tensor] = field(default_factory=dict)        # layer -> dL/dW
    input_rms: dict[str, torch.Tensor] = field(default_factory=dict)    # layer -> (in_features,)
    output_mean_abs: dict[str, torch.Tensor] = field(default_factory=dict)  # layer -> (out,)


def check_criterion(criterion: str) -> str:
    if criterion not in CRITERIA:
        raise JoulesimError(f"importance {criterion!r}: allowed {', '.join(CRITERIA)}")
    return criterion


def mac_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The model's Conv2d and Linear modules by name, in definition order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def calibrate(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None,
              criterion: str) -> CalibrationStats:
    """Collect what `criterion` needs (nothing for l1/l2) on the batch (x, y)."""
    stats = CalibrationStats()
    if criterion in ("l1", "l2"):
        return stats
    layers = mac_layers(model)
    handles = []
    if criterion == "activation":
        def hook(name):
            def fn(mod, inp, out):
                a = inp[0].detach()
                if isinstance(mod, nn.Conv2d):
                    rms = a.pow(2).mean(dim=(0, 2, 3)).sqrt()                 # (cin,)
                    per_in = rms.repeat_interleave(mod.kernel_size[0] * mod.kernel_size[1])
                    stats.input_rms[name] = per_in                            # (cin*kh*kw,) within a group
                    stats.output_mean_abs[name] = out.detach().abs().mean(dim=(0, 2, 3))
                else:
                    stats.input_rms[name] = a.reshape(-1, a.shape[-1]).pow(2).mean(0).sqrt()
                    stats.output_mean_abs[name] = out.detach().abs().reshape(-1, out.shape[-1]).mean(0)
            return fn
        handles = [m.register_forward_hook(hook(n)) for n, m in layers.items()]
        with torch.no_grad():
            model.eval()
            model(x)
    else:   # taylor
        if y is None:
            raise JoulesimError("importance 'taylor' needs labelled calibration data")
        model.eval()
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        for n, m in layers.items():
            if m.weight.grad is not None:
                stats.grads[n] = m.weight.grad.detach().clone()
        model.zero_grad(set_to_none=True)
    for h in handles:
        h.remove()
    return stats


def weight_scores(name: str, module: nn.Module, criterion: str, stats: CalibrationStats) -> torch.Tensor:
    """One score per weight, shaped like module.weight."""
    w = module.weight.detach()
    if criterion == "l2":
        return w.pow(2)
    if criterion == "taylor" and name in stats.grads:
        return (w * stats.grads[name]).abs()
    if criterion == "activation" and name in stats.input_rms:
        flat = w.abs().reshape(w.shape[0], -1)
        rms = stats.input_rms[name]
        if rms.numel() == flat.shape[1]:
            return (flat * rms[None, :]).reshape(w.shape)
        groups = getattr(module, "groups", 1)
        per_group = rms.reshape(groups, -1) if rms.numel() == groups * flat.shape[1] else None
        if per_group is not None:   # grouped conv: each output channel sees its group's inputs
            cout_g = w.shape[0] // groups
            return (flat * per_group.repeat_interleave(cout_g, dim=0)).reshape(w.shape)
    return w.abs()


def channel_scores(name: str, module: nn.Module, criterion: str, stats: CalibrationStats) -> torch.Tensor:
    """One score per output channel (filter) of the layer."""
    if criterion == "activation" and name in stats.output_mean_abs:
        return stats.output_mean_abs[name]
    per_weight = weight_scores(name, module, criterion, stats)
    flat = per_weight.reshape(per_weight.shape[0], -1)
    return flat.sum(1).sqrt() if criterion == "l2" else flat.sum(1)
