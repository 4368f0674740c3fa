"""StatsD is down or its port is closed: ingestion does not notice.

Airflow's metrics path is exercised as a task process has it: a child process with
``AIRFLOW__METRICS__STATSD_*`` pointing at a port, ``stats.initialize`` as the task runner calls
it, then the operator, whose :class:`~kafka_ingest.runtime.metrics.TopicMetrics` sends through Airflow's
``Stats``. A TCP StatsD client whose every send fails covers :class:`TopicMetrics`' own guard.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import statsd
from helpers import (
    Attempt,
    Child,
    assert_exactly_once,
    assert_reconciles,
    operator_in_task_process,
    provision_operator_topics,
    run_attempt,
)
from ingest_helpers import DATE, RUN, Endpoints
from proxy import _free_port

from kafka_ingest.batches import RunInfo
from kafka_ingest.testing.samples import DayManifest, write_day

pytestmark = [pytest.mark.integration, pytest.mark.faults]

ROWS, BATCH = 2000, 200


@pytest.fixture
def manifest(tmp_path: Path) -> DayManifest:
    return write_day(tmp_path, "orders", DATE, rows=ROWS, formats=("csv",), bad_ratio=0.04, seed=41)


def task_environment(endpoints: Endpoints, statsd_port: int) -> dict[str, str]:
    kafka = {"conn_type": "kafka", "extra": {"bootstrap.servers": endpoints.bootstrap}}
    registry = {"conn_type": "schema_registry", "host": endpoints.registry_url}
    return {
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(statsd_port),
        "AIRFLOW_CONN_FAULTS_KAFKA": json.dumps(kafka),
        "AIRFLOW_CONN_FAULTS_REGISTRY": json.dumps(registry),
    }


def operator_kwargs(endpoints: Endpoints, topic: str, manifest: DayManifest) -> dict[str, Any]:
    return {
        "extract_path": manifest.files,
        "extract_date": DATE,
        "topic": topic,
        "kafka_config_id": "faults_kafka",
        "schema_registry_conn_id": "faults_registry",
        "checkpoint_topic": endpoints.checkpoint_topic,
        "batch_size": BATCH,
        "max_dlq_ratio": None,
    }


def run_task(children: Any, endpoints: Endpoints, topic: str, manifest: DayManifest, port: int) -> Child:
    run = RunInfo(RUN.dag_id, "attempt-1", RUN.task_id, RUN.map_index, 1)
    kwargs = operator_kwargs(endpoints, topic, manifest)
    provision_operator_topics(kwargs)
    return Child(children, operator_in_task_process, task_environment(endpoints, port), kwargs, run)


def assert_task_succeeded(child: Child) -> dict[str, Any]:
    assert child.wait() == 0, child.result()
    result = child.result()
    assert result is not None
    assert result[0] == "ok", result
    return result[1]


def test_a_closed_statsd_port_does_not_affect_ingestion(
    endpoints: Endpoints, topic: str, manifest: DayManifest, children: Any
) -> None:
    closed = _free_port()  # nothing listens there: every datagram earns an ICMP port unreachable

    result = assert_task_succeeded(run_task(children, endpoints, topic, manifest, closed))

    assert result["backend"] == "SafeStatsdLogger", (
        "metrics must really go out through Airflow's StatsD client"
    )
    assert tuple(result["address"]) == ("127.0.0.1", closed)
    outcome = assert_exactly_once(endpoints, "orders", topic, manifest)
    assert_reconciles(outcome, result["summary"], "attempt-1", manifest)


def test_statsd_going_down_mid_run_does_not_affect_ingestion(
    endpoints: Endpoints, topic: str, manifest: DayManifest, children: Any
) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(60)
    port = receiver.getsockname()[1]

    child = run_task(children, endpoints, topic, manifest, port)
    received = b""
    while b"batches_committed" not in received:  # StatsD is up until the first batch committed
        received += receiver.recv(65536) + b"\n"
    receiver.close()
    result = assert_task_succeeded(child)

    assert f"airflow.kafka_ingest.{topic.replace('.', '_')}.rows_read".encode() in received
    outcome = assert_exactly_once(endpoints, "orders", topic, manifest)
    assert_reconciles(outcome, result["summary"], "attempt-1", manifest)


def test_topic_metrics_swallow_a_statsd_client_whose_every_send_fails(
    endpoints: Endpoints, topic: str, manifest: DayManifest, caplog: pytest.LogCaptureFixture
) -> None:
    class RefusedTcpStatsd(statsd.TCPStatsClient):
        """A TCP StatsD client to a closed port: every metric raises ConnectionRefusedError."""

        def _send(self, data: str) -> None:
            self.connect()

    sink = RefusedTcpStatsd("127.0.0.1", _free_port(), timeout=1)

    summary = run_attempt(Attempt(endpoints, topic, tuple(manifest.files), "attempt-1"), sink=sink)

    outcome = assert_exactly_once(endpoints, "orders", topic, manifest)
    assert_reconciles(outcome, summary, "attempt-1", manifest)
    warnings = [r for r in caplog.records if "StatsD metric could not be sent" in r.getMessage()]
    assert len(warnings) == 1, "one warning per task, not one per metric"
