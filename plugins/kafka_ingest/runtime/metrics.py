"""Task metrics for StatsD, named per topic, that can never fail a task.

Names are ``kafka_ingest.<topic>.<metric>`` with the topic's dots turned into underscores (so
``shopping.order.created`` is one path segment); Airflow's ``[metrics]`` prefix (``airflow.``)
comes in front when the metrics go through Airflow's StatsD client. The README lists every name.

librdkafka's statistics (``statistics.interval.ms``) are turned into gauges for the producer's
internals: send rate, errors, retries, request latency, batch size and free queue space.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

log = logging.getLogger(__name__)


class StatsSink(Protocol):
    """The subset of a StatsD client we use (Airflow's ``Stats`` and ``statsd.StatsClient`` fit)."""

    def incr(self, stat: str, count: int = 1, rate: float = 1) -> Any: ...

    def gauge(self, stat: str, value: float, rate: float = 1, delta: bool = False) -> Any: ...

    def timing(self, stat: str, dt: Any) -> Any: ...


class NullSink:
    """Discards everything: for dry runs, benchmarks and tests that do not look at metrics."""

    def incr(self, stat: str, count: int = 1, rate: float = 1) -> None:
        return None

    def gauge(self, stat: str, value: float, rate: float = 1, delta: bool = False) -> None:
        return None

    def timing(self, stat: str, dt: Any) -> None:
        return None


def airflow_stats_sink() -> StatsSink:
    """Airflow's own StatsD client, configured by the deployment's ``[metrics]`` section."""
    from airflow.sdk.observability.stats import Stats

    return Stats


def metric_prefix(topic: str) -> str:
    return "kafka_ingest." + topic.replace(".", "_")


class TopicMetrics:
    """Counters, gauges and timers of one topic's ingestion. Every call swallows its errors."""

    def __init__(self, topic: str, sink: StatsSink) -> None:
        self._prefix = metric_prefix(topic)
        self._sink = sink
        self._warned = False
        self._last_stats: tuple[float, int] | None = None

    def incr(self, name: str, count: int = 1) -> None:
        if count:
            self._safe(self._sink.incr, f"{self._prefix}.{name}", count)

    def gauge(self, name: str, value: float) -> None:
        self._safe(self._sink.gauge, f"{self._prefix}.{name}", value)

    def timing(self, name: str, seconds: float) -> None:
        self._safe(self._sink.timing, f"{self._prefix}.{name}", seconds * 1000.0)

    def record_librdkafka_stats(self, stats_json: str) -> None:
        """``stats_cb`` for the producer: librdkafka's statistics JSON → producer gauges.

        It runs inside the producer's poll/flush/commit, which re-raise its exceptions: statistics
        of an unexpected shape are dropped rather than allowed to fail a commit.
        """
        try:
            stats = json.loads(stats_json)
            gauges = producer_gauges(stats, self._send_rate(stats))
        except Exception:
            log.debug("Unexpected librdkafka statistics ignored.", exc_info=True)
            return
        for name, value in gauges.items():
            self.gauge(f"producer.{name}", value)

    def _send_rate(self, stats: Mapping[str, Any]) -> float:
        now, sent = time.monotonic(), int(stats.get("txmsgs", 0))
        previous, self._last_stats = self._last_stats, (now, sent)
        if previous is None or now <= previous[0]:
            return 0.0
        return max(0.0, (sent - previous[1]) / (now - previous[0]))

    def _safe(self, method: Any, *args: Any) -> None:
        try:
            method(*args)
        except Exception as exc:  # a metrics outage must never fail ingestion
            if not self._warned:
                self._warned = True
                log.warning("StatsD metric could not be sent (%s); ingestion continues.", exc)


def producer_gauges(stats: Mapping[str, Any], send_rate: float) -> dict[str, float]:
    """The producer internals worth watching, from one librdkafka statistics object."""
    brokers = [b for b in stats.get("brokers", {}).values() if b.get("nodeid", -1) >= 0]
    rtts = [b["rtt"]["avg"] for b in brokers if b.get("rtt", {}).get("cnt", 0)]
    batch_sizes = [
        t["batchsize"]["avg"]
        for t in stats.get("topics", {}).values()
        if t.get("batchsize", {}).get("cnt", 0)
    ]
    return {
        "send_rate": send_rate,
        "errors": float(sum(b.get("txerrs", 0) for b in brokers)),
        "retries": float(sum(b.get("txretries", 0) for b in brokers)),
        "request_latency_ms": (sum(rtts) / len(rtts) / 1000.0) if rtts else 0.0,
        "batch_size_avg": (sum(batch_sizes) / len(batch_sizes)) if batch_sizes else 0.0,
        "buffer_available": float(max(0, int(stats.get("msg_max", 0)) - int(stats.get("msg_cnt", 0)))),
    }
