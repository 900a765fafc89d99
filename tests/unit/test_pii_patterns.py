"""Pattern recognisers: each type on typical inputs, and the look-alikes it must not report."""

from __future__ import annotations

import time

import pytest

from vsr.pii.patterns import PatternMatch, find_patterns, iban_valid, luhn_valid


def found(text: str) -> list[tuple[str, str]]:
    return [(m.label, text[m.start : m.end]) for m in find_patterns(text)]


def test_luhn_and_iban_checksums() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("4111-1111")
    assert iban_valid("DE89 3704 0044 0532 0130 00")
    assert not iban_valid("DE88 3704 0044 0532 0130 00")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111 1111 1111 1111 please", [("CREDIT_CARD", "4111 1111 1111 1111")]),
        ("amex 3782-822463-10005.", [("CREDIT_CARD", "3782-822463-10005")]),
        (
            "mail me: jane.doe+work@mail.example.co.uk.",
            [("EMAIL_ADDRESS", "jane.doe+work@mail.example.co.uk")],
        ),
        ("see https://example.org/a?b=1).", [("URL", "https://example.org/a?b=1")]),
        ("host 73.162.45.201, port 22", [("IP_ADDRESS", "73.162.45.201")]),
        ("v6 2a00:1450:4001:82a::200e here", [("IP_ADDRESS", "2a00:1450:4001:82a::200e")]),
        ("SSN: 123-45-6789", [("US_SSN", "123-45-6789")]),
        ("my social security number is 123456789", [("US_SSN", "123456789")]),
        ("IBAN GB82WEST12345698765432 ok", [("BANK_ACCOUNT", "GB82WEST12345698765432")]),
        ("DOB: 03/29/1982", [("DATE_OF_BIRTH", "03/29/1982")]),
        ("she was born on 29 March 1982 in Leeds", [("DATE_OF_BIRTH", "29 March 1982")]),
        ("call +1-907-358-3009x855 today", [("PHONE_NUMBER", "+1-907-358-3009x855")]),
        ("ring (415) 555-0132", [("PHONE_NUMBER", "(415) 555-0132")]),
    ],
)
def test_recognises(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "the number 4111111111111112 fails Luhn",
        "version 1.2.3.4000 and 999.1.1.1",
        "meet at 10:30:45 tomorrow",
        "the meeting is on 03/29/2024",  # a date, but nobody's birth
        "order 5512394 cost $45.99",
        "HTTP 200 2326 bytes",
        "the ratio was 3-4",
        # addresses that point at no one outside their own network
        "my server at 10.0.0.5 is down",
        "host 192.168.0.1, port 22",
        "ping 127.0.0.1 and ::1",
        "v6 fe80::1ff:fe23:4567:890a here",
        "block 203.0.113.7 in the firewall",
        # four-part version numbers
        "at-spi2-core (2.39.90.1-1) experimental; urgency=medium",
        "Update Standards-Version to 4.6.1.0",
        "released v8.8.8.8 today",
        "alsa 1.2.7.2~rc1 and 5.6.7.8+deb12u1",
    ],
)
def test_ignores_look_alikes(text: str) -> None:
    assert found(text) == []


def test_invalid_ssn_numbers_are_not_ssns() -> None:
    assert all(label != "US_SSN" for label, _ in found("000-12-3456 and 666-12-3456"))


def test_a_card_is_not_also_a_phone_and_a_url_keeps_its_ip() -> None:
    assert found("4111-1111-1111-1111") == [("CREDIT_CARD", "4111-1111-1111-1111")]
    assert found("open http://10.0.0.1/admin now") == [("URL", "http://10.0.0.1/admin")]


def _chosen_one_by_one(text: str) -> list[PatternMatch]:
    """find_patterns' rule, spelled as the quadratic scan it was written as."""
    from vsr.pii.patterns import FALLBACK_RECOGNISERS, RECOGNISERS

    chosen: list[PatternMatch] = []
    for recognisers in (RECOGNISERS, FALLBACK_RECOGNISERS):
        matches = sorted(
            (match for recogniser in recognisers for match in recogniser(text)),
            key=lambda m: (-(m.end - m.start), m.start),
        )
        for match in matches:
            if all(match.end <= kept.start or match.start >= kept.end for kept in chosen):
                chosen.append(match)
    return sorted(chosen, key=lambda m: m.start)


def test_overlaps_are_resolved_in_time_linear_in_the_matches() -> None:
    # A pasted log of 1 MB with ~40,000 e-mail addresses and phone numbers: the overlap check
    # compared every match with every kept one (~26 s here; a 8 MiB request body, hours).
    mixed = (
        "Card 4111 1111 1111 1111 (call 555-123-4567), SSN 123-45-6789, https://10.0.0.5/x "
        "mail bob@example.com http://alice@example.com:80/path 2024-05-03 +1 (212) 555-0199. "
    )
    assert find_patterns(mixed * 20) == _chosen_one_by_one(mixed * 20)
    text = "Contact alice@example.com or call 555-123-4567. " * 20_000
    started = time.perf_counter()
    found = find_patterns(text)
    assert time.perf_counter() - started < 8.0
    assert len(found) == 40_000
