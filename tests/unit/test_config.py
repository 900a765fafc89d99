"""Config validation: every shipped file is valid, and bad configs name the path and the choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsr.config import load_config, parse_config_text
from vsr.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "config").rglob("*.yaml"))

VALID = """
default_model: a
models: [{name: a}, {name: b, loras: [{name: b-lora}]}]
signals:
  - {type: keyword, name: k, keywords: [x]}
decisions:
  - name: d
    rules: {type: keyword, name: k}
    modelRefs: [{model: b, lora_name: b-lora}]
"""


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_config_validates(path: Path) -> None:
    config = load_config(path)
    assert config.default_model in {model.name for model in config.models}


def test_shipped_configs_include_default_and_examples() -> None:
    names = {path.relative_to(REPO / "config").as_posix() for path in SHIPPED}
    assert "default.yaml" in names and any(name.startswith("examples/") for name in names)


def test_defaults() -> None:
    config = parse_config_text(VALID)
    assert config.auto_model_names == ("auto", "MoM")
    assert config.strategy == "priority" and config.text.user_turns == 1
    decision = config.decisions[0]
    assert decision.model_refs[0].lora_name == "b-lora" and not decision.model_refs[0].use_reasoning


def _problems(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text, "policy.yaml")
    return str(caught.value)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "default_model: a",
            "default_model: zz",
            "default_model: unknown model 'zz'; allowed: 'a', 'b'",
        ),
        (
            "{name: a}",
            "{name: a, colour: red}",
            "models[0].colour: unknown field; allowed: name, description, reasoning_family, "
            "pricing, loras",
        ),
        (
            "type: keyword, name: k,",
            "type: keywords, name: k,",
            "signals[0].type: unknown type 'keywords'; allowed: 'keyword', 'domain'",
        ),
        (
            "keywords: [x]",
            "keywords: [x], operator: some",
            "signals[0].operator: Input should be 'any', 'all' or 'none'",
        ),
        (
            "keywords: [x]",
            "patterns: ['(']",
            "signals[0].patterns: patterns[0] '(' is not a valid regex",
        ),
        (
            "rules: {type: keyword, name: k}",
            "rules: {operator: AND, conditions: [{type: keyword, name: q}]}",
            "decisions[0].rules.conditions[0].name: no keyword signal named 'q'; allowed: 'k'",
        ),
        (
            "rules: {type: keyword, name: k}",
            "rules: {operator: XOR, conditions: [{type: keyword, name: k}]}",
            "decisions[0].rules.operator: Input should be 'AND', 'OR' or 'NOT'",
        ),
        (
            "rules: {type: keyword, name: k}",
            "rules: {operator: OR, conditions: [{operator: NOT, conditions: [{type: domain, "
            "name: k}]}]}",
            "decisions[0].rules.conditions[0].conditions[0].name: no domain signal named 'k'; "
            "allowed: (none defined)",
        ),
        (
            "rules: {type: keyword, name: k}",
            "rules: {type: vibes, name: k}",
            "decisions[0].rules.type: unknown signal type 'vibes'; allowed: 'context', 'domain'",
        ),
        (
            "lora_name: b-lora",
            "lora_name: nope",
            "decisions[0].modelRefs[0].lora_name: model 'b' has no LoRA adapter 'nope'; allowed: "
            "'b-lora'",
        ),
        (
            "lora_name: b-lora",
            "reasoning_effort: extreme",
            "decisions[0].modelRefs[0].reasoning_effort: Input should be 'low', 'medium' or 'high'",
        ),
        (
            "modelRefs: [{model: b, lora_name: b-lora}]",
            "modelRefs: []",
            "decisions[0].modelRefs: Tuple should have at least 1 item",
        ),
        (
            "modelRefs: [{model: b, lora_name: b-lora}]",
            "modelRefs: [{model: b}]\n    plugins: [{type: jailbreak}]",
            "decisions[0].plugins[0].signal: name the jailbreak signal to use; defined jailbreak "
            "signals: (none defined)",
        ),
        (
            "modelRefs: [{model: b, lora_name: b-lora}]",
            "modelRefs: [{model: b}]\n    plugins: [{type: cache}]",
            "decisions[0].plugins[0].type: unknown type 'cache'; allowed: 'system_prompt', "
            "'jailbreak', 'pii', 'header_mutation', 'semantic_cache'",
        ),
        (
            "modelRefs: [{model: b, lora_name: b-lora}]",
            "modelRefs: [{model: b}]\n    plugins: [{type: header_mutation, update: [{name: "
            "x-selected-model, value: v}]}]",
            "x-selected-model is set by vsr",
        ),
        (
            "{name: a}",
            "{name: a, reasoning_family: qwen}",
            "models[0].reasoning_family: unknown reasoning family 'qwen'; allowed: (none defined)",
        ),
        ("{name: a}", "{name: auto}", "models[0].name: 'auto' is an auto model name"),
    ],
)
def test_errors_name_the_path_and_the_allowed_values(old: str, new: str, expected: str) -> None:
    assert old in VALID
    message = _problems(VALID.replace(old, new))
    assert message.startswith("policy.yaml: ")
    assert expected in message


def test_domain_categories_of_the_default_classifier_are_checked() -> None:
    message = _problems(VALID.replace("signals:\n", "signals:\n  - {type: domain, name: maths}\n"))
    assert (
        "signals[0].name: 'maths' is not a category of vsr-default; allowed: 'biology'" in message
    )


def test_duplicates_and_missing_fields() -> None:
    message = _problems(VALID.replace("{name: a}, ", "{name: a}, {name: a}, "))
    assert "models[1].name: duplicate model name 'a'" in message
    message = _problems(VALID.replace("    modelRefs: [{model: b, lora_name: b-lora}]\n", ""))
    assert "decisions[0].modelRefs: required field is missing" in message


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    assert "not valid YAML" in _problems("a: [1,")
    assert "must be a mapping, got list" in _problems("- 1")
    with pytest.raises(ConfigError, match="cannot read the config"):
        load_config(tmp_path / "missing.yaml")


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(VALID.encode("utf-8") + b"# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin1\.yaml: not UTF-8 text"):
        load_config(path)


def test_a_key_written_twice_is_an_error_not_the_last_one_silently() -> None:
    # YAML keeps the last of two equal keys; a second `plugins:` would drop the first unseen.
    twice = VALID.replace("default_model: a\n", "default_model: a\ndefault_model: b\n", 1)
    assert twice != VALID
    message = _problems(twice)
    assert "not valid YAML" in message and "duplicate key 'default_model'" in message
    assert "first on line" in message
    # A merge key's values may still be overridden.
    merged = "base: &base {x: 1}\nother: {<<: *base, x: 2}\n"
    assert "duplicate" not in _problems(merged)
    assert "duplicate key 'x' (first on line 1)" in _problems("a: {x: 1, x: 2}\n")
