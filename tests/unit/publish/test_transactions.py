"""The transaction loop: a batch, its DLQ records and its checkpoint commit or abort together.

The producer is the boundary: a fake records every call, delivers on commit (as librdkafka serves
delivery reports while ``commit_transaction`` flushes) and raises the ``KafkaException`` values a
scenario scripts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from kafka_ingest.batches import Headers
from kafka_ingest.errors import PermanentError
from kafka_ingest.publish.config import PRODUCER_DEFAULTS, producer_config
from kafka_ingest.publish.records import BatchToPublish, OutgoingMessage, RecordColumns
from kafka_ingest.publish.transactions import (
    BudgetExceeded,
    ProducerFenced,
    PublishError,
    TransactionalPublisher,
)

TOPIC, DLQ, CHECKPOINTS = "shop.order", "shop.order.dlq", "_checkpoints"
TXN_ID = "kafka-ingest/shop.order/orders/2026-01-15/part-0001.csv"


@dataclass
class Produced:
    topic: str
    value: bytes
    key: bytes | None
    headers: Headers
    partition: int

    @property
    def row(self) -> str | None:
        values = [v for k, v in self.headers or () if k == "source.row"]
        return values[0].decode() if values and isinstance(values[0], bytes) else None


Refusal = Callable[[Produced], KafkaError | None]


class FakeProducer:
    """A transactional producer that records calls and fails as scripted."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.committed: list[list[Produced]] = []
        #: per produce() call, whether it asked for a delivery report
        self.reports_asked: list[bool] = []
        self.refuse_at_produce: Refusal = lambda message: None
        self.refuse_at_delivery: Refusal = lambda message: None
        self._scripted: dict[str, list[BaseException]] = {}
        self._open: list[Produced] = []

    def script(self, method: str, *errors: BaseException) -> None:
        """The next calls of ``method`` raise ``errors``, one each, then succeed."""
        self._scripted.setdefault(method, []).extend(errors)

    def _call(self, method: str) -> None:
        self.calls.append(method)
        if self._scripted.get(method):
            raise self._scripted[method].pop(0)

    def init_transactions(self, timeout: float) -> None:
        self._call("init_transactions")

    def begin_transaction(self) -> None:
        self._call("begin_transaction")
        self._open.clear()

    def produce(  # confluent-kafka's own signature: the publisher may pass these by position
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int = -1,
        on_delivery: Any = None,
        callback: Any = None,
        timestamp: int = 0,
        headers: Any = None,
    ) -> None:
        self._call("produce")
        assert value is not None, "the publisher never produces a tombstone"
        self.reports_asked.append(on_delivery is not None)
        message = Produced(topic, value, key, headers, partition)
        refusal = self.refuse_at_produce(message)
        if refusal is not None:
            raise KafkaException(refusal)
        self._open.append(message)

    def poll(self, timeout: float) -> int:
        self.calls.append("poll")
        return 0

    def commit_transaction(self, timeout: float) -> None:
        self._call("commit_transaction")
        failed = None
        for message in self._open:
            failed = failed or self.refuse_at_delivery(message)
        if failed is not None:
            raise KafkaException(
                KafkaError(failed.code(), "Failed to flush all messages", txn_requires_abort=True)
            )
        self.committed.append(list(self._open))
        self._open.clear()

    def abort_transaction(self, timeout: float) -> None:
        self._call("abort_transaction")
        self._open.clear()

    def flush(self, timeout: float) -> int:
        self.calls.append("flush")
        return 0

    def topics(self) -> list[str]:
        """The topics of the committed messages, in produce order."""
        return [message.topic for transaction in self.committed for message in transaction]


def record(row: int, size: int = 10) -> OutgoingMessage:
    return OutgoingMessage(
        TOPIC, b"v" * size, f"ORD-{row}".encode(), [("source.row", str(row).encode())], row=row
    )


def dlq_record(row: int) -> OutgoingMessage:
    return OutgoingMessage(DLQ, b'{"stage":"validate"}', None, [("source.row", str(row).encode())], row=row)


def checkpoint(batch: BatchToPublish) -> OutgoingMessage:
    """A checkpoint that says how many records and DLQ records its batch carries."""
    counts = {"published": len(batch.records), "dlq": len(batch.dlq)}
    return OutgoingMessage(CHECKPOINTS, json.dumps(counts).encode(), b"file-key", partition=0)


def moved_to_dlq(message: OutgoingMessage, why: str) -> OutgoingMessage:
    return OutgoingMessage(DLQ, why.encode(), message.key, message.headers, row=message.row)


Layout = Callable[[list[OutgoingMessage]], Sequence[OutgoingMessage]]


def as_columns(messages: list[OutgoingMessage]) -> RecordColumns:
    """The same records as the pipeline hands them over: one column per field and per-row header."""
    return RecordColumns(
        TOPIC,
        [m.value for m in messages],
        [m.key for m in messages],
        [m.row for m in messages],
        row_headers={"source.row": [str(m.row).encode() for m in messages]},
    )


def batch(records: int = 2, dlq: int = 1, layout: Layout = list) -> BatchToPublish:
    return BatchToPublish(
        layout([record(row) for row in range(1, records + 1)]),
        [dlq_record(row) for row in range(records + 1, records + dlq + 1)],
        checkpoint,
        on_too_large=moved_to_dlq,
    )


def kafka_exception(code: int, **flags: bool) -> KafkaException:
    return KafkaException(KafkaError(code, "scripted", **flags))


def too_large(row: int) -> Refusal:
    def refuse(message: Produced) -> KafkaError | None:
        if message.topic == TOPIC and message.row == str(row):
            return KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Broker: Message size too large")
        return None

    return refuse


@pytest.fixture(params=[list, as_columns], ids=["messages", "columns"])
def layout(request: pytest.FixtureRequest) -> Layout:
    """Records as a list of messages, or as :class:`RecordColumns` (what the pipeline hands over)."""
    layout: Layout = request.param
    return layout


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
def publisher(producer: FakeProducer) -> TransactionalPublisher:
    return TransactionalPublisher(producer, transactional_id=TXN_ID, max_attempts=3, timeout_s=5)  # type: ignore[arg-type]


# -- the happy path ----------------------------------------------------------------------------


def test_a_batch_commits_its_records_dlq_records_and_checkpoint_in_one_transaction(
    producer: FakeProducer, publisher: TransactionalPublisher, layout: Layout
) -> None:
    result = publisher.publish(batch(records=2, dlq=1, layout=layout))
    assert producer.calls == [
        "begin_transaction",
        "produce",
        "produce",
        "produce",
        "produce",
        "commit_transaction",
    ]
    assert producer.topics() == [TOPIC, TOPIC, DLQ, CHECKPOINTS]
    assert (result.published, result.dlq, result.attempts, result.moved_to_dlq) == (2, 1, 1, [])


def test_records_keep_their_key_headers_and_partition(
    producer: FakeProducer, publisher: TransactionalPublisher, layout: Layout
) -> None:
    publisher.publish(batch(records=1, dlq=0, layout=layout))
    first, ckpt = producer.committed[0]
    assert (first.key, first.headers, first.partition) == (b"ORD-1", [("source.row", b"1")], -1)
    assert (ckpt.key, ckpt.partition) == (b"file-key", 0)


def test_before_commit_sees_the_batch_after_everything_is_produced(
    producer: FakeProducer, publisher: TransactionalPublisher
) -> None:
    seen: list[list[str]] = []
    publisher.publish(batch(), before_commit=lambda b: seen.append(list(producer.calls)))
    assert seen == [["begin_transaction", "produce", "produce", "produce", "produce"]]


def test_init_registers_the_transactional_id(
    producer: FakeProducer, publisher: TransactionalPublisher
) -> None:
    publisher.init()
    assert producer.calls == ["init_transactions"]


def test_close_flushes_the_producer(producer: FakeProducer, publisher: TransactionalPublisher) -> None:
    publisher.close()
    assert producer.calls == ["flush"]


# -- abortable errors --------------------------------------------------------------------------


def test_an_abortable_commit_error_aborts_and_retries_the_whole_batch(
    producer: FakeProducer, publisher: TransactionalPublisher
) -> None:
    producer.script("commit_transaction", kafka_exception(KafkaError._MSG_TIMED_OUT, txn_requires_abort=True))
    result = publisher.publish(batch(records=2, dlq=1))
    assert producer.calls.count("begin_transaction") == 2
    assert producer.calls.count("abort_transaction") == 1
    assert producer.topics() == [TOPIC, TOPIC, DLQ, CHECKPOINTS]
    assert result.attempts == 2


def test_a_batch_that_keeps_failing_raises_publish_error_after_max_attempts(
    producer: FakeProducer, publisher: TransactionalPublisher
) -> None:
    abortable = [kafka_exception(KafkaError._MSG_TIMED_OUT, txn_requires_abort=True) for _ in range(3)]
    producer.script("commit_transaction", *abortable)
    with pytest.raises(PublishError, match=re.escape(f"{TXN_ID} failed 3 times")) as raised:
        publisher.publish(batch())
    assert not isinstance(raised.value, PermanentError)
    assert producer.calls.count("abort_transaction") == 3
    assert producer.committed == []


def test_an_abortable_error_at_produce_time_aborts_and_retries(
    producer: FakeProducer, publisher: TransactionalPublisher, layout: Layout
) -> None:
    producer.script("produce", kafka_exception(KafkaError._STATE, txn_requires_abort=True))
    result = publisher.publish(batch(layout=layout))
    assert result.attempts == 2
    assert producer.topics() == [TOPIC, TOPIC, DLQ, CHECKPOINTS]


# -- fatal errors and fencing ------------------------------------------------------------------


FENCED = [
    pytest.param(KafkaError._FENCED, {"fatal": True}, id="_FENCED"),
    pytest.param(KafkaError.PRODUCER_FENCED, {"fatal": True}, id="PRODUCER_FENCED"),
    pytest.param(
        KafkaError.INVALID_PRODUCER_EPOCH, {"txn_requires_abort": True}, id="INVALID_PRODUCER_EPOCH"
    ),
]


@pytest.mark.parametrize(("code", "flags"), FENCED)
def test_a_fenced_commit_raises_producer_fenced_without_retry(
    producer: FakeProducer, publisher: TransactionalPublisher, code: int, flags: dict[str, bool]
) -> None:
    producer.script("commit_transaction", kafka_exception(code, **flags))
    with pytest.raises(ProducerFenced, match=re.escape(TXN_ID)) as raised:
        publisher.publish(batch())
    assert isinstance(raised.value, PermanentError)
    assert producer.calls.count("begin_transaction") == 1
    assert producer.committed == []


@pytest.mark.parametrize(("code", "flags"), FENCED)
def test_a_fenced_produce_raises_producer_fenced(
    producer: FakeProducer,
    publisher: TransactionalPublisher,
    layout: Layout,
    code: int,
    flags: dict[str, bool],
) -> None:
    producer.script("produce", kafka_exception(code, **flags))
    with pytest.raises(ProducerFenced):
        publisher.publish(batch(layout=layout))
    assert producer.calls.count("begin_transaction") == 1


def test_init_transactions_fenced_raises_producer_fenced(
    producer: FakeProducer, publisher: TransactionalPublisher
) -> None:
    producer.script("init_transactions", kafka_exception(KafkaError._FENCED, fatal=True))
    with pytest.raises(ProducerFenced, match="initialise transactions"):
        publisher.init()


def test_a_fatal_error_raises_publish_error_without_retry(
    producer: FakeProducer, publisher: TransactionalPublisher
) -> None:
    producer.script("commit_transaction", kafka_exception(KafkaError._INCONSISTENT, fatal=True))
    with pytest.raises(
        PublishError, match=re.escape(f"{TXN_ID} could not commit a batch (fatal error _INCONSISTENT")
    ):
        publisher.publish(batch())
    assert producer.calls.count("begin_transaction") == 1


def test_a_non_retriable_non_abortable_error_raises_publish_error_without_retry(
    producer: FakeProducer, publisher: TransactionalPublisher
) -> None:
    producer.script("begin_transaction", kafka_exception(KafkaError._STATE))
    with pytest.raises(PublishError, match="non-retriable error _STATE"):
        publisher.publish(batch())
    assert producer.calls == ["begin_transaction"]


# -- retriable commit errors and a full queue --------------------------------------------------


def test_a_retriable_commit_error_retries_the_commit_in_the_same_transaction(
    producer: FakeProducer, publisher: TransactionalPublisher
) -> None:
    producer.script("commit_transaction", kafka_exception(KafkaError._TIMED_OUT, retriable=True))
    result = publisher.publish(batch())
    assert producer.calls.count("begin_transaction") == 1
    assert producer.calls.count("commit_transaction") == 2
    assert "abort_transaction" not in producer.calls
    assert result.attempts == 1


def test_a_full_local_queue_is_polled_until_the_record_fits(
    producer: FakeProducer, publisher: TransactionalPublisher, layout: Layout
) -> None:
    producer.script("produce", BufferError("Local: Queue full"), BufferError("Local: Queue full"))
    result = publisher.publish(batch(records=2, dlq=1, layout=layout))
    assert producer.calls[:5] == ["begin_transaction", "produce", "poll", "produce", "poll"]
    assert producer.topics() == [TOPIC, TOPIC, DLQ, CHECKPOINTS]
    assert result.attempts == 1


# -- records too large for the broker ----------------------------------------------------------


def test_a_record_refused_at_produce_as_too_large_moves_to_the_dlq_and_the_batch_retries(
    producer: FakeProducer, publisher: TransactionalPublisher, layout: Layout
) -> None:
    producer.refuse_at_produce = too_large(row=2)
    result = publisher.publish(batch(records=3, dlq=1, layout=layout))
    assert producer.calls.count("abort_transaction") == 1
    assert [(m.topic, m.row) for m in producer.committed[0]] == [
        (TOPIC, "1"),
        (TOPIC, "3"),
        (DLQ, "4"),
        (DLQ, "2"),
        (CHECKPOINTS, None),
    ]
    assert (result.published, result.dlq, result.attempts, result.moved_to_dlq) == (2, 2, 2, [2])


def bare_columns(messages: list[OutgoingMessage]) -> RecordColumns:
    return RecordColumns(
        TOPIC, [m.value for m in messages], [m.key for m in messages], [m.row for m in messages]
    )


@pytest.mark.parametrize("bare", [list, bare_columns], ids=["messages", "columns"])
def test_a_refused_record_is_found_by_the_row_it_carries_not_by_a_header(
    producer: FakeProducer, publisher: TransactionalPublisher, bare: Layout
) -> None:
    records = [OutgoingMessage(TOPIC, b"v", f"ORD-{row}".encode(), None, row=row) for row in (1, 2, 3)]

    def refuse_the_second(message: Produced) -> KafkaError | None:
        if (message.topic, message.key) == (TOPIC, b"ORD-2"):
            return KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Broker: Message size too large")
        return None

    producer.refuse_at_produce = refuse_the_second
    result = publisher.publish(BatchToPublish(bare(records), [], checkpoint, on_too_large=moved_to_dlq))
    assert (result.published, result.dlq, result.moved_to_dlq) == (2, 1, [2])
    assert [(m.topic, m.key) for m in producer.committed[0][:3]] == [
        (TOPIC, b"ORD-1"),
        (TOPIC, b"ORD-3"),
        (DLQ, b"ORD-2"),
    ]


def test_a_batch_the_broker_refuses_as_too_large_is_retried_then_fails_with_nothing_committed(
    producer: FakeProducer, publisher: TransactionalPublisher, layout: Layout
) -> None:
    """A topic whose limit is below the producer's: the broker refuses the request, and nothing
    says which record (see the module docstring); the task fails, nothing of the batch visible."""
    producer.refuse_at_delivery = too_large(row=1)
    with pytest.raises(PublishError, match="failed 3 times"):
        publisher.publish(batch(records=3, dlq=1, layout=layout))
    assert producer.calls.count("abort_transaction") == 3
    assert producer.committed == []


def test_records_are_produced_without_delivery_reports(
    producer: FakeProducer, publisher: TransactionalPublisher, layout: Layout
) -> None:
    """The commit decides whether every record arrived; a callback per record would only cost."""
    producer.script("commit_transaction", kafka_exception(KafkaError._MSG_TIMED_OUT, txn_requires_abort=True))
    publisher.publish(batch(records=3, dlq=1, layout=layout))
    assert producer.reports_asked == [False] * 10  # both attempts: 3 records, 1 DLQ, 1 checkpoint


def test_the_dlq_replacement_says_why_the_record_was_moved(
    producer: FakeProducer, publisher: TransactionalPublisher
) -> None:
    producer.refuse_at_produce = too_large(row=1)
    publisher.publish(batch(records=1, dlq=0))
    replacement = producer.committed[0][0]
    assert (replacement.topic, replacement.value) == (DLQ, b"record too large for the broker")


def test_the_retried_checkpoint_counts_the_moved_record_as_dlq(
    producer: FakeProducer, publisher: TransactionalPublisher, layout: Layout
) -> None:
    producer.refuse_at_produce = too_large(row=2)
    publisher.publish(batch(records=3, dlq=1, layout=layout))
    ckpt = producer.committed[0][-1]
    assert json.loads(ckpt.value) == {"published": 2, "dlq": 2}


def test_every_record_refused_at_produce_as_too_large_moves_to_the_dlq(
    producer: FakeProducer, publisher: TransactionalPublisher, layout: Layout
) -> None:
    producer.refuse_at_produce = lambda m: too_large(1)(m) or too_large(2)(m) or too_large(3)(m)
    result = publisher.publish(batch(records=4, dlq=0, layout=layout))
    assert (result.published, result.dlq, sorted(result.moved_to_dlq)) == (1, 3, [1, 2, 3])


def test_a_too_large_record_without_a_replacement_fails_the_batch(
    producer: FakeProducer, publisher: TransactionalPublisher
) -> None:
    producer.refuse_at_produce = too_large(row=1)
    no_replacement = BatchToPublish([record(1)], [], checkpoint)
    with pytest.raises(PublishError):
        publisher.publish(no_replacement)
    assert producer.committed == []


# -- records as columns (what the pipeline hands over) -----------------------------------------

COMMON: Headers = [("event_type", b"OrderCreated"), ("dag_id", b"ingest")]


def three_columns() -> RecordColumns:
    return RecordColumns(
        TOPIC,
        [b"a", b"b", b"c"],
        [b"K4", None, b"K7"],
        [4, 5, 7],
        common_headers=COMMON,
        row_headers={"source.row": [b"4", b"5", b"7"], "correlation_id": [b"x-4", b"x-5", b"x-7"]},
    )


def test_record_columns_read_as_messages_with_the_common_headers_first() -> None:
    expected = [
        OutgoingMessage(
            TOPIC, value, key, [*COMMON, ("source.row", row), ("correlation_id", cid)], -1, number
        )
        for value, key, row, cid, number in [
            (b"a", b"K4", b"4", b"x-4", 4),
            (b"b", None, b"5", b"x-5", 5),
            (b"c", b"K7", b"7", b"x-7", 7),
        ]
    ]
    records = three_columns()
    assert len(records) == 3
    assert list(records) == expected
    assert [records[0], records[1], records[-1]] == expected
    assert records[1:] == expected[1:]


def test_record_columns_are_produced_with_the_headers_they_read_as(
    producer: FakeProducer, publisher: TransactionalPublisher
) -> None:
    publisher.publish(BatchToPublish(three_columns(), [], checkpoint))
    *produced, ckpt = producer.committed[0]
    assert [(m.topic, m.value, m.key, m.headers, m.partition) for m in produced] == [
        (m.topic, m.value, m.key, m.headers, m.partition) for m in three_columns()
    ]
    assert json.loads(ckpt.value) == {"published": 3, "dlq": 0}


def test_record_columns_give_each_record_its_own_header_list() -> None:
    only_common = RecordColumns(TOPIC, [b"a", b"b"], [None, None], [1, 2], common_headers=COMMON)
    lists = list(only_common.header_lists())
    assert lists == [COMMON, COMMON]
    assert lists[0] is not lists[1]
    assert list(RecordColumns(TOPIC, [b"a"], [None], [1]).header_lists()) == [None]


def test_record_columns_without_some_rows_keep_the_others_in_order() -> None:
    kept = three_columns().without({5})
    assert list(kept) == [three_columns()[0], three_columns()[2]]


def test_record_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="different lengths"):
        RecordColumns(TOPIC, [b"a", b"b"], [None], [1, 2])
    with pytest.raises(ValueError, match="different lengths"):
        RecordColumns(TOPIC, [b"a"], [None], [1], row_headers={"source.row": []})


# -- the error budget --------------------------------------------------------------------------


def test_budget_exceeded_before_commit_aborts_the_transaction_and_propagates(
    producer: FakeProducer, publisher: TransactionalPublisher
) -> None:
    def over_budget(_batch: BatchToPublish) -> None:
        raise BudgetExceeded("Error budget exceeded for shop.order")

    with pytest.raises(BudgetExceeded, match=re.escape("shop.order")):
        publisher.publish(batch(), before_commit=over_budget)
    assert producer.calls[-1] == "abort_transaction"
    assert "commit_transaction" not in producer.calls
    assert producer.committed == []


def test_budget_exceeded_stays_the_error_when_the_broker_refuses_the_abort(
    producer: FakeProducer, publisher: TransactionalPublisher
) -> None:
    def over_budget(_batch: BatchToPublish) -> None:
        raise BudgetExceeded("Error budget exceeded for shop.order")

    producer.script("abort_transaction", kafka_exception(KafkaError.INVALID_TXN_STATE, fatal=True))
    with pytest.raises(BudgetExceeded, match=re.escape("shop.order")):
        publisher.publish(batch(), before_commit=over_budget)
    assert "commit_transaction" not in producer.calls
    assert producer.committed == []


# -- producer configuration --------------------------------------------------------------------


def test_producer_config_starts_from_the_throughput_defaults() -> None:
    config = producer_config({"bootstrap.servers": "kafka:9092"}, TXN_ID)
    assert config.items() >= PRODUCER_DEFAULTS.items()
    assert config["bootstrap.servers"] == "kafka:9092"


def test_the_connection_overrides_the_defaults() -> None:
    assert producer_config({"linger.ms": 5}, TXN_ID)["linger.ms"] == 5


def test_operator_overrides_override_the_connection() -> None:
    config = producer_config({"linger.ms": 5, "compression.type": "zstd"}, TXN_ID, {"linger.ms": 50})
    assert (config["linger.ms"], config["compression.type"]) == (50, "zstd")


@pytest.mark.parametrize(
    ("key", "attempted", "required"),
    [
        ("enable.idempotence", False, True),
        ("acks", "1", "all"),
        ("max.in.flight.requests.per.connection", 20, 5),
    ],
)
def test_what_exactly_once_needs_cannot_be_overridden(key: str, attempted: Any, required: Any) -> None:
    config = producer_config({key: attempted}, TXN_ID, {key: attempted})
    assert config[key] == required


def test_the_transactional_id_is_the_one_given() -> None:
    config = producer_config(
        {"transactional.id": "from-connection"}, TXN_ID, {"transactional.id": "override"}
    )
    assert config["transactional.id"] == TXN_ID


def test_consumer_only_keys_are_dropped() -> None:
    consumer_keys = {"group.id": "g", "auto.offset.reset": "earliest", "enable.auto.commit": False}
    config = producer_config({**consumer_keys, "isolation.level": "read_committed"}, TXN_ID)
    assert not {"group.id", "auto.offset.reset", "enable.auto.commit", "isolation.level"} & config.keys()
