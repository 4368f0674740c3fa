"""The UI path, in a real browser: log in, open ``ingest_orders``, unpause it, and backfill three
days through Trigger → Backfill (Max Active Runs 3); then the same with Reprocess Behavior
"All Runs", which must publish nothing new.

Playwright (PyPI) drives Debian's ``chromium`` (``/usr/bin/chromium``, apt-installed by
``make setup``; no browser download). The DAG is the production ``ingest_orders`` on the stack's
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
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from stack_airflow import AirflowServer

from kafka_ingest.testing.samples import DayManifest, write_day
from kafka_ingest.testing.topics import TopicRecord, read_topic

pytestmark = [pytest.mark.deploy, pytest.mark.integration, pytest.mark.timeout(1800)]

DAG_ID = "ingest_orders"
TOPIC = "shopping.order.created"
CHROMIUM = Path(os.environ.get("KAFKA_INGEST_CHROMIUM", "/usr/bin/chromium"))
#: The UI under a busy scheduler: each page and click may take a while.
UI_TIMEOUT_MS = 120_000
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


@pytest.fixture
def browser_page(artifacts: Path) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), f"{CHROMIUM} not found: make setup installs Debian's chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(UI_TIMEOUT_MS)
        try:
            yield page
        finally:
            page.screenshot(path=str(artifacts / "99-last.png"), full_page=True)
            browser.close()


def choose(dialog: object, name: str) -> None:
    """Tick a radio of the dialog. Its input sits under a styled control, and while the dialog
    still slides in Playwright can find it "outside of the viewport" (seen once on the Celery
    stack): such a try is repeated for up to 15 s."""
    from playwright.sync_api import Error

    deadline = time.monotonic() + 15
    while True:
        try:
            dialog.get_by_role("radio", name=name).check(force=True, timeout=5_000)  # type: ignore[attr-defined]
            return
        except Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class Ui:
    """The clicks, each followed by a numbered screenshot."""

    def __init__(self, page: object, server: AirflowServer, artifacts: Path) -> None:
        self.page = page
        self.server = server
        self.artifacts = artifacts
        self.step = 0

    def shot(self, name: str) -> None:
        self.step += 1
        self.page.screenshot(path=str(self.artifacts / f"{self.step:02d}-{name}.png"), full_page=True)  # type: ignore[attr-defined]

    def log_in(self) -> None:
        page = self.page
        page.goto(f"{self.server.url}/auth/login")  # type: ignore[attr-defined]
        page.get_by_label("Username").fill(self.server.username)  # type: ignore[attr-defined]
        page.get_by_label("Password").fill(self.server.password)  # type: ignore[attr-defined]
        self.shot("login")
        page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
        page.wait_for_url(lambda url: "/auth/login" not in url)  # type: ignore[attr-defined]
        self.shot("logged-in")

    def open_dag(self) -> None:
        self.page.goto(f"{self.server.url}/dags/{DAG_ID}")  # type: ignore[attr-defined]
        self.page.get_by_role("button", name="Trigger Dag").wait_for()  # type: ignore[attr-defined]
        self.shot("dag")

    def unpause(self) -> None:
        toggle = self.page.get_by_role("heading").get_by_role("checkbox").first  # type: ignore[attr-defined]
        if not toggle.is_checked():
            toggle.click(force=True)
        deadline = time.monotonic() + 60
        while self.server.api("GET", f"/api/v2/dags/{DAG_ID}")["is_paused"]:
            assert time.monotonic() < deadline, "the toggle did not unpause the DAG"
            time.sleep(1)
        self.shot("unpaused")

    def backfill(self, days: tuple[str, ...], behavior: str, label: str) -> int:
        """Trigger → Backfill, From/To, Reprocess Behavior, Max Active Runs 3, Run Backfill;
        the id of the backfill it made."""
        page = self.page
        before = self._last_backfill_id()
        page.get_by_role("button", name="Trigger Dag").click()  # type: ignore[attr-defined]
        dialog = page.get_by_role("dialog")  # type: ignore[attr-defined]
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
        self.page.goto(f"{self.server.url}/dags/{DAG_ID}/runs")  # type: ignore[attr-defined]
        self.page.wait_for_timeout(3000)  # type: ignore[attr-defined]
        self.shot(f"{label}-runs")


def set_date(page: object, dialog: object, field: str, day: str) -> None:
    """Types a day at 00:00 UTC into one of the dialog's date-time pickers (a popover with a
    "YYYY/MM/DD" box named like the field and an "HH:mm" box)."""
    group = dialog.get_by_role("group").filter(has_text=field).first  # type: ignore[attr-defined]
    group.get_by_test_id("datetime-input").click()
    popover = page.get_by_role("dialog").filter(has=page.get_by_placeholder("YYYY/MM/DD")).last  # type: ignore[attr-defined]
    popover.get_by_role("textbox", name=field).fill(day.replace("-", "/"))
    popover.get_by_role("textbox", name="HH:mm").fill("00:00")
    popover.get_by_role("textbox", name="HH:mm").press("Enter")
    page.keyboard.press("Escape")  # type: ignore[attr-defined]


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
    browser_page: object,
    artifacts: Path,
    kafka_bootstrap: str,
) -> None:
    days = tuple(landed)
    published = Counter({(day, key): 1 for day, m in landed.items() for key in m.published})
    rejected = sum(len(m.rejected) for m in landed.values())
    ui = Ui(browser_page, airflow_server, artifacts)
    ui.log_in()
    ui.open_dag()
    try:
        ui.unpause()

        first = ui.backfill(days, "Missing Runs", "missing")
        ui.wait(first, "missing")
        runs = airflow_server.api("GET", f"/api/v2/backfills/{first}")
        assert runs["completed_at"] is not None
        assert rows_of(read_topic(kafka_bootstrap, TOPIC), landed) == published
        assert sum(rows_of(read_topic(kafka_bootstrap, f"{TOPIC}.dlq"), landed).values()) == rejected

        again = ui.backfill(days, "All Runs", "all-runs")
        ui.wait(again, "all-runs")
        assert rows_of(read_topic(kafka_bootstrap, TOPIC), landed) == published
        assert sum(rows_of(read_topic(kafka_bootstrap, f"{TOPIC}.dlq"), landed).values()) == rejected
    finally:
        airflow_server.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": True})
