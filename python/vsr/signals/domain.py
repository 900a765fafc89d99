"""Domain signals: the domain classifier's top category, if it is one of the signal's categories."""

from __future__ import annotations

import numpy as np

from vsr.config.signals import DomainSignal
from vsr.errors import ConfigError
from vsr.inference import InferencePool
from vsr.signals.base import HeadNeed, Signal, SignalInputs, register
from vsr.signals.result import SignalResult


@register("domain")
class DomainClassifierSignal(Signal[DomainSignal]):
    labels: tuple[str, ...] = ()

    def head_needs(self) -> tuple[HeadNeed, ...]:
        return (HeadNeed(self.config.model, self.config.head, "sequence"),)

    def prepare(self, pool: InferencePool) -> None:
        head = self.check_head(pool, self.head_needs()[0])
        missing = [c for c in self.config.category_set if c not in head.labels]
        if missing:
            field = "categories" if self.config.categories else "name"
            raise ConfigError(
                f"{self.path}.{field}: {missing} not among the labels of {self.config.model!r}; "
                f"allowed: {', '.join(repr(label) for label in head.labels)}"
            )
        self.labels = head.labels
        self._columns = [head.labels.index(c) for c in self.config.category_set]

    def evaluate(self, text: str, inputs: SignalInputs) -> SignalResult:
        probabilities = np.asarray(inputs.head(self.config.model, self.config.head))
        top = int(probabilities.argmax())
        top_label = self.labels[top]
        score = float(probabilities[self._columns].max())
        matched = top in self._columns and float(probabilities[top]) >= self.config.threshold
        return SignalResult(self.family, self.name, matched=matched, score=score, label=top_label)
