"""Structural changes: removing output channels and dropping whole blocks.

Owns the model surgery. Channels are removed with Torch-Pruning's dependency
graph (`torch_pruning.DependencyGraph`), which keeps every coupled layer
consistent — the BatchNorm after a conv, the next layer's input channels,
both sides of a residual add, concatenations and depthwise groups — instead
of a hand-written graph walk. A "block" is a shape-preserving sub-module of an
`nn.Sequential` (a residual block, or a layer whose output has its input's
shape); dropping it replaces it by `nn.Identity`.
"""
from __future__ import annotations

import copy
import warnings

import torch
import torch.nn as nn

from pruning.importance import mac_layers


def _tp():
    import torch_pruning as tp
    return tp


def _out_channels(module: nn.Module) -> int:
    return module.out_channels if isinstance(module, nn.Conv2d) else module.out_features


def out_channels(module: nn.Module) -> int:
    """Output channels (conv) or features (linear) of a MAC layer."""
    return _out_channels(module)


def _prune_fn(module: nn.Module):
    tp = _tp()
    return tp.prune_conv_out_channels if isinstance(module, nn.Conv2d) else tp.prune_linear_out_channels


def run_no_grad(model: nn.Module, inputs) -> torch.Tensor:
    """`model(inputs)` without autograd; `inputs` a tensor or a tuple of them."""
    with torch.no_grad():
        return model(*inputs) if isinstance(inputs, tuple) else model(inputs)


def remove_channels(model: nn.Module, layer: str, idxs: list[int], inputs) -> None:
    """Remove output channels `idxs` of `layer` (and everything coupled to them) in place."""
    tp = _tp()
    module = dict(model.named_modules())[layer]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs)
        group = graph.get_pruning_group(module, _prune_fn(module), idxs=sorted(int(i) for i in idxs))
        if not graph.check_pruning_group(group):
            raise ValueError(f"cannot remove channels {idxs} of {layer}")
        group.prune()


def group_channel_scores(model: nn.Module, layer: str, p: int, inputs) -> torch.Tensor:
    """Per output channel of `layer`: the Lp magnitude of everything removing it
    removes (the filter, its BatchNorm, the next layers' input weights, ...),
    Torch-Pruning's GroupMagnitudeImportance over the dependency group."""
    tp = _tp()
    module = dict(model.named_modules())[layer]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs)
        group = graph.get_pruning_group(module, _prune_fn(module), idxs=list(range(_out_channels(module))))
        return tp.importance.GroupMagnitudeImportance(p=p)(group)


def channel_prunable_layers(model: nn.Module, inputs) -> list[str]:
    """Layers whose output channels can be removed without changing the
    model's output shape (the classifier's last layer cannot), found by
    removing one channel from a copy and running it."""
    reference = run_no_grad(model, inputs).shape
    found = []
    for name, module in mac_layers(model).items():
        if _out_channels(module) < 2:
            continue
        trial = copy.deepcopy(model)
        try:
            remove_channels(trial, name, [0], inputs)
            if run_no_grad(trial, inputs).shape == reference:
                found.append(name)
        except Exception:   # noqa: BLE001 - a layer Torch-Pruning cannot handle is simply not a candidate
            continue
    return found


def droppable_blocks(model: nn.Module, inputs) -> list[str]:
    """Sub-modules of `nn.Sequential` containers that hold at least one MAC
    layer and give an output of their input's shape: candidates for depth
    pruning (dropping the block keeps the model runnable)."""
    shapes: dict[str, tuple] = {}
    handles = []
    parents = {n: m for n, m in model.named_modules() if isinstance(m, nn.Sequential)}
    for pname, parent in parents.items():
        for cname, child in parent.named_children():
            full = f"{pname}.{cname}" if pname else cname
            if isinstance(child, (nn.Conv2d, nn.Linear)) or not mac_layers(child):
                continue

            def hook(mod, inp, out, full=full):
                if isinstance(out, torch.Tensor) and inp and isinstance(inp[0], torch.Tensor):
                    shapes[full] = (tuple(inp[0].shape), tuple(out.shape))
            handles.append(child.register_forward_hook(hook))
    run_no_grad(model, inputs)
    for h in handles:
        h.remove()
    return [n for n, (i, o) in shapes.items() if i == o]


def drop_block(model: nn.Module, block: str) -> None:
    """Replace the sub-module `block` by nn.Identity, in place."""
    parent_name, _, child = block.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, nn.Identity())
