"""Task metrics: names per topic, librdkafka statistics as gauges, and a sink that can never fail."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from kafka_ingest.runtime import metrics
from kafka_ingest.runtime.metrics import TopicMetrics, metric_prefix, producer_gauges

TOPIC = "shopping.order.created"

#: A trimmed librdkafka statistics object (STATISTICS.md) of a producer with two brokers: the
#: bootstrap pseudo-broker (nodeid -1) must not count. rtt values are microseconds.
STATS: dict[str, Any] = {
    "name": "rdkafka#producer-1",
    "client_id": "kafka-ingest",
    "type": "producer",
    "ts": 5_016_483_227_792,
    "time": 1_768_435_200,
    "age": 60_000_000,
    "replyq": 0,
    "msg_cnt": 120_000,
    "msg_size": 48_000_000,
    "msg_max": 500_000,
    "msg_size_max": 1_073_741_824,
    "tx": 1_500,
    "tx_bytes": 95_000_000,
    "txmsgs": 400_000,
    "txmsg_bytes": 160_000_000,
    "brokers": {
        "kafka-1:9092/1": {
            "name": "kafka-1:9092/1",
            "nodeid": 1,
            "state": "UP",
            "txerrs": 2,
            "txretries": 5,
            "outbuf_msg_cnt": 10,
            "rtt": {"min": 800, "max": 9_000, "avg": 2_000, "p99": 8_000, "cnt": 700},
            "int_latency": {"avg": 150, "cnt": 700},
        },
        "kafka-2:9092/2": {
            "name": "kafka-2:9092/2",
            "nodeid": 2,
            "state": "UP",
            "txerrs": 1,
            "txretries": 0,
            "rtt": {"min": 900, "max": 12_000, "avg": 4_000, "p99": 11_000, "cnt": 800},
        },
        "kafka-1:9092/bootstrap": {
            "name": "kafka-1:9092/bootstrap",
            "nodeid": -1,
            "state": "UP",
            "txerrs": 99,
            "txretries": 99,
            "rtt": {"min": 0, "max": 0, "avg": 99_000, "cnt": 3},
        },
    },
    "topics": {
        TOPIC: {
            "topic": TOPIC,
            "batchsize": {"min": 100, "max": 900_000, "avg": 300_000, "cnt": 900},
            "batchcnt": {"avg": 700, "cnt": 900},
            "partitions": {},
        },
        "_kafka_ingest.checkpoints": {
            "topic": "_kafka_ingest.checkpoints",
            "batchsize": {"min": 200, "max": 200, "avg": 200, "cnt": 100},
        },
        "shopping.order.created.dlq": {
            "topic": "shopping.order.created.dlq",
            "batchsize": {"avg": 0, "cnt": 0},
        },
    },
}


class RecordingSink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, float]] = []

    def incr(self, stat: str, count: int = 1, rate: float = 1) -> None:
        self.sent.append(("incr", stat, count))

    def gauge(self, stat: str, value: float, rate: float = 1, delta: bool = False) -> None:
        self.sent.append(("gauge", stat, value))

    def timing(self, stat: str, dt: Any) -> None:
        self.sent.append(("timing", stat, dt))


class BrokenSink:
    def incr(self, stat: str, count: int = 1, rate: float = 1) -> None:
        raise OSError("statsd: connection refused")

    gauge = timing = incr


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The monotonic clock the metrics read; append the next readings."""
    readings: list[float] = []
    monkeypatch.setattr(metrics.time, "monotonic", lambda: readings.pop(0))
    return readings


# -- producer gauges from librdkafka statistics ------------------------------------------------


def test_producer_gauges_sum_errors_and_retries_of_real_brokers_only() -> None:
    gauges = producer_gauges(STATS, send_rate=0.0)
    assert (gauges["errors"], gauges["retries"]) == (3.0, 5.0)


def test_request_latency_is_the_mean_broker_rtt_in_milliseconds() -> None:
    assert producer_gauges(STATS, send_rate=0.0)["request_latency_ms"] == pytest.approx(3.0)


def test_batch_size_is_the_mean_over_topics_that_sent_batches() -> None:
    assert producer_gauges(STATS, send_rate=0.0)["batch_size_avg"] == pytest.approx(150_100.0)


def test_buffer_available_is_the_free_room_in_the_local_queue() -> None:
    assert producer_gauges(STATS, send_rate=0.0)["buffer_available"] == 380_000.0


def test_producer_gauges_pass_the_send_rate_through() -> None:
    assert producer_gauges(STATS, send_rate=1234.5)["send_rate"] == 1234.5


def test_a_producer_that_has_sent_nothing_yet_reports_zeros() -> None:
    fresh = {"msg_cnt": 0, "msg_max": 500_000, "txmsgs": 0, "brokers": {}, "topics": {}}
    assert producer_gauges(fresh, send_rate=0.0) == {
        "send_rate": 0.0,
        "errors": 0.0,
        "retries": 0.0,
        "request_latency_ms": 0.0,
        "batch_size_avg": 0.0,
        "buffer_available": 500_000.0,
    }


def test_send_rate_is_messages_per_second_between_two_statistics(clock: list[float]) -> None:
    sink = RecordingSink()
    topic_metrics = TopicMetrics(TOPIC, sink)
    clock.extend([100.0, 110.0])
    topic_metrics.record_librdkafka_stats(json.dumps(STATS | {"txmsgs": 400_000}))
    topic_metrics.record_librdkafka_stats(json.dumps(STATS | {"txmsgs": 650_000}))
    rates = [value for _, stat, value in sink.sent if stat.endswith(".producer.send_rate")]
    assert rates == [0.0, 25_000.0]


def test_statistics_become_producer_gauges_named_for_the_topic(clock: list[float]) -> None:
    sink = RecordingSink()
    clock.append(100.0)
    TopicMetrics(TOPIC, sink).record_librdkafka_stats(json.dumps(STATS))
    assert {(kind, stat) for kind, stat, _ in sink.sent} == {
        ("gauge", f"kafka_ingest.shopping_order_created.producer.{name}")
        for name in (
            "send_rate",
            "errors",
            "retries",
            "request_latency_ms",
            "batch_size_avg",
            "buffer_available",
        )
    }


def test_unparsable_statistics_are_ignored() -> None:
    sink = RecordingSink()
    TopicMetrics(TOPIC, sink).record_librdkafka_stats("{not json")
    assert sink.sent == []


@pytest.mark.parametrize("payload", ["[]", '{"brokers": []}', '{"msg_max": "n/a"}'])
def test_statistics_of_an_unexpected_shape_are_ignored(payload: str) -> None:
    TopicMetrics(TOPIC, RecordingSink()).record_librdkafka_stats(payload)


# -- names and the sink ------------------------------------------------------------------------


def test_metric_names_put_the_topic_in_one_path_segment() -> None:
    assert metric_prefix(TOPIC) == "kafka_ingest.shopping_order_created"


def test_counters_gauges_and_timings_are_sent_under_the_topics_prefix() -> None:
    sink = RecordingSink()
    topic_metrics = TopicMetrics(TOPIC, sink)
    topic_metrics.incr("rows_published", 7)
    topic_metrics.gauge("dlq_ratio", 0.25)
    topic_metrics.timing("commit_latency", 0.5)
    assert sink.sent == [
        ("incr", "kafka_ingest.shopping_order_created.rows_published", 7),
        ("gauge", "kafka_ingest.shopping_order_created.dlq_ratio", 0.25),
        ("timing", "kafka_ingest.shopping_order_created.commit_latency", 500.0),
    ]


def test_a_zero_count_is_not_sent() -> None:
    sink = RecordingSink()
    TopicMetrics(TOPIC, sink).incr("rows_skipped", 0)
    assert sink.sent == []


def test_a_failing_sink_never_fails_ingestion() -> None:
    topic_metrics = TopicMetrics(TOPIC, BrokenSink())  # type: ignore[arg-type]
    topic_metrics.incr("rows_read", 10)
    topic_metrics.gauge("dlq_ratio", 0.1)
    topic_metrics.timing("commit_latency", 0.2)
    topic_metrics.record_librdkafka_stats(json.dumps(STATS))


def test_a_failing_sink_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    topic_metrics = TopicMetrics(TOPIC, BrokenSink())  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="kafka_ingest.runtime.metrics"):
        for _ in range(5):
            topic_metrics.incr("rows_read", 10)
    (warning,) = caplog.records
    assert "connection refused" in warning.getMessage()
    assert "ingestion continues" in warning.getMessage()
