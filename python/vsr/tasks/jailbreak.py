"""The jailbreak task: ``benign`` vs attacks (head ``jailbreak``), judged as the router judges.

A text is flagged when 1 - P(benign) reaches the bundle's threshold, and long texts are scored in
the served signal's windows (the riskiest decides). Its training is ``vsr.training.jailbreak``.
"""

from __future__ import annotations

from vsr.tasks.sequence import SequenceTask

BENIGN = "benign"
ATTACK = "jailbreak"

TASK = SequenceTask(
    name="jailbreak",
    summary="benign vs jailbreak / prompt injection / harmful request",
    labels=(BENIGN, ATTACK),
    safe_label=BENIGN,
    windowed=True,
)
