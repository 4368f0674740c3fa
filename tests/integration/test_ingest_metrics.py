"""Specifications for the task metrics, read back from StatsD's admin port.

The operator sends them through Airflow's own StatsD client (``Stats``, configured by
``AIRFLOW__METRICS__STATSD_*`` from ``scripts/stack-env.sh``), the production path. Names carry the
topic, so each test's unique topic gives it counters of its own; StatsD only resets them at its
hourly flush.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from ingest_helpers import DATE, RUN, Endpoints, csv_line, csv_text, statsd_counters, task_context, with_topic

from kafka_ingest.batches import RunInfo
from kafka_ingest.operators.datasets import OrdersToKafkaOperator
from kafka_ingest.runtime.metrics import metric_prefix
from kafka_ingest.testing.provision import provision_topics
from kafka_ingest.testing.samples import ORDER_COLUMNS, order_row
from kafka_ingest.topics.orders import ORDERS

pytestmark = pytest.mark.integration

BATCH = 40


def land_day(folder: Path) -> list[str]:
    """Two files: 120 rows with a bad status every fifth row from row 41 on, and one with a read reject."""
    rng = random.Random("metrics")
    folder.mkdir(parents=True)
    rows = [order_row(n, rng) for n in range(1, 121)]
    for row in rows[BATCH::5]:
        row["status"] = "LOST"
    (folder / "part-0001.csv").write_text(csv_text(ORDER_COLUMNS, rows), encoding="utf-8")
    extra = [order_row(n, rng) for n in range(121, 124)]
    lines = [csv_line(ORDER_COLUMNS), *(csv_line([r[c] for c in ORDER_COLUMNS]) for r in extra)]
    lines[2] = lines[2].rstrip("\r\n") + ",surplus\r\n"
    (folder / "part-0002.csv").write_text("".join(lines), encoding="utf-8")
    return [str(folder / "part-0001.csv"), str(folder / "part-0002.csv")]


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    return land_day(tmp_path / "orders" / f"dt={DATE}")


def publish(
    endpoints: Endpoints, topic: str, files: list[str], run: RunInfo = RUN, **kwargs: Any
) -> dict[str, Any]:
    provision_topics(
        endpoints.bootstrap, with_topic(ORDERS, topic), checkpoint_topic=endpoints.checkpoint_topic
    )
    operator = OrdersToKafkaOperator(
        task_id="publish",
        extract_path=files,
        extract_date=DATE,
        topic=topic,
        checkpoint_topic=endpoints.checkpoint_topic,
        batch_size=BATCH,
        **{"max_dlq_ratio": None, **kwargs},
    )
    summary: dict[str, Any] = operator.execute(task_context(run))  # type: ignore[arg-type]
    return summary


def expected_counters(summary: dict[str, Any]) -> dict[str, int]:
    """What the counters must say about a run, from its XCom summary; zero counters are not sent."""
    by_stage: dict[str, int] = {}
    for per_file in summary["per_file"]:
        for stage, count in per_file["dlq_by_stage"].items():
            by_stage[f"rows_dlq.{stage}"] = by_stage.get(f"rows_dlq.{stage}", 0) + count
    counters = {
        "rows_read": summary["rows_read"],
        "rows_published": summary["published"],
        "rows_dlq": summary["dlq"],
        "rows_skipped": summary["skipped"],
        "batches_committed": summary["batches"],
        **by_stage,
    }
    return {name: value for name, value in counters.items() if value}


class Counters:
    """The topic's counters on StatsD (``airflow.kafka_ingest.<topic>.``), read until they settle."""

    NAMES = ("rows_read", "rows_published", "rows_dlq", "rows_skipped", "batches_committed")

    def __init__(self, stack: Any, topic: str) -> None:
        self._stack = stack
        self._prefix = f"airflow.{metric_prefix(topic)}."
        self.seen: dict[str, int] = {}

    def read(self) -> dict[str, int]:
        return statsd_counters(self._stack.statsd_host, self._stack.statsd_admin_port, self._prefix)

    def until(self, expected: Callable[[dict[str, int]], bool], timeout_s: float = 10.0) -> dict[str, int]:
        """The counters once ``expected`` holds for them (UDP is asynchronous), or as they are then."""
        deadline = time.monotonic() + timeout_s
        while not expected(current := self.read()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return current

    def since(self, before: dict[str, int], expected: dict[str, int]) -> dict[str, int]:
        """The increase of the counters named in ``expected`` (and the main ones) since ``before``."""
        names = set(expected) | set(self.NAMES)

        def delta(now: dict[str, int]) -> dict[str, int]:
            return {n: now.get(n, 0) - before.get(n, 0) for n in names if now.get(n, 0) - before.get(n, 0)}

        return delta(self.until(lambda now: delta(now) == expected))


def test_the_counters_of_a_run_match_its_summary(
    endpoints: Endpoints, stack: Any, unique_name: Callable[[str], str], files: list[str]
) -> None:
    topic = unique_name("orders")
    counters = Counters(stack, topic)

    summary = publish(endpoints, topic, files)

    expected = expected_counters(summary)
    assert expected["rows_dlq.validate"] == 16
    assert expected["rows_dlq.read"] == 1
    assert counters.since({}, expected) == expected
    assert counters.read()["rows_valid"] == summary["published"]


def test_a_rerun_counts_every_row_it_skips_as_read_and_skipped(
    endpoints: Endpoints, stack: Any, unique_name: Callable[[str], str], files: list[str]
) -> None:
    topic = unique_name("orders")
    counters = Counters(stack, topic)
    first = publish(endpoints, topic, files)
    before = counters.until(lambda now: now == expected_counters(first) | {"rows_valid": first["published"]})

    rerun = publish(endpoints, topic, files, run=RunInfo(RUN.dag_id, "rerun", RUN.task_id, -1, 1))

    assert rerun["skipped"] == rerun["rows_read"] == 123
    assert counters.since(before, expected_counters(rerun)) == expected_counters(rerun)


def test_a_run_that_resumes_counts_the_rows_before_its_checkpoint_as_skipped(
    endpoints: Endpoints, stack: Any, unique_name: Callable[[str], str], files: list[str]
) -> None:
    topic = unique_name("orders")
    counters = Counters(stack, topic)
    with pytest.raises(AirflowFailException, match="Error budget exceeded"):
        publish(endpoints, topic, files[:1], max_dlq_ratio=0.05)
    before = counters.until(lambda now: now.get("batches_committed") == 1 and "rows_read" in now)
    time.sleep(0.3)
    before = counters.read()

    retry = publish(endpoints, topic, files[:1], run=RunInfo(RUN.dag_id, RUN.run_id, RUN.task_id, -1, 2))

    assert retry["skipped"] == BATCH
    assert counters.since(before, expected_counters(retry)) == expected_counters(retry)
