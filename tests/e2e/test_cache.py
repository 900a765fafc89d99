"""The semantic cache through a real Envoy: paraphrases hit (JSON and SSE, parsed by the OpenAI
SDK), and nothing crosses what must not be crossed: system prompt, tenant, model, a 5xx, a cut
stream, n > 1, Cache-Control, a screened request, an expired entry, an evicted one."""

from __future__ import annotations

import http.client
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.e2e.cache_stores import RunningStore, start_milvus, start_pgvector
from tests.e2e.conftest import _start
from tests.e2e.stack import CREDIT_CARD, Reply, chat_body, send
from tests.e2e.test_responses import data_events, scrape, value

from vsr.devstack import REPO_ROOT, DevStack, StackPorts

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"
EXAMPLE = REPO_ROOT / "config" / "examples" / "semantic-cache.yaml"
QUESTION = "What is the capital of France?"
PARAPHRASE = "Which city is the capital of France?"
UNRELATED = "How do I bake sourdough bread at home?"
MAX_ENTRIES = 12
TTL_S = 2


def cache_config() -> dict[str, Any]:
    """The example config, with a small bound and a short-lived decision for ``ephemeral``."""
    config = yaml.safe_load(EXAMPLE.read_text())
    config["semantic_cache"]["max_entries"] = MAX_ENTRIES
    config["signals"].append({"type": "keyword", "name": "ephemeral", "keywords": ["ephemeral"]})
    config["decisions"].insert(
        0,
        {
            "name": "short_lived",
            "priority": 1000,
            "rules": {"type": "keyword", "name": "ephemeral"},
            "modelRefs": [{"model": "llama3-8b"}],
            "plugins": [{"type": "semantic_cache", "ttl_seconds": TTL_S}],
        },
    )
    return config


@pytest.fixture(scope="module", params=["memory", "milvus", "pgvector"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStore | None]:
    """The same suite runs against each backend (the shared ones on real servers)."""
    if request.param == "memory":
        yield None
        return
    pytest.importorskip("pymilvus" if request.param == "milvus" else "pgserver")
    work = tmp_path_factory.mktemp(f"store-{request.param}")
    running = start_milvus(work) if request.param == "milvus" else start_pgvector(work)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stack(
    envoy_bin: Path, tmp_path_factory: pytest.TempPathFactory, store: RunningStore | None
) -> Iterator[DevStack]:
    work = tmp_path_factory.mktemp("e2e-cache")
    config = cache_config()
    if store is not None:
        # A shared store answers over the network: its first calls create the table.
        config["semantic_cache"].update(store.settings, timeout_ms=1000)
    path = work / "router.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    devstack = DevStack(
        path, ports=StackPorts.free(), envoy_bin=envoy_bin, log_dir=work / "logs",
        extra_serve_args=["--no-watch-config"],
    )  # fmt: skip
    BACKENDS[devstack.ports.listener] = store.backend if store is not None else "memory"
    yield _start(devstack)
    devstack.stop()


BACKENDS: dict[int, str] = {}


def backend(stack: DevStack) -> str:
    return BACKENDS[stack.ports.listener]


def stores(stack: DevStack) -> float:
    return value(
        scrape(stack), "llm_cache_operations_total",
        backend=backend(stack), operation="store", status="success",
    )  # fmt: skip


def post(
    stack: DevStack, body: Any, tenant: str, headers: Mapping[str, str] | None = None
) -> Reply:
    return send(stack.ports.listener, "POST", CHAT, body, {"x-user-id": tenant, **(headers or {})})


def ask_and_store(
    stack: DevStack, body: Any, tenant: str, headers: Mapping[str, str] | None = None
) -> Reply:
    """Send a request that misses, and wait until its answer is written (off the request path)."""
    before = stores(stack)
    reply = post(stack, body, tenant, headers)
    assert reply.status == 200, reply.body
    assert reply.headers["x-vsr-response-path"] == "upstream"
    deadline = time.monotonic() + 10
    while stores(stack) <= before:
        assert time.monotonic() < deadline, "the answer was never stored"
        time.sleep(0.02)
    return reply


def is_hit(reply: Reply) -> bool:
    assert reply.status == 200, reply.body
    hit = reply.headers.get("x-vsr-cache-hit") == "true"
    assert (reply.headers["x-vsr-response-path"] == "cache") == hit
    return hit


def test_paraphrase_hits_and_unrelated_misses(stack: DevStack) -> None:
    first = ask_and_store(stack, chat_body(QUESTION), "t-paraphrase")
    reply = post(stack, chat_body(PARAPHRASE), "t-paraphrase")
    assert is_hit(reply)
    assert 0.85 <= float(reply.headers["x-vsr-cache-similarity"]) <= 1.0
    cached, original = reply.json(), first.json()
    assert cached["object"] == "chat.completion"
    assert (
        cached["choices"][0]["message"]["content"] == original["choices"][0]["message"]["content"]
    )
    assert cached["model"] == original["model"]
    assert cached["usage"] == original["usage"]
    assert cached["id"] != original["id"]
    assert "x-vsr-selected-model" not in reply.headers  # routing headers: upstream answers only
    assert not is_hit(post(stack, chat_body(UNRELATED), "t-paraphrase"))


def test_openai_sdk_parses_json_and_sse_hits(stack: DevStack) -> None:
    openai = pytest.importorskip("openai")
    # The SDK sends its API key: the first tenant header present (authorization) scopes it.
    key = "sk-e2e-cache-sdk"
    ask_and_store(
        stack, chat_body(QUESTION, stream=True), "t-sdk", {"authorization": f"Bearer {key}"}
    )
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{stack.ports.listener}/v1", api_key=key)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": PARAPHRASE}]
    )
    assert raw.headers["x-vsr-cache-hit"] == "true"
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    chunks = list(
        client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": PARAPHRASE}], stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == completion.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_stream_is_cached_and_replayed_as_sse(stack: DevStack) -> None:
    stored = ask_and_store(stack, chat_body(QUESTION, stream=True), "t-stream")
    expected = "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in data_events(stored)
        if e != "[DONE]" and e["choices"]
    )
    reply = post(stack, chat_body(PARAPHRASE, stream=True), "t-stream")
    assert is_hit(reply)
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = data_events(reply)
    assert events[-1] == "[DONE]"
    assert all(e["object"] == "chat.completion.chunk" for e in events[:-1])
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert text == expected
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    # The same entry answers a client that does not stream, as JSON.
    json_reply = post(stack, chat_body(PARAPHRASE), "t-stream")
    assert is_hit(json_reply)
    assert json_reply.json()["choices"][0]["message"]["content"] == expected


def test_system_prompt_tenant_and_model_keep_entries_apart(stack: DevStack) -> None:
    ask_and_store(stack, chat_body(QUESTION), "t-keys")
    pirate = {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "Answer like a pirate."},
            {"role": "user", "content": QUESTION},
        ],
    }
    assert not is_hit(post(stack, pirate, "t-keys"))
    assert not is_hit(post(stack, chat_body(QUESTION), "t-keys-other-tenant"))
    assert not is_hit(post(stack, chat_body(QUESTION), "t-keys", {"x-user-id": "T-KEYS"}))
    assert not is_hit(post(stack, chat_body(QUESTION, model="phi4-mini"), "t-keys"))
    later_turn = chat_body(QUESTION)
    later_turn["messages"][:0] = [
        {"role": "user", "content": "Let's talk about Italy."},
        {"role": "assistant", "content": "Sure."},
    ]
    assert not is_hit(post(stack, later_turn, "t-keys"))
    assert not is_hit(post(stack, chat_body(QUESTION, max_tokens=5), "t-keys"))
    assert is_hit(post(stack, chat_body(PARAPHRASE), "t-keys"))


def with_image(text: str, url: str) -> dict[str, Any]:
    parts = [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]
    return {"model": "auto", "messages": [{"role": "user", "content": parts}]}


def test_an_image_in_the_question_keeps_entries_apart(stack: DevStack) -> None:
    # The key once left out the newest user turn's whole content, images included: a question
    # about one picture was answered with the answer about another (or about no picture).
    cat, dog = "https://example.com/cat.png", "https://example.com/dog.png"
    ask_and_store(stack, with_image("What is in this picture?", cat), "t-image")
    assert not is_hit(post(stack, with_image("What is in this picture?", dog), "t-image"))
    assert not is_hit(post(stack, chat_body("What is in this picture?"), "t-image"))
    assert is_hit(post(stack, with_image("What is in this picture?", cat), "t-image"))


def test_failures_and_partial_answers_are_not_cached(stack: DevStack) -> None:
    tenant = "t-failures"
    failed = post(stack, chat_body(QUESTION), tenant, {"x-sim-status": "503"})
    assert failed.status == 503
    try:  # the model drops the connection after two events: the client sees a cut stream
        cut = send(
            stack.ports.listener, "POST", CHAT, chat_body(QUESTION, stream=True),
            {"x-user-id": tenant, "x-sim-fail-after": "2"},
        )  # fmt: skip
        assert b"[DONE]" not in cut.body
    except http.client.IncompleteRead:
        pass
    assert not is_hit(post(stack, chat_body(QUESTION, n=2), tenant))
    time.sleep(0.3)  # a write, had one been scheduled, would be done
    assert not is_hit(post(stack, chat_body(PARAPHRASE, n=2), tenant))
    # Nothing above was stored: the first good answer is a miss.
    ask_and_store(stack, chat_body(QUESTION), tenant)


def test_cache_control_is_honoured(stack: DevStack) -> None:
    tenant = "t-cache-control"
    before = stores(stack)
    reply = post(stack, chat_body(QUESTION), tenant, {"cache-control": "no-store"})
    assert not is_hit(reply)
    time.sleep(0.3)
    assert stores(stack) == before
    ask_and_store(stack, chat_body(QUESTION), tenant)
    assert not is_hit(post(stack, chat_body(PARAPHRASE), tenant, {"cache-control": "no-cache"}))
    assert not is_hit(
        post(stack, chat_body(PARAPHRASE), tenant, {"x-vsr-cache-control": "no-cache"})
    )
    assert is_hit(post(stack, chat_body(PARAPHRASE), tenant))


def test_screening_runs_before_the_cache(stack: DevStack) -> None:
    tenant = "t-screening"
    ask_and_store(stack, chat_body(QUESTION), tenant)
    reply = post(stack, chat_body(f"{QUESTION} My card is {CREDIT_CARD}."), tenant)
    assert reply.headers["x-vsr-response-path"] == "blocked"
    assert "x-vsr-cache-hit" not in reply.headers


def test_entries_expire(stack: DevStack) -> None:
    tenant = "t-ttl"
    ask_and_store(stack, chat_body(f"ephemeral: {QUESTION}"), tenant)
    assert is_hit(post(stack, chat_body(f"ephemeral: {PARAPHRASE}"), tenant))
    time.sleep(TTL_S + 0.5)
    assert not is_hit(post(stack, chat_body(f"ephemeral: {PARAPHRASE}"), tenant))


QUESTIONS = [
    "How do volcanoes form?", "Who wrote Pride and Prejudice?", "What is a prime number?",
    "How do I change a flat tyre?", "Why is the sky blue?", "What does a router do?",
    "How long should I boil an egg?", "What causes inflation?", "Who painted the Mona Lisa?",
    "How do vaccines work?", "What is the tallest mountain on Earth?", "How do I learn to swim?",
    "What is the speed of light?", "How does a bicycle gear work?",
]  # fmt: skip


def test_eviction_at_the_bound(stack: DevStack) -> None:
    if backend(stack) != "memory":
        pytest.skip("the shared stores trim to max_entries in batches, not per write")
    tenant = "t-eviction"
    for question in QUESTIONS:
        ask_and_store(stack, chat_body(question), tenant)
    url = f"http://127.0.0.1:{stack.ports.http}/api/v1/cache/stats"
    with urllib.request.urlopen(url, timeout=5) as response:
        stats = yaml.safe_load(response.read())
    assert stats["entries"] == MAX_ENTRIES
    assert stats["evictions"] >= len(QUESTIONS) - MAX_ENTRIES
    assert is_hit(post(stack, chat_body(QUESTIONS[-1]), tenant))
    assert not is_hit(post(stack, chat_body(QUESTIONS[0]), tenant))  # the least recently used


def test_admin_flush_per_tenant(stack: DevStack) -> None:
    ask_and_store(stack, chat_body(QUESTION), "t-flush-a")
    ask_and_store(stack, chat_body(QUESTION), "t-flush-b")
    url = (
        f"http://127.0.0.1:{stack.ports.http}/api/v1/cache?tenant_header=x-user-id&tenant=t-flush-a"
    )
    request = urllib.request.Request(url, method="DELETE")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert yaml.safe_load(response.read())["removed"] == 1
    assert not is_hit(post(stack, chat_body(PARAPHRASE), "t-flush-a"))
    assert is_hit(post(stack, chat_body(PARAPHRASE), "t-flush-b"))


def test_store_killed_mid_run_requests_keep_flowing(
    stack: DevStack, store: RunningStore | None
) -> None:
    """Last in the module: it kills the store. Every request is then a miss, answered upstream."""
    if store is None:
        pytest.skip("the memory store lives in vsr's process")
    tenant = "t-killed"
    ask_and_store(stack, chat_body(QUESTION), tenant)
    assert is_hit(post(stack, chat_body(PARAPHRASE), tenant))
    before = scrape(stack)
    store.kill()
    started = time.monotonic()
    for _ in range(5):
        reply = post(stack, chat_body(PARAPHRASE), tenant)
        assert not is_hit(reply)
    assert time.monotonic() - started < 15
    after = scrape(stack)
    misses = sum(
        value(after, "llm_cache_misses_total", backend=store.backend, reason=reason)
        - value(before, "llm_cache_misses_total", backend=store.backend, reason=reason)
        for reason in ("error", "timeout")
    )
    assert misses == 5
