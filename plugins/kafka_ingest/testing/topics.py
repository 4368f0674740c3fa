"""Read what the ingestion published, as a consumer downstream would: for tests and the demo.

``read_topic`` reads a topic from the beginning to its end with ``isolation.level=read_committed``
(aborted transactions never show), on every partition, without a consumer group.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition


@dataclass(frozen=True)
class TopicRecord:
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    partition: int
    offset: int

    @property
    def key_text(self) -> str:
        return (self.key or b"").decode()

    def header(self, name: str) -> str:
        return self.headers.get(name, b"").decode()


def read_topic(bootstrap: str, topic: str, *, timeout_s: float = 30.0) -> list[TopicRecord]:
    """Every committed record of ``topic``; an empty list if the topic does not exist."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "kafka-ingest-reader",  # never committed: offsets come from assign()
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return []
        partitions = sorted(metadata.partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        return _read_to_end(consumer, topic, set(partitions), timeout_s)
    finally:
        consumer.close()


def _read_to_end(consumer: Consumer, topic: str, partitions: set[int], timeout_s: float) -> list[TopicRecord]:
    records: list[TopicRecord] = []
    pending = set(partitions)
    deadline = time.monotonic() + timeout_s
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"Did not reach the end of {topic} partitions {sorted(pending)} in {timeout_s}s."
            )
        message = consumer.poll(0.2)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                pending.discard(message.partition())
                continue
            raise KafkaException(error)
        key, value = message.key(), message.value()
        records.append(
            TopicRecord(
                key=key.encode() if isinstance(key, str) else key,
                value=value.encode() if isinstance(value, str) else value or b"",
                headers=_headers(message.headers()),
                partition=message.partition() or 0,
                offset=message.offset() or 0,
            )
        )
    return records


def _headers(raw: Any) -> dict[str, bytes]:
    pairs = raw.items() if isinstance(raw, dict) else raw or []
    return {
        str(name): value.encode() if isinstance(value, str) else bytes(value or b"") for name, value in pairs
    }


def key_counts(records: Iterable[TopicRecord]) -> Counter[str]:
    """How many times each key was published."""
    return Counter(record.key_text for record in records)
