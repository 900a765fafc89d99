"""Dynamic batching in the inference pool, driven through a fake encoder (no native core).

The fake can hold its first call open (``hold_first``) so tests decide exactly which requests
queue behind a running batch; assertions are about which texts went into which native call.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vsr.inference import InferencePool, ModelRegistry
from vsr.inference.batching import BatchingConfig, BatchQueue, QueueFull, estimate_tokens
from vsr.inference.registry import EncoderKey, EncoderModel, HeadDescription


class FakeEncoder:
    """Heads: ``length`` -> (n, 1) text lengths; ``upper`` -> list of upper-cased texts."""

    def __init__(self, *, hold_first: bool = False, fail: bool = False) -> None:
        self.calls: list[tuple[list[str], list[str]]] = []
        self.release = threading.Event()
        self.started = threading.Event()
        self._hold_first = hold_first
        self._fail = fail

    @property
    def heads(self) -> Mapping[str, HeadDescription]:
        return {
            "length": HeadDescription("length", "sequence", ("n",)),
            "upper": HeadDescription("upper", "token", ()),
        }

    def run(self, texts: Sequence[str], heads: Sequence[str]) -> dict[str, Any]:
        self.calls.append((list(texts), list(heads)))
        self.started.set()
        if self._hold_first and len(self.calls) == 1:
            assert self.release.wait(5), "test never released the first call"
        if self._fail:
            raise RuntimeError("encoder exploded")
        outputs: dict[str, Any] = {}
        if "length" in heads:
            outputs["length"] = np.array([[len(t)] for t in texts], dtype=np.float32)
        if "upper" in heads:
            outputs["upper"] = [t.upper() for t in texts]
        return outputs

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) + 2 for t in texts]


def make_pool(encoder: FakeEncoder, **batching: Any) -> tuple[InferencePool, EncoderKey]:
    def load(path: Path, device: str) -> EncoderModel:
        return encoder

    registry = ModelRegistry(resolver=Path, loader=load)
    pool = InferencePool(registry, max_workers=4, batching=BatchingConfig(**batching))
    return pool, registry.key("fake")


async def hold_then_submit(
    pool: InferencePool, key: EncoderKey, encoder: FakeEncoder, later: Sequence[str]
) -> list[dict[str, Any]]:
    """Start one request that holds the encoder, queue ``later`` behind it, then release."""
    first = asyncio.ensure_future(pool.run(key, ["first"], ["length"]))
    await asyncio.to_thread(encoder.started.wait, 5)
    queued = [asyncio.ensure_future(pool.run(key, [text], ["length"])) for text in later]
    await asyncio.sleep(0)  # let every queued request reach the batcher
    encoder.release.set()
    return await asyncio.gather(first, *queued)


def test_lone_request_runs_at_once_even_with_a_long_max_wait() -> None:
    encoder = FakeEncoder()
    pool, key = make_pool(encoder, max_wait_ms=100)

    async def scenario() -> float:
        started = time.perf_counter()
        await pool.run(key, ["hello"], ["length"])
        return time.perf_counter() - started

    elapsed = asyncio.run(scenario())
    assert encoder.calls == [(["hello"], ["length"])]
    assert elapsed < 0.1, f"a lone request waited {elapsed * 1000:.1f} ms"
    pool.close()


def test_requests_queued_behind_a_running_batch_share_one_call() -> None:
    encoder = FakeEncoder(hold_first=True)
    pool, key = make_pool(encoder, max_concurrent_batches=1, max_wait_ms=0)
    later = ["a", "bb", "ccc", "dddd"]
    results = asyncio.run(hold_then_submit(pool, key, encoder, later))
    assert [texts for texts, _ in encoder.calls] == [["first"], later]
    # Each caller gets its own rows back.
    assert [r["length"].tolist() for r in results] == [[[5.0]], [[1.0]], [[2.0]], [[3.0]], [[4.0]]]
    pool.close()


def test_batches_respect_the_text_limit() -> None:
    encoder = FakeEncoder(hold_first=True)
    pool, key = make_pool(encoder, max_concurrent_batches=1, max_batch_texts=2, max_wait_ms=0)
    asyncio.run(hold_then_submit(pool, key, encoder, ["a", "b", "c", "d", "e"]))
    assert [len(texts) for texts, _ in encoder.calls] == [1, 2, 2, 1]
    assert sorted(t for texts, _ in encoder.calls[1:] for t in texts) == ["a", "b", "c", "d", "e"]
    pool.close()


def test_batches_respect_the_token_budget() -> None:
    encoder = FakeEncoder(hold_first=True)
    text = "x" * 40  # 10 + 2 estimated tokens
    pool, key = make_pool(encoder, max_concurrent_batches=1, max_batch_tokens=30, max_wait_ms=0)
    asyncio.run(hold_then_submit(pool, key, encoder, [text] * 5))
    assert [len(texts) for texts, _ in encoder.calls] == [1, 2, 2, 1]
    pool.close()


def test_similar_lengths_are_grouped_and_the_oldest_goes_first() -> None:
    encoder = FakeEncoder(hold_first=True)
    pool, key = make_pool(encoder, max_concurrent_batches=1, max_batch_texts=2, max_wait_ms=0)
    short_a, long_a, short_b, long_b = "s1", "L" * 300 + "1", "s2", "L" * 300 + "2"
    asyncio.run(hold_then_submit(pool, key, encoder, [short_a, long_a, short_b, long_b]))
    assert [texts for texts, _ in encoder.calls[1:]] == [[short_a, short_b], [long_a, long_b]]
    pool.close()


def test_a_free_worker_waits_briefly_for_company_while_another_batch_runs() -> None:
    encoder = FakeEncoder(hold_first=True)
    pool, key = make_pool(encoder, max_concurrent_batches=2, max_wait_ms=20)

    async def scenario() -> None:
        first = asyncio.ensure_future(pool.run(key, ["first"], ["length"]))
        await asyncio.to_thread(encoder.started.wait, 5)
        # The encoder is busy but a slot is free: these two wait up to 20 ms and go together.
        pair = await asyncio.gather(
            pool.run(key, ["p"], ["length"]), pool.run(key, ["q"], ["length"])
        )
        assert [r["length"].tolist() for r in pair] == [[[1.0]], [[1.0]]]
        encoder.release.set()
        await first

    asyncio.run(scenario())
    assert [texts for texts, _ in encoder.calls] == [["first"], ["p", "q"]]
    pool.close()


def test_a_full_batch_does_not_wait_for_the_timer() -> None:
    encoder = FakeEncoder(hold_first=True)
    pool, key = make_pool(encoder, max_concurrent_batches=2, max_batch_texts=2, max_wait_ms=100)

    async def scenario() -> float:
        first = asyncio.ensure_future(pool.run(key, ["first"], ["length"]))
        await asyncio.to_thread(encoder.started.wait, 5)
        started = time.perf_counter()
        await asyncio.gather(pool.run(key, ["p"], ["length"]), pool.run(key, ["q"], ["length"]))
        elapsed = time.perf_counter() - started
        encoder.release.set()
        await first
        return elapsed

    elapsed = asyncio.run(scenario())
    assert [texts for texts, _ in encoder.calls] == [["first"], ["p", "q"]]
    assert elapsed < 0.09, f"a full batch waited {elapsed * 1000:.1f} ms"
    pool.close()


def test_each_request_gets_only_its_heads_from_a_shared_call() -> None:
    encoder = FakeEncoder(hold_first=True)
    pool, key = make_pool(encoder, max_concurrent_batches=1, max_wait_ms=0)

    async def scenario() -> list[dict[str, Any]]:
        first = asyncio.ensure_future(pool.run(key, ["first"], ["length"]))
        await asyncio.to_thread(encoder.started.wait, 5)
        a = asyncio.ensure_future(pool.run(key, ["ab", "cd"], ["upper"]))
        b = asyncio.ensure_future(pool.run(key, ["xyz"], ["length", "upper"]))
        await asyncio.sleep(0)
        encoder.release.set()
        return await asyncio.gather(first, a, b)

    _, a, b = asyncio.run(scenario())
    assert encoder.calls[1] == (["ab", "cd", "xyz"], ["length", "upper"])
    assert a == {"upper": ["AB", "CD"]}
    assert b["upper"] == ["XYZ"] and b["length"].tolist() == [[3.0]]
    pool.close()


def test_a_failed_call_fails_every_request_it_served() -> None:
    encoder = FakeEncoder(fail=True)
    pool, key = make_pool(encoder)

    async def scenario() -> list[BaseException | dict[str, Any]]:
        return await asyncio.gather(
            pool.run(key, ["a"], ["length"]),
            pool.run(key, ["b"], ["length"]),
            return_exceptions=True,
        )

    results = asyncio.run(scenario())
    assert all(isinstance(r, RuntimeError) and "exploded" in str(r) for r in results)
    pool.close()


def test_a_cancelled_request_is_not_run() -> None:
    encoder = FakeEncoder(hold_first=True)
    pool, key = make_pool(encoder, max_concurrent_batches=1, max_wait_ms=0)

    async def scenario() -> None:
        first = asyncio.ensure_future(pool.run(key, ["first"], ["length"]))
        await asyncio.to_thread(encoder.started.wait, 5)
        gone = asyncio.ensure_future(pool.run(key, ["gone"], ["length"]))
        kept = asyncio.ensure_future(pool.run(key, ["kept"], ["length"]))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        encoder.release.set()
        await asyncio.gather(first, kept)

    asyncio.run(scenario())
    assert [texts for texts, _ in encoder.calls] == [["first"], ["kept"]]
    pool.close()


def test_disabled_batching_runs_each_request_alone() -> None:
    encoder = FakeEncoder()
    pool, key = make_pool(encoder, enabled=False)

    async def scenario() -> None:
        await asyncio.gather(*(pool.run(key, [t], ["length"]) for t in "abc"))

    asyncio.run(scenario())
    assert sorted(texts[0] for texts, _ in encoder.calls) == ["a", "b", "c"]
    assert all(len(texts) == 1 for texts, _ in encoder.calls)
    pool.close()


def test_queue_takes_an_oversized_request_alone_and_keeps_arrival_order() -> None:
    queue = BatchQueue(BatchingConfig(max_batch_texts=2, max_batch_tokens=100, ms_per_1k_tokens=0))
    big = queue.add(["w " * 1000], ["h"], None)
    small = [queue.add([f"t{i}"], ["h"], None) for i in range(3)]
    assert queue.full()
    assert queue.take() == [big]
    assert queue.take() == small[:2]
    assert queue.take() == small[2:]
    assert queue.take() == [] and not queue.full()


def test_short_requests_go_before_long_ones_that_arrived_up_to_their_weight_earlier() -> None:
    # 1 s per 1,000 tokens: the ~500-token prompt is due 0.5 s after it arrived.
    queue = BatchQueue(BatchingConfig(max_batch_texts=1, ms_per_1k_tokens=1000))
    long = queue.add(["w " * 1000], ["h"], None)
    early = queue.add(["t0"], ["h"], None)
    late = queue.add(["t1"], ["h"], None)
    late.queued_at = long.queued_at + 1.0  # arrived after the long prompt was due
    assert long.tokens == 502
    assert queue.take() == [early]
    # The long prompt is not starved: it goes before a short one that arrived after it was due.
    assert queue.take() == [long]
    assert queue.take() == [late]


def test_a_full_queue_refuses_at_once_but_an_empty_one_takes_any_request() -> None:
    queue = BatchQueue(BatchingConfig(max_queued_texts=4))
    queue.add([f"t{i}" for i in range(10)], ["h"], None)  # alone: accepted, however large
    with pytest.raises(QueueFull, match="limit 4"):
        queue.add(["one more"], ["h"], None)
    queue.take()
    queue.add(["t"] * 3, ["h"], None)
    queue.add(["t"], ["h"], None)
    with pytest.raises(QueueFull):
        queue.add(["t"], ["h"], None)


def test_token_estimate_counts_characters_and_special_tokens() -> None:
    assert estimate_tokens([""]) == 2
    assert estimate_tokens(["abcd", "abcde"]) == (1 + 2) + (2 + 2)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_batch_texts", 0), ("max_batch_tokens", 0), ("max_wait_ms", -1), ("max_wait_ms", 500)],
)
def test_config_rejects_out_of_range_values(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        BatchingConfig(**{field: value})


def test_router_config_carries_batching_with_path_qualified_errors() -> None:
    from vsr.config import parse_config_text
    from vsr.errors import ConfigError

    base = "default_model: a\nmodels: [{name: a}]\n"
    config = parse_config_text(base + "batching: {max_batch_texts: 8, max_wait_ms: 0.25}\n")
    assert config.batching == BatchingConfig(max_batch_texts=8, max_wait_ms=0.25)
    assert parse_config_text(base).batching == BatchingConfig()
    with pytest.raises(ConfigError, match=r"batching\.max_wait_ms"):
        parse_config_text(base + "batching: {max_wait_ms: 1000}\n")
    with pytest.raises(ConfigError, match=r"batching\.max_bach_texts"):
        parse_config_text(base + "batching: {max_bach_texts: 8}\n")


def test_router_builds_its_pool_with_the_config_batching() -> None:
    from vsr import Router
    from vsr.config import parse_config_text

    config = parse_config_text(
        "default_model: a\nmodels: [{name: a}]\nbatching: {enabled: false, max_batch_texts: 4}\n"
    )
    with Router(config) as router:
        assert router._pool.batching == config.batching


def test_a_short_prompt_never_shares_a_batch_with_a_long_one() -> None:
    queue = BatchQueue(BatchingConfig(max_batch_texts=32, ms_per_1k_tokens=1000))
    long = queue.add(["w" * 1000] * 8, ["h"], None)
    short = queue.add(["What is 2+2?"], ["h"], None)
    similar = queue.add(["What is 3+3, please?"], ["h"], None)
    assert queue.take() == [short, similar]
    assert queue.take() == [long]
    # The estimate stops at what an encoder reads of a text.
    assert estimate_tokens(["x" * 100_000]) == 512 + 2


@pytest.mark.parametrize("weight", [0, 1000])
def test_long_prompts_leave_a_worker_slot_for_short_ones(weight: float) -> None:
    # With weight 0 (arrival order) the queued long prompt is ahead of the short one in line; it
    # must still not keep the short one from the slot kept for small batches.
    encoder = FakeEncoder(hold_first=True)
    registry = ModelRegistry(resolver=Path, loader=lambda path, device: encoder)
    batching = BatchingConfig(max_concurrent_batches=4, ms_per_1k_tokens=weight)
    pool = InferencePool(registry, max_workers=2, batching=batching)
    key = registry.key("fake")
    long_texts = ["w" * 1000] * 8  # ~2,000 estimated tokens: a large batch

    async def scenario() -> list[list[str]]:
        first = asyncio.ensure_future(pool.run(key, long_texts, ["length"]))
        await asyncio.to_thread(encoder.started.wait, 5)
        second = asyncio.ensure_future(pool.run(key, [t + "x" for t in long_texts], ["length"]))
        await asyncio.sleep(0.05)
        # The second long prompt waits: the other slot is kept for small batches.
        assert len(encoder.calls) == 1
        short = await asyncio.wait_for(pool.run(key, ["What is 2+2?"], ["length"]), 5)
        assert short["length"].tolist() == [[12.0]]
        encoder.release.set()
        await asyncio.gather(first, second)
        return [texts for texts, _ in encoder.calls]

    calls = asyncio.run(scenario())
    assert calls[1] == ["What is 2+2?"] and len(calls) == 3
    pool.close()


def test_an_unset_weight_is_the_encoders_measured_cost_per_token() -> None:
    # A fixed CPU-sized weight (1 ms per token) made a long prompt wait its CPU cost behind short
    # ones on a GPU that runs it in microseconds: p99 143 ms at 128 clients on an H200.
    queue = BatchQueue(BatchingConfig(max_batch_texts=1))
    long = queue.add(["w " * 1000], ["h"], None)  # 502 tokens
    short = queue.add(["t0"], ["h"], None)
    assert queue.weight() == 0.0 and queue.anchor() is long  # nothing measured: arrival order
    queue.record(tokens=1000, seconds=1.0)  # 1 ms per token, as on a small CPU
    assert queue.weight() == pytest.approx(1000.0)
    assert queue.anchor() is short  # the long prompt is due 0.5 s after it arrived
    for _ in range(100):
        queue.record(tokens=1000, seconds=0.001)  # 1 us per token, as on a GPU
    assert queue.weight() == pytest.approx(1.0, rel=0.01)
    short.queued_at = long.queued_at + 0.01  # arrived 10 ms after: past the long prompt's cost
    assert queue.anchor() is long


def test_a_configured_weight_is_not_replaced_by_measurements() -> None:
    queue = BatchQueue(BatchingConfig(ms_per_1k_tokens=250))
    queue.record(tokens=10, seconds=5.0)
    assert queue.weight() == 250
    assert BatchQueue(BatchingConfig(ms_per_1k_tokens=0)).weight() == 0


def test_the_pool_measures_each_encoders_cost_from_its_batches() -> None:
    encoder = FakeEncoder()
    pool, key = make_pool(encoder)

    async def scenario() -> float | None:
        await pool.run(key, ["a few words here"], ["length"])
        scheduler = pool._schedulers[asyncio.get_running_loop()]  # the loop's own scheduler
        return scheduler._queues[key].queue.seconds_per_token

    measured = asyncio.run(scenario())
    assert measured is not None and measured > 0
    pool.close()


def test_one_pool_serves_event_loops_in_several_threads() -> None:
    # Router.aroute from threads that each run their own loop (asyncio.run): the batching
    # scheduler lived on the first loop, so a request of another loop was resolved from the
    # wrong thread and its loop never woke up (a hang).
    encoder = FakeEncoder()
    pool, key = make_pool(encoder, max_wait_ms=20.0)
    results: dict[int, list[float]] = {}

    def work(index: int) -> None:
        async def requests() -> list[float]:
            outputs = await asyncio.gather(
                *(pool.run(key, [f"text {index} {i}"], ["length"]) for i in range(5))
            )
            return [float(output["length"][0][0]) for output in outputs]

        for _ in range(3):
            results[index] = asyncio.run(requests())

    threads = [threading.Thread(target=work, args=(index,), daemon=True) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads), "a loop never got its answer"
    assert results == {
        index: [float(len(f"text {index} {i}")) for i in range(5)] for index in range(4)
    }
