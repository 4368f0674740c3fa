"""What the replay tests share: a day ingested with a rule that was wrong, the replay DAG run
through ``dag.test()``, and the topics read back.

The day is ingested by the product itself (``run_job``, as the operator builds it) with a spec
whose rule is wrong on purpose; the replay then runs the production spec, as after a fix.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
from ingest_helpers import Endpoints, csv_text, run_job

from kafka_ingest.specs import TopicSpec
from kafka_ingest.testing.topics import TopicRecord, read_topic

DATE = "2026-01-05"
REPLAYS_TOPIC = "_kafka_ingest.replays"


def wrong_rule(spec: TopicSpec, flag: str, column: str, refused: str) -> TopicSpec:
    """``spec`` with one rule that also refuses ``refused`` in ``column``: the bug a replay follows."""

    def prepare(frame: pd.DataFrame) -> pd.DataFrame:
        prepared = spec.prepare(frame)
        return prepared.assign(**{flag: prepared[flag] & (frame[column] != refused).to_numpy()})

    return replace(spec, prepare=prepare)


def land_and_ingest(
    endpoints: Endpoints,
    spec: TopicSpec,
    root: Path,
    rows: Sequence[dict[str, Any]],
    name: str = "part-0001.csv",
) -> str:
    """Write ``rows`` as one CSV part file of ``DATE`` and ingest it with ``spec``; the file's path."""
    folder = root / spec.dataset / f"dt={DATE}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(csv_text(spec.all_columns, rows), encoding="utf-8")
    run_job(endpoints, spec, [str(path)], extract_date=DATE)
    return str(path)


def register(dag: Any) -> None:
    """Serialize the DAG into the metadata DB, as the dag-processor would; dag.test() needs it."""
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )


def replay_dag(dag_id: str) -> Any:
    from kafka_ingest.replay_dag import build_replay_dag

    dag = build_replay_dag(dag_id=dag_id)
    register(dag)
    return dag


def run_replay(dag: Any, **conf: Any) -> tuple[Any, dict[str, Any] | None]:
    """One ``dag.test()`` run with ``conf`` (dry run off unless asked); the run and its report."""
    run = dag.test(run_conf={"dry_run": False, **conf})
    return run, report_of(run)


def report_of(run: Any) -> dict[str, Any] | None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids="replay", key="return_value")
        ).first()
        return None if row is None else XComModel.deserialize_value(row)  # type: ignore[no-any-return]


def envelopes(bootstrap: str, topic: str) -> list[tuple[TopicRecord, dict[str, Any]]]:
    return [(r, json.loads(r.value)) for r in read_topic(bootstrap, f"{topic}.dlq")]


def audit_records(bootstrap: str, replay_id_prefix: str) -> list[dict[str, Any]]:
    return [
        json.loads(r.value)
        for r in read_topic(bootstrap, REPLAYS_TOPIC)
        if r.key_text.startswith(replay_id_prefix)
    ]


def keys(records: Sequence[TopicRecord]) -> list[str]:
    return sorted(r.key_text for r in records)


Rows = list[dict[str, Any]]
RowFactory = Callable[..., dict[str, Any]]
