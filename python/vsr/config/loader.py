"""Reading a router config from YAML, with errors that name the YAML path and the allowed values."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from vsr.config.decisions import RULE_TAGS, RuleGroup, _rule_kind
from vsr.config.references import check_references, format_path
from vsr.config.schema import RouterConfig
from vsr.errors import ConfigError

# Pydantic puts the member it tried into an error's location for unions (``KeywordSignal`` is
# shown as ``keyword``, our rule nodes as ``group``/``condition``); users never wrote those keys.
_UNION_TAGS = frozenset(RULE_TAGS)


def load_config(path: str | Path) -> RouterConfig:
    """Read and validate a YAML config file; ConfigError names the file and every problem."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{source}: cannot read the config ({error.strerror or error})") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{source}: not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    return parse_config_text(text, str(source))


class _UniqueKeyLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML has no stubs here
    """YAML's safe loader, except that a mapping naming a key twice is an error: YAML keeps the
    last one, so a second ``plugins:`` or ``threshold:`` would drop the first without a word."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    first_lines: dict[Any, int] = {}
    for key_node, _ in node.value:  # before merge keys are expanded: '<<' may be overridden
        key = loader.construct_object(key_node)
        try:
            first = first_lines.get(key)
        except TypeError:  # an unhashable key: the constructor below reports it
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {first})", key_node.start_mark
            )
        first_lines[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_without_duplicates,
)


def parse_config_text(text: str, source: str = "<config>") -> RouterConfig:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: plain data only
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {error}") from None
    return parse_config(data, source)


def parse_config(data: Any, source: str = "<config>") -> RouterConfig:
    """Validate an already-parsed document (a mapping)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the config must be a mapping, got {type(data).__name__}")
    try:
        config = RouterConfig.model_validate(data)
    except ValidationError as error:
        items = error.errors()
        # A tuple whose item failed is also reported as "too short": noise beside the real error.
        deeper = [tuple(item["loc"]) for item in items]
        lines = [
            _describe(item, data)
            for item in items
            if not (
                item["type"] == "too_short"
                and any(
                    len(loc) > len(item["loc"]) and loc[: len(item["loc"])] == item["loc"]
                    for loc in deeper
                )
            )
        ]
        raise ConfigError(_report(source, lines)) from None
    problems = check_references(config)
    if problems:
        raise ConfigError(_report(source, [f"{path}: {message}" for path, message in problems]))
    return config


def _report(source: str, lines: list[str]) -> str:
    count = len(lines)
    head = f"{source}: {count} problem{'s' if count > 1 else ''} in the config"
    return "\n".join([head, *(f"  {line}" for line in lines)])


def _describe(item: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    loc = _user_path(tuple(item["loc"]), data)
    path = format_path(loc) or "(top level)"
    message = str(item["msg"])
    if item["type"] == "extra_forbidden":
        allowed = _allowed_fields(loc[:-1], data)
        if allowed:
            message = f"unknown field; allowed: {', '.join(allowed)}"
    elif item["type"] == "union_tag_invalid":
        context = item.get("ctx", {})
        field = str(context.get("discriminator", "type")).strip("'")
        path = format_path((*loc, field))
        message = f"unknown {field} {context.get('tag')!r}; allowed: {context.get('expected_tags')}"
    elif item["type"] == "missing":
        message = "required field is missing"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    return f"{path}: {message}"


def _user_path(loc: tuple[str | int, ...], data: Any) -> tuple[str | int, ...]:
    """The error location without the union member names pydantic inserts: a part is dropped
    when it is such a name and not a key the user wrote at that point."""
    kept: list[str | int] = []
    value: Any = data
    for part in loc:
        is_tag = isinstance(part, str) and (part in _UNION_TAGS or part in _DISCRIMINATOR_TAGS)
        written = isinstance(value, Mapping) and part in value
        if is_tag and not written:
            continue
        kept.append(part)
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            value = None
    return tuple(kept)


def _collect_discriminator_tags() -> frozenset[str]:
    from vsr.config.decisions import PluginConfig
    from vsr.config.schema import ReasoningFamily
    from vsr.config.signals import SignalConfig

    tags: set[str] = set()
    for union in (SignalConfig, PluginConfig, ReasoningFamily):
        for member in typing.get_args(typing.get_args(union)[0]):
            tags.update(typing.get_args(member.model_fields["type"].annotation))
    return frozenset(tags)


_DISCRIMINATOR_TAGS = _collect_discriminator_tags()


def _allowed_fields(loc: tuple[str | int, ...], data: Any) -> list[str]:
    """The field names of the model at ``loc``, found by walking the schema along the input."""
    annotation: Any = RouterConfig
    value: Any = data
    for part in loc:
        model = _model_for(annotation, value)
        if model is not None:
            field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
            if field is None:
                return []
            annotation = field.annotation
        else:
            annotation = _item_type(annotation)
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return []
    model = _model_for(annotation, value)
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def _strip(annotation: Any) -> Any:
    """Unwrap ``Annotated[...]`` and ``X | None``."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _strip(rest[0])
    return annotation


def _item_type(annotation: Any) -> Any:
    annotation = _strip(annotation)
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is dict:
        return args[1]
    return args[0] if args else Any


def _model_for(annotation: Any, value: Any) -> type[BaseModel] | None:
    annotation = _strip(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    members = [_strip(m) for m in typing.get_args(annotation)]
    models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
    if not models or not isinstance(value, Mapping):
        return None
    if RuleGroup in models:
        if _rule_kind(dict(value)) == "group":
            return RuleGroup
        return next(m for m in models if m is not RuleGroup)
    for model in models:
        type_field = model.model_fields.get("type")
        if type_field is not None and value.get("type") in typing.get_args(type_field.annotation):
            return model
    return None
