"""Under a real scheduler (``airflow standalone`` of the test's own, LocalExecutor): the production
``ingest_orders`` DAG, triggered through the REST API, sends its OpenLineage events over the
``http`` transport to a receiver on loopback and its metrics to a real statsd_exporter, and the
``report`` task's "Run report" link is served by the api-server.

Everything the test needs from the Airflow it runs against is its REST API, the environment it
starts Airflow with and the DAG id: when the stack runs its own scheduler (PostgreSQL), point
``airflow`` at it instead of ``start_isolated_airflow``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import Exporter, Receiver
from lineage_schema import validate_event

from kafka_ingest.publish.checkpoints import DEFAULT_CHECKPOINT_TOPIC
from kafka_ingest.testing.provision import provision_topics
from kafka_ingest.testing.samples import DayManifest, write_day
from kafka_ingest.topics.orders import ORDERS

AirflowServer = Any  # tests/conftest.py's (url, token(), api())

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(1500)]

DAG_ID = "ingest_orders"
DAY = "2026-01-06"
RUN_TIMEOUT_S = 900  # generous: a loaded 2-core machine ran this 2-file day for over 5 minutes


@pytest.fixture(scope="module")
def suffix() -> str:
    return f".it-obs-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> DayManifest:
    return write_day(tmp_path_factory.mktemp("extracts"), "orders", DAY, rows=60, formats=("csv", "jsonl"))


@pytest.fixture(scope="module")
def airflow(
    start_isolated_airflow: Callable[..., AbstractContextManager[AirflowServer]],
    tmp_path_factory: pytest.TempPathFactory,
    manifest: DayManifest,
    suffix: str,
    lineage_receiver: Receiver,
    statsd_exporter: Exporter,
) -> Iterator[AirflowServer]:
    # Brokers never create topics: the suffixed topics are provisioned as `topics ensure` would.
    provision_topics(
        os.environ["KAFKA_BOOTSTRAP"], ORDERS, checkpoint_topic=DEFAULT_CHECKPOINT_TOPIC, suffix=suffix
    )
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        "AIRFLOW_VAR_EXTRACTS_ROOT": str(Path(manifest.files[0]).parents[2]),
        "KAFKA_INGEST_TOPIC_SUFFIX": suffix,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "http", "url": lineage_receiver.url, "endpoint": "api/v1/lineage", "timeout": 5}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "kafka-ingest-scheduler-test",
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(statsd_exporter.statsd_port),
    }
    with start_isolated_airflow(home, **env) as server:
        yield server


def _api_retrying(server: AirflowServer, method: str, path: str, body: Any = None) -> Any:
    """One REST call, again while SQLite is locked (500/503; see test_dags_backfill.py) or the
    api-server is too busy to answer within the client's timeout (a loaded CI machine)."""
    for attempt in range(15):
        try:
            token = _TOKENS.get(server.url) or _TOKENS.setdefault(server.url, server.token())
            return server.api(method, path, body, token=token)
        except AssertionError as exc:
            if not any(code in str(exc) for code in ("-> 404", "-> 500", "-> 503")) or attempt == 14:
                raise
        except OSError:  # timeouts and refused connections while the api-server is swamped
            if attempt == 14:
                raise
        time.sleep(2)
    raise AssertionError("unreachable")


_TOKENS: dict[str, str] = {}


@pytest.fixture(scope="module")
def finished_run(airflow: AirflowServer) -> dict[str, Any]:
    """The day, triggered through the REST API (while paused, then unpaused) and waited for."""
    _api_retrying(airflow, "GET", f"/api/v2/dags/{DAG_ID}")  # 404 until the dag-processor parsed it
    run = _api_retrying(
        airflow,
        "POST",
        f"/api/v2/dags/{DAG_ID}/dagRuns",
        {"logical_date": f"{DAY}T00:00:00Z", "conf": {"max_dlq_ratio": 0.5}},
    )
    _api_retrying(airflow, "PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run['dag_run_id'], safe='')}"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while (state := _api_retrying(airflow, "GET", path)["state"]) not in ("success", "failed"):
        assert time.monotonic() < deadline, f"run {run['dag_run_id']} still {state} after {RUN_TIMEOUT_S}s"
        time.sleep(2)
    assert state == "success"
    _api_retrying(airflow, "PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": True})
    return dict(run)


def test_publish_events_reach_the_http_receiver_valid_and_complete(
    finished_run: dict[str, Any], lineage_receiver: Receiver, manifest: DayManifest, suffix: str
) -> None:
    deadline = time.monotonic() + 30  # the listener may send the last event after the state flips
    topic = f"shopping.order.created{suffix}"

    def complete() -> list[dict[str, Any]]:
        return [
            e
            for e in lineage_receiver.events
            if e["eventType"] == "COMPLETE"
            and e["job"]["name"] == f"{DAG_ID}.publish"
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


def test_report_link_is_served_by_the_api_server(
    finished_run: dict[str, Any], airflow: AirflowServer
) -> None:
    run_id = quote(finished_run["dag_run_id"], safe="")

    links = _api_retrying(
        airflow, "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/report/links"
    )

    link = links.get("extra_links", links)["Run report"]  # Airflow 3: {"extra_links": {name: url}, ...}
    assert link.endswith("/report.html")
    assert "DLQ by rule" in Path(link.removeprefix("file://")).read_text()


def test_metrics_of_the_scheduled_run_reach_the_exporter(
    finished_run: dict[str, Any], statsd_exporter: Exporter, manifest: DayManifest, suffix: str
) -> None:
    label = frozenset({("topic", f"shopping_order_created{suffix}".replace(".", "_"))})

    assert statsd_exporter.series("kafka_ingest_rows_published_total")[label] == len(manifest.published)
    assert statsd_exporter.series("kafka_ingest_rows_dlq_total")[label] == len(manifest.rejected)
