"""The e2e test stack: a router config for the tests, and a small HTTP client for Envoy."""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FIXTURE_MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"

JAILBREAK_PHRASE = "ignore previous instructions"
# A Visa test number: passes the Luhn check, so the PII signal's validated patterns find it.
CREDIT_CARD = "4111 1111 1111 1111"
MATH_SYSTEM_PROMPT = "You are a careful mathematician."


def router_config() -> dict[str, Any]:
    """A policy that needs no trained classifier, yet runs real (tiny, random) models.

    Routing is decided by keyword signals, so it is deterministic. The model-backed signals still
    run on every request (the domain signal's threshold of 1.0 never fires, the PII model's 1.0
    threshold leaves it to the validated patterns, and the jailbreak plugin's threshold of 0.0
    turns the jailbreak decision into a certain block), so the whole inference path is exercised.
    """
    return {
        "default_model": "llama3-8b",
        "auto_model_names": ["auto", "MoM"],
        "reasoning_families": {
            "qwen3": {"type": "chat_template_kwargs", "parameter": "enable_thinking"}
        },
        "models": [
            {"name": "llama3-8b", "reasoning_family": "qwen3"},
            {"name": "phi4-mini", "reasoning_family": "qwen3"},
        ],
        "signals": [
            {
                "type": "keyword",
                "name": "arithmetic",
                "patterns": [r"\d\s*[-+*/^]\s*\(?\s*\d", r"\b(derivative|integral)s?\b"],
            },
            {"type": "keyword", "name": "jailbreak_words", "keywords": [JAILBREAK_PHRASE]},
            {
                "type": "domain",
                "name": "law",
                "categories": ["law"],
                "threshold": 1.0,
                "model": str(FIXTURE_MODELS / "bert-seq"),
            },
            {
                "type": "jailbreak",
                "name": "jailbreak",
                "benign_labels": ["other"],
                "model": str(FIXTURE_MODELS / "bert-seq"),
            },
            {
                "type": "pii",
                "name": "pii",
                "threshold": 1.0,
                "model": str(FIXTURE_MODELS / "bert-token"),
            },
        ],
        "decisions": [
            {
                "name": "suspicious",
                "priority": 200,
                "rules": {"type": "keyword", "name": "jailbreak_words"},
                "modelRefs": [{"model": "llama3-8b"}],
                "plugins": [{"type": "jailbreak", "signal": "jailbreak", "threshold": 0.0}],
            },
            {
                "name": "math",
                "priority": 100,
                "rules": {
                    "operator": "OR",
                    "conditions": [
                        {"type": "keyword", "name": "arithmetic"},
                        {"type": "domain", "name": "law"},
                    ],
                },
                "modelRefs": [{"model": "phi4-mini", "use_reasoning": True}],
                "plugins": [{"type": "system_prompt", "prompt": MATH_SYSTEM_PROMPT}],
            },
            {"name": "general", "priority": 0, "modelRefs": [{"model": "llama3-8b"}]},
        ],
        "plugins": [{"type": "pii", "signal": "pii", "allowed_types": ["PERSON", "LOCATION"]}],
    }


def write_router_config(directory: Path) -> Path:
    path = directory / "router.yaml"
    path.write_text(yaml.safe_dump(router_config(), sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def sse_events(self) -> list[str]:
        """The ``data:`` payloads of a server-sent event stream, in order."""
        events = []
        for block in self.body.decode().split("\n\n"):
            for line in block.splitlines():
                if line.startswith("data: "):
                    events.append(line[len("data: ") :])
        return events


def send(
    port: int,
    method: str,
    path: str,
    body: bytes | Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> Reply:
    """One HTTP/1.1 request to Envoy on loopback."""
    raw = body if isinstance(body, bytes | None) else json.dumps(body).encode()
    all_headers = {"content-type": "application/json", **(headers or {})}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request(method, path, body=raw, headers=all_headers)
        response = connection.getresponse()
        data = response.read()
        reply_headers = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, reply_headers, data)
    finally:
        connection.close()


def chat_body(content: str, model: str = "auto", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def metrics_text(port: int) -> str:
    """vsr's Prometheus exposition (the metrics port)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        return connection.getresponse().read().decode()
    finally:
        connection.close()
