"""Context signals: whether the text's token count lies in a range (long-context routing)."""

from __future__ import annotations

from vsr.config.signals import ContextSignal
from vsr.inference import InferencePool
from vsr.signals.base import Signal, SignalInputs, register
from vsr.signals.result import SignalResult


@register("context")
class ContextLengthSignal(Signal[ContextSignal]):
    def token_count_models(self) -> tuple[str, ...]:
        return (self.config.model,)

    def prepare(self, pool: InferencePool) -> None:
        self.encoder_key(pool, self.config.model)

    def not_evaluated(self) -> SignalResult:
        # No text is zero tokens, which a range starting at 0 does contain.
        return self._judge(0)

    def evaluate(self, text: str, inputs: SignalInputs) -> SignalResult:
        return self._judge(inputs.token_count(self.config.model))

    def _judge(self, tokens: int) -> SignalResult:
        upper = self.config.max_tokens
        matched = tokens >= self.config.min_tokens and (upper is None or tokens <= upper)
        return SignalResult(
            self.family,
            self.name,
            matched=matched,
            score=1.0 if matched else 0.0,
            label=str(tokens),
        )
