"""``metrics.child`` updates a series through prometheus-client's value objects (skipping its
per-call checks): the exported samples must be exactly what prometheus-client's own ``inc`` and
``observe`` produce, in one process and in ``--workers`` multiprocess files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from vsr.observability import metrics

AMOUNTS = [0.0, 0.0004, 0.001, 0.0010001, 0.003, 0.25, 5.0, 7.5, 1e9, math.inf, -1.0, math.nan]
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.25, 5.0)


def samples(registry: CollectorRegistry, name: str) -> list[tuple[str, dict[str, str], float]]:
    family = [m for m in registry.collect() if m.name == name]
    return [
        (s.name, s.labels, "nan" if math.isnan(s.value) else s.value)
        for s in family[0].samples
        if not s.name.endswith("_created")
    ]


def test_histogram_series_observes_as_prometheus_does() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    fast = Histogram("h", "h", ["model"], buckets=BUCKETS, registry=ours)
    plain = Histogram("h", "h", ["model"], buckets=BUCKETS, registry=theirs)
    series = metrics.series(fast.labels("m"))
    assert isinstance(series, metrics.HistogramSeries)
    for amount in AMOUNTS:
        series.observe(amount)
        plain.labels("m").observe(amount)
    assert samples(ours, "h") == samples(theirs, "h")
    unlabelled = Histogram("u", "u", buckets=BUCKETS, registry=ours)
    assert isinstance(metrics.series(unlabelled), metrics.HistogramSeries)


def test_counter_series_counts_as_prometheus_does() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    fast = metrics.series(Counter("c", "c", ["kind"], registry=ours).labels("a"))
    plain = Counter("c", "c", ["kind"], registry=theirs).labels("a")
    for amount in (1, 1, 0, 12, 0.5):
        fast.inc(amount)
        plain.inc(amount)
    fast.inc()
    plain.inc()
    assert samples(ours, "c") == samples(theirs, "c")
    with pytest.raises(ValueError, match="non-negative"):
        fast.inc(-1)


def test_a_parent_without_label_values_is_left_to_prometheus() -> None:
    parent = Counter("p", "p", ["kind"], registry=CollectorRegistry())
    assert metrics.series(parent) is parent  # its inc raises "missing label values" as before
    with pytest.raises(ValueError, match="missing label values"):
        metrics.series(parent).inc()


def test_series_write_the_multiprocess_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prometheus_client import multiprocess, values

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    values.ValueClass = values.get_value_class()
    try:
        histogram = Histogram("mh", "mh", buckets=BUCKETS, registry=None)
        counter = Counter("mc", "mc", ["kind"], registry=None)
        for amount in (0.002, 0.3, 9.0):
            metrics.series(histogram).observe(amount)
        metrics.series(counter.labels("x")).inc(3)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
        assert registry.get_sample_value("mh_bucket", {"le": "0.0025"}) == 1.0
        assert registry.get_sample_value("mh_bucket", {"le": "+Inf"}) == 3.0
        assert registry.get_sample_value("mh_sum") == pytest.approx(9.302)
        assert registry.get_sample_value("mc_total", {"kind": "x"}) == 3.0
    finally:
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
        values.ValueClass = values.get_value_class()
