"""The "already published" scan reads only the partitions the keys go to, and finds each key."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_ingest.replay.kafka_io import TopicReader
from kafka_ingest.replay.published import published_keys

pytestmark = [pytest.mark.integration]

DAY_FILE = "/extracts/orders/dt=2026-01-05/part-0001.csv"


def test_keys_are_found_in_the_partitions_librdkafkas_default_partitioner_chose(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("published")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    keys = [f"ORD-{n:04d}" for n in range(60)]
    landed: dict[str, int] = {}

    def note(_err: object, message: object) -> None:
        landed[message.key().decode()] = message.partition()  # type: ignore[attr-defined]

    for key in keys:
        file = DAY_FILE if key < "ORD-0050" else DAY_FILE.replace("2026-01-05", "2026-01-06")
        producer.produce(
            topic, value=b"v", key=key.encode(), headers=[("source.file", file.encode())], on_delivery=note
        )
    assert producer.flush(30) == 0
    assert all(landed[key] == zlib.crc32(key.encode()) % 6 for key in keys), "not the CRC-32 partitioner"

    reader = TopicReader({"bootstrap.servers": kafka_bootstrap}, timeout_s=60)
    wanted = {("2026-01-05", key) for key in keys[40:]}
    found = published_keys(
        reader,
        topic,
        wanted=wanted,
        day_files={},
        since_ms=0,
        ends=reader.end_offsets(topic),
        kafka_config={},
    )

    assert found == {("2026-01-05", key) for key in keys[40:50]}, "keys of another day must not count"
