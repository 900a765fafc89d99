"""Signal families, one per module, registered by their config ``type``.

Adding a family: a config model in ``vsr.config.signals`` (and its name in ``SIGNAL_TYPES``), a
module here whose class is decorated with ``@register("<type>")``, its import below, and a test.
"""

from vsr.signals import context, domain, embedding, jailbreak, keyword, pii
from vsr.signals.base import SIGNAL_FAMILIES, HeadNeed, Signal, SignalInputs, register

__all__ = [
    "SIGNAL_FAMILIES",
    "HeadNeed",
    "Signal",
    "SignalInputs",
    "context",
    "domain",
    "embedding",
    "jailbreak",
    "keyword",
    "pii",
    "register",
]
