"""PII detection rules: canonical entity types, span rules and pattern recognisers.

- ``PiiDetector(token_head)``: canonical entities per text from a token head (long texts read in
  windows); ``vsr.tasks.pii.load_detector()`` builds the shipped one (bundle ``vsr-pii``;
  its Rampart encoder is converted at setup by ``vsr.setup_tools.rampart``).
- ``detect_pii(text, spans)``: canonical entities from one text's token-model spans (what a signal
  calls after ``EncoderBundle.run``), with the pattern recognisers merged in.
- ``CANONICAL_TYPES`` / ``REQUIRED_TYPES``: the type names PII policies use.
"""

from vsr.pii.detector import PiiDetector
from vsr.pii.entities import CANONICAL_TYPES, REQUIRED_TYPES, PiiEntity, detect_pii

__all__ = ["CANONICAL_TYPES", "REQUIRED_TYPES", "PiiDetector", "PiiEntity", "detect_pii"]
