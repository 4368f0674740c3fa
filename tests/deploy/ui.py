"""What the browser tests share: Debian's Chromium under Playwright, and the clicks an operator makes
on the stack's running Airflow (sign in, open a DAG, unpause it, open the Trigger dialog, tick its
radios), each followed by a numbered screenshot in the test's ``artifacts`` folder; and the REST
polls that wait for what a click started.

Playwright (PyPI) drives ``/usr/bin/chromium`` (apt-installed by ``make setup``; no browser
download). Every wait is bounded and, when it runs out, says what Airflow reports (the run's state
and its task instances' states), since on a busy shared machine "too slow" and "broken" look alike.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from stack_airflow import AirflowServer

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

CHROMIUM = Path(os.environ.get("KAFKA_INGEST_CHROMIUM", "/usr/bin/chromium"))
#: The UI under a busy scheduler: each page and click may take a while.
UI_TIMEOUT_MS = 120_000
#: A DAG run's terminal states (the REST API's ``state``).
FINISHED = ("success", "failed")


@contextmanager
def open_browser(artifacts: Path) -> Iterator[Page]:
    """A headless Chromium page with long timeouts; a last full-page screenshot when it closes
    (also after a failure: ``99-last.png`` shows where the test stopped)."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
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


def choose(dialog: Locator, name: str) -> None:
    """Tick a radio of the dialog. Its input sits under a styled control, and while the dialog
    still slides in Playwright can find it "outside of the viewport" (seen once on the Celery
    stack): such a try is repeated for up to 15 s."""
    from playwright.sync_api import Error

    deadline = time.monotonic() + 15
    while True:
        try:
            dialog.get_by_role("radio", name=name).check(force=True, timeout=5_000)
            return
        except Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def set_date(page: Page, dialog: Locator, field: str, day: str) -> None:
    """Types a day at 00:00 UTC into one of the dialog's date-time pickers (a popover with a
    "YYYY/MM/DD" box named like the field and an "HH:mm" box)."""
    group = dialog.get_by_role("group").filter(has_text=field).first
    group.get_by_test_id("datetime-input").click()
    popover = page.get_by_role("dialog").filter(has=page.get_by_placeholder("YYYY/MM/DD")).last
    popover.get_by_role("textbox", name=field).fill(day.replace("-", "/"))
    popover.get_by_role("textbox", name="HH:mm").fill("00:00")
    popover.get_by_role("textbox", name="HH:mm").press("Enter")
    page.keyboard.press("Escape")


U = TypeVar("U", bound="Ui")


class Ui:
    """One signed-in operator on one DAG: the clicks, each followed by a numbered screenshot."""

    def __init__(self, page: Page, server: AirflowServer, artifacts: Path, dag_id: str) -> None:
        self.page = page
        self.server = server
        self.artifacts = artifacts
        self.dag_id = dag_id
        self.step = 0

    def shot(self, name: str) -> None:
        self.step += 1
        self.page.screenshot(path=str(self.artifacts / f"{self.step:02d}-{name}.png"), full_page=True)

    def log_in(self) -> None:
        page = self.page
        page.goto(f"{self.server.url}/auth/login")
        page.get_by_label("Username").fill(self.server.username)
        page.get_by_label("Password").fill(self.server.password)
        self.shot("login")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/auth/login" not in url)
        self.shot("logged-in")

    def open_dag(self) -> None:
        self.page.goto(f"{self.server.url}/dags/{self.dag_id}")
        self.page.get_by_role("button", name="Trigger Dag").wait_for()
        self.shot("dag")

    def unpause(self) -> None:
        """The toggle beside the DAG's name (new DAGs start paused, and a paused DAG's runs stay
        queued)."""
        toggle = self.page.get_by_role("heading").get_by_role("checkbox").first
        if not toggle.is_checked():
            toggle.click(force=True)
        deadline = time.monotonic() + 60
        while self.server.api("GET", f"/api/v2/dags/{self.dag_id}")["is_paused"]:
            assert time.monotonic() < deadline, f"the toggle did not unpause {self.dag_id}"
            time.sleep(1)
        self.shot("unpaused")

    def pause(self) -> None:
        """Through the API: the test's clean-up, also when the browser is gone."""
        self.server.api("PATCH", f"/api/v2/dags/{self.dag_id}", {"is_paused": True})

    def open_trigger(self) -> Locator:
        """Clicks Trigger; the dialog (Single Run or Backfill, then the DAG's Params)."""
        self.page.get_by_role("button", name="Trigger Dag").click()
        dialog = self.page.get_by_role("dialog")
        dialog.wait_for()
        return dialog


@contextmanager
def signed_in(server: AirflowServer, artifacts: Path, dag_id: str, kind: type[U] = Ui) -> Iterator[U]:
    """A browser on the stack's Airflow, signed in as its admin, on ``dag_id``'s page; ``kind``
    adds a test's own clicks to :class:`Ui`'s."""
    with open_browser(artifacts) as page:
        ui = kind(page, server, artifacts, dag_id)
        ui.log_in()
        ui.open_dag()
        yield ui


def run_ids(server: AirflowServer, dag_id: str) -> set[str]:
    """The ids of every run of the DAG so far (to tell which run a click made)."""
    found = server.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=1000")["dag_runs"]
    return {run["dag_run_id"] for run in found}


def new_run(server: AirflowServer, dag_id: str, before: set[str], timeout_s: float = 120) -> str:
    """The id of the one run made since ``before`` was taken; fails if none (or several) appear."""
    deadline = time.monotonic() + timeout_s
    while not (made := run_ids(server, dag_id) - before):
        assert time.monotonic() < deadline, f"no new run of {dag_id} after {timeout_s}s: the click made none"
        time.sleep(2)
    assert len(made) == 1, f"one click made several runs of {dag_id}: {sorted(made)}"
    return made.pop()


def run_path(dag_id: str, run_id: str) -> str:
    return f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"


def task_states(server: AirflowServer, dag_id: str, run_id: str) -> list[tuple[str, int, Any, Any]]:
    """(task, map index, state, try number) of each task instance of the run."""
    found = server.api("GET", f"{run_path(dag_id, run_id)}/taskInstances?limit=1000")["task_instances"]
    return [(ti["task_id"], ti["map_index"], ti["state"], ti["try_number"]) for ti in found]


def wait_for_run(server: AirflowServer, dag_id: str, run_id: str, timeout_s: float) -> dict[str, Any]:
    """Polls the run until it finishes; its REST record. Fails, naming the run's state and its
    task instances' states, when it does not finish in ``timeout_s`` or does not succeed."""
    deadline = time.monotonic() + timeout_s
    while (run := server.api("GET", run_path(dag_id, run_id)))["state"] not in FINISHED:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{dag_id} run {run_id} still {run['state']} after {timeout_s}s; "
                f"tasks: {task_states(server, dag_id, run_id)}"
            )
        time.sleep(3)
    assert run["state"] == "success", (
        f"{dag_id} run {run_id} ended {run['state']}; tasks: {task_states(server, dag_id, run_id)}"
    )
    return dict(run)


def xcom(server: AirflowServer, dag_id: str, run_id: str, task_id: str) -> Any:
    """A task's ``return_value`` XCom as the task returned it (JSON-shaped values only): the
    REST API's raw value, which is the stored JSON, as a string or already decoded."""
    path = f"{run_path(dag_id, run_id)}/taskInstances/{task_id}/xcomEntries/return_value"
    value = server.api("GET", path)["value"]
    return json.loads(value) if isinstance(value, str) else value
