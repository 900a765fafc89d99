# mypy: disable-error-code="misc,name-defined,no-untyped-call"
# (torch is absent where mypy runs: its modules are Any here, and the layers subclass them.)
"""The model ``vsr train tasks`` fine-tunes (what it writes: ``vsr.training.tasks_export``).

The MiniLM trunk (embeddings and layers 0..from_layer-1) stays frozen and shared with the
embedding head; a copy of layers from_layer..5 is fine-tuned on both tasks at once, and each task
keeps a linear head after masked mean pooling and L2 normalisation: exactly what the bundle's
``branches`` entry runs. The BERT layer is written out here (HF names, so a state dict is the
branch file) rather than taken from transformers, so the maths is pinned to what vsr's core
computes: post-LN BERT, exact GELU, masked mean pooling. torch is imported lazily (``_torch``):
it runs on the lent GPU machine, never in ``make test``.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsr.training.dataset import Example
from vsr.training.tasks_recipe import source_weight

MAX_LENGTH = 256
BATCH = 64

# ---- model ------------------------------------------------------------------------------------


def _torch() -> Any:
    import torch

    return torch


def build_modules(config: dict[str, Any]) -> tuple[Any, Any, Any]:
    torch = _torch()
    nn = torch.nn
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    eps = config.get("layer_norm_eps", 1e-12)

    class SelfAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.query = nn.Linear(hidden, hidden)
            self.key = nn.Linear(hidden, hidden)
            self.value = nn.Linear(hidden, hidden)

    class AttentionOutput(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dense = nn.Linear(hidden, hidden)
            self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.self = SelfAttention()
            self.output = AttentionOutput()

    class Intermediate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dense = nn.Linear(hidden, config["intermediate_size"])

    class Output(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dense = nn.Linear(config["intermediate_size"], hidden)
            self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = Attention()
            self.intermediate = Intermediate()
            self.output = Output()

        def forward(self, x: Any, bias: Any) -> Any:
            b, s, _ = x.shape
            size = hidden // heads

            def split(t: Any) -> Any:
                return t.view(b, s, heads, size).transpose(1, 2)

            a = self.attention
            q, k, v = split(a.self.query(x)), split(a.self.key(x)), split(a.self.value(x))
            drop = torch.nn.functional.dropout
            p, on = config.get("dropout", 0.0), self.training
            scores = q @ k.transpose(-1, -2) / math.sqrt(size) + bias
            weights = drop(scores.softmax(-1), p, on)
            context = (weights @ v).transpose(1, 2).reshape(b, s, hidden)
            x = a.output.LayerNorm(drop(a.output.dense(context), p, on) + x)
            inner = torch.nn.functional.gelu(self.intermediate.dense(x))
            return self.output.LayerNorm(drop(self.output.dense(inner), p, on) + x)

    class Embeddings(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.word_embeddings = nn.Embedding(config["vocab_size"], hidden)
            self.position_embeddings = nn.Embedding(config["max_position_embeddings"], hidden)
            self.token_type_embeddings = nn.Embedding(config["type_vocab_size"], hidden)
            self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

        def forward(self, ids: Any) -> Any:
            positions = torch.arange(ids.shape[1], device=ids.device)
            x = self.word_embeddings(ids) + self.position_embeddings(positions)[None]
            x = x + self.token_type_embeddings.weight[0][None, None]
            return self.LayerNorm(x)

    return Embeddings, Layer, nn


def pool(hidden: Any, mask: Any) -> Any:
    torch = _torch()
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1, eps=1e-12)


@dataclass(frozen=True)
class Candidate:
    name: str
    from_layer: int | None  # None: frozen encoder, heads on the last layer
    shared: bool = True  # one branch for both tasks (False: one per task, reference only)


CANDIDATES = (
    Candidate("frozen + linear heads", None),
    Candidate("top 1 layer, shared", 5),
    Candidate("top 2 layers, shared", 4),
    Candidate("top 2 layers, one per task", 4, shared=False),
    # 6 + 3 layers per request: ~1.36x the plain encoder, inside the 1.5x CPU budget only just.
    Candidate("top 3 layers, shared", 3),
    # Every layer fine-tuned from the embeddings: a request that reads only the tasks' heads runs
    # 6 layers (the plain encoder's cost); one that also reads the embedding head runs 6 + 6.
    Candidate("all 6 layers, shared", 0),
)


class Encoder:
    """The frozen MiniLM on the device, and a tokenizer set up as vsr's core sets it."""

    def __init__(self, model_dir: Path, device: str, dropout: float = 0.0) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        torch = _torch()
        self.device = device
        self.config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        self.config["dropout"] = dropout  # used by the branch in training mode only
        path = next(
            p
            for p in (model_dir / "model.safetensors", model_dir / "model.fp16.safetensors")
            if p.is_file()
        )
        self.state = {
            k.removeprefix("bert."): torch.from_numpy(v.astype(np.float32))
            for k, v in load_file(path).items()
            if v.dtype != np.int64
        }
        Embeddings, Layer, nn = build_modules(self.config)
        self.Layer = Layer
        self.embeddings = Embeddings()
        self.embeddings.load_state_dict(
            {
                k.removeprefix("embeddings."): v
                for k, v in self.state.items()
                if k.startswith("embeddings.")
            }
        )
        self.layers = nn.ModuleList([Layer() for _ in range(self.config["num_hidden_layers"])])
        self.layers.load_state_dict(
            {
                k.removeprefix("encoder.layer."): v
                for k, v in self.state.items()
                if k.startswith("encoder.layer.")
            }
        )
        self.embeddings.to(device).eval().requires_grad_(False)
        self.layers.to(device).eval().requires_grad_(False)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=MAX_LENGTH)

    def tokenize(self, texts: Sequence[str]) -> tuple[Any, Any]:
        torch = _torch()
        # Cut very long texts by characters first: tokenizing 100k characters to keep 256 tokens
        # is wasted work, and 4 characters per token leaves a wide margin.
        encodings = self.tokenizer.encode_batch([t[: MAX_LENGTH * 12] for t in texts])
        length = max(len(e.ids) for e in encodings)
        ids = torch.zeros((len(texts), length), dtype=torch.long)
        mask = torch.zeros((len(texts), length), dtype=torch.long)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = torch.tensor(e.ids)
            mask[row, : len(e.ids)] = 1
        return ids.to(self.device), mask.to(self.device)

    def trunk(self, ids: Any, mask: Any, upto: int) -> tuple[Any, Any]:
        torch = _torch()
        bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        x = self.embeddings(ids)
        for layer in self.layers[:upto]:
            x = layer(x, bias)
        return x, bias

    def new_branch(self, from_layer: int) -> Any:
        torch = _torch()
        branch = torch.nn.ModuleList([self.Layer() for _ in range(from_layer, len(self.layers))])
        for index, layer in enumerate(branch):
            layer.load_state_dict(self.layers[from_layer + index].state_dict())
        return branch.to(self.device)


class TaskModel:
    """Branch (or none) + linear heads for the tasks it serves."""

    def __init__(self, encoder: Encoder, from_layer: int | None, tasks: dict[str, int]) -> None:
        torch = _torch()
        self.encoder = encoder
        self.from_layer = (
            from_layer if from_layer is not None else encoder.config["num_hidden_layers"]
        )
        self.branch = encoder.new_branch(self.from_layer) if from_layer is not None else None
        hidden = encoder.config["hidden_size"]
        self.heads = torch.nn.ModuleDict(
            {t: torch.nn.Linear(hidden, n) for t, n in tasks.items()}
        ).to(encoder.device)
        # Built for inference (no dropout) unless training asks: torch modules start in training
        # mode, and a model that is only loaded (a soup) must not score with dropout on.
        self.train_mode(False)

    def parameters(self) -> tuple[list[Any], list[Any]]:
        branch = list(self.branch.parameters()) if self.branch is not None else []
        return branch, list(self.heads.parameters())

    def pooled(self, ids: Any, mask: Any) -> Any:
        torch = _torch()
        with torch.no_grad():
            x, bias = self.encoder.trunk(ids, mask, self.from_layer)
        if self.branch is not None:
            for layer in self.branch:
                x = layer(x, bias)
        return pool(x, mask)

    def train_mode(self, on: bool) -> None:
        if self.branch is not None:
            self.branch.train(on)
        self.heads.train(on)

    def round_to_f16(self) -> None:
        """What ships: branch weights in float16 (heads stay float32)."""
        torch = _torch()
        if self.branch is not None:
            with torch.no_grad():
                for p in self.branch.parameters():
                    p.copy_(p.half().float())


def _batches(
    items: list[int], lengths: list[int], size: int, rng: random.Random
) -> list[list[int]]:
    """Batches of similar length (less padding), in random order."""
    order = sorted(items, key=lambda i: (lengths[i], rng.random()))
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    rng.shuffle(batches)
    return batches


def train_model(
    encoder: Encoder,
    candidate: Candidate,
    data: dict[str, tuple[list[Example], tuple[str, ...]]],
    *,
    epochs: int,
    seed: int,
    branch_lr: float = 5e-5,
    log: Any = print,
) -> dict[str, TaskModel]:
    """One TaskModel per branch: a shared one serving every task, or one per task."""
    torch = _torch()
    torch.manual_seed(seed)
    groups = (
        [tuple(data)] if candidate.shared or candidate.from_layer is None else [(t,) for t in data]
    )
    models: dict[str, TaskModel] = {}
    for tasks in groups:
        model = TaskModel(encoder, candidate.from_layer, {t: len(data[t][1]) for t in tasks})
        branch_params, head_params = model.parameters()
        optimizer = torch.optim.AdamW(
            [{"params": branch_params, "lr": branch_lr}, {"params": head_params, "lr": 3e-3}],
            weight_decay=0.01,
        )
        rng = random.Random(seed)
        plan = []
        for task in tasks:
            examples, labels = data[task]
            index = {label: i for i, label in enumerate(labels)}
            targets = torch.tensor([index[e.label] for e in examples], device=encoder.device)
            counts = torch.bincount(targets, minlength=len(labels)).float().clamp(min=1)
            class_weight = (counts.sum() / (len(labels) * counts)).to(encoder.device)
            weights = torch.tensor([source_weight(e) for e in examples], device=encoder.device)
            lengths = [len(e.text) for e in examples]
            plan.append((task, examples, targets, class_weight, weights, lengths))
        total_steps = epochs * sum(math.ceil(len(p[1]) / BATCH) for p in plan)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[branch_lr, 3e-3], total_steps=total_steps, pct_start=0.1
        )
        model.train_mode(True)
        step = 0
        for epoch in range(epochs):
            schedule = []
            for task, examples, *_ in plan:
                lengths = plan[[p[0] for p in plan].index(task)][5]
                schedule += [
                    (task, b) for b in _batches(list(range(len(examples))), lengths, BATCH, rng)
                ]
            rng.shuffle(schedule)
            running = 0.0
            for task, batch in schedule:
                _, examples, targets, class_weight, weights, _ = plan[
                    [p[0] for p in plan].index(task)
                ]
                ids, mask = encoder.tokenize([examples[i].text for i in batch])
                with torch.autocast(
                    "cuda", dtype=torch.bfloat16, enabled=encoder.device.startswith("cuda")
                ):
                    logits = model.heads[task](model.pooled(ids, mask)).float()
                losses = torch.nn.functional.cross_entropy(
                    logits, targets[batch], weight=class_weight, reduction="none"
                )
                loss = (losses * weights[batch]).sum() / weights[batch].sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                running += float(loss.detach())
                step += 1
            log(
                f"  {candidate.name} {'+'.join(tasks)} epoch {epoch + 1}: "
                f"loss {running / max(len(schedule), 1):.4f}"
            )
        model.train_mode(False)
        for task in tasks:
            models[task] = model
    return models


def probabilities(
    model: TaskModel, task: str, texts: Sequence[str], batch: int = 256
) -> np.ndarray:
    torch = _torch()
    output = np.zeros((len(texts), model.heads[task].out_features), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    with torch.no_grad():
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            ids, mask = model.encoder.tokenize([texts[i] for i in rows])
            logits = model.heads[task](model.pooled(ids, mask).float())
            output[rows] = logits.softmax(-1).cpu().numpy()
    return output


def windowed_attack(
    model: TaskModel, texts: Sequence[str], window: int, overlap: int, max_windows: int
) -> np.ndarray:
    """The served rule: 1 - P(benign) of each window, the riskiest window per text."""
    from vsr.pii.detector import plan_windows

    pieces, owner = [], []
    for index, text in enumerate(texts):
        for start, end in plan_windows(text, window, overlap, max_windows):
            pieces.append(text[start:end])
            owner.append(index)
    probs = probabilities(model, "jailbreak", pieces)
    attack = 1.0 - probs[:, 0]
    best = np.zeros(len(texts), dtype=np.float32)
    np.maximum.at(best, np.array(owner), attack)
    return best
