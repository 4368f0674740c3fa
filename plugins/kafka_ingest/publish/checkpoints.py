"""Source positions on a compacted Kafka topic, written in the same transaction as each batch.

Because a batch's records, its DLQ records and its checkpoint commit or abort together, the last
committed checkpoint of a file is exactly how far that file has been published: a retry resumes
after it and republishes nothing. One record per file key (``<topic>/<dataset>/<date>/<file
name>``), the latest wins (the topic is compacted).

Reading the checkpoint is done only after the producer's ``init_transactions()``, which fences an
older attempt and aborts its open transaction: from then on nothing can change our key behind our
back. Other files' producers may still hold open transactions on the same partition, so the read
goes on (read_committed) until the consumer has passed the partition's *high watermark*, not just
its last stable offset; otherwise a committed checkpoint that sits behind another producer's open
transaction would be missed and its batches published twice. A transaction left open by a crashed
task is aborted by the broker after ``transaction.timeout.ms``, so the read timeout must be longer
than that (``pipeline/wiring.py`` sets it so): a read may wait for a dead transaction, but never
fails because of one.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from confluent_kafka import (
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from kafka_ingest.batches import RunInfo
from kafka_ingest.provision.acls import TRANSACTIONAL_ID_PREFIX
from kafka_ingest.provision.topics import require_topics
from kafka_ingest.publish.records import OutgoingMessage

#: Where every topic's checkpoints go unless an operator says otherwise.
DEFAULT_CHECKPOINT_TOPIC = "_kafka_ingest.checkpoints"


#: What a partition leader answers while it is being elected or just came back.
_LEADER_MOVING = frozenset(
    {
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.UNKNOWN_LEADER_EPOCH,
        KafkaError.FENCED_LEADER_EPOCH,
    }
)


class CheckpointReadTimeout(Exception):
    """The checkpoint topic could not be read to its end in time (a retry may succeed)."""


@dataclass
class Checkpoint:
    """How far one extract file has been published, and with what outcome so far.

    ``rows_done`` is the highest record number whose fate (published, DLQ) is committed;
    ``published`` and ``dlq`` are cumulative over every attempt that contributed.
    """

    key: str
    fingerprint: str
    rows_done: int = 0
    complete: bool = False
    published: int = 0
    dlq: int = 0
    batches: int = 0
    run_id: str = ""
    try_number: int = 0
    #: how many times the run had been cleared (Airflow's ``clear_number``) when this was written
    clear_number: int = 0
    #: written by a run that republishes the file from row 1 (``reprocess``)
    reprocess: bool = False
    #: the schema id the batches were encoded with, and its schema's fingerprint (``schema_guard``);
    #: 0 and "" in checkpoints written before they were recorded
    schema_id: int = 0
    schema_fingerprint: str = ""
    updated_at: float = field(default_factory=time.time)
    #: when the publication these counts belong to began (``time.time()`` before its first
    #: record; kept when a later try resumes it): its records were all written after. A reader
    #: looking for them needs not read the topic before (``kafka_ingest.testing.locate``). 0 in
    #: checkpoints written before it was recorded.
    started_at: float = 0.0

    @classmethod
    def start(
        cls, key: str, fingerprint: str, run: RunInfo, *, reprocess: bool, base: Checkpoint | None = None
    ) -> Checkpoint:
        """The checkpoint a run starts a file from: nothing done, or the counts of ``base`` so far."""
        done = (base.rows_done, base.published, base.dlq, base.batches) if base else (0, 0, 0, 0)
        resumed = base is not None and base.started_at > 0 and any(done)
        return cls(
            key=key,
            fingerprint=fingerprint,
            rows_done=done[0],
            published=done[1],
            dlq=done[2],
            batches=done[3],
            run_id=run.run_id,
            try_number=run.try_number,
            clear_number=run.clear_number,
            reprocess=reprocess,
            started_at=base.started_at if resumed and base else time.time(),
        )

    def after(self, rows_done: int, published: int, dlq: int) -> Checkpoint:
        """The checkpoint once one more batch, up to record ``rows_done``, commits.

        The one place checkpoint arithmetic happens: the publisher writes what this returns in
        the batch's transaction, and the job goes on from that same value once it committed.
        """
        return replace(
            self,
            rows_done=rows_done,
            published=self.published + published,
            dlq=self.dlq + dlq,
            batches=self.batches + 1,
            updated_at=time.time(),
        )

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, payload: bytes) -> Checkpoint:
        data: dict[str, Any] = json.loads(payload)
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def checkpoint_key(topic: str, dataset: str, date: str, file_name: str) -> str:
    """The identity of one unit of work: a file of a dataset's day, published to a topic."""
    return f"{topic}/{dataset}/{date}/{file_name}"


def transactional_id_for(checkpoint_key: str) -> str:
    """One transactional id per unit of work (topic, dataset, date, file), the same on every try.

    Fencing and checkpoints must cover the same unit: whichever run, DAG or map index publishes a
    file, a second attempt at the same file fences the first.
    """
    return f"{TRANSACTIONAL_ID_PREFIX}{checkpoint_key}"


def partition_for(key: str, partitions: int) -> int:
    """A stable partition for a key, so a reader needs to scan one partition only."""
    return zlib.crc32(key.encode()) % partitions


class CheckpointStore:
    """Reads and locates checkpoints on the checkpoint topic.

    Writing is the publisher's job (inside its transaction); this class says where to write
    (``partition``) and what was last committed (``load``).
    """

    def __init__(
        self,
        topic: str,
        *,
        client_config: dict[str, Any],
        read_timeout_s: float = 90.0,
        consumer_factory: Callable[[dict[str, Any]], Consumer] = Consumer,
    ) -> None:
        self.topic = topic
        self._config = client_config
        self._read_timeout_s = read_timeout_s
        self._consumer_factory = consumer_factory
        self._partitions: int | None = None
        self._admin_client: AdminClient | None = None

    def _admin(self) -> AdminClient:
        """The store's one admin client, made by its first use (:meth:`ensure_topic`).

        One client, not one per request: a new client sends its first partition-leader query on
        the bootstrap connection, which librdkafka drops as soon as the first metadata names the
        broker behind it; the query fails there ("Broker handle destroyed") and is asked again only
        by a 3 s timer. A client that has already answered ``list_topics`` is past that moment
        (docs/performance.md has how often a new client stalled).
        """
        if self._admin_client is None:
            self._admin_client = AdminClient(self._admin_config())
        return self._admin_client

    def ensure_topic(self, timeout_s: float = 30.0) -> None:
        """Learn the checkpoint topic's partition count. A missing topic fails the run
        (:class:`~kafka_ingest.provision.topics.MissingTopicError`): it is provisioned, compacted, by
        ``topics ensure``, never created by a run (a topic made on the fly would not be compacted,
        and a run's principal may not create topics)."""
        self._partitions = require_topics(self._admin(), [self.topic], timeout_s=timeout_s)[self.topic]

    def admin(self) -> AdminClient:
        """The store's admin client, shared with the run's other metadata checks."""
        return self._admin()

    def partition(self, key: str) -> int:
        if self._partitions is None:
            self.ensure_topic()
        assert self._partitions is not None
        return partition_for(key, self._partitions)

    def message(self, checkpoint: Checkpoint) -> OutgoingMessage:
        """The record that writes ``checkpoint`` in a batch's transaction."""
        return OutgoingMessage(
            self.topic,
            checkpoint.to_json(),
            checkpoint.key.encode(),
            partition=self.partition(checkpoint.key),
        )

    def load(self, key: str) -> Checkpoint | None:
        """The last committed checkpoint for ``key``, or None if the file was never started."""
        value = self.load_value(key)
        return Checkpoint.from_json(value) if value else None

    def load_value(self, key: str) -> bytes | None:
        """The last committed value under ``key`` as bytes (other records, e.g. a replay's, share
        the topic and its reading rules), or None."""
        partition = self.partition(key)
        high = self._watermark(partition, OffsetSpec.latest())
        if high == 0:
            return None
        # The log's start as a number, not OFFSET_BEGINNING: librdkafka resolves a logical offset
        # with a ListOffsets request it first defers when, as for every new consumer, the
        # partition's leader is not known yet: a wait per file.
        start = self._watermark(partition, OffsetSpec.earliest())
        if start >= high:  # retention emptied the partition: nothing was kept for any key
            return None
        consumer = self._consumer_factory(
            {
                **self._consumer_config(),
                "group.id": "kafka-ingest-checkpoint-reader",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
            }
        )
        try:
            consumer.assign([TopicPartition(self.topic, partition, start)])
            return self._scan(consumer, partition, key, high)
        finally:
            consumer.close()

    def _scan(self, consumer: Consumer, partition: int, key: str, high: int) -> bytes | None:
        latest: bytes | None = None
        deadline = time.monotonic() + self._read_timeout_s
        encoded_key = key.encode()
        while True:
            position = consumer.position([TopicPartition(self.topic, partition)])[0].offset
            if position >= high:
                return latest
            if time.monotonic() > deadline:
                raise CheckpointReadTimeout(
                    f"Checkpoint topic {self.topic}[{partition}] could not be read up to offset {high} "
                    f"within {self._read_timeout_s:.0f}s (stuck at {position}): another producer may hold "
                    "an open transaction; a retry will read it again. If retries keep stopping at the "
                    "same offset, a transaction is hanging there (docs/reliability.md: "
                    "kafka-transactions.sh find-hanging / abort)."
                )
            for message in consumer.consume(num_messages=1000, timeout=0.1):
                if message.error() is not None:
                    continue
                if message.key() == encoded_key:
                    latest = message.value() or None

    def _watermark(self, partition: int, which: OffsetSpec) -> int:
        """The partition's start or end offset. Right after a broker restart its leader answers
        with leader-epoch errors for a moment: those are asked again, within the read timeout."""
        admin = self._admin()
        tp = TopicPartition(self.topic, partition)
        deadline = time.monotonic() + self._read_timeout_s
        while True:
            futures = admin.list_offsets({tp: which}, isolation_level=IsolationLevel.READ_UNCOMMITTED)
            try:
                return int(futures[tp].result(timeout=max(1.0, deadline - time.monotonic())).offset)
            except KafkaException as exc:
                if exc.args[0].code() not in _LEADER_MOVING or time.monotonic() >= deadline:
                    raise
            time.sleep(0.2)

    def _admin_config(self) -> dict[str, Any]:
        """The connection's settings without the producer's transactional ones. These clients
        connect to the brokers as soon as they learn them (a connection made when first needed is
        held back by librdkafka's timers; a connection's settings may say otherwise), and never
        let a metadata request auto-create the checkpoint topic: one made that way would not be
        compacted."""
        producer_only = ("transactional.", "enable.idem")
        settings = {k: v for k, v in self._config.items() if not k.startswith(producer_only)}
        return {"enable.sparse.connections": False, **settings, "allow.auto.create.topics": False}

    def _consumer_config(self) -> dict[str, Any]:
        return self._admin_config()
