"""Identity rows from presidio-evaluator (FakeNameGenerator.com): slot values faker never produces.

Faker's names, streets and phone formats follow a few locale recipes; the 3,000 identities shipped
with presidio-evaluator were generated elsewhere, in 30 name sets and 40 countries ("Karu põik
61", "21 259 903 5696", "P.O. Box 255"). The held-out ``fresh``/``reserve`` splits fill a prompt's
person, address, email, phone and birth-date slots from one row, so values are consistent within a
prompt and come from a generator no rule was tuned on. Rows are divided between the two splits by
their number, so neither split shares a row with the other. The ``tune`` split (for developing
rules) fills the same slots from ``faker_identity`` rows instead.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

IDENTITY_FILE = Path(__file__).resolve().parents[3] / "data" / "pii" / "identities"
IDENTITY_CSV = IDENTITY_FILE / "fakenamegenerator_3000.csv"
IdentityRow = dict[str, str]


def load_identities(split: str, path: Path = IDENTITY_CSV) -> list[IdentityRow]:
    """The rows of one held-out split: odd row numbers for ``fresh``, even for ``reserve``."""
    if split not in ("fresh", "reserve"):
        raise ValueError(f"identity rows belong to 'fresh' or 'reserve', not {split!r}")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    parity = 1 if split == "fresh" else 0
    return [row for index, row in enumerate(rows, 1) if index % 2 == parity]


def faker_identity(fake: Any, rng: random.Random) -> IdentityRow:
    """An identity row made by faker, in the identity file's columns: the ``tune`` split gets the
    same kind of prompt (one consistent person, identity-style address and phone) without
    reading a row that the held-out splits use."""
    born = fake.date_of_birth(minimum_age=18, maximum_age=90)
    return {
        "GivenName": str(fake.first_name()),
        "MiddleInitial": rng.choice("ABCDEFGHJKLMNPRSTW"),
        "Surname": str(fake.last_name()),
        "Title": rng.choice(("Mr.", "Mrs.", "Ms.", "Dr.")),
        "StreetAddress": str(fake.street_address()),
        "City": str(fake.city()),
        "State": "".join(rng.choice("ABCDEFGHIJKLMNOPRSTUVWZ") for _ in range(2)),
        "ZipCode": str(fake.postcode()),
        "EmailAddress": str(fake.email()),
        "TelephoneNumber": str(fake.phone_number()),
        "TelephoneCountryCode": "",  # faker's numbers carry their own prefix, or none
        "Birthday": born.strftime("%m/%d/%Y"),
        "Occupation": str(fake.job()),
        "Company": str(fake.company()),
    }


def identity_fillers(
    row: IdentityRow, rng: random.Random, date_formats: tuple[str, ...]
) -> dict[str, Callable[[], str]]:
    """Placeholder -> value from one identity row (slots it has no column for are left out)."""
    given, surname = row["GivenName"], row["Surname"]

    def full_name() -> str:
        if row["MiddleInitial"] and rng.random() < 0.25:
            return f"{given} {row['MiddleInitial']}. {surname}"
        return f"{given} {surname}"

    def phone() -> str:
        number, code = row["TelephoneNumber"], row["TelephoneCountryCode"]
        if code and not number.startswith("+") and rng.random() < 0.3:
            return f"+{code} {number}"
        return number

    def address() -> str:
        street, city, state, zipcode = (
            row[k] for k in ("StreetAddress", "City", "State", "ZipCode")
        )
        if rng.random() < 0.5:
            return f"{street}\n{city}, {state} {zipcode}"
        return f"{street}, {zipcode} {city}"

    def birth_date() -> str:
        born = datetime.strptime(row["Birthday"], "%m/%d/%Y")
        return born.strftime(rng.choice(date_formats))

    person_slots = ("person", "name", "name_female", "name_male")
    first_slots = ("first_name", "first_name_male", "first_name_female", "first_name_nonbinary")
    return {
        **dict.fromkeys(person_slots, full_name),
        **dict.fromkeys(first_slots, lambda: given),
        **dict.fromkeys(("last_name", "last_name_male", "last_name_female"), lambda: surname),
        "email": lambda: row["EmailAddress"],
        "phone_number": phone,
        "address": address,
        "street_address": lambda: row["StreetAddress"],
        "city": lambda: row["City"],
        "state_abbr": lambda: row["State"],
        "zipcode": lambda: row["ZipCode"],
        "postcode": lambda: row["ZipCode"],
        "date_of_birth": birth_date,
        **dict.fromkeys(("prefix", "prefix_male", "prefix_female"), lambda: row["Title"]),
        "job": lambda: row["Occupation"],
        "organization": lambda: row["Company"],
    }
