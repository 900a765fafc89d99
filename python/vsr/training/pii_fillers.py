"""Fresh values for the PII templates' placeholders, drawn from faker and a seeded RNG.

``slot_fillers`` maps each placeholder name (``{{email}}``, ``{{iban}}``, ...) to a function that
gives a new value in the formats real prompts use (grouped card numbers, spaced IBANs, several
date styles); ``vsr.training.pii_data`` fills templates with them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

DATE_FORMATS = ("%m/%d/%Y", "%B %d, %Y", "%Y-%m-%d", "%d %B %Y", "%d.%m.%Y", "%b %d %Y", "%d/%m/%Y")
_DRIVER_LICENSE_FORMATS = ("?#######", "?########", "#########", "??######", "?###-####-####")


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


def slot_fillers(fake: Any, us_fake: Any, rng: random.Random) -> dict[str, Callable[[], str]]:
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
