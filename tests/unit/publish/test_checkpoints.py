"""Checkpoints: their JSON form, their key and partition, and how the last committed one is found.

``CheckpointStore.load`` runs here against a fake admin client and consumer (the Kafka boundary).
What only a broker can show (read_committed stopping at another producer's open transaction,
compaction) is proven by the integration tests.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, TopicPartition
from confluent_kafka.admin import OffsetSpec
from hypothesis import given
from hypothesis import strategies as st

from kafka_ingest.provision.topics import MissingTopicError
from kafka_ingest.publish import checkpoints
from kafka_ingest.publish.checkpoints import (
    Checkpoint,
    CheckpointReadTimeout,
    CheckpointStore,
    checkpoint_key,
    partition_for,
)

TOPIC = "_kafka_ingest.checkpoints"
KEY = "shopping.order.created/orders/2026-01-15/part-0001.csv"
OTHER = "shopping.order.created/orders/2026-01-15/part-0002.csv"
CLIENT = {
    "bootstrap.servers": "kafka:9092",
    "transactional.id": "kafka-ingest/x",
    "enable.idempotence": True,
    "security.protocol": "SASL_SSL",
}


def ckpt(rows_done: int, key: str = KEY, **changes: Any) -> Checkpoint:
    return Checkpoint(key=key, fingerprint="sha256:ab", rows_done=rows_done, updated_at=1.0, **changes)


# -- the record --------------------------------------------------------------------------------


def test_a_publication_records_when_it_began_and_a_resumed_one_keeps_it() -> None:
    """``started_at`` bounds where the publication's records lie (the demo reads from there)."""
    from kafka_ingest.batches import RunInfo

    before = time.time()
    fresh = Checkpoint.start(KEY, "sha256:ab", RunInfo(run_id="r1", try_number=1), reprocess=False)
    assert before <= fresh.started_at <= time.time()
    done = fresh.after(rows_done=100, published=98, dlq=2)
    assert done.started_at == fresh.started_at

    resumed = Checkpoint.start(
        KEY, "sha256:ab", RunInfo(run_id="r1", try_number=2), reprocess=False, base=done
    )
    assert resumed.started_at == fresh.started_at
    anew = Checkpoint.start(KEY, "sha256:ab", RunInfo(run_id="r2", try_number=1), reprocess=True)
    assert anew.started_at >= fresh.started_at
    old = Checkpoint.from_json(json.dumps({"key": KEY, "fingerprint": "sha256:ab", "rows_done": 5}).encode())
    assert old.started_at == 0.0  # written before it was recorded: unknown


def test_a_checkpoint_survives_a_json_round_trip() -> None:
    original = Checkpoint(
        key=KEY,
        fingerprint="sha256:0f",
        rows_done=50_000,
        complete=True,
        published=49_990,
        dlq=10,
        batches=1,
        run_id="scheduled__2026-01-15",
        try_number=2,
        updated_at=1_768_435_200.5,
    )
    assert Checkpoint.from_json(original.to_json()) == original


def test_unknown_fields_from_a_newer_writer_are_ignored() -> None:
    payload = json.loads(ckpt(10).to_json()) | {"written_by": "kafka-ingest 9.0", "shards": [1, 2]}
    assert Checkpoint.from_json(json.dumps(payload).encode()) == ckpt(10)


def test_fields_missing_from_an_older_writer_take_their_defaults() -> None:
    restored = Checkpoint.from_json(
        json.dumps({"key": KEY, "fingerprint": "sha256:ab", "rows_done": 7}).encode()
    )
    assert (restored.rows_done, restored.complete, restored.published, restored.batches) == (7, False, 0, 0)


def test_the_json_form_is_compact() -> None:
    assert b" " not in ckpt(1).to_json()


# -- key and partition -------------------------------------------------------------------------


def test_checkpoint_key_is_topic_dataset_date_and_file_name() -> None:
    assert checkpoint_key("shopping.order.created", "orders", "2026-01-15", "part-0001.csv") == KEY


def test_partition_for_is_stable_across_processes_and_releases() -> None:
    # A change here would make every reader look for existing checkpoints in the wrong partition.
    assert [partition_for(KEY, n) for n in (1, 3, 12, 50)] == [0, 0, 9, 47]


@given(key=st.text(min_size=1, max_size=200), partitions=st.integers(1, 1_000))
def test_partition_for_is_in_range(key: str, partitions: int) -> None:
    assert 0 <= partition_for(key, partitions) < partitions


# -- the store, against fake clients -----------------------------------------------------------


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


@dataclass
class FakeCluster:
    """The checkpoint topic as the admin client and the consumer see it."""

    partitions: dict[str, int] = field(default_factory=dict)
    #: partition -> its log: (key, value) or an error, one entry per offset
    logs: dict[int, list[tuple[bytes, bytes | None] | KafkaError]] = field(default_factory=dict)
    #: partition -> its log start offset, where retention or compaction moved it
    starts: dict[int, int] = field(default_factory=dict)
    #: empty polls the consumer returns before it gets any message (an open transaction ahead)
    stalls: int = 0
    created: list[Any] = field(default_factory=list)
    admin_configs: list[dict[str, Any]] = field(default_factory=list)
    #: the topic each metadata request asked for (None: the whole cluster)
    metadata_asked: list[str | None] = field(default_factory=list)
    consumers: list[FakeConsumer] = field(default_factory=list)
    #: (which admin client, what it was asked), in order
    admin_calls: list[tuple[int, str]] = field(default_factory=list)

    def admin(self, config: dict[str, Any]) -> FakeAdmin:
        self.admin_configs.append(config)
        return FakeAdmin(self)

    def consumer(self, config: dict[str, Any]) -> FakeConsumer:
        consumer = FakeConsumer(self, config)
        self.consumers.append(consumer)
        return consumer


class FakeAdmin:
    def __init__(self, cluster: FakeCluster) -> None:
        self._cluster = cluster

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        """As librdkafka answers: asked for one topic, that topic only (an error if it is missing)."""
        self._cluster.metadata_asked.append(topic)
        self._cluster.admin_calls.append((id(self), "list_topics"))
        topics = {
            name: SimpleNamespace(partitions=dict.fromkeys(range(count)), error=None)
            for name, count in self._cluster.partitions.items()
            if topic is None or name == topic
        }
        if topic is not None and topic not in topics:
            topics[topic] = SimpleNamespace(partitions={}, error=KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
        return SimpleNamespace(topics=topics)

    def create_topics(self, new_topics: Sequence[Any]) -> dict[str, Future[None]]:
        for new in new_topics:
            self._cluster.created.append(new)
            self._cluster.partitions[new.topic] = new.num_partitions
        return {new.topic: _done(None) for new in new_topics}

    def list_offsets(self, request: dict[TopicPartition, Any], isolation_level: Any = None) -> Any:
        self._cluster.admin_calls.append((id(self), "list_offsets"))

        def offset(tp: TopicPartition, spec: Any) -> int:
            if spec == OffsetSpec.earliest():
                return self._cluster.starts.get(tp.partition, 0)
            return len(self._cluster.logs.get(tp.partition, []))

        return {tp: _done(SimpleNamespace(offset=offset(tp, spec))) for tp, spec in request.items()}


class FakeConsumer:
    def __init__(self, cluster: FakeCluster, config: dict[str, Any]) -> None:
        self.config = config
        self.closed = False
        self._cluster = cluster
        self._log: list[tuple[bytes, bytes | None] | KafkaError] = []
        self._position = -1001  # OFFSET_INVALID until something is consumed, as in librdkafka
        self._start = 0
        self.assigned: list[TopicPartition] = []

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = partitions
        (tp,) = partitions
        assert tp.offset >= 0, "a logical offset costs librdkafka a deferred ListOffsets (~0.5 s)"
        self._log = self._cluster.logs.get(tp.partition, [])
        self._start = tp.offset

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self._position) for tp in partitions]

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        if self._cluster.stalls:
            self._cluster.stalls -= 1
            return []
        start = self._position if self._position >= 0 else self._start
        entries = self._log[start : start + min(num_messages, 2)]  # small polls: the loop must go on
        self._position = start + len(entries)
        return [self._message(start + i, entry) for i, entry in enumerate(entries)]

    def _message(self, offset: int, entry: tuple[bytes, bytes | None] | KafkaError) -> Message:
        if isinstance(entry, KafkaError):
            return Message(topic=TOPIC, offset=offset, error=entry)
        key, value = entry
        return Message(topic=TOPIC, offset=offset, key=key, value=value)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    cluster = FakeCluster(partitions={TOPIC: 12})
    monkeypatch.setattr(checkpoints, "AdminClient", cluster.admin)
    return cluster


def store(cluster: FakeCluster, read_timeout_s: float = 5.0) -> CheckpointStore:
    return CheckpointStore(
        TOPIC,
        client_config=CLIENT,
        read_timeout_s=read_timeout_s,
        consumer_factory=cluster.consumer,  # type: ignore[arg-type]
    )


def entry(checkpoint: Checkpoint) -> tuple[bytes, bytes]:
    return checkpoint.key.encode(), checkpoint.to_json()


def test_partition_uses_the_existing_topics_partition_count(cluster: FakeCluster) -> None:
    assert store(cluster).partition(KEY) == partition_for(KEY, 12)
    assert cluster.created == []


def test_a_missing_checkpoint_topic_fails_naming_it_and_the_command_not_created(cluster: FakeCluster) -> None:
    """Topics are provisioned by ``topics ensure``; a run's principal may not create them."""
    cluster.partitions.clear()
    with pytest.raises(MissingTopicError, match=rf"{TOPIC}.*python -m kafka_ingest topics ensure"):
        store(cluster).partition(KEY)
    assert cluster.created == []


def test_the_topic_is_looked_up_alone_not_with_the_whole_cluster(cluster: FakeCluster) -> None:
    cluster.partitions["other.topic"] = 3
    store(cluster).partition(KEY)
    assert cluster.metadata_asked == [TOPIC]


def test_the_clients_never_auto_create_topics_and_connect_at_once(cluster: FakeCluster) -> None:
    """A metadata request must not create the checkpoint topic: made that way it is not compacted."""
    cluster.partitions[TOPIC] = 1
    cluster.logs[0] = [entry(ckpt(100))]
    store(cluster).load(KEY)
    configs = [*cluster.admin_configs, cluster.consumers[0].config]
    assert all(config["allow.auto.create.topics"] is False for config in configs)
    assert all(config["enable.sparse.connections"] is False for config in configs)


def test_a_connection_may_keep_sparse_connections_but_not_auto_creation(cluster: FakeCluster) -> None:
    settings = {**CLIENT, "enable.sparse.connections": True, "allow.auto.create.topics": True}
    CheckpointStore(TOPIC, client_config=settings, consumer_factory=cluster.consumer).partition(KEY)  # type: ignore[arg-type]
    (config,) = cluster.admin_configs
    assert (config["enable.sparse.connections"], config["allow.auto.create.topics"]) == (True, False)


def test_offsets_are_asked_by_the_one_client_that_listed_the_topic_first(cluster: FakeCluster) -> None:
    """A new admin client's first ``list_offsets`` may wait 3 s for librdkafka's leader-query
    retry (see ``CheckpointStore._admin``); one that has answered ``list_topics`` does not."""
    cluster.logs[partition_for(KEY, 12)] = [entry(ckpt(100))]
    store(cluster).load(KEY)
    clients = {client for client, _ in cluster.admin_calls}
    assert (len(cluster.admin_configs), len(clients)) == (1, 1)
    assert [call for _, call in cluster.admin_calls] == ["list_topics", "list_offsets", "list_offsets"]


def test_load_of_an_empty_partition_is_none_without_reading_it(cluster: FakeCluster) -> None:
    assert store(cluster).load(KEY) is None
    assert cluster.consumers == []


def test_load_returns_the_last_checkpoint_of_the_key(cluster: FakeCluster) -> None:
    partition = partition_for(KEY, 12)
    cluster.logs[partition] = [
        entry(ckpt(100)),
        entry(ckpt(5, OTHER)),
        entry(ckpt(200)),
        entry(ckpt(9, OTHER)),
    ]
    assert store(cluster).load(KEY) == ckpt(200)


def test_load_reads_the_keys_partition_from_the_beginning(cluster: FakeCluster) -> None:
    cluster.logs[partition_for(KEY, 12)] = [entry(ckpt(100))]
    store(cluster).load(KEY)
    (assigned,) = cluster.consumers[0].assigned
    assert (assigned.topic, assigned.partition, assigned.offset) == (TOPIC, partition_for(KEY, 12), 0)


def test_load_starts_where_retention_left_the_log(cluster: FakeCluster) -> None:
    cluster.logs[partition_for(KEY, 12)] = [entry(ckpt(100)), entry(ckpt(200)), entry(ckpt(300))]
    cluster.starts[partition_for(KEY, 12)] = 1
    assert store(cluster).load(KEY) == ckpt(300)
    (assigned,) = cluster.consumers[0].assigned
    assert assigned.offset == 1


def test_load_of_a_partition_retention_emptied_is_none_without_reading_it(cluster: FakeCluster) -> None:
    cluster.logs[partition_for(KEY, 12)] = [entry(ckpt(100))]
    cluster.starts[partition_for(KEY, 12)] = 1
    assert store(cluster).load(KEY) is None
    assert cluster.consumers == []


def test_load_reads_on_past_empty_polls_up_to_the_high_watermark(cluster: FakeCluster) -> None:
    cluster.logs[partition_for(KEY, 12)] = [entry(ckpt(100)), entry(ckpt(200)), entry(ckpt(300))]
    cluster.stalls = 3
    assert store(cluster).load(KEY) == ckpt(300)


def test_load_skips_messages_that_carry_an_error(cluster: FakeCluster) -> None:
    cluster.logs[partition_for(KEY, 12)] = [entry(ckpt(100)), KafkaError(KafkaError._MSG_TIMED_OUT)]
    assert store(cluster).load(KEY) == ckpt(100)


def test_a_tombstone_forgets_the_key(cluster: FakeCluster) -> None:
    cluster.logs[partition_for(KEY, 12)] = [entry(ckpt(100)), (KEY.encode(), None)]
    assert store(cluster).load(KEY) is None


def test_load_times_out_when_the_partition_cannot_be_read_to_its_end(cluster: FakeCluster) -> None:
    cluster.logs[partition_for(KEY, 12)] = [entry(ckpt(100))]
    cluster.stalls = 10**9
    with pytest.raises(
        CheckpointReadTimeout, match=re.escape(f"{TOPIC}[{partition_for(KEY, 12)}]") + ".*offset 1"
    ):
        store(cluster, read_timeout_s=0.05).load(KEY)


def test_load_closes_its_consumer_even_when_it_times_out(cluster: FakeCluster) -> None:
    cluster.logs[partition_for(KEY, 12)] = [entry(ckpt(100))]
    cluster.stalls = 10**9
    with pytest.raises(CheckpointReadTimeout):
        store(cluster, read_timeout_s=0.05).load(KEY)
    assert cluster.consumers[0].closed


def test_load_reads_committed_records_only_without_committing_offsets(cluster: FakeCluster) -> None:
    cluster.logs[partition_for(KEY, 12)] = [entry(ckpt(100))]
    store(cluster).load(KEY)
    config = cluster.consumers[0].config
    assert (config["isolation.level"], config["enable.auto.commit"]) == ("read_committed", False)
    assert config["security.protocol"] == "SASL_SSL"


def test_the_readers_never_carry_the_producers_transactional_settings(cluster: FakeCluster) -> None:
    cluster.logs[partition_for(KEY, 12)] = [entry(ckpt(100))]
    store(cluster).load(KEY)
    configs: Iterator[dict[str, Any]] = iter([*cluster.admin_configs, cluster.consumers[0].config])
    assert all("transactional.id" not in c and "enable.idempotence" not in c for c in configs)
