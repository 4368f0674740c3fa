"""A task process starts with the tasks' modules already imported: the process Airflow forks it
from preloaded them (``kafka_ingest.worker_preload``; the LocalExecutor's forkserver, or the Celery
worker through its config), so 60 task instances of a backfill do not import Great Expectations,
confluent-kafka and the pipeline 60 times (docs/deploy.md).

The probe DAG's own file imports none of them, so whatever the task finds in ``sys.modules``
came from its parent. Runs on whichever executor the stack runs: ``make test-ui`` (LocalExecutor)
and ``make test-celery``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from stack_airflow import AirflowServer, dag_file

from kafka_ingest import worker_preload

pytestmark = [pytest.mark.deploy, pytest.mark.integration, pytest.mark.timeout(600)]

RUN_TIMEOUT_S = 300
#: What the task reports: the preload module itself and the heavy imports it exists for.
PROBED = ("kafka_ingest.worker_preload", "great_expectations", "confluent_kafka.schema_registry")

#: The dag-processor's safe mode reads only files that mention both "airflow" and "dag".
PROBE_DAG = '''"""An airflow DAG written by a test ({test}); removed when it ends."""
import sys
from datetime import datetime

from airflow.sdk import dag, task


@dag(dag_id={dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def probe():
    @task
    def imported_before_the_task():
        return sorted(name for name in {probed!r} if name in sys.modules)

    imported_before_the_task()


probe()
'''


@pytest.fixture
def probe_dag(airflow_server: AirflowServer) -> Iterator[str]:
    dag_id = f"preload_{uuid.uuid4().hex[:8]}"
    with dag_file(airflow_server, dag_id, PROBE_DAG.format(test=__name__, dag_id=dag_id, probed=PROBED)):
        yield dag_id


def test_a_task_process_starts_with_the_tasks_modules_already_imported(
    airflow_server: AirflowServer, probe_dag: str
) -> None:
    assert set(PROBED) <= {"kafka_ingest.worker_preload", *worker_preload.MODULES}
    run = airflow_server.api("POST", f"/api/v2/dags/{probe_dag}/dagRuns", {"logical_date": None})
    airflow_server.api("PATCH", f"/api/v2/dags/{probe_dag}", {"is_paused": False})
    run_path = f"/api/v2/dags/{probe_dag}/dagRuns/{quote(run['dag_run_id'], safe='')}"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while (state := airflow_server.api("GET", run_path)["state"]) not in ("success", "failed"):
        assert time.monotonic() < deadline, f"probe run still {state} after {RUN_TIMEOUT_S}s"
        time.sleep(2)
    assert state == "success"

    found = airflow_server.api(
        "GET",
        f"{run_path}/taskInstances/imported_before_the_task/xcomEntries/return_value"
        "?deserialize=true&stringify=false",
    )["value"]

    executor = os.environ.get("AIRFLOW__CORE__EXECUTOR")
    assert found == sorted(PROBED), f"on {executor} the task had to import them itself"
