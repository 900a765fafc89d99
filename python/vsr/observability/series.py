"""Fast faces for prometheus-client series: what the request path updates.

``child(metric, *label_values)`` is ``metric.labels(...)``, cached, as a face that updates
prometheus-client's value objects directly (a counter's value; a histogram's sum and the one
bucket its amount falls in), the way ``inc``/``observe`` end, without their per-call label and
exemplar checks. Same samples, in one process and in ``--workers`` multiprocess files
(``tests/unit/test_metrics_series.py`` compares them with prometheus-client's own updates). The
collectors themselves are declared in ``vsr.observability.metrics``.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

from prometheus_client import Counter, Histogram

# (metric, label values) -> its series. ``metric.labels(...)`` checks and locks on every call
# (~5 us; a forwarded request makes about twenty updates), a dict lookup here is a tenth of that.
_CHILDREN: dict[tuple[Any, tuple[str, ...]], Any] = {}
_MAX_CHILDREN = 10_000  # labels are bounded sets; this bounds the cache even if one is not


class CounterSeries:
    """A counter's child, updated through its value object (``MutexValue``, or ``MmapedValue``
    under ``--workers``): what prometheus-client's ``Counter.inc`` ends in, without its per-call
    label and exemplar checks (the child is labelled once, here)."""

    __slots__ = ("_inc", "metric")

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self._inc = metric._value.inc

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self._inc(amount)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.metric, name)


class HistogramSeries:
    """A histogram's child, observed through its value objects: the sum, and the one bucket the
    amount falls in (found by bisection instead of prometheus-client's loop over the bounds)."""

    __slots__ = ("_bounds", "_buckets", "_sum", "metric")

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self._bounds = tuple(metric._upper_bounds)
        self._buckets = tuple(bucket.inc for bucket in metric._buckets)
        self._sum = metric._sum.inc
        if len(self._bounds) != len(self._buckets) or self._bounds[-1] != math.inf:
            raise TypeError("unexpected histogram layout")

    def observe(self, amount: float) -> None:
        self._sum(amount)
        if amount == amount:  # NaN falls in no bucket, as in prometheus-client
            self._buckets[bisect.bisect_left(self._bounds, amount)](1)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.metric, name)


def series(metric: Any) -> Any:
    """A fast face for an observable metric (a child, or a metric without labels); the metric
    itself when its internals are not the ones these faces know (another prometheus-client)."""
    try:
        if isinstance(metric, Histogram):
            return HistogramSeries(metric)
        if isinstance(metric, Counter):
            return CounterSeries(metric)
    except (AttributeError, TypeError, IndexError):
        pass
    return metric


def child(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)`` (the values in the metric's label-name order; none for a metric
    without labels) as a ``series``, cached."""
    key = (metric, values)
    found = _CHILDREN.get(key)
    if found is None:
        found = series(metric.labels(*values) if values else metric)
        if len(_CHILDREN) < _MAX_CHILDREN:
            _CHILDREN[key] = found
    return found
