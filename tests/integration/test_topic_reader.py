"""The one topic reader (``kafka_ingest.testing.topics``) and the demo's search for an earlier
day (``kafka_ingest.testing.locate``), on the real broker, each test on topics of its own.

Record timestamps are set by the producer here, so the times the reader seeks to are exact. The
brokers never create topics (#22): each test's topic is created with the broker's defaults first.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_ingest.publish.checkpoints import Checkpoint, partition_for
from kafka_ingest.testing.locate import last_checkpoints, read_back
from kafka_ingest.testing.topics import TopicRecord, end_offsets, read_topic

pytestmark = [pytest.mark.integration]

HOUR_MS = 3_600_000


def create(bootstrap: str, topic: str, partitions: int = -1) -> None:
    """The topic, with the broker's default partitions and replication unless told; an existing
    one is left as it is."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=-1)])[
            topic
        ].result(30)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


@contextmanager
def producer(bootstrap: str, topic: str, **config: object) -> Iterator[Producer]:
    """A producer for ``topic``, created first (the brokers never auto-create)."""
    create(bootstrap, topic)
    made = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **config})
    try:
        yield made
    finally:
        assert made.flush(30) == 0


def write(made: Producer, topic: str, count: int, *, at_ms: int, prefix: str = "r", step_ms: int = 1) -> None:
    """``count`` keyed records stamped ``at_ms``, ``at_ms + step_ms``, ..."""
    for i in range(count):
        key = f"{prefix}-{i}".encode()
        made.produce(topic, value=key, key=key, timestamp=at_ms + i * step_ms)


def values(records: list[TopicRecord]) -> list[str]:
    return sorted(r.value.decode() for r in records)


def test_a_topic_that_does_not_exist_reads_empty_and_is_not_created(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("absent")

    assert read_topic(kafka_bootstrap, topic) == []
    assert end_offsets(kafka_bootstrap, topic) == {}
    assert topic not in AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics


def test_since_offsets_taken_before_a_run_reads_only_what_the_run_wrote(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("since-offsets")
    now = int(time.time() * 1000)
    with producer(kafka_bootstrap, topic) as made:
        write(made, topic, 300, at_ms=now, prefix="old")
    before = end_offsets(kafka_bootstrap, topic)
    with producer(kafka_bootstrap, topic) as made:
        write(made, topic, 20, at_ms=now, prefix="new")

    records = read_topic(kafka_bootstrap, topic, since=before)

    assert values(records) == sorted(f"new-{i}" for i in range(20))
    assert sum(before.values()) == 300
    assert len(read_topic(kafka_bootstrap, topic)) == 320, "without since=, the whole log"


def test_since_a_time_seeks_each_partition_to_the_first_record_at_or_after_it(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("since-time")
    start = int(time.time() * 1000) - HOUR_MS
    with producer(kafka_bootstrap, topic) as made:
        write(made, topic, 200, at_ms=start - HOUR_MS, prefix="earlier")
        write(made, topic, 30, at_ms=start, prefix="run")

    records = read_topic(kafka_bootstrap, topic, since=start / 1000)

    assert values(records) == sorted(f"run-{i}" for i in range(30))
    assert min(r.timestamp for r in records) == start
    assert {r.topic for r in records} == {topic}


def test_read_committed_skips_aborted_records_and_read_uncommitted_shows_them(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("aborted")
    with producer(kafka_bootstrap, topic, **{"transactional.id": topic}) as made:
        made.init_transactions()
        made.begin_transaction()
        made.produce(topic, value=b"aborted")
        made.flush(10)  # on the broker, then aborted (abort_transaction drops what is still queued)
        made.abort_transaction()
        made.begin_transaction()
        made.produce(topic, value=b"committed")
        made.commit_transaction()

    assert values(read_topic(kafka_bootstrap, topic)) == ["committed"]
    assert values(read_topic(kafka_bootstrap, topic, isolation="read_uncommitted")) == [
        "aborted",
        "committed",
    ]


def test_a_read_waits_for_records_committed_behind_another_open_transaction(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    """The last stable offset stops at the open transaction; the high watermark does not."""
    topic = unique_topic("open-txn")
    with producer(kafka_bootstrap, topic, **{"transactional.id": f"{topic}-slow"}) as slow:
        slow.init_transactions()
        slow.begin_transaction()
        slow.produce(topic, value=b"slow", partition=0)
        slow.flush(10)
        with producer(kafka_bootstrap, topic, **{"transactional.id": f"{topic}-fast"}) as fast:
            fast.init_transactions()
            fast.begin_transaction()
            fast.produce(topic, value=b"fast", partition=0)
            fast.commit_transaction()
        commit_later = threading.Timer(2.0, slow.commit_transaction)
        commit_later.start()
        try:
            records = read_topic(kafka_bootstrap, topic)
        finally:
            commit_later.join()

    assert values(records) == ["fast", "slow"]


def test_a_read_that_cannot_reach_the_end_in_time_names_the_topic_and_where_it_stopped(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("stuck")
    with producer(kafka_bootstrap, topic, **{"transactional.id": topic}) as made:
        made.init_transactions()
        made.begin_transaction()
        made.produce(topic, value=b"open", partition=0)
        made.flush(10)
        with pytest.raises(
            TimeoutError, match=rf"Did not read {topic} up to its high watermark in 2s \(\[0\] at"
        ):
            read_topic(kafka_bootstrap, topic, timeout_s=2)
        made.abort_transaction()


def test_read_back_finds_a_days_rows_before_a_time_reading_little_more_than_them(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    """20,000 records of other days around the day's 100: the search reads its 10 s window."""
    topic = unique_topic("read-back")
    done = int(time.time() * 1000) - HOUR_MS
    day_file = "/x/orders/dt=2026-02-01/part-0001.csv"
    with producer(kafka_bootstrap, topic) as made:
        write(made, topic, 10_000, at_ms=done - 10 * HOUR_MS, prefix="older")
        for row in range(1, 101):
            headers = [("source.file", day_file.encode()), ("source.row", str(row).encode())]
            made.produce(topic, value=f"day-{row}".encode(), timestamp=done - 5_000 + row, headers=headers)
        write(made, topic, 10_000, at_ms=done + HOUR_MS, prefix="newer")

    located = read_back(kafka_bootstrap, topic, files=[day_file], before_ms=done, expected=100)

    assert located.complete
    assert values(located.records) == sorted(f"day-{row}" for row in range(1, 101))
    assert located.scanned == 100


def test_read_back_from_the_runs_start_skips_history_written_just_before_the_run(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    """As on a stack filled moments before the run (issue #23 in CI): 20,000 records of another day
    3 s before the day's 100, inside the 10 s first window. Knowing when the run began, the search
    reads only the run; guessing, it reads the history too."""
    topic = unique_topic("read-back-recent")
    began = int(time.time() * 1000) - HOUR_MS
    day_file = "/x/orders/dt=2026-02-02/part-0001.csv"
    with producer(kafka_bootstrap, topic) as made:
        write(made, topic, 20_000, at_ms=began - 3_000, prefix="history", step_ms=0)
        for row in range(1, 101):
            headers = [("source.file", day_file.encode()), ("source.row", str(row).encode())]
            made.produce(topic, value=f"day-{row}".encode(), timestamp=began + 10 * row, headers=headers)
    done = began + 2_000

    known = read_back(kafka_bootstrap, topic, files=[day_file], before_ms=done, after_ms=began, expected=100)
    guessed = read_back(kafka_bootstrap, topic, files=[day_file], before_ms=done, expected=100)

    assert known.complete
    assert values(known.records) == sorted(f"day-{row}" for row in range(1, 101))
    assert known.scanned == 100
    assert guessed.complete
    assert guessed.scanned == 20_100, "the 10 s guess reaches back into the history"


def test_read_back_gives_up_after_its_budget_and_says_how_far_it_got(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("read-back-budget")
    done = int(time.time() * 1000) - HOUR_MS
    with producer(kafka_bootstrap, topic) as made:  # one record every 100 ms over the 500 s before
        write(made, topic, 5_000, at_ms=done - 500_000, prefix="busy", step_ms=100)

    located = read_back(kafka_bootstrap, topic, files=["/gone"], before_ms=done, expected=10, budget=1_000)

    assert not located.complete
    assert located.records == []
    assert 1_000 <= located.scanned <= 1_600, "windows of 10, 20, 40, 80 and 160 s, then the budget"
    assert located.reached < done


def test_last_checkpoints_are_the_latest_committed_record_of_each_key(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("checkpoints")
    keys = [f"t/orders/2026-02-01/part-000{n}.csv" for n in (1, 2)]
    create(kafka_bootstrap, topic, partitions=2)
    with producer(kafka_bootstrap, topic) as made:
        for published in (10, 20):
            for key in keys:
                checkpoint = Checkpoint(key=key, fingerprint="f", published=published, run_id="r")
                made.produce(topic, key=key, value=checkpoint.to_json(), partition=partition_for(key, 2))

    found = last_checkpoints(kafka_bootstrap, topic, [keys[0], "t/never/started"])

    assert list(found) == [keys[0]]
    assert json.loads(found[keys[0]].checkpoint.to_json())["published"] == 20
    assert found[keys[0]].timestamp > 0
