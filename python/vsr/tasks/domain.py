"""The domain task: which of the 14 MMLU-Pro categories a prompt belongs to (head ``domain``).

Its training (data, splits, model card) is ``vsr.training.domain``.
"""

from __future__ import annotations

from vsr.config.signals import MMLU_PRO_CATEGORIES
from vsr.tasks.sequence import SequenceTask

# The labels are the categories the routing config accepts for the default domain classifier.
LABELS = MMLU_PRO_CATEGORIES

TASK = SequenceTask(
    name="domain",
    summary="the 14 MMLU-Pro categories (biology ... psychology, other)",
    labels=LABELS,
)
