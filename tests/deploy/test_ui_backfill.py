"""The UI path, in a real browser: log in, open ``ingest_orders``, unpause it, and backfill three
days through Trigger → Backfill (Max Active Runs 3); then the same with Reprocess Behavior
"All Runs", which must publish nothing new.

The browser and the clicks both UI tests make are in ``ui.py`` (Playwright driving Debian's
``chromium``). The DAG is the production ``ingest_orders`` on the stack's
running Airflow, so the test lands its days in the stack's extracts root (the ``extracts_root``
Variable) on days that have neither files nor runs yet, and checks the production topic for
those days' files only. It passes on both executors (``make test-ui`` on LocalExecutor,
``make test-celery`` on Celery). Screenshots of every step: ``$STACK_DIR/artifacts/<test>/``.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
from stack_airflow import AirflowServer
from ui import Ui, choose, set_date, signed_in

from kafka_ingest.testing.samples import DayManifest, write_day
from kafka_ingest.testing.topics import TopicRecord, end_offsets, read_topic

pytestmark = [pytest.mark.deploy, pytest.mark.integration, pytest.mark.timeout(1800)]

DAG_ID = "ingest_orders"
TOPIC = "shopping.order.created"
#: Three small days with Max Active Runs 3 take about a minute on an idle machine.
BACKFILL_TIMEOUT_S = 900


def free_days(server: AirflowServer, root: Path, count: int = 3) -> tuple[str, ...]:
    """``count`` consecutive past days with no extract folder and no run of the DAG yet, so a
    "Missing Runs" backfill makes exactly these runs, on any stack and on a rerun."""
    runs = server.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=1000")["dag_runs"]
    taken = {run["logical_date"][:10] for run in runs if run.get("logical_date")}
    candidates = list(range(0, 280, count))
    random.shuffle(candidates)
    for offset in candidates:
        first = date(2026, 2, 10) + timedelta(days=offset)
        days = tuple(str(first + timedelta(days=n)) for n in range(count))
        if not any(day in taken or (root / "orders" / f"dt={day}").exists() for day in days):
            return days
    raise AssertionError(f"no {count} free days left for {DAG_ID} under {root}")


@pytest.fixture(scope="module")
def landed(airflow_server: AirflowServer) -> dict[str, DayManifest]:
    root = Path(os.environ["AIRFLOW_VAR_EXTRACTS_ROOT"])
    days = free_days(airflow_server, root)
    return {day: write_day(root, "orders", day, rows=120, seed=int(time.time())) for day in days}


class BackfillUi(Ui):
    """The backfill clicks on top of the shared ones (tests/deploy/ui.py)."""

    def backfill(self, days: tuple[str, ...], behavior: str, label: str) -> int:
        """Trigger → Backfill, From/To, Reprocess Behavior, Max Active Runs 3, Run Backfill;
        the id of the backfill it made."""
        page = self.page
        before = self._last_backfill_id()
        dialog = self.open_trigger()
        choose(dialog, "Backfill")
        set_date(page, dialog, "From", days[0])
        set_date(page, dialog, "To", days[-1])
        choose(dialog, behavior)
        dialog.get_by_role("spinbutton").first.fill("3")
        dialog.get_by_text(f"{len(days)} runs will be triggered").wait_for()
        self.shot(f"{label}-form")
        dialog.get_by_role("button", name="Run Backfill").click()
        deadline = time.monotonic() + 120
        while (latest := self._last_backfill_id()) == before:
            assert time.monotonic() < deadline, "Run Backfill made no backfill"
            time.sleep(2)
        self.shot(f"{label}-created")
        return latest

    def _last_backfill_id(self) -> int:
        found = self.server.api("GET", f"/api/v2/backfills?dag_id={DAG_ID}&order_by=-id&limit=1")
        return int(found["backfills"][0]["id"]) if found["backfills"] else 0

    def wait(self, backfill_id: int, label: str) -> None:
        deadline = time.monotonic() + BACKFILL_TIMEOUT_S
        while self.server.api("GET", f"/api/v2/backfills/{backfill_id}")["completed_at"] is None:
            assert time.monotonic() < deadline, (
                f"backfill {backfill_id} not complete after {BACKFILL_TIMEOUT_S}s"
            )
            time.sleep(3)
        self.page.goto(f"{self.server.url}/dags/{DAG_ID}/runs")
        self.page.wait_for_timeout(3000)
        self.shot(f"{label}-runs")


def rows_of(records: list[TopicRecord], manifests: dict[str, DayManifest]) -> Counter[tuple[str, str]]:
    """(day, key) of each record that came from the test's files (order numbers repeat across
    days, so the day is part of a row's identity)."""
    days = {str(Path(f).resolve()): day for day, m in manifests.items() for f in m.files}
    found: Counter[tuple[str, str]] = Counter()
    for record in records:
        day = days.get(str(Path(record.header("source.file")).resolve()))
        if day is not None:
            found[(day, record.key_text)] += 1
    return found


def test_a_backfill_from_the_ui_publishes_each_day_once_and_all_runs_again_publishes_nothing(
    airflow_server: AirflowServer,
    landed: dict[str, DayManifest],
    artifacts: Path,
    kafka_bootstrap: str,
) -> None:
    days = tuple(landed)
    published = Counter({(day, key): 1 for day, m in landed.items() for key in m.published})
    rejected = sum(len(m.rejected) for m in landed.values())
    # The production topic holds whatever the stack has published before (millions of records on
    # a stack used for months): read only from where it ended when the test began.
    since = {topic: end_offsets(kafka_bootstrap, topic) for topic in (TOPIC, f"{TOPIC}.dlq")}

    def landed_rows(topic: str) -> Counter[tuple[str, str]]:
        return rows_of(read_topic(kafka_bootstrap, topic, since=since[topic], timeout_s=120), landed)

    with signed_in(airflow_server, artifacts, DAG_ID, BackfillUi) as ui:
        try:
            ui.unpause()

            first = ui.backfill(days, "Missing Runs", "missing")
            ui.wait(first, "missing")
            runs = airflow_server.api("GET", f"/api/v2/backfills/{first}")
            assert runs["completed_at"] is not None
            assert landed_rows(TOPIC) == published
            assert sum(landed_rows(f"{TOPIC}.dlq").values()) == rejected

            again = ui.backfill(days, "All Runs", "all-runs")
            ui.wait(again, "all-runs")
            assert landed_rows(TOPIC) == published
            assert sum(landed_rows(f"{TOPIC}.dlq").values()) == rejected
        finally:
            ui.pause()
