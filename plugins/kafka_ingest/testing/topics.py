"""Read what the ingestion published, as a consumer downstream would: for tests and the demo.

A read costs what was written since a point, not what the topic holds. ``read_topic(..., since=...)``
seeks every partition to that point, then reads up to the high watermark the partition had when the
read began, with ``isolation.level=read_committed`` (aborted transactions never show), without a
consumer group. The point is a time (the run's start: ``offsets_for_times``) or the offsets
:func:`end_offsets` took before the run. Without ``since`` the read starts at the log's start: right
for a topic of a test's own, which holds only what the test wrote, and slow on a shared one (the
demo's topics, a development cluster's), whose history can run to millions of records.

Reading stops at the high watermark, not at the first end-of-partition event: read_committed
reports the end at the last *stable* offset, so a record committed behind another producer's open
transaction would otherwise be missed (the checkpoint store reads the same way, for that reason).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

#: A point to read from: a time (an aware datetime, or seconds since the epoch), or offsets by
#: partition (a partition not named starts at its log's start: it is new since then).
Since = datetime | float | Mapping[int, int]
#: Where to read: a bootstrap string (a plaintext broker), or a librdkafka client config with
#: ``bootstrap.servers`` and the login a secured cluster needs (:mod:`kafka_ingest.testing.clients`).
Client = str | Mapping[str, Any]
_BATCH = 10_000


@dataclass(frozen=True)
class TopicRecord:
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    partition: int
    offset: int
    topic: str = ""
    #: the record's timestamp (the producer's create time, in ms since the epoch)
    timestamp: int = 0
    #: every header in order, repeated names too (``headers`` keeps the last of each name)
    raw_headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def key_text(self) -> str:
        return (self.key or b"").decode()

    def header(self, name: str) -> str:
        return self.headers.get(name, b"").decode()

    @property
    def row(self) -> int:
        """The source row (``source.row``; 1 = the file's first data row)."""
        return int(self.header("source.row"))

    @property
    def file_name(self) -> str:
        """The source file's name, without its folder (``source.file``)."""
        return PurePosixPath(self.header("source.file")).name


def read_topic(
    bootstrap: Client,
    topic: str,
    *,
    since: Since | None = None,
    isolation: str = "read_committed",
    timeout_s: float = 30.0,
) -> list[TopicRecord]:
    """The records of ``topic`` from ``since`` (default: the log's start) up to its end now.

    An empty list if the topic does not exist; reading never creates it.
    """
    with TopicReader(bootstrap, topic, isolation=isolation, timeout_s=timeout_s) as reader:
        ends = reader.watermarks()
        starts = reader.starts(since, ends)
        return reader.read(starts, {p: high for p, (_, high) in ends.items()})


def end_offsets(bootstrap: Client, topic: str, *, timeout_s: float = 10.0) -> dict[int, int]:
    """Each partition's high watermark now: where what is written next will begin.

    Take it before a run and pass it as ``read_topic(..., since=...)`` after: the read then costs
    what the run wrote. An empty mapping if the topic does not exist yet (all of it will be new).
    """
    with TopicReader(bootstrap, topic, timeout_s=timeout_s) as reader:
        return {p: high for p, (_, high) in reader.watermarks().items()}


class TopicReader:
    """One consumer over one topic's partitions, assigned (no group) range by range.

    The building block of :func:`read_topic` and of the demo's search for a day's records
    (:mod:`kafka_ingest.testing.locate`): watermarks, offsets at a time, reading offset ranges.
    """

    def __init__(
        self, bootstrap: Client, topic: str, *, isolation: str = "read_committed", timeout_s: float = 30.0
    ) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self.scanned = 0  # records read so far, wanted or not: what the reads cost
        # Offsets are asked for read_uncommitted whatever the reads use: asked read_committed, the
        # broker answers the last stable offset for "latest", and no offset at all for a time whose
        # first record lies past an open transaction.
        client = {"bootstrap.servers": bootstrap} if isinstance(bootstrap, str) else dict(bootstrap)
        self._admin = AdminClient({**client, "allow.auto.create.topics": False})
        metadata = self._admin.list_topics(topic=topic, timeout=timeout_s).topics.get(topic)
        found = metadata is not None and metadata.error is None
        self.partitions: list[int] = sorted(metadata.partitions) if found and metadata else []
        self._consumer = Consumer(
            {
                **client,
                "group.id": "kafka-ingest-reader",  # never committed: offsets come from assign()
                "enable.auto.commit": False,
                "isolation.level": isolation,
                "enable.partition.eof": True,
                "allow.auto.create.topics": False,
            }
        )

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._consumer.close()

    def watermarks(self) -> dict[int, tuple[int, int]]:
        """Partition -> (log start, high watermark)."""
        low, high = self._offsets(OffsetSpec.earliest()), self._offsets(OffsetSpec.latest())
        return {p: (low[p], high[p]) for p in self.partitions}

    def offsets_at(self, when: datetime | float, ends: Mapping[int, tuple[int, int]]) -> dict[int, int]:
        """Partition -> the first offset whose record's timestamp is at or after ``when``; the high
        watermark where every record is older (nothing to read there)."""
        found = self._offsets(OffsetSpec.for_timestamp(_millis(when)))
        return {p: found[p] if found[p] >= 0 else ends[p][1] for p in self.partitions}

    def _offsets(self, spec: OffsetSpec) -> dict[int, int]:
        """Asked again on a retriable error until the timeout: a topic created a moment ago can
        answer NOT_LEADER_FOR_PARTITION while its leaders are being elected."""
        asked = {TopicPartition(self.topic, p): spec for p in self.partitions}
        if not asked:
            return {}
        deadline = time.monotonic() + self.timeout_s
        while True:
            futures = self._admin.list_offsets(asked, isolation_level=IsolationLevel.READ_UNCOMMITTED)
            try:
                return {
                    tp.partition: int(f.result(timeout=self.timeout_s).offset) for tp, f in futures.items()
                }
            except KafkaException as exc:
                if not exc.args[0].retriable() or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def starts(self, since: Since | None, ends: Mapping[int, tuple[int, int]]) -> dict[int, int]:
        """Where a read from ``since`` begins on each partition, within the log as it is now."""
        if since is None:
            wanted = {p: low for p, (low, _) in ends.items()}
        elif isinstance(since, Mapping):
            wanted = {p: int(since.get(p, low)) for p, (low, _) in ends.items()}
        else:
            wanted = self.offsets_at(since, ends)
        return {p: min(max(wanted[p], low), high) for p, (low, high) in ends.items()}

    def read(self, starts: Mapping[int, int], stops: Mapping[int, int]) -> list[TopicRecord]:
        """The records at offsets [start, stop) of each partition (read_committed: the committed
        ones; the read waits until every offset below ``stop`` is decided)."""
        pending = {p: stops[p] for p in starts if starts[p] < stops[p]}
        if not pending:
            return []
        self._consumer.assign([TopicPartition(self.topic, p, starts[p]) for p in pending])
        records: list[TopicRecord] = []
        deadline = time.monotonic() + self.timeout_s
        try:
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(self._stuck(pending, len(records)))
                for message in self._consumer.consume(num_messages=_BATCH, timeout=0.2):
                    self._take(message, pending, records)
                self._drop_done(pending)
        finally:
            self._consumer.unassign()
        return records

    def _take(self, message: Any, pending: dict[int, int], records: list[TopicRecord]) -> None:
        partition = message.partition()
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                if partition in pending and message.offset() >= pending[partition]:
                    del pending[partition]
                return
            raise KafkaException(error)
        if partition not in pending or message.offset() >= pending[partition]:
            return  # read ahead of its stop
        self.scanned += 1
        raw = _header_pairs(message.headers())
        key, value = message.key(), message.value()
        records.append(
            TopicRecord(
                key=key.encode() if isinstance(key, str) else key,
                value=value.encode() if isinstance(value, str) else value or b"",
                headers=dict(raw),
                partition=partition,
                offset=message.offset(),
                topic=self.topic,
                timestamp=message.timestamp()[1],
                raw_headers=raw,
            )
        )

    def _drop_done(self, pending: dict[int, int]) -> None:
        """Partitions whose position has reached their stop (past transaction markers too)."""
        if not pending:
            return
        positions = self._consumer.position([TopicPartition(self.topic, p) for p in pending])
        for tp in positions:
            if tp.offset >= pending[tp.partition]:
                del pending[tp.partition]

    def _stuck(self, pending: Mapping[int, int], count: int) -> str:
        positions = self._consumer.position([TopicPartition(self.topic, p) for p in pending])
        where = ", ".join(f"[{tp.partition}] at {tp.offset} of {pending[tp.partition]}" for tp in positions)
        return (
            f"Did not read {self.topic} up to its high watermark in {self.timeout_s:.0f}s ({where}; "
            f"{count} records read). Either the range is larger than this read expects (pass since= "
            "to read from a run's start) or another producer holds a transaction open there."
        )


def _millis(when: datetime | float) -> int:
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError(f"since={when!r} has no time zone: give an aware datetime (e.g. UTC).")
        return int(when.timestamp() * 1000)
    return int(when * 1000)


def _header_pairs(raw: Any) -> tuple[tuple[str, bytes], ...]:
    pairs = raw.items() if isinstance(raw, dict) else raw or []
    return tuple(
        (str(name), value.encode() if isinstance(value, str) else bytes(value or b""))
        for name, value in pairs
    )


def key_counts(records: Iterable[TopicRecord]) -> Counter[str]:
    """How many times each key was published."""
    return Counter(record.key_text for record in records)
