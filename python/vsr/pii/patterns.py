"""Pattern recognisers for PII with a strict format the token model does not label.

Rampart has no credit-card, IP-address, SSN, IBAN or date-of-birth labels, and these are exactly the
types a checksum or a grammar decides better than a model: a 16-digit number is a card only if its
Luhn sum is right, ``999.1.1.1`` is no IP address. Each recogniser returns ``PatternMatch`` spans
over the original string; ``vsr.pii.entities`` merges them with the model's spans.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Scores of pattern matches: a checksum or a parser validated the span, or only its shape did.
VALIDATED_SCORE = 0.99
SHAPE_SCORE = 0.9


@dataclass(frozen=True, slots=True)
class PatternMatch:
    label: str
    start: int
    end: int
    score: float


_TRAILING_PUNCTUATION = ".,;:!?)]}'\""


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    if not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    """ISO 13616 mod-97 check: move the country code and check digits to the end."""
    compact = candidate.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
)
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'`]+", re.IGNORECASE)
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.]*\d)")
# Candidates only: ipaddress decides. At least two colons, so clock times never qualify.
_IPV6 = re.compile(r"(?<![\w:])(?=[0-9A-Fa-f:.]*:[0-9A-Fa-f.]*:)[0-9A-Fa-f:.]{3,45}(?![\w:])")
_CARD = re.compile(r"(?<![\d-])\d{4}(?:[ -]?\d{2,4}){2,4}(?:[ -]?\d{1,3})?(?![\d-])")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d-])")
_SSN_CONTEXT = re.compile(r"\b(?:ssn|social security)\b[^\d\n]{0,20}$", re.IGNORECASE)
_NINE_DIGITS = re.compile(r"(?<!\d)\d{9}(?!\d)")
_IBAN = re.compile(
    r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
    re.IGNORECASE,  # lower-cased too
)

_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?"
_YEAR = r"(?:19|20)\d{2}"
_DATE = re.compile(
    rf"\b(?:"
    rf"\d{{1,2}}[/.-]\d{{1,2}}[/.-](?:{_YEAR}|\d{{2}})"  # 03/29/1982, 29.03.82
    rf"|{_YEAR}-\d{{1,2}}-\d{{1,2}}"  # 1982-03-29
    rf"|{_MONTHS}\s+{_DAY},?\s+{_YEAR}"  # March 29, 1982
    rf"|{_DAY}(?:\s+of)?\s+{_MONTHS},?\s+{_YEAR}"  # 29 March 1982, 29th of March 1982
    rf")\b",
    re.IGNORECASE,
)
# A date is a date of birth only with birth context shortly before it ("born on", "DOB:").
_BIRTH_CONTEXT = re.compile(
    r"\b(?:born|birth|birthday|birthdate|dob|d\.o\.b\.?|date of birth|b\.)\b[^\n]{0,40}$",
    re.IGNORECASE,
)


def _strip_trailing(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1] in _TRAILING_PUNCTUATION:
        end -= 1
    return end


def find_emails(text: str) -> Iterator[PatternMatch]:
    for match in _EMAIL.finditer(text):
        yield PatternMatch("EMAIL_ADDRESS", match.start(), match.end(), VALIDATED_SCORE)


def find_urls(text: str) -> Iterator[PatternMatch]:
    for match in _URL.finditer(text):
        end = _strip_trailing(text, match.start(), match.end())
        if end - match.start() > len("www."):
            yield PatternMatch("URL", match.start(), end, SHAPE_SCORE)


# Four-part version numbers parse as IPv4 addresses: "at-spi2-core (2.39.90.1-1)" in a changelog,
# "Standards-Version: 4.6.1.0", "v1.2.3.4+build". A package suffix after it ("-1", "~rc1",
# "+deb12u1") or the word "version" (or a "v") before it makes it a version.
_VERSION_SUFFIX = re.compile(r"[-~+][0-9A-Za-z]")
_VERSION_BEFORE = re.compile(r"(?:version|\bv)\s*(?:to|is|of|[:=])?\s*[(\[]?$", re.IGNORECASE)


def find_ip_addresses(text: str) -> Iterator[PatternMatch]:
    """Addresses on the public internet only. A private, loopback, link-local, documentation or
    otherwise reserved address ("my server at 10.0.0.5", "ping 127.0.0.1") points at no one
    outside its own network: it is not personal data, and developers ask about such hosts all
    day."""
    for pattern in (_IPV4, _IPV6):
        for match in pattern.finditer(text):
            candidate = match.group()
            end = match.end()
            if pattern is _IPV6:
                candidate = candidate.rstrip(".:")
                end = match.start() + len(candidate)
            try:
                address = ipaddress.ip_address(candidate)
            except ValueError:
                continue
            if pattern is _IPV4 and (
                _VERSION_SUFFIX.match(text, end)
                or _VERSION_BEFORE.search(text, max(0, match.start() - 24), match.start())
            ):
                continue
            if address.is_global:
                yield PatternMatch("IP_ADDRESS", match.start(), end, VALIDATED_SCORE)


# Maestro cards have 12 digits: a Luhn-valid 12-digit number is a card only when called one.
_CARD_CONTEXT = re.compile(r"\b(?:card|maestro|debit)\b[^\d\n]{0,20}$", re.IGNORECASE)


def find_credit_cards(text: str) -> Iterator[PatternMatch]:
    for match in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if not luhn_valid(digits) or len(set(digits)) == 1:
            continue
        if 13 <= len(digits) <= 19 or (
            len(digits) == 12
            and _CARD_CONTEXT.search(text, max(0, match.start() - 40), match.start())
        ):
            yield PatternMatch("CREDIT_CARD", match.start(), match.end(), VALIDATED_SCORE)


def find_us_ssns(text: str) -> Iterator[PatternMatch]:
    for match in _SSN.finditer(text):
        yield PatternMatch("US_SSN", match.start(), match.end(), SHAPE_SCORE)
    # Nine bare digits are an SSN only when the words before say so.
    for match in _NINE_DIGITS.finditer(text):
        if _SSN_CONTEXT.search(text[max(0, match.start() - 40) : match.start()]):
            yield PatternMatch("US_SSN", match.start(), match.end(), SHAPE_SCORE)


def aba_valid(digits: str) -> bool:
    """The ABA routing-number checksum: 3, 7, 1 weights over the nine digits, sum % 10 == 0."""
    if len(digits) != 9 or not digits.isdigit():
        return False
    weights = (3, 7, 1) * 3
    return sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 10 == 0


def find_ibans(text: str) -> Iterator[PatternMatch]:
    for match in _IBAN.finditer(text):
        # The last groups may be a word after the IBAN ("... 5996 to other"): shorten until the
        # checksum holds.
        groups = match.group().split(" ")
        for size in range(len(groups), 0, -1):
            candidate = " ".join(groups[:size])
            if iban_valid(candidate):
                end = match.start() + len(candidate)
                yield PatternMatch("BANK_ACCOUNT", match.start(), end, VALIDATED_SCORE)
                break


# A number right after the words that name it: "Bank account: 2941164075", "routing number is
# 091926685" (ABA checksum). The model is often unsure of long bare numbers; the words are not.
_ACCOUNT_NUMBER = re.compile(
    r"\b(?P<kind>bank account|account|acct|a/c|routing|aba)(?:[ ]+(?:number|no\.?|#))?"
    r"(?:[ ]+is|[ ]*:|[ ]*#)?[ ]*(?P<number>\d{8,17})\b",
    re.IGNORECASE,
)


def find_account_numbers(text: str) -> Iterator[PatternMatch]:
    for match in _ACCOUNT_NUMBER.finditer(text):
        number = match["number"]
        if match["kind"].lower() in ("routing", "aba"):
            if aba_valid(number):
                yield PatternMatch(
                    "BANK_ACCOUNT", match.start("number"), match.end("number"), VALIDATED_SCORE
                )
        else:
            yield PatternMatch(
                "BANK_ACCOUNT", match.start("number"), match.end("number"), SHAPE_SCORE
            )


# Phone numbers with separators: "+1-907-358-3009x855", "(415) 555-0132", "+44 161 496 0776",
# "+31(0)274 080844", "1 (661) 041-0014", "+61.7.6425.3200", "(0280)-830360", "+917884828884",
# "(06)27/458-2874", "(+358) 964963988", "+47 89 99 35 97".
_PHONE = re.compile(
    r"(?<![\w+(/])(?:\+\d{1,3}(?:[ ]?\(0\))?[ .-]?|\(\+\d{1,3}\)[ ]?|1[ .-](?=\())?"
    r"(?:\(\d{1,5}\)[ ./-]?)?\d{1,10}(?:(?:[ .-]|/[ ]?)\d{1,10}){0,4}"
    r"(?:[ ]?(?:x|ext\.?)[ ]?\d{1,6})?(?![\w/]|-(?!(?:office|fax|mobile|home|work)\b)|\.\d)",
    re.IGNORECASE,
)
# Contact lists say what a number is after it: "0665 664183 office", "8842 5939 (mobile)".
PHONE_KIND_AFTER = re.compile(
    r"(?:[ \t]*[(\[]?|-)(?:office|fax|mobile|cell|home|work|phone|tel|landline)\b", re.IGNORECASE
)


# The nearest of these words before a number says what it is: "national ID 640929-8673" and
# "order 555-0132" are no phones, "call me on 555-0132" is.
_PHONE_WORDS = re.compile(
    r"phone|call|\btel\b|mobile|cell|fax|\btext|whatsapp|reach|contact", re.IGNORECASE
)
_NOT_PHONE_WORDS = re.compile(
    r"\bid\b|identity|identification|national|passport|licen[cs]e|\btax|\bssn\b|social security"
    r"|account|iban|routing|order|invoice|ticket|tracking|reference|\bref\b",
    re.IGNORECASE,
)


_CALLED_A_PHONE = re.compile(
    r"(?:phone|mobile|cell|tel|call me|reach me|text me|contact|my number|number is"
    r"|hit me up)\b[^\d\n]{0,12}$",
    re.IGNORECASE,
)
_POSTCODE_SHAPE = re.compile(r"\d{5}-\d{3,4}|\d{4}-\d{3}")


def _named_other_than_phone(text: str, start: int) -> bool:
    window = text[max(0, start - 40) : start]
    other = [m.start() for m in _NOT_PHONE_WORDS.finditer(window)]
    phone = [m.start() for m in _PHONE_WORDS.finditer(window)]
    return bool(other) and (not phone or max(other) > max(phone))


def find_phone_numbers(text: str) -> Iterator[PatternMatch]:
    for match in _PHONE.finditer(text):
        kind_after = PHONE_KIND_AFTER.match(text, match.end()) is not None
        if not kind_after and _named_other_than_phone(text, match.start()):
            continue
        if not kind_after and _POSTCODE_SHAPE.fullmatch(match.group()):
            # "97484-2976" (ZIP+4), "41125-841" (BR), "1000-001" (PT): a phone only if called one.
            window = text[max(0, match.start() - 40) : match.start()]
            if not _PHONE_WORDS.search(window):
                continue
        candidate = match.group()
        main_part = re.split(r"(?i)\s?(?:x|ext)", candidate)[0]
        digits = re.sub(r"\D", "", main_part)
        # "555-0132" is a phone; "200 2326" (two numbers side by side) needs more to be one.
        separators = re.findall(r"[ .()/-]+", main_part.strip())
        # Called a phone ("my number is 26 825506", "contact 65477836"): six digits may do.
        called = kind_after or _CALLED_A_PHONE.search(
            text, max(0, match.start() - 30), match.start()
        )
        has_separator = (
            len(separators) >= 2
            or main_part.startswith("+")
            or (len(separators) == 1 and separators[0] in "-.")
            or called is not None
        )
        if called is not None and 6 <= len(digits) < 7:
            yield PatternMatch("PHONE_NUMBER", match.start(), match.end(), SHAPE_SCORE)
            continue
        # Dates, amounts and version numbers share the shape; a phone has 7-15 digits and is not
        # a date ("2024-03-01") or a dotted quad (an IP).
        if not 7 <= len(digits) <= 15 or not has_separator or _DATE.fullmatch(candidate):
            continue
        groups = re.findall(r"\d+", main_part.replace("(0)", ""))
        # A country code or one area digit stands alone; "1.2.3.4000" is a version number.
        if sum(len(group) == 1 for group in groups) > 1:
            continue
        if re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}", candidate):
            continue
        yield PatternMatch("PHONE_NUMBER", match.start(), match.end(), SHAPE_SCORE)


def find_dates_of_birth(text: str) -> Iterator[PatternMatch]:
    for match in _DATE.finditer(text):
        if _BIRTH_CONTEXT.search(text[max(0, match.start() - 60) : match.start()]):
            yield PatternMatch("DATE_OF_BIRTH", match.start(), match.end(), SHAPE_SCORE)


RECOGNISERS: tuple[Callable[[str], Iterator[PatternMatch]], ...] = (
    find_emails,
    find_urls,
    find_ip_addresses,
    find_credit_cards,
    find_us_ssns,
    find_ibans,
    find_account_numbers,
    find_dates_of_birth,
)
# Matched only where no other recogniser did: a card, SSN or date also has a phone's shape.
FALLBACK_RECOGNISERS: tuple[Callable[[str], Iterator[PatternMatch]], ...] = (find_phone_numbers,)


def find_patterns(text: str) -> list[PatternMatch]:
    """Every recogniser's matches, overlaps resolved: the longer span wins, then the earlier."""
    chosen: list[PatternMatch] = []
    # One byte per character, set where a kept match lies: checking a match costs its length,
    # not the number kept so far (a long pasted log holds tens of thousands of matches).
    taken = bytearray(len(text))
    for recognisers in (RECOGNISERS, FALLBACK_RECOGNISERS):
        matches = [match for recogniser in recognisers for match in recogniser(text)]
        matches.sort(key=lambda m: (-(m.end - m.start), m.start))
        for match in matches:
            if match.end <= match.start:  # no characters: the rule as first written
                free = all(match.end <= k.start or match.start >= k.end for k in chosen)
            else:
                free = 1 not in taken[match.start : match.end]
            if free:
                chosen.append(match)
                taken[match.start : match.end] = b"\x01" * (match.end - match.start)
    return sorted(chosen, key=lambda m: m.start)
