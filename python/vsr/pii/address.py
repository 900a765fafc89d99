"""Street-address extents: the number-street-city-state-postcode shape a reader would mark.

The model tags address pieces well but their edges poorly: it leaves a unit ("Suite 600") or a
postcode ("NSW, 2776", "M9R1T4", "Ludhiana-909669") untagged or tagged as an ID, and runs an
address on from a name or company line above it ("Anmol Kade\\n699 Basak Zila"). These rules move
the edges of an address the model found; they never create one. A few regular expressions over
at most a line of text each: microseconds per address.
"""

from __future__ import annotations

import re

# Unit words, as in "Apt. 4", "Suite 600", "H.No. 174", "Piso 6", "Depto. 643", "Nr. 30", "# 12".
UNIT_WORD = (
    r"(?:apt|apartment|suite|ste|unit|flat|floor|fl|level|room|rm|piso|puerta|depto|edif|interior"
    r"|p\.?o\.?[ ]?box|postbox|box|h\.\s?no|nr|no|ap|bl|sc|ul|#)\.?"
)
# Before an address: a house number the model left out ("1258 Jacob Station"), and before that
# a unit ("Apt. 560 1258 Jacob Station", "Unit 99 90 Harris River"), or a bare unit word.
_UNIT_BEFORE = re.compile(
    rf"(?<![\w.])(?:(?:{UNIT_WORD}[ \t]*[\w/-]*\d[\w/-]*[ \t,]+)?\d[\w/-]*[ \t,]+"
    rf"|{UNIT_WORD}[ \t]*(?:[\w/-]*\d[\w/-]*[ \t,]+)?)$",
    re.IGNORECASE,
)
_NUMBER_LINE = re.compile(rf"[ \t]*(?:{UNIT_WORD}[ \t]*)?\d", re.IGNORECASE)
_LINE_STARTING_PARTS = frozenset({"BUILDING_NUMBER", "SECONDARY_ADDRESS", "STREET_NAME"})

# Postcode shapes, longest first: PT 1234-567, US 12345-6789, BR 12345-678, NL 1234 AB, CA A1B 2C3,
# UK SW1A 1AA, IE D02 X285, HU H-1234, CZ/SK 123 45, PL 12-345, BR 12345678, then 3-6 digits.
_POSTCODE = (
    r"(?:\d{4}-\d{3}|\d{5}-\d{3,4}|\d{4}[ ]?[A-Za-z]{2}|[A-Za-z]\d[A-Za-z][ ]?\d[A-Za-z]\d"
    r"|[A-Za-z]{1,2}\d[A-Za-z\d]?[ ]\d[A-Za-z]{2}|[A-Za-z]\d{2}[ ]?[A-Za-z\d]{4}|[A-Z]-\d{4}"
    r"|\d{3}[ ]\d{2}(?![ ]?\d)|\d{2}-\d{3}|\d{8}|\d{3,6})"
)
_BREAK = r"(?:,?[ \t]{1,4}|,|\n[ \t]{0,8})"
_STATE_POSTCODE = rf"(?:(?P<state>[A-Za-z]{{2,3}})\.?{_BREAK})?{_POSTCODE}(?![\w-]|\.\d|[ ]\d)"
# ", S/N" (Portuguese/Spanish: no house number) may stand between the street and the postcode.
_POSTCODE_AFTER = re.compile(
    rf"(?:,?[ ]?s/n)?(?:,?[ \t]{{0,4}}|-|(?P<newline>\n)[ \t]{{0,8}}){_STATE_POSTCODE}",
    re.IGNORECASE,
)
# The street line's next line, with a town the model missed: "\nLugano, JZ 4151".
_TOWN_POSTCODE_AFTER = re.compile(
    rf"(?P<newline>\n)[ \t]{{0,8}}"
    rf"(?P<town>[^\W\d_][\w'-]*(?:[ ][^\W\d_][\w'-]*){{0,2}}),?[ ]{{1,3}}{_STATE_POSTCODE}"
)
# "6064 Murska Sobota": a line that starts with its postcode ends with the town.
_TOWN_AFTER_POSTCODE = re.compile(
    r"(?:[ ](?:(?:de|da|do|dos|das|del|la|le|am|an|im|sur|en|di)[ ])?[^\W\d_][\w'-]*){1,3}"
)
_POSTCODE_LINE = re.compile(rf"[ \t]*{_POSTCODE}")
TOWN_PARTICLES = ("de", "da", "do", "dos", "das", "del", "la", "le", "am", "an", "im", "sur", "en")
_TOWN_PARTICLES = frozenset(TOWN_PARTICLES)
# "5183BB\nEdam": where the postcode has a line of its own, the town follows on the next.
_TOWN_LINE_AFTER = re.compile(r"\n[ \t]{0,8}[A-Z][\w'-]+(?:[ -][A-Z][\w'-]+)?[ \t]*(?=\n|$|[?.!,])")
# Short words that look like a state abbreviation but join a sentence, not an address.
_NOT_STATES = frozenset(
    [
        "in",
        "on",
        "at",
        "to",
        "by",
        "of",
        "or",
        "and",
        "the",
        "for",
        "is",
        "it",
        "as",
        "if",
        "so",
        "we",
        "be",
        "my",
        "our",
        "its",
        "are",
        "was",
    ]
)


# Street types that make "main st 12" an address even in lower case.
_STREET_TYPES = frozenset(
    [
        "st",
        "street",
        "str",
        "ave",
        "avenue",
        "av",
        "rd",
        "road",
        "ln",
        "lane",
        "dr",
        "drive",
        "blvd",
        "boulevard",
        "way",
        "ct",
        "court",
        "pl",
        "place",
        "sq",
        "square",
        "ter",
        "terrace",
        "pkwy",
        "parkway",
        "hwy",
        "highway",
        "cres",
        "crescent",
        "close",
        "row",
        "strasse",
        "straße",
        "calle",
        "rua",
        "via",
        "rue",
        "weg",
        "gasse",
    ]
)


_UNIT = re.compile(rf"{UNIT_WORD}$", re.IGNORECASE)


def is_word_and_number(text: str) -> bool:
    """A lone lower-case word followed by a number ("turn 197", "page 12") reads as a count, not
    a street: an address the model sees in it is dropped. A unit word ("flat 43"), a street type
    ("main st 5"), a capitalised word ("Hauptstraße 5") or a number first ("4 daniquelaan", how
    English and Dutch addresses start) keeps it."""
    words = text.replace(",", " ").split()
    if len(words) != 2 or not words[1].isdigit():
        return False
    name = words[0]
    return name.isalpha() and name.islower() and name not in _STREET_TYPES and not _UNIT.match(name)


def starts_street_line(text: str, open_start: int, part_start: int, part_label: str) -> bool:
    """True when an address part begins a street line (one with a number) below lines of the
    open address that have none: those lines were a name or a company ("Anmol Kade\n699 Basak
    Zila", "Aznar y asociados S.L.\nAvenida Paola Burgos 37"), and the address starts here."""
    before = text[open_start:part_start]
    if "\n" not in before or any(char.isdigit() for char in before):
        return False
    if part_label not in _LINE_STARTING_PARTS:
        return False
    line_start = text.rfind("\n", 0, part_start) + 1
    if text[line_start:part_start].strip() and not _NUMBER_LINE.match(text, line_start):
        return False  # the part does not begin its line
    line_end = text.find("\n", part_start)
    return any(char.isdigit() for char in text[line_start : line_end if line_end != -1 else None])


def _plausible_town_and_state(text: str, after: re.Match[str]) -> bool:
    """ "in 2024" is no state and postcode, but "ON K1A 0B1" (Ontario) is; a town is capitalised
    words on the line after the street (or any words, in a lower-cased prompt)."""
    state = after["state"]
    town = after.groupdict().get("town")
    if state and not state.isupper() and state.lower() in _NOT_STATES:
        return False
    if town is None:
        return True
    lowered = not any(char.isupper() for char in text)
    words_ok = all(word[0].isupper() or lowered for word in town.split())
    return words_ok and town.lower() not in _NOT_STATES


def address_extent(text: str, start: int, end: int) -> tuple[int, int]:
    """The ``(start, end)`` of an address the model found, widened to an untagged unit or house
    number before it and an untagged state, postcode (and a town under it) after it."""
    unit = _UNIT_BEFORE.search(text, max(0, start - 32), start)
    if unit is not None:
        start = unit.start()
    after = _POSTCODE_AFTER.match(text, end) or _TOWN_POSTCODE_AFTER.match(text, end)
    if after is not None and not _plausible_town_and_state(text, after):
        after = None
    if after is not None:
        end = after.end()
        town = _TOWN_LINE_AFTER.match(text, end) if after["newline"] else None
        if town is not None:
            end = town.end()
    line_start = text.rfind("\n", start, end) + 1 or start
    if _POSTCODE_LINE.fullmatch(text, line_start, end):
        town_words = _TOWN_AFTER_POSTCODE.match(text, end)
        if town_words is not None and all(
            word[0].isupper() or word in _TOWN_PARTICLES for word in town_words.group().split()
        ):
            end = town_words.end()
    return start, end
