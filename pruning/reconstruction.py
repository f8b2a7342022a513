"""Layer-wise reconstruction for the Linear layers of a text model: what pruning takes out
of a layer's output, put back from the layer's own inputs.

Owns the statistics and the two solvers, all on the real tokens of the reconstruction
texts (`simulator.text.reconstruction_inputs`: the training and distillation sentences,
never held-out ones):

* `input_gram`: G = [x 1]ᵀ[x 1] over the tokens x a Linear receives, with the forward
  pass stopped at the Linear; `layer_gram` caches it per step and Linear in
  `Context.scores` (every trial of a step is a copy of the same model);
* `refit`: after heads or FFN neurons are removed, the projection that read them (the
  attention's output projection, W2) is set to the ridge least-squares fit of its old
  outputs from the inputs it keeps (`pruning.transformer` calls it);
* `obs_prune`: N:M and unstructured masks chosen and compensated with second-order
  information (SparseGPT: Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be
  Accurately Pruned in One-Shot", ICML 2023, arXiv:2301.00774): columns (input features)
  are processed one at a time; a weight is pruned by the Optimal Brain Surgeon saliency
  w² / [H_F⁻¹]ᵢᵢ and the error it leaves is spread over the not yet processed weights F
  of its row, H = the Gram of the inputs. `candidates.NM` and `candidates.Unstructured` use it
  for every Linear of a text model (`reconstructs`), in place of the magnitude criterion.

Weights stay in their layer's units; Gram entries are squared activations (float64).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from pruning.structure import run_no_grad
from simulator.text import is_text_model, reconstruction_inputs

REFIT_RIDGE = 1e-2       # ridge of the least-squares refit, x the mean diagonal of its Gram matrix
GRAM_BATCH = 256         # texts per forward pass when accumulating a Gram matrix
OBS_DAMPING = 1e-2       # added to H's diagonal before inverting, x its mean diagonal (SparseGPT's)
OBS_BLOCK = 128          # columns per lazy update block (SparseGPT's)


def reconstructs(model: nn.Module, layer: str) -> bool:
    """True when `layer` of `model` is pruned with `obs_prune`: a Linear projection of a text
    model's encoder (it has a `transformer_role`), whose inputs the reconstruction texts give."""
    module = model.get_submodule(layer)
    return (is_text_model(model) and isinstance(module, nn.Linear)
            and getattr(module, "transformer_role", None) is not None)


def _token_batches(model: nn.Module, example_inputs):
    """Inputs for the Gram matrices: a text model's reconstruction texts (`simulator.text.
    reconstruction_inputs`) as (ids, mask) batches sorted by length (little padding), else
    the example inputs (mask None)."""
    if not is_text_model(model):
        return [(example_inputs, None)]
    ids, mask = reconstruction_inputs(model)
    order = torch.argsort(mask.sum(1), stable=True)
    out = []
    for i in range(0, len(order), GRAM_BATCH):
        idx = order[i:i + GRAM_BATCH]
        width = int(mask[idx].sum(1).max())
        out.append(((ids[idx, :width], mask[idx, :width]), mask[idx, :width].reshape(-1).bool()))
    return out


class _Seen(Exception):
    """Raised by `input_gram`'s hook: the rest of the forward pass is not needed."""


def input_gram(model: nn.Module, module: nn.Module, example_inputs) -> torch.Tensor:
    """G = [x 1]ᵀ[x 1] (float64, (features + 1)²) summed over the real tokens x that
    `module` receives when `model` runs on `_token_batches`: all that a least-squares refit
    of `module`'s weights on those tokens needs, whatever subset of inputs it keeps, and
    the Hessian of `obs_prune`. Each batch's forward pass stops at `module`; each batch's
    sum is taken in float32."""
    gram, keep = None, None

    def hook(_m, inp):
        nonlocal gram
        x = inp[0].detach().reshape(-1, inp[0].shape[-1])
        x = x if keep is None else x[keep]
        xa = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
        part = (xa.T @ xa).double()
        gram = part if gram is None else gram + part
        raise _Seen
    handle = module.register_forward_pre_hook(hook)
    was_training = model.training
    model.eval()
    try:
        for inputs, keep in _token_batches(model, example_inputs):
            try:
                run_no_grad(model, inputs)
            except _Seen:
                pass
    finally:
        handle.remove()
        model.train(was_training)
    return gram


def refit(linear: nn.Linear, weight: torch.Tensor, bias: torch.Tensor, gram: torch.Tensor,
          kept: torch.Tensor) -> None:
    """Set `linear` (whose inputs are now the `kept` inputs of a Linear with `weight` and
    `bias`) to the ridge least-squares fit of the old Linear's outputs on the tokens of
    `gram` (`input_gram` of the old Linear): W', b' = argmin ‖[x 1][W b]ᵀ − [x_kept 1][W' b']ᵀ‖²
    + λ‖[W' b']‖², λ = REFIT_RIDGE × the mean of the kept block's diagonal. What the removed
    inputs carried on average moves into the bias, what the kept ones can express of the rest
    into their weights. Layer-wise reconstruction after structured pruning: Kwon et al., "A Fast
    Post-Training Pruning Framework for Transformers" (NeurIPS 2022, arXiv:2204.09656) fit
    per-head and per-neuron scales by least squares; K-prune (Park et al., ICLR 2024) refits
    the output projections' weights, as here."""
    n = gram.shape[0] - 1
    idx = torch.cat([kept.to(torch.long), torch.tensor([n])])
    a = gram[idx][:, idx]
    full = torch.cat([weight.detach().T, bias.detach()[None]], 0).double()   # (n + 1, out)
    rhs = gram[idx] @ full
    lam = REFIT_RIDGE * a.diagonal().mean()
    sol = torch.linalg.solve(a + lam * torch.eye(len(a), dtype=a.dtype), rhs)
    with torch.no_grad():
        linear.weight.copy_(sol[:-1].T.to(linear.weight.dtype))
        linear.bias.copy_(sol[-1].to(linear.bias.dtype))


def layer_gram(ctx, model: nn.Module, name: str) -> torch.Tensor:
    """`input_gram` of the Linear `name` of the step's model, computed once per step and
    Linear (`ctx.scores[("gram", name)]`)."""
    key = ("gram", name)
    if key not in ctx.scores:
        ctx.scores[key] = input_gram(model, model.get_submodule(name), ctx.inputs)
    return ctx.scores[key]


def _inverse_factor(gram: torch.Tensor) -> torch.Tensor:
    """The upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU), H = the input block of `gram` with
    OBS_DAMPING × its mean diagonal added; inputs that never fire get a unit diagonal."""
    h = gram[:-1, :-1].clone()
    dead = h.diagonal() == 0
    h[dead, dead] = 1.0
    h += OBS_DAMPING * h.diagonal().mean() * torch.eye(len(h), dtype=h.dtype)
    return torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)


def _unstructured_drops(saliency: torch.Tensor, alive: torch.Tensor, n_new: int) -> torch.Tensor:
    """Mask of one block: every dead weight, and the `n_new` alive ones of least saliency."""
    keep = alive.clone()
    if n_new > 0:
        s = torch.where(alive, saliency, torch.full_like(saliency, float("inf")))
        keep.view(-1)[torch.argsort(s.flatten(), stable=True)[:n_new]] = False
    return keep


def obs_prune(weight: torch.Tensor, gram: torch.Tensor, *, nm: tuple[int, int] | None = None,
              sparsity: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(new weight, 0/1 mask) of a Linear with `weight` (out, in) and input Gram `gram`
    (`input_gram`, (in + 1)²) pruned by OBS with SparseGPT's column order and lazy blocks.

    nm=(n, m): at most n non-zeros in every m consecutive input weights of a row (a ragged
    tail group stays dense); sparsity=s: a fraction s of the layer's weights zero, spread
    over the OBS_BLOCK-column blocks in proportion to their alive weights. Weights that are
    already zero stay zero (in N:M they are the group's first drops; in unstructured they
    count toward s). The kept weights absorb the error: W[:, j>i] -= (w_i - q_i)/U_ii · U_i,j
    for each column i in turn, U the Cholesky factor of H⁻¹, so the output on the Gram's
    tokens moves as little as second order allows."""
    if (nm is None) == (sparsity is None):
        raise ValueError("obs_prune: give exactly one of nm and sparsity")
    w = weight.detach().double().clone()
    cols = w.shape[1]
    u = _inverse_factor(gram.double())
    alive = w != 0
    keep = torch.ones_like(alive)
    block = OBS_BLOCK
    if nm is not None:
        n, m = nm
        block = math.ceil(OBS_BLOCK / m) * m
        grouped = cols - cols % m
    else:
        n_new = round(sparsity * w.numel()) - int((~alive).sum())
        share = alive.sum(0).double()
        share = share / share.sum().clamp(min=1.0)
        done = 0
    for b0 in range(0, cols, block):
        b1 = min(b0 + block, cols)
        w1, u1 = w[:, b0:b1].clone(), u[b0:b1, b0:b1]
        err = torch.zeros_like(w1)
        diag = u1.diagonal()
        if sparsity is not None:
            quota = n_new - done if b1 == cols else round(n_new * float(share[:b1].sum())) - done
            keep[:, b0:b1] = _unstructured_drops(w1.pow(2) / diag.pow(2), alive[:, b0:b1], quota)
            done += max(quota, 0)
        for i in range(b1 - b0):
            col = b0 + i
            if nm is not None and col % m == 0 and col + m <= grouped:
                s = w1[:, i:i + m].pow(2) / diag[i:i + m].pow(2)
                s = torch.where(alive[:, col:col + m], s, torch.full_like(s, -1.0))
                drop = torch.argsort(s, dim=1, stable=True)[:, :m - n]
                keep[:, col:col + m] = alive[:, col:col + m].scatter(1, drop, False)
            q = w1[:, i] * keep[:, col]
            e = (w1[:, i] - q) / diag[i]
            w1[:, i:] -= e[:, None] * u1[i, i:][None]
            w1[:, i] = q
            err[:, i] = e
        w[:, b0:b1] = w1
        w[:, b1:] -= err @ u[b0:b1, b1:]
    return w.to(weight.dtype), keep.to(weight.dtype)
