"""What a consumer sees: count a topic's records to its end, then delete the benchmark's topics."""

from __future__ import annotations

import os
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")


def count_records(topic: str, *, read_committed: bool, timeout_s: float = 300.0) -> int:
    """Records of ``topic`` from the beginning to the end of every partition (0 if it is absent)."""
    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": "kafka-ingest-bench-counter",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
            "fetch.max.bytes": 64 << 20,
            "max.partition.fetch.bytes": 16 << 20,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return 0
        partitions = set(metadata.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        count = 0
        deadline = time.monotonic() + timeout_s
        while partitions:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"counting {topic}: partitions {sorted(partitions)} did not reach their end"
                )
            for message in consumer.consume(num_messages=100_000, timeout=1.0):
                error = message.error()
                if error is None:
                    count += 1
                elif error.code() == KafkaError._PARTITION_EOF:
                    partitions.discard(message.partition())
        return count
    finally:
        consumer.close()


def delete_topics(topics: list[str]) -> None:
    """Best effort: the benchmark's topics are large and used once."""
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for future in admin.delete_topics(topics, operation_timeout=30).values():
        try:
            future.result(timeout=60)
        except Exception:  # already gone, or never created: nothing to clean
            continue
