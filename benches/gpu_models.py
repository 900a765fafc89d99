"""Random-weight BERT models and their inputs for benches/bench_gpu.py, built on the GPU machine.

Weights cannot travel to the GPU machine (64 MiB limit), and speed does not depend on their
values: transformers initialises a ``BertModel`` from a seed and writes it with
``save_pretrained`` (the format users download), beside a WordPiece ``tokenizer.json`` over a
generated 30,522-token vocabulary with BERT's special-token ids. Every generated word is one
token, so a text of ``n - 2`` words is exactly ``n`` tokens with [CLS] and [SEP].
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

VOCAB_SIZE = 30_522
SPECIAL = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}
FIRST_WORD_ID = 1_000  # ids below are special or unused in BERT's vocabulary


@dataclass(frozen=True)
class ModelShape:
    name: str
    hidden: int
    layers: int
    heads: int
    intermediate: int

    def encoder_parameters(self) -> int:
        """Parameters read by every forward pass (the embedding table is gathered, not read)."""
        h, i = self.hidden, self.intermediate
        per_layer = (4 * h * h + 4 * h) + (2 * h * i + h + i) + 4 * h  # attention, MLP, norms
        return self.layers * per_layer

    def flops(self, batch: int, seq: int) -> float:
        """Multiply-adds x 2 of the matrix products, attention's two included."""
        h, i = self.hidden, self.intermediate
        dense = 2 * batch * seq * self.layers * (4 * h * h + 2 * h * i)
        attention = 2 * 2 * batch * seq * seq * h * self.layers
        return float(dense + attention)


SHAPES = {
    "bert-base": ModelShape("bert-base", 768, 12, 12, 3072),
    "minilm-l6": ModelShape("minilm-l6", 384, 6, 12, 1536),
}


def vocabulary() -> list[str]:
    words = [f"[unused{i}]" for i in range(VOCAB_SIZE)]
    for token, index in SPECIAL.items():
        words[index] = token
    for index in range(FIRST_WORD_ID, VOCAB_SIZE):
        words[index] = f"w{index}"
    return words


def write_tokenizer(directory: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = {word: index for index, word in enumerate(vocabulary())}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", SPECIAL["[CLS]"]), ("[SEP]", SPECIAL["[SEP]"])],
    )
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.add_special_tokens(list(SPECIAL))
    tokenizer.save(str(directory / "tokenizer.json"))


def build_model(shape: ModelShape, directory: Path, seed: int = 0) -> Any:
    """Write a random-weight BertModel to ``directory``; return it (float32, on the CPU)."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        intermediate_size=shape.intermediate,
        max_position_embeddings=512,
        pad_token_id=0,
    )
    model = BertModel(config, add_pooling_layer=False).eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    write_tokenizer(directory)
    config_file = directory / "config.json"
    saved = json.loads(config_file.read_text())
    saved["architectures"] = ["BertModel"]
    config_file.write_text(json.dumps(saved, indent=2))
    return model


def texts(tokens: int, count: int, seed: int) -> list[str]:
    """``count`` random texts of exactly ``tokens`` tokens each ([CLS] and [SEP] included)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(FIRST_WORD_ID, VOCAB_SIZE, size=(count, tokens - 2))
    return [" ".join(f"w{i}" for i in row) for row in ids]


def token_ids(batch: int, seq: int, seed: int) -> np.ndarray:
    """Ids as the tokenizer gives them for ``texts(seq, batch, seed)``."""
    rng = np.random.default_rng(seed)
    words = rng.integers(FIRST_WORD_ID, VOCAB_SIZE, size=(batch, seq - 2))
    cls = np.full((batch, 1), SPECIAL["[CLS]"])
    sep = np.full((batch, 1), SPECIAL["[SEP]"])
    return np.concatenate([cls, words, sep], axis=1).astype(np.int64)
