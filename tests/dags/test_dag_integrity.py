"""DAG integrity: every file in dags/ imports cleanly and every DAG follows the house rules
(tags, retries >= 2, doc_md)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow.dag_processing.dagbag import DagBag

DAGS_FOLDER = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
DEFINES_A_DAG = re.compile(r"\bDAG\(|@dag\b")


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=DAGS_FOLDER, safe_mode=False)


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
