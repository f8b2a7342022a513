"""Training, fine-tuning and evaluation of classifiers on in-memory tensors.

Owns the loops the pruner and `scripts/train_reference.py` share: accuracy
(fraction in [0, 1]), a seeded mini-batch SGD/Adam(W) loop that keeps pruning
masks at zero after every optimizer step, and the held-out split convention.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

VALIDATION_SIZE = 5000   # the last images of the training split, held out for probes


@dataclass
class FinetuneSettings:
    """How the pruner fine-tunes after each step (and how baselines do, with the same budget).

    `epochs` may be fractional: 0.25 trains on a quarter of the training set.
    `final_epochs`: one longer fine-tune of the finished model (masks kept), the
    prune-then-retrain recipe; on Fashion-MNIST it brought the pruned fashion_cnn's test
    accuracy from 91.46% to 91.69% (3 epochs; scripts/bench_prune.py, two runs that reached
    the same pruned model, without and with it)."""

    epochs: float = 1.0
    final_epochs: float = 3.0
    lr: float = 1e-3            # peak; cosine decay to 0 over each fine-tune
    weight_decay: float = 0.0
    optimizer: str = "adam"        # adam | adamw | sgd (momentum 0.9)
    batch_size: int = 128
    distill: float = 0.7           # weight of the dense teacher's soft targets (0 = labels only)
    temperature: float = 4.0       # of the distillation softmax (Hinton et al. 2015)


def split_train_validation(x: torch.Tensor, y: torch.Tensor, validation: int = VALIDATION_SIZE):
    """(train_x, train_y, val_x, val_y): the last `validation` samples are held out."""
    validation = min(validation, len(x) // 5)
    return x[:-validation], y[:-validation], x[-validation:], y[-validation:]


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of `model` (put in eval mode) on (x, y), a fraction in [0, 1]."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    model.train(was_training)
    return correct / max(len(x), 1)


def make_optimizer(model: nn.Module, s: FinetuneSettings) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if s.optimizer == "sgd":
        return torch.optim.SGD(params, lr=s.lr, momentum=0.9, weight_decay=s.weight_decay)
    if s.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    return torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the masked weights in place (`masks`: parameter name -> 0/1 tensor)."""
    if not masks:
        return
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            if name in params:
                params[name].mul_(mask)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: FinetuneSettings, *,
          seed: int = 0, masks: Optional[dict] = None, scheduler: str = "cosine",
          teacher: Optional[nn.Module] = None,
          on_batch: Optional[Callable[[int, int, float], None]] = None) -> float:
    """Train `model` for `settings.epochs` over (x, y), batches shuffled by `seed`.

    Masks stay applied after every optimizer step, so pruned weights stay zero.
    `scheduler`: "cosine" decays lr to 0 over the run, "onecycle" warms up to
    lr then decays, "none" keeps it. With a `teacher`, the loss mixes the
    labels' cross-entropy with the teacher's softened outputs (knowledge
    distillation, weight `settings.distill`). Returns the mean training loss
    of the last 50 batches."""
    gen = torch.Generator().manual_seed(seed)
    n_samples = max(1, int(round(settings.epochs * len(x))))
    epochs_full = -(-n_samples // len(x))
    order = torch.cat([torch.randperm(len(x), generator=gen) for _ in range(epochs_full)])[:n_samples]
    batches = [order[i:i + settings.batch_size] for i in range(0, n_samples, settings.batch_size)]
    opt = make_optimizer(model, settings)
    if scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.lr, total_steps=len(batches))
    elif scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=len(batches))
    else:
        sched = None
    if teacher is not None:
        teacher.eval()
    temp, alpha = settings.temperature, settings.distill if teacher is not None else 0.0
    model.train()
    recent: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)   # dropout masks: reproducible for resume
        for i, idx in enumerate(batches):
            opt.zero_grad(set_to_none=True)
            logits = model(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            if alpha > 0:
                with torch.no_grad():
                    soft = F.softmax(teacher(x[idx]) / temp, dim=1)
                kd = F.kl_div(F.log_softmax(logits / temp, dim=1), soft, reduction="batchmean")
                loss = (1 - alpha) * loss + alpha * temp * temp * kd
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            apply_masks(model, masks or {})
            recent = (recent + [loss.item()])[-50:]
            if on_batch is not None:
                on_batch(i + 1, len(batches), recent[-1])
    model.eval()
    return sum(recent) / max(len(recent), 1)
