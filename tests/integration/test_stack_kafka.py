"""Specifications for the local Kafka broker: transactions behave as the publisher relies on."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_ingest.publish.config import producer_config

pytestmark = pytest.mark.integration

COMMITTED = [b"committed-0", b"committed-1", b"committed-2"]
ABORTED = [b"aborted-0", b"aborted-1"]
PID_RETRY_S = 0.5  # librdkafka's fixed retry timer for acquiring a producer id


@pytest.fixture
def topic(kafka_bootstrap: str, unique_topic: Callable[[str], str]) -> Iterator[str]:
    name = unique_topic("txn")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(timeout=30)
    yield name
    admin.delete_topics([name])[name].result(timeout=30)


def transactional_producer(bootstrap: str, transactional_id: str) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id})
    producer.init_transactions(30)
    return producer


def read_all(bootstrap: str, topic: str, isolation_level: str) -> list[bytes]:
    """Every value up to the end of the topic (the last stable offset for read_committed)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-{isolation_level}",
            "isolation.level": isolation_level,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    try:
        for _ in range(300):
            message = consumer.poll(0.1)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return values
                raise KafkaException(error)
            values.append(message.value() or b"")
        raise AssertionError(f"did not reach the end of {topic} in 30 s; read so far: {values}")
    finally:
        consumer.close()


def publish_committed_then_aborted(bootstrap: str, topic: str, transactional_id: str) -> None:
    producer = transactional_producer(bootstrap, transactional_id)
    producer.begin_transaction()
    for value in COMMITTED:
        producer.produce(topic, value)
    producer.commit_transaction(30)
    producer.begin_transaction()
    for value in ABORTED:
        producer.produce(topic, value)
    producer.flush(30)
    producer.abort_transaction(30)


def test_read_committed_consumer_sees_only_the_committed_batch(
    kafka_bootstrap: str, topic: str, unique_topic: Callable[[str], str]
) -> None:
    publish_committed_then_aborted(kafka_bootstrap, topic, unique_topic("tid"))

    assert read_all(kafka_bootstrap, topic, "read_committed") == COMMITTED


def test_aborted_batch_reached_the_broker_and_is_visible_to_read_uncommitted(
    kafka_bootstrap: str, topic: str, unique_topic: Callable[[str], str]
) -> None:
    publish_committed_then_aborted(kafka_bootstrap, topic, unique_topic("tid"))

    assert read_all(kafka_bootstrap, topic, "read_uncommitted") == COMMITTED + ABORTED


def test_second_producer_with_the_same_transactional_id_fences_the_first(
    kafka_bootstrap: str, topic: str, unique_topic: Callable[[str], str]
) -> None:
    transactional_id = unique_topic("tid")
    first = transactional_producer(kafka_bootstrap, transactional_id)
    first.begin_transaction()
    first.produce(topic, b"from-first")
    first.flush(30)

    second = transactional_producer(kafka_bootstrap, transactional_id)

    first.produce(topic, b"from-first-after-fencing")
    with pytest.raises(KafkaException) as raised:
        first.commit_transaction(30)
    error = raised.value.args[0]
    assert error.fatal(), error
    assert error.code() in {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
    second.begin_transaction()
    second.produce(topic, b"from-second")
    second.commit_transaction(30)
    assert read_all(kafka_bootstrap, topic, "read_committed") == [b"from-second"]


def test_the_publishers_producer_initialises_without_waiting_out_the_pid_retry_timer(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    """librdkafka retries a producer id it could not ask for after a fixed 500 ms; with sparse
    connections that happened in about half of the tries when init_transactions() came soon after
    the producer was made (which it does for every small file). The product's producer settings
    connect at once, so every try takes milliseconds."""
    waits = []
    for attempt in range(12):
        config = producer_config({"bootstrap.servers": kafka_bootstrap}, unique_topic(f"tid{attempt}"))
        producer = Producer(config)
        started = time.monotonic()
        producer.init_transactions(30)
        waits.append(time.monotonic() - started)
        producer.flush(5)
    assert max(waits) < PID_RETRY_S, [round(wait, 3) for wait in waits]
