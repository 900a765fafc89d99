"""Labelled PII sentences from templates: the data behind vsr's PII evaluation (and head training).

Templates (``data/pii/templates/*.txt``) hold ``{{placeholder}}`` slots; faker fills them and we
record each filled slot's span and canonical type (``vsr.pii.entities``). Two rules keep the labels
honest: pieces of one name or one address that sit next to each other become one entity (that is
what a reader calls them), and a slot such as ``{{city}}`` on its own is a LOCATION, which the
quality target does not count.

Templates are split by a hash of their text, so evaluation sentences come from templates no model
was tuned on; the evaluation split also uses faker locales the training split does not, and a
share of prompts is padded into long, multi-paragraph texts.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vsr.tasks.pii_eval import Span
from vsr.training.pii_fillers import DATE_FORMATS, slot_fillers
from vsr.training.pii_identities import faker_identity, identity_fillers, load_identities
from vsr.training.pii_splits import (
    HELD_OUT_SPLITS,
    IDENTITY_STYLE_SPLITS,
    SPLIT_LOCALES,
    split_templates,
)

DATA_DIR = Path(__file__).resolve().parents[3] / "data" / "pii"
TEMPLATE_DIR = DATA_DIR / "templates"
FILLER_FILE = DATA_DIR / "filler.txt"
EVAL_SHARE = 0.3  # of each source's templates, held out for evaluation
FINAL_TEMPLATE_DIR = DATA_DIR / "templates_final"
IDENTITY_SHARE = 0.6
LONG_PROMPT_SHARE = 0.15

_SLOT = re.compile(r"\{\{(\w+)\}\}")
_ADDRESS = "ADDRESS_PART"
_LOCATION_PART = "LOCATION_PART"

GENERATED_AT = datetime(2026, 11, 21, 8, 15, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    entities: tuple[Span, ...]
    template_id: str
    source: str

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "entities": [{"label": s.label, "start": s.start, "end": s.end} for s in self.entities],
            "template": self.template_id,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Template:
    text: str
    source: str

    @property
    def template_id(self) -> str:
        return hashlib.sha1(f"{self.source}:{self.text}".encode()).hexdigest()[:10]

    @property
    def split(self) -> str:
        return "eval" if int(self.template_id, 16) % 1000 < EVAL_SHARE * 1000 else "train"

    @property
    def held_out_split(self) -> str | None:
        """``fresh`` or ``reserve`` for half each of the ``train`` templates (never inspected)."""
        if self.split != "train":
            return None
        digest = hashlib.sha1(f"held-out:{self.template_id}".encode()).hexdigest()
        return "fresh" if int(digest[:8], 16) % 2 == 0 else "reserve"


def load_templates(directory: Path = TEMPLATE_DIR) -> list[Template]:
    """Every template line (``#`` comments and blanks skipped); a literal ``\\n`` is a newline."""
    templates = []
    for path in sorted(directory.glob("*.txt")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            text = line.replace("\\n", "\n")
            unknown = [name for name in _SLOT.findall(text) if name not in SLOT_TYPES]
            if unknown:
                raise ValueError(f"{path}:{number}: unknown placeholders {unknown}")
            templates.append(Template(text, path.stem))
    return templates


# Placeholder -> what its span is labelled: a canonical type, an address/location piece (joined
# with its neighbours), or None for text that is not PII.
SLOT_TYPES: dict[str, str | None] = {
    **dict.fromkeys(
        (
            "person",
            "name",
            "name_female",
            "name_male",
            "first_name",
            "last_name",
            "first_name_male",
            "first_name_female",
            "first_name_nonbinary",
            "last_name_male",
            "last_name_female",
        ),
        "PERSON",
    ),
    "email": "EMAIL_ADDRESS",
    "phone_number": "PHONE_NUMBER",
    **dict.fromkeys(
        ("address", "street_address", "building_number", "street_name", "secondary_address"),
        _ADDRESS,
    ),
    **dict.fromkeys(("city", "state_abbr", "zipcode", "postcode"), _LOCATION_PART),
    "credit_card_number": "CREDIT_CARD",
    "ssn": "US_SSN",
    **dict.fromkeys(("passport", "us_driver_license", "national_id", "tax_id"), "GOVERNMENT_ID"),
    **dict.fromkeys(("ip_address", "ipv6"), "IP_ADDRESS"),
    "url": "URL",
    "date_of_birth": "DATE_OF_BIRTH",
    **dict.fromkeys(("iban", "bank_account", "routing_number"), "BANK_ACCOUNT"),
    **dict.fromkeys(
        (
            "organization",
            "country",
            "nationality",
            "nation_woman",
            "nation_plural",
            "job",
            "age",
            "year",
            "date_time",
            "day_of_week",
            "prefix",
            "prefix_male",
            "prefix_female",
            "date",
            "amount",
            "order_number",
            "card_expiry",
            "card_last4",
        ),
        None,
    ),
}


def _join_pieces(text: str, pieces: list[Span]) -> list[Span]:
    """Adjacent pieces of one name or address -> one entity; lone location pieces -> LOCATION."""
    joined: list[tuple[str, int, int, bool]] = []  # (kind, start, end, has_street)
    for piece in pieces:
        kind = _ADDRESS if piece.label in (_ADDRESS, _LOCATION_PART) else piece.label
        if joined:
            last_kind, last_start, last_end, has_street = joined[-1]
            gap = text[last_end : piece.start]
            person_gap = kind == "PERSON" and gap == " "
            # Address lines may be indented ("\n    Springfield\n    IL"): still one address.
            address_gap = kind == _ADDRESS and len(gap) <= 8 and set(gap) <= set(" ,\n\t")
            if last_kind == kind and (person_gap or address_gap):
                joined[-1] = (kind, last_start, piece.end, has_street or piece.label == _ADDRESS)
                continue
        joined.append((kind, piece.start, piece.end, piece.label == _ADDRESS))
    spans = []
    for kind, start, end, has_street in joined:
        label = ("STREET_ADDRESS" if has_street else "LOCATION") if kind == _ADDRESS else kind
        spans.append(Span(label, start, end))
    return spans


def fill_template(template: Template, fillers: dict[str, Callable[[], str]]) -> Example:
    parts: list[str] = []
    pieces: list[Span] = []
    length = 0
    position = 0
    for match in _SLOT.finditer(template.text):
        literal = template.text[position : match.start()]
        parts.append(literal)
        length += len(literal)
        value = fillers[match[1]]().strip()
        label = SLOT_TYPES[match[1]]
        if label is not None:
            pieces.append(Span(label, length, length + len(value)))
        parts.append(value)
        length += len(value)
        position = match.end()
    parts.append(template.text[position:])
    text = "".join(parts)
    return Example(text, tuple(_join_pieces(text, pieces)), template.template_id, template.source)


def _pad(example: Example, fillers: Sequence[str], rng: random.Random) -> Example:
    """Put the prompt inside a few paragraphs of ordinary text, as long prompts do."""
    before = "\n\n".join(rng.sample(list(fillers), rng.randint(1, 3))) + "\n\n"
    after = "\n\n" + "\n\n".join(rng.sample(list(fillers), rng.randint(0, 2)))
    shift = len(before)
    entities = tuple(Span(s.label, s.start + shift, s.end + shift) for s in example.entities)
    return Example(
        before + example.text + after.rstrip(), entities, example.template_id, example.source
    )


def generate(
    split: str, count: int, seed: int, templates: Sequence[Template] | None = None
) -> list[Example]:
    """``count`` examples from the ``split`` templates, reproducible by seed on any day.

    The splits, their templates and locales: ``vsr.training.pii_splits``. Faker draws dates
    (birth dates, weekdays, the dates inside some national IDs) relative to the clock, so the
    same seed gave different prompts on different days; generation runs with the clock stopped
    at ``GENERATED_AT``, when the committed held-out sets were made.
    """
    import time_machine

    with time_machine.travel(GENERATED_AT, tick=False):
        return _generate(split, count, seed, templates)


def _generate(
    split: str, count: int, seed: int, templates: Sequence[Template] | None
) -> list[Example]:
    from faker import Faker

    chosen = split_templates(split, templates or load_templates())
    if not chosen:
        raise ValueError(f"no {split} templates")
    rng = random.Random(seed)
    locales = SPLIT_LOCALES[split]
    identities = load_identities(split) if split in HELD_OUT_SPLITS else []
    us_fake = Faker("en_US")
    us_fake.seed_instance(seed)
    fakes = {}
    for index, locale in enumerate(locales):
        fakes[locale] = us_fake if locale == "en_US" else Faker(locale)
        fakes[locale].seed_instance(seed + index + 1)
    fillers_text = [p for p in FILLER_FILE.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    # Every template once, then templates drawn so that each PII type gets a similar share (the
    # raw template mix is mostly names and addresses), with some PII-free prompts kept in.
    by_type: dict[str, list[Template]] = {}
    for template in chosen:
        for label in {SLOT_TYPES[name] for name in _SLOT.findall(template.text)} - {None}:
            by_type.setdefault(str(label), []).append(template)
    types = sorted(by_type)
    examples = []
    for index in range(count):
        if index < len(chosen):
            template = chosen[index]
        elif rng.random() < 0.15 or not types:
            template = rng.choice(chosen)
        else:
            template = rng.choice(by_type[types[index % len(types)]])
        fake = fakes[rng.choice(locales)]
        fillers = slot_fillers(fake, us_fake, rng)
        if (identities or split in IDENTITY_STYLE_SPLITS) and rng.random() < IDENTITY_SHARE:
            row = rng.choice(identities) if identities else faker_identity(fake, rng)
            fillers |= identity_fillers(row, rng, DATE_FORMATS)
        example = fill_template(template, fillers)
        if rng.random() < LONG_PROMPT_SHARE:
            example = _pad(example, fillers_text, rng)
        if rng.random() < 0.1:
            example = Example(
                example.text.lower(), example.entities, example.template_id, example.source
            )
        examples.append(example)
    return examples


def write_jsonl(path: Path, examples: Sequence[Example]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps(example.to_json(), ensure_ascii=False) + "\n")


def read_labelled(path: Path) -> Iterator[tuple[int, str, list[Span]]]:
    """(line number, text, gold spans) per labelled PII JSONL line; errors name the line."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                text = record["text"]
                spans = [
                    Span(str(e["label"]), int(e["start"]), int(e["end"]))
                    for e in record.get("entities", [])
                ]
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{path}:{number}: not a labelled PII record ({error})") from None
            if not isinstance(text, str) or any(
                not 0 <= s.start < s.end <= len(text) for s in spans
            ):
                raise ValueError(f"{path}:{number}: text must be a string and spans inside it")
            yield number, text, spans
