"""The ingestion DAGs run for one logical date with ``dag.test()`` against the local stack.

Each test builds the production DAG (``build_ingest_dag`` with the production operator) under a
unique dag id and topic, points the ``extracts_root`` Variable at its own folder, lands a day with
``write_day`` and checks what a read_committed consumer sees against the day's manifest.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from kafka_ingest.dag_factory import build_ingest_dag
from kafka_ingest.operators.datasets import OrdersToKafkaOperator, PaymentsToKafkaOperator
from kafka_ingest.operators.extract_to_kafka import ExtractToKafkaOperator
from kafka_ingest.publish.checkpoints import DEFAULT_CHECKPOINT_TOPIC
from kafka_ingest.testing.provision import provision_topics
from kafka_ingest.testing.samples import DayManifest, write_day
from kafka_ingest.testing.topics import TopicRecord, key_counts, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow]

DAY = "2026-01-05"
LOGICAL_DATE = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.fixture
def extracts_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh extracts root, given to the DAG through the ``extracts_root`` Variable."""
    monkeypatch.setenv("AIRFLOW_VAR_EXTRACTS_ROOT", str(tmp_path))
    return tmp_path


@pytest.fixture
def make_dag(unique_name: Callable[[str], str]) -> Iterator[Callable[..., Any]]:
    """Builds a production DAG under a unique dag id and topic; deletes its runs afterwards."""
    built: list[str] = []

    def make(operator: type[ExtractToKafkaOperator], **kwargs: Any) -> Any:
        name = unique_name(operator.spec.dataset if operator.spec else "dag")
        assert operator.spec is not None
        provision_topics(
            os.environ["KAFKA_BOOTSTRAP"],
            replace(operator.spec, topic=name),
            checkpoint_topic=DEFAULT_CHECKPOINT_TOPIC,
        )
        dag = build_ingest_dag(operator, dag_id=name.replace("-", "_"), topic=name, **kwargs)
        register(dag)
        built.append(dag.dag_id)
        return dag

    yield make
    from airflow.api.common.delete_dag import delete_dag

    for dag_id in built:
        delete_dag(dag_id, keep_records_in_log=False)


def register(dag: Any) -> None:
    """Serialize the DAG into the metadata DB, as the dag-processor would; dag.test() needs it."""
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )


def run_day(dag: Any, conf: dict[str, Any] | None = None) -> Any:
    return dag.test(logical_date=LOGICAL_DATE, run_conf=conf)


def report_of(run: Any) -> dict[str, Any]:
    """The ``report`` task's XCom: the day's totals."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids="report", key="return_value")
        ).first()
        assert row is not None, f"report of {run.dag_id} pushed no XCom"
        report: dict[str, Any] = XComModel.deserialize_value(row)
        return report


def topic_of(dag: Any) -> str:
    return str(dag.get_task("publish").partial_kwargs["topic"])


def assert_day_published_once(
    bootstrap: str, topic: str, manifest: DayManifest
) -> tuple[list[TopicRecord], list[TopicRecord]]:
    records = read_topic(bootstrap, topic)
    dlq = read_topic(bootstrap, f"{topic}.dlq")
    assert key_counts(records) == Counter(manifest.published)
    positions = Counter(
        (PurePosixPath(r.header("source.file")).name, int(r.header("source.row"))) for r in records
    )
    assert max(positions.values()) == 1, "a source row was published twice"
    assert set(positions).isdisjoint(manifest.rejected)
    rules = {
        (PurePosixPath(e["source"]["file"]).name, e["source"]["row"]): e["failed_rules"]
        for e in (json.loads(r.value) for r in dlq)
    }
    assert set(rules) == set(manifest.rejected)
    assert [key for key, rule in manifest.rejected.items() if rule not in rules[key]] == []
    return records, dlq


def test_orders_day_publishes_every_valid_row_once_with_one_task_per_file(
    make_dag: Callable[..., Any], extracts_root: Path, kafka_bootstrap: str
) -> None:
    manifest = write_day(extracts_root, "orders", DAY, rows=150, formats=("csv", "jsonl.gz", "parquet"))
    dag = make_dag(OrdersToKafkaOperator)

    run = run_day(dag)

    assert run.state == "success"
    publish = [ti for ti in run.get_task_instances() if ti.task_id == "publish"]
    assert sorted(ti.rendered_map_index for ti in publish) == [PurePosixPath(f).name for f in manifest.files]
    records, dlq = assert_day_published_once(kafka_bootstrap, topic_of(dag), manifest)
    report = report_of(run)
    assert (report["files"], report["rows_read"], report["published"], report["dlq"], report["skipped"]) == (
        3,
        manifest.rows,
        len(manifest.published),
        len(manifest.rejected),
        0,
    )
    assert len(records) == report["published"]
    assert len(dlq) == report["dlq"]


def test_payments_day_publishes_every_valid_row_once(
    make_dag: Callable[..., Any], extracts_root: Path, kafka_bootstrap: str
) -> None:
    manifest = write_day(extracts_root, "payments", DAY, rows=120, formats=("csv", "jsonl"))
    dag = make_dag(PaymentsToKafkaOperator)

    run = run_day(dag)

    assert run.state == "success"
    assert_day_published_once(kafka_bootstrap, topic_of(dag), manifest)
    assert report_of(run)["dlq"] == len(manifest.rejected)


def test_second_run_of_a_day_publishes_nothing_new_and_reprocess_republishes(
    make_dag: Callable[..., Any], extracts_root: Path, kafka_bootstrap: str
) -> None:
    manifest = write_day(extracts_root, "orders", DAY, rows=40, formats=("csv",))
    dag = make_dag(OrdersToKafkaOperator)
    run_day(dag)

    again = report_of(run_day(dag))
    assert (again["published"], again["dlq"], again["skipped"]) == (0, 0, manifest.rows)
    assert_day_published_once(kafka_bootstrap, topic_of(dag), manifest)

    reprocessed = report_of(run_day(dag, {"reprocess": True}))
    assert reprocessed["published"] == len(manifest.published)
    assert set(key_counts(read_topic(kafka_bootstrap, topic_of(dag))).values()) == {2}


def test_dry_run_publishes_nothing_and_reports_what_would_be_published(
    make_dag: Callable[..., Any], extracts_root: Path, kafka_bootstrap: str
) -> None:
    manifest = write_day(extracts_root, "orders", DAY, rows=60, formats=("csv", "parquet"))
    dag = make_dag(OrdersToKafkaOperator)

    run = run_day(dag, {"dry_run": True})

    assert run.state == "success"
    report = report_of(run)
    assert report["validate_only"] is True
    assert (report["published"], report["dlq"]) == (len(manifest.published), len(manifest.rejected))
    assert read_topic(kafka_bootstrap, topic_of(dag)) == []
    assert read_topic(kafka_bootstrap, f"{topic_of(dag)}.dlq") == []
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["report"] == "skipped", "a dry run must not update the topic's Asset"


def test_day_without_success_marker_fails_the_run_naming_the_folder(
    make_dag: Callable[..., Any],
    extracts_root: Path,
    kafka_bootstrap: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    write_day(extracts_root, "orders", DAY, rows=10, success=False)
    dag = make_dag(
        OrdersToKafkaOperator, sensor_timeout=timedelta(seconds=3), poke_interval=timedelta(seconds=1)
    )

    run = run_day(dag)

    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["wait_for_extract"] == "failed"
    assert states["publish"] == "upstream_failed"
    folder = extracts_root / "orders" / f"dt={DAY}"
    assert f"The orders extract for {DAY} never completed: no _SUCCESS marker at {folder}/_SUCCESS" in (
        capfd.readouterr().out
    )
    assert read_topic(kafka_bootstrap, topic_of(dag)) == []


def test_complete_day_without_part_files_succeeds_with_nothing_published(
    make_dag: Callable[..., Any], extracts_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = extracts_root / "orders" / f"dt={DAY}"
    folder.mkdir(parents=True)
    (folder / "_SUCCESS").touch()
    dag = make_dag(OrdersToKafkaOperator)

    run = run_day(dag)

    assert run.state == "success"
    report = report_of(run)
    assert (report["files"], report["rows_read"], report["published"]) == (0, 0, 0)
    assert f"{folder} is complete (_SUCCESS) but holds no part files" in caplog.text


def test_connection_secrets_never_reach_task_logs_rendered_fields_or_xcom(
    make_dag: Callable[..., Any],
    extracts_root: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    kafka = {"bootstrap.servers": kafka_bootstrap, "sasl.username": "ingest", "sasl.password": secret}
    registry = {"host": schema_registry_url, "login": "ingest", "password": secret}
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_SECRET_TEST", json.dumps({"conn_type": "kafka", "extra": kafka}))
    monkeypatch.setenv("AIRFLOW_CONN_REGISTRY_SECRET_TEST", json.dumps({"conn_type": "http", **registry}))
    manifest = write_day(extracts_root, "orders", DAY, rows=30, formats=("csv",))
    dag = make_dag(
        OrdersToKafkaOperator,
        kafka_config_id="kafka_secret_test",
        schema_registry_conn_id="registry_secret_test",
    )

    run = run_day(dag)

    assert run.state == "success"
    assert report_of(run)["published"] == len(manifest.published)
    logs = capfd.readouterr().out + caplog.text
    assert "Schema registry connection registry_secret_test" in logs, "the DAG's own connection was not used"
    assert secret not in logs
    assert secret not in json.dumps(rendered_fields(run), default=str)
    assert secret not in json.dumps(report_of(run), default=str)


def rendered_fields(run: Any) -> list[Any]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session
    from sqlalchemy import select

    fields = RenderedTaskInstanceFields
    with create_session() as session:
        rows = session.scalars(
            select(fields).where(fields.dag_id == run.dag_id, fields.run_id == run.run_id)
        ).all()
        assert rows, "no rendered fields were stored"
        return [row.rendered_fields for row in rows]
