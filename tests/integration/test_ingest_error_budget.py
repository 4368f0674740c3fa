"""Specifications for the error budget: the batch that exhausts it is aborted, not committed.

The file has three batches of 50 rows: the first all valid, the second half invalid (so 25 of 100
rows read so far, 25 %, would go to the DLQ against a budget of 10 %), the third valid again.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from ingest_helpers import DATE, RUN, Endpoints, Record, csv_text, read_topic, run_job, with_topic

from kafka_ingest.batches import RunInfo
from kafka_ingest.errors import PermanentError
from kafka_ingest.publish.transactions import BudgetExceeded
from kafka_ingest.specs import TopicSpec
from kafka_ingest.testing.samples import ORDER_COLUMNS, order_row
from kafka_ingest.topics.orders import ORDERS

pytestmark = pytest.mark.integration

BATCH = 50


@dataclass
class OverBudget:
    spec: TopicSpec
    file: str
    error: BudgetExceeded
    committed: list[Record]
    committed_dlq: list[Record]


def write_extract(folder: Path) -> str:
    rng = random.Random("budget")
    rows = [order_row(n, rng) for n in range(1, 3 * BATCH + 1)]
    for row in rows[BATCH : 2 * BATCH : 2]:
        row["status"] = "LOST"
    folder.mkdir(parents=True)
    path = folder / "part-0001.csv"
    path.write_text(csv_text(ORDER_COLUMNS, rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def over_budget(
    endpoints: Endpoints, module_topic: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> OverBudget:
    spec = with_topic(ORDERS, module_topic("orders"))
    file = write_extract(tmp_path_factory.mktemp("budget") / "orders" / f"dt={DATE}")
    with pytest.raises(BudgetExceeded) as exceeded:
        run_job(endpoints, spec, [file], batch_size=BATCH, max_dlq_ratio=0.1)
    return OverBudget(
        spec,
        file,
        exceeded.value,
        read_topic(endpoints.bootstrap, spec.topic),
        read_topic(endpoints.bootstrap, spec.dlq_topic),
    )


def test_exceeding_the_error_budget_fails_the_run_with_a_permanent_error_naming_topic_and_budget(
    over_budget: OverBudget,
) -> None:
    message = str(over_budget.error)

    assert isinstance(over_budget.error, PermanentError)
    assert over_budget.spec.topic in message
    assert over_budget.spec.dlq_topic in message
    assert "25 of 100 rows" in message
    assert "max_dlq_ratio=0.1" in message


def test_nothing_of_the_batch_that_exhausted_the_budget_is_visible_read_committed(
    over_budget: OverBudget,
) -> None:
    assert sorted(r.row for r in over_budget.committed) == list(range(1, BATCH + 1))
    assert over_budget.committed_dlq == []


def test_a_rerun_with_a_larger_budget_resumes_after_the_last_committed_batch(
    over_budget: OverBudget, endpoints: Endpoints
) -> None:
    retry = RunInfo(RUN.dag_id, RUN.run_id, RUN.task_id, RUN.map_index, 2)

    summary = run_job(endpoints, over_budget.spec, [over_budget.file], batch_size=BATCH, run=retry)

    assert (summary["skipped"], summary["published"], summary["dlq"]) == (BATCH, 2 * BATCH - 25, 25)
    records = read_topic(endpoints.bootstrap, over_budget.spec.topic)
    assert sorted(r.row for r in records) == sorted(
        [*range(1, BATCH + 1), *range(BATCH + 2, 2 * BATCH + 1, 2), *range(2 * BATCH + 1, 3 * BATCH + 1)]
    )
    assert len({r.key for r in records}) == len(records)
