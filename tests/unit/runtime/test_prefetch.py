"""prefetch: a generator run ahead of its consumer on a thread, in order, bounded, stoppable."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from kafka_ingest.runtime.prefetch import prefetch


def test_items_come_in_order_and_the_producers_error_is_raised_where_it_happened() -> None:
    def items() -> Iterator[int]:
        yield from range(5)
        raise ValueError("disk gone")

    consumer = prefetch(items(), 2)
    assert [next(consumer) for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="disk gone"):
        next(consumer)


def test_the_producer_runs_at_most_depth_items_ahead() -> None:
    produced: list[int] = []

    def items() -> Iterator[int]:
        for n in range(100):
            produced.append(n)
            yield n

    consumer = prefetch(items(), 3)
    assert next(consumer) == 0
    time.sleep(0.3)  # ample time for the producer to run as far as it may
    assert len(produced) == 1 + 3  # the item taken and three ready
    consumer.close()


def test_closing_the_consumer_stops_and_joins_the_producer_and_closes_the_generator() -> None:
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            yield from range(1000)
        finally:
            closed.set()

    before = threading.active_count()
    consumer = prefetch(items(), 2)
    assert next(consumer) == 0
    consumer.close()
    assert threading.active_count() == before
    assert closed.is_set()


def test_an_empty_generator_ends_at_once() -> None:
    assert list(prefetch(iter(()), 1)) == []


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth"):
        next(prefetch(iter([1]), 0))
