"""Under the stack's running scheduler (``make up``: PostgreSQL, LocalExecutor or Celery): an
ingestion DAG of the test's own (the production ``build_ingest_dag``, written into the stack's
``test-dags`` bundle by :func:`stack_airflow.stack_dag`), triggered through the REST API, sends its
OpenLineage events over the ``http`` transport to a receiver on loopback and its metrics to the
stack's StatsD, and the ``report`` task's "Run report" link is served by the api-server.

The settings reach the task processes the way they reach any deployment's: from the stack's
Airflow configuration (``scripts/stack-env.sh``), not from the test. The stack's Airflow always
sends lineage over http to ``127.0.0.1:$OPENLINEAGE_PORT``; this test's receiver listens on that
port while it runs. Metrics go to the stack's StatsD (``AIRFLOW__METRICS__STATSD_*``), read back
through its admin port; the topic is the test's own, so the counters are too.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import Receiver, receiver_handler
from lineage_schema import validate_event
from stack_airflow import AirflowServer, StackDag, stack_dag

from kafka_ingest.testing.samples import DayManifest, write_day

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(1500)]

DAY = "2026-01-06"
RUN_TIMEOUT_S = 900  # generous: a loaded 2-core machine ran this 2-file day for over 5 minutes


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> DayManifest:
    return write_day(tmp_path_factory.mktemp("extracts"), "orders", DAY, rows=60, formats=("csv", "jsonl"))


@pytest.fixture(scope="module")
def stack_receiver() -> Iterator[Receiver]:
    """The lineage receiver on the port the stack's Airflow sends to (``OPENLINEAGE_PORT``)."""
    port = int(os.environ["OPENLINEAGE_PORT"])
    receiver = Receiver(url=f"http://127.0.0.1:{port}")
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), receiver_handler(receiver))
    except OSError as exc:
        pytest.fail(f"OPENLINEAGE_PORT {port} is taken ({exc}): another receiver runs", pytrace=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def dag(airflow_server: AirflowServer, manifest: DayManifest) -> Iterator[StackDag]:
    root = Path(manifest.files[0]).parents[2]
    with stack_dag(airflow_server, "test_scheduler_observability", root) as made:
        yield made


@pytest.fixture(scope="module")
def finished_run(dag: StackDag, stack_receiver: Receiver) -> dict[str, Any]:
    """The day, triggered through the REST API (while paused, then unpaused) and waited for."""
    server = dag.server
    run = server.api(
        "POST",
        f"/api/v2/dags/{dag.dag_id}/dagRuns",
        {"logical_date": f"{DAY}T00:00:00Z", "conf": {"max_dlq_ratio": 0.5}},
    )
    dag.set_paused(False)
    path = f"/api/v2/dags/{dag.dag_id}/dagRuns/{quote(run['dag_run_id'], safe='')}"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while (state := server.api("GET", path)["state"]) not in ("success", "failed"):
        assert time.monotonic() < deadline, f"run {run['dag_run_id']} still {state} after {RUN_TIMEOUT_S}s"
        time.sleep(3)
    assert state == "success", dag.task_instances(run["dag_run_id"])
    dag.set_paused(True)
    return dict(run)


def test_publish_events_reach_the_http_receiver_valid_and_complete(
    finished_run: dict[str, Any], stack_receiver: Receiver, manifest: DayManifest, dag: StackDag
) -> None:
    deadline = time.monotonic() + 30  # the listener may send the last event after the state flips
    topic = dag.topic
    lineage_receiver = stack_receiver

    def complete() -> list[dict[str, Any]]:
        return [
            e
            for e in lineage_receiver.events
            if e["eventType"] == "COMPLETE"
            and e["job"]["name"] == f"{dag.dag_id}.publish"
            and e.get("outputs")
            and e["outputs"][0]["name"] == topic
        ]

    while len(complete()) < 2 and time.monotonic() < deadline:
        time.sleep(1)
    events = complete()

    assert len(events) == 2
    for event in lineage_receiver.events:
        validate_event(event)
    assert sorted(e["inputs"][0]["name"] for e in events) == sorted(manifest.files)
    published = sum(e["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] for e in events)
    assert published == len(manifest.published)
    assert all(e["run"]["facets"]["kafkaIngest"]["dryRun"] is False for e in events)


def test_report_link_is_served_by_the_api_server(finished_run: dict[str, Any], dag: StackDag) -> None:
    run_id = quote(finished_run["dag_run_id"], safe="")

    links = dag.server.api("GET", f"/api/v2/dags/{dag.dag_id}/dagRuns/{run_id}/taskInstances/report/links")

    link = links.get("extra_links", links)["Run report"]  # Airflow 3: {"extra_links": {name: url}, ...}
    assert link.endswith("/report.html")
    assert "DLQ by rule" in Path(link.removeprefix("file://")).read_text()


def test_metrics_of_the_scheduled_run_reach_the_stack_statsd(
    finished_run: dict[str, Any], manifest: DayManifest, dag: StackDag
) -> None:
    prefix = f"{os.environ['AIRFLOW__METRICS__STATSD_PREFIX']}.kafka_ingest.{dag.topic.replace('.', '_')}."

    counters = _statsd_counters(prefix)

    assert counters.get("rows_published") == len(manifest.published), counters
    assert counters.get("rows_dlq") == len(manifest.rejected), counters


def _statsd_counters(prefix: str) -> dict[str, int]:
    """The stack StatsD's counters under ``prefix`` (its admin port's ``counters`` command)."""
    with socket.create_connection(("127.0.0.1", int(os.environ["STATSD_ADMIN_PORT"])), timeout=10) as conn:
        conn.sendall(b"counters\n")
        reply = b""
        while not reply.endswith(b"END\n\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk
    return {
        name[len(prefix) :]: int(value)
        for name, value in re.findall(r"'([^']+)': (\d+)", reply.decode())
        if name.startswith(prefix)
    }
