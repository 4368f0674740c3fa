"""Specification for the Airflow wiring, once, end to end: a tiny DAG with the orders operator runs
in ``dag.test()``, reading ``kafka_default`` and ``schema_registry_default`` from the
``AIRFLOW_CONN_*`` environment (scripts/stack-env.sh), rendering ``{{ ds }}``, and returning its
summary to XCom."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from airflow.sdk import DAG
from ingest_helpers import DATE, Endpoints, read_topic, with_topic

from kafka_ingest.operators.datasets import OrdersToKafkaOperator
from kafka_ingest.testing.provision import provision_topics
from kafka_ingest.testing.samples import write_day
from kafka_ingest.topics.orders import ORDERS

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

LOGICAL_DATE = datetime.fromisoformat(DATE).replace(tzinfo=UTC)


@pytest.fixture
def registered() -> Iterator[Callable[[DAG], None]]:
    """Writes a DAG built in the test to the metadata DB (``dag.test()`` runs serialized DAGs
    only), and deletes it, its runs and XComs afterwards."""
    from airflow.api.common.delete_dag import delete_dag
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    dag_ids: list[str] = []

    def register(dag: DAG) -> None:
        bag = DagBag(dag_folder=os.devnull, collect_dags=False)
        bag.bag_dag(dag)
        sync_bag_to_db(bag, "dags-folder", None)
        dag_ids.append(dag.dag_id)

    yield register
    for dag_id in dag_ids:
        delete_dag(dag_id)


def return_value(dag_id: str, run_id: str) -> dict[str, object]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_id, run_id=run_id, task_id="publish", key="return_value")
            .one()
        )
        value = row.value
    return json.loads(value) if isinstance(value, str) else value


def test_the_operator_publishes_a_day_in_dag_test_with_connections_from_the_environment(
    endpoints: Endpoints,
    unique_name: Callable[[str], str],
    tmp_path: Path,
    registered: Callable[[DAG], None],
) -> None:
    assert {"AIRFLOW_CONN_KAFKA_DEFAULT", "AIRFLOW_CONN_SCHEMA_REGISTRY_DEFAULT"} <= set(os.environ)
    manifest = write_day(tmp_path, "orders", DATE, rows=150, formats=("csv", "parquet"), bad_ratio=0.05)
    topic = unique_name("orders")
    provision_topics(
        endpoints.bootstrap, with_topic(ORDERS, topic), checkpoint_topic=endpoints.checkpoint_topic
    )
    with DAG(dag_id=unique_name("dag").replace("-", "_"), schedule=None, start_date=LOGICAL_DATE) as dag:
        OrdersToKafkaOperator(
            task_id="publish",
            extract_path=str(tmp_path / "orders" / "dt={{ ds }}"),
            topic=topic,
            checkpoint_topic=endpoints.checkpoint_topic,
            batch_size=50,
        )
    registered(dag)

    dag_run = dag.test(logical_date=LOGICAL_DATE)

    assert dag_run.state == "success"
    summary = return_value(dag.dag_id, dag_run.run_id)
    assert (summary["files"], summary["rows_read"], summary["skipped"]) == (2, 150, 0)
    assert summary["published"] == len(manifest.published)
    assert summary["dlq"] == len(manifest.rejected)
    records = read_topic(endpoints.bootstrap, topic)
    assert sorted(r.key.decode() for r in records if r.key) == sorted(manifest.published)
    assert {(r.header("dag_id"), r.header("run_id"), r.header("task_id")) for r in records} == {
        (dag.dag_id, dag_run.run_id, "publish")
    }
    envelope = json.loads(read_topic(endpoints.bootstrap, f"{topic}.dlq")[0].value)
    run = envelope["run"]
    assert (run["dag_id"], run["run_id"], run["task_id"], run["map_index"], run["try_number"]) == (
        dag.dag_id,
        dag_run.run_id,
        "publish",
        -1,
        1,
    )
    assert envelope["source"]["date"] == DATE
