"""The stack's running Airflow (scheduler, api-server, dag-processor on PostgreSQL) backfills an
ingestion DAG over three days through the REST API, as an operator would.

The DAG is the production ``build_ingest_dag`` for orders, written by the test into the stack's
``test-dags`` bundle with a unique id, topic and extracts root (``stack_airflow.stack_dag``). The
backfills run in order on the same days: the first publishes each day once, a second over the
same (completed) runs publishes nothing new, a third with ``{"reprocess": true}`` publishes every
day again, and so does a fourth. On PostgreSQL, creating a backfill while the scheduler works on
the same DAG needs no pause and no retry.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from stack_airflow import AirflowServer, StackDag, stack_dag

from kafka_ingest.testing.samples import DayManifest, write_day
from kafka_ingest.testing.topics import TopicRecord, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(1200)]

DAYS = ("2026-01-02", "2026-01-03", "2026-01-04")
BACKFILL_TIMEOUT_S = 300
#: Tiny files make the share of bad rows jumpy; the error budget is not what this test is about.
CONF = {"max_dlq_ratio": 0.5}


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DayManifest]:
    root = tmp_path_factory.mktemp("extracts")
    formats = {DAYS[0]: ("csv", "jsonl")}  # one day with two files: two mapped publish tasks
    return {day: write_day(root, "orders", day, rows=30, formats=formats.get(day, ("csv",))) for day in DAYS}


@pytest.fixture(scope="module")
def dag(airflow_server: AirflowServer, manifests: dict[str, DayManifest]) -> Iterator[StackDag]:
    root = Path(next(iter(manifests.values())).files[0]).parents[2]
    with stack_dag(airflow_server, __name__, root) as made:
        made.set_paused(False)
        yield made


def backfill(dag: StackDag, reprocess_behavior: str, conf: dict) -> list[dict]:
    """Creates a backfill of DAYS, waits until it completes, and returns its runs."""
    backfill_id = dag.backfill(DAYS, reprocess_behavior=reprocess_behavior, conf=conf)
    dag.wait_backfill(backfill_id, BACKFILL_TIMEOUT_S)
    return dag.runs(DAYS)


def keys_by_day(records: list[TopicRecord]) -> dict[str, Counter[str]]:
    days: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records:
        day = record.header("source.file").split("/dt=", 1)[1][:10]
        days[day][record.key_text] += 1
    return dict(days)


def expected(manifests: dict[str, DayManifest], times: int) -> dict[str, Counter[str]]:
    return {day: Counter({key: times for key in m.published}) for day, m in manifests.items()}


def test_backfill_through_the_rest_api_publishes_each_day_once_and_again_only_with_reprocess(
    dag: StackDag, manifests: dict[str, DayManifest], kafka_bootstrap: str
) -> None:
    topic = dag.topic

    first = backfill(dag, "none", CONF)
    assert [(r["logical_date"][:10], r["state"]) for r in first] == [(day, "success") for day in DAYS]
    assert keys_by_day(read_topic(kafka_bootstrap, topic)) == expected(manifests, 1)
    dlq = read_topic(kafka_bootstrap, f"{topic}.dlq")
    assert len(dlq) == sum(len(m.rejected) for m in manifests.values())

    again = backfill(dag, "completed", CONF)
    assert [r["state"] for r in again] == ["success"] * 3
    rows = [m.rows for m in manifests.values()]
    assert [
        (r["published"], r["dlq"], r["skipped"]) for r in map(dag.report, (r["dag_run_id"] for r in again))
    ] == [(0, 0, n) for n in rows]
    assert keys_by_day(read_topic(kafka_bootstrap, topic)) == expected(manifests, 1)
    assert len(read_topic(kafka_bootstrap, f"{topic}.dlq")) == len(dlq)

    reprocessed = backfill(dag, "completed", {**CONF, "reprocess": True})
    assert [(r["state"], r["conf"]["reprocess"]) for r in reprocessed] == [("success", True)] * 3
    assert keys_by_day(read_topic(kafka_bootstrap, topic)) == expected(manifests, 2)

    # The same runs again (Airflow clears them: same run ids, a higher clear number): again.
    backfill(dag, "completed", {**CONF, "reprocess": True})
    assert keys_by_day(read_topic(kafka_bootstrap, topic)) == expected(manifests, 3)
