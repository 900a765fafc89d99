"""The offline API on a text-only policy (keyword signals need no model): auto vs explicit,
plugins, history, and the published result."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest

import vsr
from vsr.config import parse_config_text
from vsr.router import Router
from vsr.routing.request import RequestError

POLICY = """
default_model: chat
models:
  - {name: chat}
  - {name: coder, reasoning_family: qwen3}
reasoning_families:
  qwen3: {type: chat_template_kwargs, parameter: enable_thinking}
text: {user_turns: 2}
signals:
  - {type: keyword, name: code, keywords: [python, "c++"], case_sensitive: false}
  - {type: keyword, name: urgent, patterns: ['(?i)\\basap\\b']}
decisions:
  - name: coding
    priority: 10
    rules: {type: keyword, name: code}
    modelRefs: [{model: coder, use_reasoning: true, reasoning_effort: low}]
    plugins:
      - {type: system_prompt, prompt: You write correct code., mode: replace}
      - type: header_mutation
        add: [{name: X-Team, value: dev}]
        update: [{name: x-priority, value: normal}]
        delete: [x-debug]
      - {type: semantic_cache, similarity_threshold: 0.9, ttl_seconds: 60}
  - name: urgent
    priority: 20
    rules:
      operator: AND
      conditions:
        - {type: keyword, name: urgent}
        - {operator: NOT, conditions: [{type: keyword, name: code}]}
    modelRefs: [{model: chat}]
"""


@pytest.fixture
def router() -> Router:
    return Router(parse_config_text(POLICY))


def ask(text: str, model: str = "auto", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def test_router_is_exported_lazily() -> None:
    assert vsr.Router is Router


def test_auto_request_is_rewritten(router: Router) -> None:
    body = ask("fix my Python loop", stream=True, n=1)
    result = router.route(body)
    assert result.body is body  # edited in place
    assert (result.decision, result.model, result.auto) == ("coding", "coder", True)
    assert body["model"] == "coder" and body["stream"] is True and body["n"] == 1
    assert body["chat_template_kwargs"] == {"enable_thinking": True}
    assert body["messages"][0] == {"role": "system", "content": "You write correct code."}
    assert result.system_prompt_injected and result.body_changed
    assert result.headers.set == {"x-selected-model": "coder", "x-priority": "normal"}
    assert result.headers.add == (("x-team", "dev"),) and result.headers.remove == ("x-debug",)
    assert result.cache is not None and result.cache.similarity_threshold == 0.9
    assert result.response_headers() == {
        "x-vsr-selected-model": "coder",
        "x-vsr-selected-reasoning": "on",
        "x-vsr-injected-system-prompt": "true",
        "x-vsr-selected-decision": "coding",
    }
    assert result.signal("keyword", "code").label == "python"  # type: ignore[union-attr]


def test_mom_and_missing_model_are_auto(router: Router) -> None:
    assert router.route(ask("c++ templates", model="MoM")).model == "coder"
    body = ask("hello")
    del body["model"]
    assert router.route(body).auto


def test_explicit_model_body_is_untouched(router: Router) -> None:
    body = ask("python please", model="chat", temperature=0.3)
    snapshot = copy.deepcopy(body)
    result = router.route(body)
    assert body == snapshot and result.body_bytes() is not None
    assert not result.body_changed and not result.system_prompt_injected
    assert (result.model, result.requested_model, result.auto) == ("chat", "chat", False)
    assert result.headers.set == {"x-selected-model": "chat"}


def test_no_match_goes_to_default_model(router: Router) -> None:
    result = router.route(ask("tell me a story"))
    assert result.decision is None and result.model == "chat" and result.category is None
    assert result.headers.set == {"x-selected-model": "chat"}
    assert result.response_headers()["x-vsr-selected-reasoning"] == "off"


def test_earlier_turns_are_read_when_configured(router: Router) -> None:
    body = {
        "model": "auto",
        "messages": [
            {"role": "user", "content": "I have a python question"},
            {"role": "assistant", "content": "Sure."},
            {"role": "user", "content": "why is it slow?"},
        ],
    }
    assert router.route(body).decision == "coding"


def test_priority_and_not(router: Router) -> None:
    assert router.route(ask("ASAP: the report")).decision == "urgent"
    assert router.route(ask("asap, python bug")).decision == "coding"  # NOT code fails


def test_body_bytes_round_trip(router: Router) -> None:
    result = router.route(ask("python", extra={"ü": 1.5}))
    import json

    assert json.loads(result.body_bytes()) == result.body


def test_bad_request_is_an_error(router: Router) -> None:
    with pytest.raises(RequestError):
        router.route({"model": "auto"})


def test_aroute_and_from_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    with Router.from_file(path) as router:
        result = asyncio.run(router.aroute(ask("python")))
    assert result.model == "coder"


def test_from_config_reuses_the_registry(router: Router) -> None:
    again = Router.from_config(router.config, registry=router.registry)
    assert again.registry is router.registry
    moved = Router.from_config(
        router.config.model_copy(update={"device": "cuda:0"}), registry=router.registry
    )
    assert moved.registry is not router.registry and moved.registry.device == "cuda:0"
