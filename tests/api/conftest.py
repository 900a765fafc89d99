"""The HTTP API over a real ``vsr.Router`` whose encoders are fakes (numbers only, no native
forward pass), so every endpoint's shape, errors and agreement with routing run in milliseconds.

Encoders: ``bundle`` (embedding, domain and jailbreak heads, as ``vsr-default``) and ``pii``
(a token head that tags e-mail addresses). Everything decided from their numbers is real.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from vsr.api.http import ApiOptions, build_http_app
from vsr.config import parse_config_text
from vsr.config.signals import MMLU_PRO_CATEGORIES
from vsr.inference import HeadDescription, ModelRegistry
from vsr.models import Entity
from vsr.router import Router
from vsr.runtime import Generation, Runtime

POLICY = """
default_model: llama3-8b
models: [{name: llama3-8b}, {name: phi4-mini}]
signals:
  - {type: domain, name: math, model: bundle, threshold: 0.5}
  - {type: keyword, name: arithmetic, patterns: ['\\d\\s*[-+*/]\\s*\\d']}
  - {type: jailbreak, name: jailbreak, model: bundle, threshold: 0.6}
  - {type: pii, name: pii, model: pii, threshold: 0.6}
  - type: embedding
    name: greeting
    model: bundle
    candidates: ["hello there friend"]
    threshold: 0.9
decisions:
  - name: math
    priority: 100
    rules:
      operator: OR
      conditions: [{type: domain, name: math}, {type: keyword, name: arithmetic}]
    modelRefs: [{model: phi4-mini}]
    plugins: [{type: system_prompt, prompt: You are a careful mathematician., mode: insert}]
  - name: greeting
    priority: 50
    rules: {type: embedding, name: greeting}
    modelRefs: [{model: llama3-8b}]
plugins:
  - {type: jailbreak, signal: jailbreak}
  - {type: pii, signal: pii, allowed_types: [PERSON]}
"""


def _domain(text: str) -> np.ndarray:
    row = np.full(len(MMLU_PRO_CATEGORIES), 0.01, dtype=np.float32)
    lowered = text.lower()
    if any(word in lowered for word in ("integral", "sum", "+")):
        row[MMLU_PRO_CATEGORIES.index("math")] = 0.9
    elif "contract" in lowered:
        row[MMLU_PRO_CATEGORIES.index("law")] = 0.7
    else:
        row[MMLU_PRO_CATEGORIES.index("other")] = 0.6
    normalised: np.ndarray = row / row.sum()
    return normalised


def _embed(text: str) -> np.ndarray:
    vector = np.zeros(16, dtype=np.float32)
    for word in re.findall(r"\w+", text.lower()):
        vector[sum(map(ord, word)) % 16] += 1.0
    return vector + 0.01


def _pii_spans(text: str) -> list[Entity]:
    """E-mail addresses (which vsr's patterns also find) and passport numbers (model only)."""
    emails = [
        Entity("EMAIL", m.start(), m.end(), 0.95, m.group())
        for m in re.finditer(r"[\w.]+@\w+\.\w+", text)
    ]
    passports = [
        Entity("PASSPORT", m.start(), m.end(), 0.8, m.group())
        for m in re.finditer(r"\bZX\d{4}\b", text)
    ]
    return sorted(emails + passports, key=lambda e: e.start)


class FakeEncoder:
    def __init__(self, heads: Sequence[HeadDescription]) -> None:
        self._heads = {head.name: head for head in heads}
        self.calls: list[tuple[list[str], list[str]]] = []

    @property
    def heads(self) -> Mapping[str, HeadDescription]:
        return self._heads

    def run(self, texts: Sequence[str], heads: Sequence[str]) -> dict[str, Any]:
        self.calls.append((list(texts), sorted(heads)))
        out: dict[str, Any] = {}
        for head in heads:
            if head == "domain":
                out[head] = np.stack([_domain(t) for t in texts])
            elif head == "jailbreak":
                attack = [0.97 if "ignore previous" in t.lower() else 0.02 for t in texts]
                out[head] = np.array([[1 - a, a] for a in attack], dtype=np.float32)
            elif head == "embedding":
                out[head] = np.stack([_embed(t) for t in texts])
            elif head == "pii":
                out[head] = [_pii_spans(t) for t in texts]
        return out

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) + 2 for t in texts]


def fake_router() -> tuple[Router, dict[str, FakeEncoder]]:
    encoders = {
        "bundle": FakeEncoder(
            [
                HeadDescription("embedding", "embedding", ()),
                HeadDescription("domain", "sequence", MMLU_PRO_CATEGORIES),
                HeadDescription("jailbreak", "sequence", ("benign", "jailbreak")),
            ]
        ),
        "pii": FakeEncoder([HeadDescription("pii", "token", ("O", "B-EMAIL", "B-PASSPORT"))]),
    }
    registry = ModelRegistry(
        resolver=lambda name: Path("/fake") / name,
        loader=lambda path, device: encoders[path.name],
    )
    return Router(parse_config_text(POLICY), registry=registry), encoders


def runtime_for(router: Any) -> Runtime:
    """A runtime whose generations serve ``router`` (not started)."""

    async def build(number: int) -> Generation:
        return Generation(
            number=number,
            router=router,
            default_model="llama3-8b",
            auto_model_names=("auto", "MoM"),
            model_names=("llama3-8b", "phi4-mini"),
            source=Path("policy.yaml"),
        )

    return Runtime(build)


def started_runtime(router: Any) -> Runtime:
    runtime = runtime_for(router)
    asyncio.run(runtime.start())
    return runtime


@pytest.fixture
def fakes() -> Iterator[tuple[Router, dict[str, FakeEncoder]]]:
    router, encoders = fake_router()
    yield router, encoders
    router.close()


def api_client(router: Any, **options: Any) -> TestClient:
    app = build_http_app(started_runtime(router), ApiOptions(**options))
    return TestClient(app, raise_server_exceptions=True)


@pytest.fixture
def client(fakes: tuple[Router, dict[str, FakeEncoder]]) -> Iterator[TestClient]:
    with api_client(fakes[0], max_batch_texts=3, max_body_bytes=64 * 1024) as test_client:
        yield test_client


def chat(text: str, model: str = "auto") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}
