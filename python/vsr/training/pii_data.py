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
DATE_FORMATS = ("%m/%d/%Y", "%B %d, %Y", "%Y-%m-%d", "%d %B %Y", "%d.%m.%Y", "%b %d %Y", "%d/%m/%Y")
_DRIVER_LICENSE_FORMATS = ("?#######", "?########", "#########", "??######", "?###-####-####")


@dataclass(frozen=True, slots=True)
class Span:
    label: str
    start: int
    end: int


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


def _card_number(fake: Any, rng: random.Random) -> str:
    digits = str(fake.credit_card_number())
    style = rng.random()
    if style < 0.4 or len(digits) not in (15, 16):
        return digits
    separator = " " if style < 0.75 else "-"
    groups = (4, 6, 5) if len(digits) == 15 else (4, 4, 4, 4)
    parts, position = [], 0
    for size in groups:
        parts.append(digits[position : position + size])
        position += size
    return separator.join(parts)


def _date(fake: Any, rng: random.Random, *, birth: bool) -> str:
    value = fake.date_of_birth(minimum_age=18, maximum_age=90) if birth else fake.date_this_decade()
    text: str = value.strftime(rng.choice(DATE_FORMATS))
    return text


def _iban(fake: Any, rng: random.Random) -> str:
    compact = str(fake.iban())
    if rng.random() < 0.5:
        return compact
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _slot_fillers(fake: Any, us_fake: Any, rng: random.Random) -> dict[str, Callable[[], str]]:
    """Placeholder -> a function giving a fresh value (US-only formats come from ``us_fake``)."""

    def optional(method: str, fallback: Callable[[], str]) -> Callable[[], str]:
        return lambda: str(getattr(fake, method)()) if hasattr(fake, method) else fallback()

    return {
        "person": fake.name,
        "name": fake.name,
        "name_female": fake.name_female,
        "name_male": fake.name_male,
        "first_name": fake.first_name,
        "last_name": fake.last_name,
        "first_name_male": fake.first_name_male,
        "first_name_female": fake.first_name_female,
        "first_name_nonbinary": fake.first_name,
        "last_name_male": fake.last_name,
        "last_name_female": fake.last_name,
        "email": fake.email,
        "phone_number": fake.phone_number,
        "address": lambda: str(fake.address()),
        "street_address": fake.street_address,
        "building_number": fake.building_number,
        "street_name": fake.street_name,
        "secondary_address": optional("secondary_address", us_fake.secondary_address),
        "city": fake.city,
        "state_abbr": us_fake.state_abbr,
        "zipcode": us_fake.zipcode,
        "postcode": fake.postcode,
        "credit_card_number": lambda: _card_number(fake, rng),
        "ssn": us_fake.ssn,
        "passport": us_fake.passport_number,
        "us_driver_license": lambda: us_fake.bothify(rng.choice(_DRIVER_LICENSE_FORMATS)).upper(),
        # A US SSN is its own type (US_SSN), so US prompts get a foreign-format national ID here.
        "national_id": (
            (lambda: us_fake.bothify("??######?").upper()) if fake is us_fake else fake.ssn
        ),
        "tax_id": lambda: us_fake.numerify("##-#######"),
        "ip_address": fake.ipv4_public,
        "ipv6": fake.ipv6,
        "url": fake.url,
        "date_of_birth": lambda: _date(fake, rng, birth=True),
        "iban": lambda: _iban(fake, rng),
        "bank_account": lambda: us_fake.numerify("#" * rng.randint(8, 12)),
        "routing_number": us_fake.aba,
        "organization": fake.company,
        "country": fake.country,
        "nationality": lambda: "Canadian",
        "nation_woman": lambda: "a Canadian",
        "nation_plural": lambda: "Canadians",
        "job": fake.job,
        "age": lambda: str(rng.randint(18, 90)),
        "year": fake.year,
        "date_time": lambda: _date(fake, rng, birth=False),
        "day_of_week": fake.day_of_week,
        "prefix": fake.prefix,
        "prefix_male": fake.prefix_male,
        "prefix_female": fake.prefix_female,
        "date": lambda: _date(fake, rng, birth=False),
        "amount": lambda: f"${rng.randint(5, 9000)}.{rng.randint(0, 99):02d}",
        "order_number": lambda: us_fake.bothify("#######"),
        "card_expiry": lambda: f"{rng.randint(1, 12):02d}/{rng.randint(25, 33)}",
        "card_last4": lambda: us_fake.numerify("####"),
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
        fillers = _slot_fillers(fake, us_fake, rng)
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
