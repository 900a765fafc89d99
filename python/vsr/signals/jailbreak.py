"""Jailbreak signals: the probability mass a classifier puts on its non-benign labels."""

from __future__ import annotations

import numpy as np

from vsr.config.signals import JailbreakSignal
from vsr.errors import ConfigError
from vsr.inference import InferencePool
from vsr.routing.result import SignalResult
from vsr.signals.base import HeadNeed, Signal, SignalInputs, register


@register("jailbreak")
class JailbreakClassifierSignal(Signal[JailbreakSignal]):
    def head_needs(self) -> tuple[HeadNeed, ...]:
        return (HeadNeed(self.config.model, self.config.head, "sequence"),)

    def prepare(self, pool: InferencePool) -> None:
        head = self.check_head(pool, self.head_needs()[0])
        benign = set(self.config.benign_labels)
        self._attack_columns = [i for i, label in enumerate(head.labels) if label not in benign]
        if len(self._attack_columns) in (0, len(head.labels)):
            raise ConfigError(
                f"{self.path}.benign_labels: {sorted(benign)} must name some but not all labels "
                f"of {self.config.model!r}; its labels: {', '.join(head.labels)}"
            )
        self.labels = head.labels

    def evaluate(self, text: str, inputs: SignalInputs) -> SignalResult:
        probabilities = np.asarray(inputs.head(self.config.model, self.config.head))
        attack = float(probabilities[self._attack_columns].sum())
        strongest = max(self._attack_columns, key=lambda column: float(probabilities[column]))
        return SignalResult(
            self.family,
            self.name,
            matched=attack >= self.config.threshold,
            score=min(attack, 1.0),
            label=self.labels[strongest],
        )
