"""DAG integrity: every file in dags/ imports cleanly and every DAG follows the house rules
(tags, retries >= 2, doc_md); the ingestion DAGs have their Params, mapped publish task and Asset.

The DagBag parses in safe mode, as the dag-processor does: a file that does not mention both
"airflow" and "dag" is never even imported there.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import DAG

DAGS_FOLDER = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
DEFINES_A_DAG = re.compile(r"\bDAG\(|@dag\b|\bbuild_ingest_dag\(|\bbuild_replay_dag\(")


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=DAGS_FOLDER, safe_mode=True)


def files_defining_a_dag() -> list[Path]:
    return sorted(
        path.resolve()
        for path in DAGS_FOLDER.rglob("*.py")
        if DEFINES_A_DAG.search(path.read_text(encoding="utf-8"))
    )


def test_dags_import_without_errors(dagbag: DagBag) -> None:
    last_lines = {path: error.strip().splitlines()[-1] for path, error in dagbag.import_errors.items()}
    assert last_lines == {}


def test_every_file_that_defines_a_dag_contributes_one(dagbag: DagBag) -> None:
    loaded_from = {Path(dag.fileloc).resolve() for dag in dagbag.dags.values()}

    missing = [str(path) for path in files_defining_a_dag() if path not in loaded_from]

    assert missing == [], f"these files define a DAG but the DagBag has none from them: {missing}"


def test_every_dag_has_tags(dagbag: DagBag) -> None:
    assert [dag_id for dag_id, dag in dagbag.dags.items() if not dag.tags] == []


def test_every_task_retries_at_least_twice(dagbag: DagBag) -> None:
    too_few = [
        f"{dag_id}.{task.task_id} (retries={task.retries})"
        for dag_id, dag in dagbag.dags.items()
        for task in dag.tasks
        if (task.retries or 0) < 2
    ]
    assert too_few == []


def test_every_dag_has_doc_md(dagbag: DagBag) -> None:
    assert [dag_id for dag_id, dag in dagbag.dags.items() if not (dag.doc_md or "").strip()] == []


def ingestion_dags(dagbag: DagBag) -> list[DAG]:
    return [dag for dag_id, dag in dagbag.dags.items() if dag_id.startswith("ingest_")]


def test_both_ingestion_dags_are_loaded(dagbag: DagBag) -> None:
    # Topics added with the scaffold bring DAGs of their own; the two shipped ones must be there.
    assert {"ingest_orders", "ingest_payments"} <= {dag.dag_id for dag in ingestion_dags(dagbag)}


def test_ingestion_dags_run_daily_without_catchup_and_bounded(dagbag: DagBag) -> None:
    for dag in ingestion_dags(dagbag):
        assert (dag.catchup, dag.start_date is not None) == (False, True)
        assert 1 <= dag.max_active_runs <= 5
        assert dag.owner == "data-platform"


def test_the_run_of_a_day_starts_once_the_day_is_over(dagbag: DagBag) -> None:
    """``ds`` names the dt= folder, so it must be a day that is over when the run starts; Airflow 3's
    plain "@daily" (a CronTriggerTimetable) would give the run at midnight that midnight's date."""
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import DataInterval, TimeRestriction

    jan = [datetime(2026, 1, day, tzinfo=UTC) for day in (4, 5, 6)]
    for dag in ingestion_dags(dagbag):
        run = coerce_to_core_timetable(dag.timetable).next_dagrun_info(
            last_automated_data_interval=DataInterval(jan[0], jan[1]),
            restriction=TimeRestriction(earliest=None, latest=None, catchup=True),
        )
        assert run is not None
        assert (run.logical_date, run.data_interval.end, run.run_after) == (jan[1], jan[2], jan[2])


def test_ingestion_dags_offer_the_run_params_in_the_trigger_form(dagbag: DagBag) -> None:
    for dag in ingestion_dags(dagbag):
        assert set(dag.params) >= {"reprocess", "dry_run", "batch_size", "max_dlq_ratio"}
        assert dag.params["reprocess"] is False


def test_ingestion_dags_publish_with_one_mapped_task_per_file(dagbag: DagBag) -> None:
    for dag in ingestion_dags(dagbag):
        assert [t.task_id for t in dag.topological_sort()] == [
            "wait_for_extract",
            "list_part_files",
            "publish",
            "report",
        ]
        publish = dag.get_task("publish")
        assert publish.is_mapped
        assert publish.partial_kwargs["retry_exponential_backoff"]
        assert dag.get_task("wait_for_extract").mode == "reschedule"


def test_report_updates_the_topic_asset(dagbag: DagBag) -> None:
    topics = {
        dag.dag_id: [asset.name for asset in dag.get_task("report").outlets] for dag in ingestion_dags(dagbag)
    }
    assert topics["ingest_orders"] == ["shopping.order.created"]
    assert topics["ingest_payments"] == ["shopping.payment.processed"]
    assert all(len(assets) == 1 for assets in topics.values())


def test_replay_dag_offers_the_selection_in_its_trigger_form(dagbag: DagBag) -> None:
    dag = dagbag.dags["replay_dlq"]
    expected = {"dataset", "topic", "date_from", "date_to", "stages", "rules", "error_types", "files", "keys"}
    assert expected | {"source", "corrections_file", "dry_run", "replay_id"} <= set(dag.params)
    assert dag.params["dry_run"] is True, "a replay started from the form is a dry run unless unticked"
    assert dag.max_active_runs == 1
    assert dag.schedule is None
