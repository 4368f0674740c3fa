"""Runs one day of a production ingestion DAG with ``dag.test()`` in a process of its own.

    python dag_driver.py '{"dataset": "orders", "dag_id": ..., "topic": ..., "date": "2026-01-05"}'

A process of its own, because what is under test is configured per process and read once:
Airflow's StatsD client (``[metrics]``) and the OpenLineage provider (``[openlineage]``, its
listener). The caller sets them through ``AIRFLOW__...`` environment variables, and the extracts
root through ``AIRFLOW_VAR_EXTRACTS_ROOT``. Prints one JSON line: the run's state, each task's
state and the ``report`` task's XComs (its totals and its extra link).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from kafka_ingest.dag_factory import build_ingest_dag
from kafka_ingest.operators.datasets import OrdersToKafkaOperator, PaymentsToKafkaOperator
from kafka_ingest.publish.checkpoints import DEFAULT_CHECKPOINT_TOPIC
from kafka_ingest.testing.provision import provision_topics


def register(dag: Any) -> None:
    """Serialize the DAG into the metadata DB, as the dag-processor would; dag.test() needs it."""
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )


def xcoms(run: Any, task_id: str) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id))
        return {row.key: XComModel.deserialize_value(row) for row in rows}


def main(args: dict[str, Any]) -> int:
    operator = {"orders": OrdersToKafkaOperator, "payments": PaymentsToKafkaOperator}[args["dataset"]]
    dag = build_ingest_dag(operator, dag_id=args["dag_id"], topic=args["topic"])
    # Brokers never create topics: the test's own topic is provisioned as `topics ensure` would.
    provision_topics(
        os.environ["KAFKA_BOOTSTRAP"],
        replace(operator.spec, topic=args["topic"]),
        checkpoint_topic=DEFAULT_CHECKPOINT_TOPIC,
    )
    register(dag)
    started = time.monotonic()
    run = dag.test(
        logical_date=datetime.fromisoformat(args["date"]).replace(tzinfo=UTC), run_conf=args.get("conf")
    )
    seconds = time.monotonic() - started
    states = {f"{ti.task_id}[{ti.map_index}]": str(ti.state) for ti in run.get_task_instances()}
    durations = {
        f"{ti.task_id}[{ti.map_index}]": ti.duration
        for ti in run.get_task_instances()
        if ti.duration is not None
    }
    result = {
        "state": str(run.state),
        "run_id": run.run_id,
        "seconds": seconds,
        "tasks": states,
        "durations": durations,
        "report": xcoms(run, "report"),
    }
    print("DRIVER-RESULT " + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
