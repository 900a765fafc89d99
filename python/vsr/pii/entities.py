"""Canonical PII types, and how model spans and pattern matches become one list of them.

The routing config's PII policy names these types (``pii_types_allowed``), whatever model found
them. Names follow Presidio's where one exists (vLLM Semantic Router's PII policy uses them too).

Canonical type      From the Rampart model                     From patterns (vsr.pii.patterns)
PERSON              GIVEN_NAME, SURNAME (adjacent ones joined) -
EMAIL_ADDRESS       EMAIL                                      email
PHONE_NUMBER        PHONE                                      -
STREET_ADDRESS      BUILDING_NUMBER, STREET_NAME, SECONDARY_   -
                    ADDRESS, CITY, STATE, ZIP_CODE joined, when
                    the joined span has a street or number
LOCATION            CITY, STATE, ZIP_CODE on their own         -
CREDIT_CARD         -                                          13-19 digits, Luhn-valid
US_SSN              -                                          123-45-6789, or 9 digits after "SSN"
GOVERNMENT_ID       GOVERNMENT_ID, TAX_ID, PASSPORT,           -
                    DRIVERS_LICENSE
IP_ADDRESS          -                                          IPv4 / IPv6 (parsed)
URL                 URL                                        http(s)://..., www....
DATE_OF_BIRTH       -                                          a date after "born", "DOB", ...
BANK_ACCOUNT        BANK_ACCOUNT, ROUTING_NUMBER               IBAN (mod-97 valid)

A pattern match replaces the model spans it overlaps: patterns only fire on strictly formatted,
validated text, where they are right more often than the model's guess of a type.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vsr.pii.address import (
    TOWN_PARTICLES,
    UNIT_WORD,
    address_extent,
    is_word_and_number,
    starts_street_line,
)
from vsr.pii.patterns import PHONE_KIND_AFTER, PatternMatch, find_patterns
from vsr.pii.person import is_firm_name, person_extent
from vsr.pii.words import ScoredSpan, WordSpan, whole_word_spans

PERSON = "PERSON"
STREET_ADDRESS = "STREET_ADDRESS"
LOCATION = "LOCATION"

# Every type vsr reports; REQUIRED_TYPES are those the quality target counts.
CANONICAL_TYPES: tuple[str, ...] = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "STREET_ADDRESS",
    "CREDIT_CARD",
    "US_SSN",
    "GOVERNMENT_ID",
    "IP_ADDRESS",
    "URL",
    "DATE_OF_BIRTH",
    "BANK_ACCOUNT",
    "LOCATION",
)
REQUIRED_TYPES: tuple[str, ...] = CANONICAL_TYPES[:-1]

_ADDRESS_PART = "ADDRESS_PART"
# Model label (BIO prefix removed) -> canonical type; address pieces are joined first.
MODEL_LABEL_TYPES: dict[str, str] = {
    "GIVEN_NAME": PERSON,
    "SURNAME": PERSON,
    "EMAIL": "EMAIL_ADDRESS",
    "PHONE": "PHONE_NUMBER",
    "URL": "URL",
    "TAX_ID": "GOVERNMENT_ID",
    "GOVERNMENT_ID": "GOVERNMENT_ID",
    "PASSPORT": "GOVERNMENT_ID",
    "DRIVERS_LICENSE": "GOVERNMENT_ID",
    "BANK_ACCOUNT": "BANK_ACCOUNT",
    "ROUTING_NUMBER": "BANK_ACCOUNT",
    "BUILDING_NUMBER": _ADDRESS_PART,
    "STREET_NAME": _ADDRESS_PART,
    "SECONDARY_ADDRESS": _ADDRESS_PART,
    "CITY": _ADDRESS_PART,
    "STATE": _ADDRESS_PART,
    "ZIP_CODE": _ADDRESS_PART,
}
# An address needs a street: "Paris" or "CA 94105" alone is a place, not where someone lives.
_STREET_PARTS = frozenset({"BUILDING_NUMBER", "STREET_NAME", "SECONDARY_ADDRESS"})
_NUMBER_PARTS = frozenset({"BUILDING_NUMBER", "SECONDARY_ADDRESS"})
# What may stand between two pieces of one entity: "John Smith", "12 Elm St, Apt 4, Springfield"
# (the model often leaves a unit word such as "Apt." untagged inside an address).
# "Rebecca K. King": a middle initial may sit between two pieces of a name.
_PERSON_GAP = re.compile(r" ?|[ ][^\W\d_]\.[ ]")
# Between two pieces of one address: separators, at most one line break (an address block has
# no blank line), and an untagged unit word, "S/N" (no house number), or state abbreviation (in
# capitals: "in" or "on" are no states).
_ADDRESS_GAP = re.compile(
    rf"\.?[ ,\t]{{0,6}}(?:\n[ \t]{{0,8}})?"
    rf"(?:(?:{UNIT_WORD}|s/n|(?-i:[A-Z]{{2,3}})\.?|{'|'.join(TOWN_PARTICLES)})[ ,\t]{{0,4}}"
    rf"(?:\n[ \t]{{0,8}})?)?",
    re.IGNORECASE,
)
# A number the model gives one ID-like type is often another (the model's numeric types blur):
# the nearest keyword before it decides, as a reader would. "order 1234567" is not PII at all.
_NUMERIC_TYPES = frozenset({"GOVERNMENT_ID", "BANK_ACCOUNT", "PHONE_NUMBER", "US_SSN"})
_CONTEXT_TYPES: tuple[tuple[str, str | None], ...] = (
    (r"iban|account|acct|a/c|routing|aba|sort code|deposit|wire|bank", "BANK_ACCOUNT"),
    (r"phone|call|\btel\b|mobile|cell|fax|\btext|whatsapp|reach", "PHONE_NUMBER"),
    (r"ssn|social security", "US_SSN"),
    (r"passport|licen[cs]e|\bid\b|identity|tax|\bein\b|\btin\b|national", "GOVERNMENT_ID"),
    (r"order|invoice|ticket|tracking|reference|\bref\b|confirmation|case", None),
    # Book, article and product numbers name a thing, not a person.
    (r"isbn|issn|\bdoi\b|\bsku\b|serial|part (?:no|number)|\bupc\b|\bean\b", None),
    # Software work items and keys: "bug #93371", "pull request 1204", "signing key".
    (r"pull request|\bbugs?\b|\bissues?\b|\bcommits?\b|fingerprint|signing key", None),
)
_CONTEXT_WINDOW = 40
# A number right after an email is the same person's contact: "(jo@example.org, 6196258243)".
_AFTER_EMAIL = re.compile(r"@[\w-]+(?:\.[\w-]+)+[ ]?[,;/|][ ]?$")
# The model tells passports and driving licences apart well; context does not override those.
_SPECIFIC_ID_LABELS = frozenset({"PASSPORT", "DRIVERS_LICENSE"})
# A piece continuing an open name or address may be less certain than one that starts an entity.
_CONTINUE_SCORE_FACTOR = 0.6


# What a token classifier returns per entity.
ModelSpan = ScoredSpan


@dataclass(frozen=True, slots=True)
class PiiEntity:
    """One PII finding: a canonical ``label``, offsets into the text, and who found it."""

    label: str
    start: int
    end: int
    score: float
    text: str
    source: str  # "model" | "pattern"

    def to_json(self) -> dict[str, object]:
        return {
            "label": self.label,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 4),
            "text": self.text,
            "source": self.source,
        }


@dataclass
class _Piece:
    kind: str  # a canonical type or _ADDRESS_PART
    start: int
    end: int
    scores: list[float]
    model_labels: set[str]


def _strip_bio(label: str) -> str:
    prefix, sep, rest = label.partition("-")
    return rest if sep and prefix in ("B", "I", "E", "S") else label


def _joinable(text: str, left: _Piece, right: _Piece) -> bool:
    if left.kind != right.kind or right.start < left.end:
        return False
    gap = text[left.end : right.start]
    if left.kind == PERSON:
        # "Anka A" + ". " + "Simonič": the left piece ended on the initial itself.
        initial = gap == ". " and left.end - left.start >= 3 and text[left.end - 2] == " "
        return _PERSON_GAP.fullmatch(gap) is not None or (initial and text[left.end - 1].isalpha())
    if left.kind == _ADDRESS_PART:
        return _ADDRESS_GAP.fullmatch(gap) is not None
    # Sub-word pieces of one number or address touch; anything else stays separate.
    return gap == ""


# Code and version-control text the model reads as ID numbers: identifiers ("SetX11Keyboard()",
# "GdkPixbuf"), commit hashes ("d803038", 40 hex digits), file names ("Work-around-1014417-in-
# Meson.patch", "pr79724"), key fingerprints. A number that identifies a person has at least
# four digits, is not a hex string (lowercase, or 16+ uppercase characters), holds no lowercase
# word and is not called like a function. Words before it that name it ("ID", "passport",
# "account") still make it one.
_UNNAMED = "<unnamed>"
_HEX = re.compile(r"[0-9a-f]{7,64}|[0-9A-F]{16,64}")
_LOWER_WORD = re.compile(r"[a-z]{2,}")


def _is_ip_address(text: str, start: int, end: int) -> bool:
    """An IP address the model took for an ID or account number: a public one is reported as
    IP_ADDRESS by the pattern, and any other identifies no one (``patterns.find_ip_addresses``)."""
    try:
        ipaddress.ip_address(text[start:end].rstrip(".,;:!?"))
    except ValueError:
        return False
    return True


def _reads_as_code(text: str, start: int, end: int) -> bool:
    span = text[start:end]
    return (
        sum(c.isdigit() for c in span) < 4
        or (_HEX.fullmatch(span) is not None and not span.isdigit())
        or _LOWER_WORD.search(span) is not None
        or text.startswith("(", end)
    )


def _type_from_context(text: str, start: int, model_type: str) -> str | None:
    """The type the words just before a numeric span point to; the model's when none do."""
    window = text[max(0, start - _CONTEXT_WINDOW) : start].lower()
    best_position, best_type = -1, model_type
    found = False
    for pattern, context_type in _CONTEXT_TYPES:
        for match in re.finditer(pattern, window):
            if match.start() > best_position:
                best_position, found = match.start(), True
                best_type = context_type  # type: ignore[assignment]
    if not found:
        return model_type
    return best_type


def _numeric_type(text: str, piece: _Piece, label: str, named: str) -> str:
    """A numeric span's type: what the words before it name, else the model's; a number right
    before "office"/"mobile" or right after an e-mail address is a phone number."""
    if PHONE_KIND_AFTER.match(text, piece.end) or _AFTER_EMAIL.search(
        text, max(0, piece.start - 60), piece.start
    ):
        return "PHONE_NUMBER"  # "3451450612 office", "(jo@example.org, 6196258243)"
    if named == _UNNAMED or piece.model_labels <= _SPECIFIC_ID_LABELS:
        return label
    return named


def model_entities(
    text: str, spans: Iterable[ModelSpan], *, min_score: float = 0.5
) -> list[PiiEntity]:
    """The model's spans as canonical entities: pieces of a name or an address joined."""
    pieces: list[_Piece] = []
    unprefixed = (WordSpan(_strip_bio(s.label), s.start, s.end, s.score) for s in spans)
    for span in whole_word_spans(text, unprefixed):
        raw_label = span.label
        kind = MODEL_LABEL_TYPES.get(raw_label)
        if kind is None or span.end <= span.start:
            continue
        piece = _Piece(kind, span.start, span.end, [span.score], {raw_label})
        continues = bool(pieces) and _joinable(text, pieces[-1], piece)
        if span.score < (min_score * _CONTINUE_SCORE_FACTOR if continues else min_score):
            continue
        if continues and starts_street_line(text, pieces[-1].start, piece.start, raw_label):
            # "Anmol Kade\n699 Basak Zila": the line before a number-and-street line with no
            # number of its own is a name or a company the model took for a street; right
            # after a name's first piece, it is that name's surname.
            dropped = pieces.pop()
            person = pieces[-1] if pieces and pieces[-1].kind == PERSON else None
            if (
                person is not None
                and text[person.end : dropped.start] == " "
                and text[dropped.start : dropped.end].isalpha()
            ):
                person.end = dropped.end
            pieces.append(piece)
            continue
        if continues:
            pieces[-1].end = piece.end
            pieces[-1].scores.append(span.score)
            pieces[-1].model_labels |= piece.model_labels
        else:
            pieces.append(piece)
    entities = []
    for piece in pieces:
        label = piece.kind
        if label == _ADDRESS_PART:
            if piece.model_labels <= _NUMBER_PARTS:
                # A number the model took for a house or flat number, with no street beside it
                # ("2+2 * (5-1)"), is arithmetic or a quantity, not an address.
                continue
            label = STREET_ADDRESS if piece.model_labels & _STREET_PARTS else LOCATION
            if label == STREET_ADDRESS:
                piece.start, piece.end = address_extent(text, piece.start, piece.end)
                words = text[piece.start : piece.end].split()
                if len(words) < 2 and not any(c.isdigit() for c in words[0]):
                    continue  # one word, no number: "Ronda", ".A." (of "S.A."), a bridge's name
                if is_word_and_number(text[piece.start : piece.end]):
                    continue  # "turn 197": a count, not a street
        elif label == PERSON:
            if is_firm_name(text, piece.start, piece.end):
                continue
            piece.start, piece.end = person_extent(text, piece.start, piece.end)
        elif label in _NUMERIC_TYPES:
            named = _type_from_context(text, piece.start, _UNNAMED)
            if named == _UNNAMED and _reads_as_code(text, piece.start, piece.end):
                continue  # "SetX11Keyboard()", commit "d803038": code, not anyone's number
            if _is_ip_address(text, piece.start, piece.end):
                continue  # "ssh to 172.16.4.11": a host, not anyone's number
            if any(c.isdigit() for c in text[piece.start : piece.end]):
                if named is None:
                    continue  # "order 4867614", "invoice 6119727"
                label = _numeric_type(text, piece, label, named)
        if label not in (PERSON, STREET_ADDRESS, LOCATION):
            # "33-6243639." ends a sentence; only names and addresses end in abbreviations.
            while piece.end > piece.start + 1 and text[piece.end - 1] in ".,;:!?":
                piece.end -= 1
        score = sum(piece.scores) / len(piece.scores)
        entities.append(
            PiiEntity(label, piece.start, piece.end, score, text[piece.start : piece.end], "model")
        )
    # Pieces inside a widened address are its parts (a postcode the model took for an ID).
    addresses = [e for e in entities if e.label == STREET_ADDRESS]
    return [
        entity
        for entity in entities
        if entity.label == STREET_ADDRESS
        or all(entity.end <= a.start or entity.start >= a.end for a in addresses)
    ]


_EDGE_SEPARATORS = " ,;\t\n-"
# A name or an address that runs into a pattern match ("...8888 Eriksen\n419" before the phone
# "419 01 358") keeps its part before the match; other model entities a match touches go.
_TRIMMABLE = frozenset({PERSON, STREET_ADDRESS})


def _without_matches(
    text: str, entity: PiiEntity, matches: Sequence[PiiEntity]
) -> PiiEntity | None:
    overlapping = [m for m in matches if m.start < entity.end and entity.start < m.end]
    if not overlapping:
        return entity
    if entity.label not in _TRIMMABLE:
        return None
    end = min(m.start for m in overlapping)
    while end > entity.start and text[end - 1] in _EDGE_SEPARATORS:
        end -= 1
    if end - entity.start < 3 or not any(c.isalpha() for c in text[entity.start : end]):
        return None
    return PiiEntity(
        entity.label, entity.start, end, entity.score, text[entity.start : end], entity.source
    )


def merge_with_patterns(
    text: str, from_model: Sequence[PiiEntity], matches: Sequence[PatternMatch]
) -> list[PiiEntity]:
    """Model entities (cut short where a pattern match begins inside a name or an address, else
    dropped where one overlaps them), plus every pattern match, by position.

    Only a phone's shape backs a phone match, and an address's postcode or house number has
    that shape too: a phone match inside an address the model found gives way to it.
    """
    addresses = [e for e in from_model if e.label == STREET_ADDRESS]
    from_patterns = [
        PiiEntity(m.label, m.start, m.end, m.score, text[m.start : m.end], "pattern")
        for m in matches
        if m.label != "PHONE_NUMBER"
        or not any(a.start <= m.start and m.end <= a.end for a in addresses)
    ]
    kept = [
        trimmed
        for entity in from_model
        if (trimmed := _without_matches(text, entity, from_patterns)) is not None
    ]
    return sorted([*kept, *from_patterns], key=lambda e: (e.start, e.end))


def detect_pii(
    text: str, spans: Iterable[ModelSpan], *, min_score: float = 0.5, use_patterns: bool = True
) -> list[PiiEntity]:
    """Canonical PII entities in ``text`` given the token model's spans for it.

    ``spans`` is what the bundle's ``pii`` head returned for this text (entities whose labels are
    the model's own); ``min_score`` drops model spans the model was unsure of.
    """
    from_model = model_entities(text, spans, min_score=min_score)
    if not use_patterns:
        return from_model
    return merge_with_patterns(text, from_model, find_patterns(text))
