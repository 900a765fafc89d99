"""Person-name extents: the words a reader would mark as the name, and names that are firms.

The model finds names well but draws their edges loosely: it runs a name on into a verb ("Camila
shouted"), stops before a particle ("Tess" of "Tess van de Eerenbeemt") or a suffix ("Jason
Schmidt" of "Jason Schmidt PhD"), and tags surnames that name a firm ("Guerra Inc", "Moore, Berry
and Fisher"). Titles before a name (Mr., Dr.) are not part of it, as in most NER annotation.
Each rule is one anchored regular expression next to the span: microseconds per name.
"""

from __future__ import annotations

import re

# Lowercase words inside names: "van de", "del", "dos", the "and" of double surnames ("en", "y").
_PARTICLES = (
    r"(?:van|von|de|der|den|del|della|degli|di|da|das|dos|du|la|le|ter|ten|y|e|en|bin|al|el)"
)
_PARTICLE_TAIL = re.compile(rf"(?:[ ]{_PARTICLES}){{1,3}}[ ][A-Z][\w'-]+")
# A period after MD or PhD may end the sentence; after Jr. or Sr. it belongs to the name.
_SUFFIX_AFTER = re.compile(r",?[ ](?:(?:Jr|Sr|Esq)\.?|II|III|IV|MD|DDS|PhD|DVM)(?![\w])")
# A line that is nothing but a name, as in a letter's signature or an address block: the model
# often tags only part of "Rafael Contreras Mayol" or "Pastora Tormo Chaves".
# (A quoted line may start with ">" or "???"; initials count as words: "Iwao K. Tenno".)
_CAPITALISED = r"(?:[A-Z]|(?=[^\W\d_a-z])[^\W\d_])[\w'-]*\.?"
_NAME_LINE = re.compile(
    rf"[ \t>?]*(?P<name>{_CAPITALISED}(?:[ ](?:{_CAPITALISED}|{_PARTICLES})){{1,4}})[ \t]*"
)
# "Mikayla" + " A. Weld": a middle initial and a surname the model left untagged.
_INITIAL_TAIL = re.compile(r"[ ][^\W\d_]\.[ ][^\W\d_][\w'-]+")
_NOT_NAME_WORDS = frozenset(
    {"dear", "hi", "hello", "hey", "thanks", "thank", "regards", "best", "from", "to", "name"}
    | {"customer", "user", "bot", "re", "fwd", "the"}
)
_TITLE_BEFORE = re.compile(r"(?:mr|mrs|ms|miss|mx|dr|prof)\.?[ ]+", re.IGNORECASE)
# Company legal forms of the languages prompts are written or addressed in.
_FIRM_AFTER = re.compile(
    r"[ ]*,?[ ]*(?:inc|ltd|llc|plc|gmbh|group|corp|co|ag|bv|nv|s\.?l|s\.?a|s\.?coop|sas|srl|spa"
    r"|s\.p\.a|ltda|kft|kkt|zrt|bt|d\.d|d\.o\.o|s\.r\.o|sro|a\.s|k\.s|v\.o\.s|s\.p|oy|ab|aps|asa"
    r"|sca|scs|hb|lda|s\.c|sp\.[ ]?k|sp\.[ ]?z[ ]?o\.o|a/s"
    r"|(?:and|&)[ ]s(?:o|ø)ns?|e[ ]hijos|y[ ]asociados|i[ ]syn)(?![\w/])\.?",
    re.IGNORECASE,
)
# "Moore, Berry and Fisher", "Tejeda, Sánchez y Ávalos": surnames listed as a firm's name.
_FIRM_LIST = re.compile(r"[\w'-]+,[ ][\w'-]+,?[ ](?:and|&|y|e|und|et|en|és|i)[ ][\w'-]+")
_WORD = re.compile(r"[^\s]+")


def _trim_lowercase_words(text: str, start: int, end: int) -> tuple[int, int]:
    """A name that has capitals: lowercase words at its edges dropped ("Camila shouted"), and
    the name ended before a lowercase word inside it that is no particle ("Kalmár flew to
    WEISSWASSER")."""
    words = [(m.start() + start, m.end() + start) for m in _WORD.finditer(text[start:end])]
    capitalised = [any(c.isupper() for c in text[a:b]) for a, b in words]
    if not any(capitalised):
        return start, end  # a lower-cased prompt: case says nothing
    first = capitalised.index(True)
    last = len(words) - 1 - capitalised[::-1].index(True)
    for index in range(first + 1, last):
        word = text[words[index][0] : words[index][1]]
        if not capitalised[index] and not re.fullmatch(_PARTICLES, word):
            last = index - 1
            break
    return words[first][0], words[last][1]


def is_firm_name(text: str, start: int, end: int) -> bool:
    """True when the name is part of a company's name ("Lopez PLC", "Moore, Berry and Fisher")."""
    if _FIRM_AFTER.match(text, end):
        return True
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line = text[line_start : line_end if line_end != -1 else len(text)]
    return any(
        m.start() + line_start <= start and end <= m.end() + line_start
        for m in _FIRM_LIST.finditer(line)
    )


def _whole_name_line(text: str, start: int, end: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end == -1 else line_end
    line = _NAME_LINE.fullmatch(text, line_start, line_end)
    if line is None or line["name"].split(" ", 1)[0].lower() in _NOT_NAME_WORDS:
        return start, end
    return line.start("name"), line.end("name")


def person_extent(text: str, start: int, end: int) -> tuple[int, int]:
    """A name's ``(start, end)``: lowercase edge words and titles off, particles and suffixes on,
    and the whole line where the line is only a name."""
    start, end = _whole_name_line(text, start, end)
    start, end = _trim_lowercase_words(text, start, end)
    title = _TITLE_BEFORE.match(text, start, end)
    if title is not None and title.end() < end:
        start = title.end()
    tail = _PARTICLE_TAIL.match(text, end)
    if tail is not None:
        end = tail.end()
    initial = _INITIAL_TAIL.match(text, end)
    if initial is not None and text[end + 1].isupper() == text[end + 4].isupper():
        end = initial.end()
    suffix = _SUFFIX_AFTER.match(text, end)
    if suffix is not None:
        end = suffix.end()
    return start, end
