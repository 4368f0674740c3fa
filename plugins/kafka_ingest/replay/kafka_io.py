"""Bounded read_committed reads: a topic's partitions from given offsets up to recorded ends.

A replay reads the DLQ and the topic only up to the end offsets it recorded when it started (kept
in its checkpoint), so a retry plans exactly what the first try planned, whatever was written
since, including the replay's own records. Reading waits until each partition's position passes
its recorded end, not just its last stable offset, for the reason given in ``checkpoints.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from kafka_ingest.replay.errors import ReplayReadTimeout

_PRODUCER_ONLY = ("transactional.", "enable.idem", "linger", "batch.", "queue.buffering", "compression")


@dataclass(frozen=True)
class Message:
    """One committed record, detached from the consumer."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    timestamp_ms: int

    def header(self, name: str) -> str:
        return self.headers.get(name, b"").decode("utf-8", "replace")


def client_config(kafka_config: Mapping[str, Any]) -> dict[str, Any]:
    """The connection's settings for admin clients and consumers (no producer keys, and never a
    topic auto-created by a metadata request)."""
    settings = {k: v for k, v in kafka_config.items() if not str(k).startswith(_PRODUCER_ONLY)}
    return {**settings, "allow.auto.create.topics": False}


class TopicReader:
    """Offsets and bounded reads of topics through one admin client."""

    def __init__(self, kafka_config: Mapping[str, Any], *, timeout_s: float = 90.0) -> None:
        self._config = client_config(kafka_config)
        self._timeout_s = timeout_s
        self._admin = AdminClient(self._config)

    def partitions(self, topic: str) -> list[int]:
        """The topic's partitions; empty when it does not exist (no DLQ record was ever written)."""
        metadata = self._admin.list_topics(topic=topic, timeout=self._timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return []
        return sorted(metadata.partitions)

    def end_offsets(self, topic: str) -> dict[int, int]:
        return self._offsets(topic, OffsetSpec.latest())

    def offsets_at(self, topic: str, timestamp_ms: int) -> dict[int, int]:
        """Per partition, the first offset whose timestamp is at or after ``timestamp_ms`` (the end
        when there is none)."""
        found = self._offsets(topic, OffsetSpec.for_timestamp(timestamp_ms))
        ends = self.end_offsets(topic)
        return {p: (offset if offset >= 0 else ends.get(p, 0)) for p, offset in found.items()}

    def _offsets(self, topic: str, which: OffsetSpec) -> dict[int, int]:
        partitions = self.partitions(topic)
        if not partitions:
            return {}
        request = {TopicPartition(topic, p): which for p in partitions}
        futures = self._admin.list_offsets(request, isolation_level=IsolationLevel.READ_UNCOMMITTED)
        return {tp.partition: int(f.result(timeout=self._timeout_s).offset) for tp, f in futures.items()}

    def read(self, topic: str, starts: Mapping[int, int], ends: Mapping[int, int]) -> Iterator[Message]:
        """Every committed record of ``topic`` with ``starts[p] <= offset < ends[p]``."""
        pending = {p: end for p, end in ends.items() if starts.get(p, 0) < end}
        if not pending:
            return
        consumer = Consumer(
            {
                **self._config,
                "group.id": "kafka-ingest-replay-reader",  # never committed: offsets come from assign()
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
            }
        )
        try:
            consumer.assign([TopicPartition(topic, p, starts.get(p, 0)) for p in pending])
            yield from self._drain(consumer, topic, pending)
        finally:
            consumer.close()

    def _drain(self, consumer: Consumer, topic: str, pending: dict[int, int]) -> Iterator[Message]:
        deadline = time.monotonic() + self._timeout_s
        while pending:
            for message in consumer.consume(num_messages=1000, timeout=0.2):
                partition, offset = message.partition(), message.offset()
                if message.error() is not None or partition is None or offset is None:
                    continue
                if partition not in pending or offset >= pending[partition]:
                    continue
                yield Message(
                    topic,
                    partition,
                    offset,
                    _bytes(message.key()),
                    _bytes(message.value()),
                    _headers(message.headers()),
                    int(message.timestamp()[1]),
                )
            positions = consumer.position([TopicPartition(topic, p) for p in pending])
            for tp in positions:
                if tp.offset >= pending[tp.partition]:
                    del pending[tp.partition]
            if pending and time.monotonic() > deadline:
                raise ReplayReadTimeout(
                    f"{topic} partitions {sorted(pending)} could not be read up to their recorded ends "
                    f"within {self._timeout_s:.0f}s: another producer may hold an open transaction; "
                    "a retry reads again."
                )


def _bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _headers(headers: Any) -> dict[str, bytes]:
    return {str(name): _bytes(value) or b"" for name, value in headers or ()}
