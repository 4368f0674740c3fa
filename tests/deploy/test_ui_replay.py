"""The DLQ replay from the UI trigger form, as docs/dlq-replay.md walks an on-call engineer through it:
the production ``replay_dlq`` DAG on the stack's running Airflow, triggered in a real browser.

The arrangement is the one of ``tests/integration/test_replay_corrections.py`` (its helpers, in
``replay_helpers``): a day of orders ingested by the product onto a topic of the test's own, three
of them rejected because their total does not match their items (the data was wrong), and a
corrections file from "the data team" in the stack's extracts root with the three rows fixed.
(A corrected row that still fails goes back to the DLQ on each replay, see the integration tests
for the still-failing path.) Then, in the browser (Trigger → Single Run → the DAG's Params):

1. a dry run (the form's default): nothing is published, the report says what would happen;
2. the replay (Dry run unticked): the fixed rows land on the topic exactly once, with
   ``dlq.replay_of``, and one audit record names the signed-in user who pressed Trigger;
3. the same replay triggered again: nothing new on the topic or the DLQ (docs/dlq-replay.md,
   "Replaying the same selection twice adds nothing the second time").

Topics are read back with a ``read_committed`` confluent-kafka consumer (``read_topic``). Runs on
both executors (``make test-ui``, ``make test-celery``); screenshots: ``$STACK_DIR/artifacts/<test>/``.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, expect
from stack_airflow import AirflowServer, wait_registered
from ui import Ui, choose, new_run, run_ids, signed_in, wait_for_run, xcom

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

from ingest_helpers import Endpoints, csv_text, with_topic
from replay_helpers import DATE, audit_records, envelopes, keys, land_and_ingest

from kafka_ingest.testing.topics import read_topic
from kafka_ingest.topics.orders import ORDERS

pytestmark = [pytest.mark.deploy, pytest.mark.integration, pytest.mark.timeout(1800)]

DAG_ID = "replay_dlq"
#: One small replay takes well under a minute on an idle machine; a loaded shared one is slower.
RUN_TIMEOUT_S = 900

GOOD = ["ORD-0001", "ORD-0002"]
FIXED = ["ORD-0003", "ORD-0004", "ORD-0005"]


def order(key: str, total: str = "10.00") -> dict[str, Any]:
    """An order whose items add up to 10.00: any other ``total`` fails the total rule."""
    return {
        "order_number": key,
        "user_id": "user-1",
        "status": "CREATED",
        "items": [{"product_id": "P-1", "quantity": 2, "unit_price": "5.00"}],
        "total_price": total,
        "currency": "USD",
        "created_at": f"{DATE}T10:00:00Z",
        "coupon_code": "",
    }


@dataclass(frozen=True)
class BrokenDay:
    """A day whose rejected rows wait in the DLQ, and the corrections file that fixes two of them."""

    topic: str
    corrections: Path

    @property
    def dlq(self) -> str:
        return f"{self.topic}.dlq"


@pytest.fixture
def broken_day(
    kafka_bootstrap: str, schema_registry_url: str, unique_name: Callable[[str], str]
) -> BrokenDay:
    topic = unique_name("uireplay")
    root = Path(os.environ["AIRFLOW_VAR_EXTRACTS_ROOT"]) / "replay-ui" / topic
    endpoints = Endpoints(kafka_bootstrap, schema_registry_url, f"it-checkpoints-{topic}")
    wrong = FIXED
    land_and_ingest(
        endpoints,
        with_topic(ORDERS, topic),
        root,
        [order(k) for k in GOOD] + [order(k, "11.00") for k in wrong],
    )
    assert keys(read_topic(kafka_bootstrap, topic)) == GOOD
    assert sorted(e["original"]["order_number"] for _, e in envelopes(kafka_bootstrap, topic)) == wrong
    corrections = root / f"corrections-{DATE}.csv"
    fixed = [order(key) for key in FIXED]
    corrections.write_text(csv_text(ORDERS.all_columns, fixed), encoding="utf-8")
    return BrokenDay(topic, corrections)


class ReplayUi(Ui):
    """The trigger form of ``replay_dlq`` (docs/dlq-replay.md, "Dry run, from the UI")."""

    def trigger(self, day: BrokenDay, *, dry_run: bool, label: str) -> str:
        """Trigger → Single Run, the Params of a corrections replay of ``DATE``, Trigger; the id
        of the run it made."""
        self.open_dag()  # on a run's page, Trigger is a menu (Trigger, Trigger again with this config)
        before = run_ids(self.server, self.dag_id)
        dialog = self.open_trigger()
        choose(dialog, "Single Run")
        button = dialog.get_by_role("button", name="Trigger", exact=True)
        form = dialog.get_by_test_id("config-form")
        keys = form.locator("#element_keys")
        keys.wait_for()
        # The docs leave every selection field blank for "any": the form must let that through
        # (a Param that does not allow null is "required" in the UI, and Trigger stays disabled).
        keys.fill(FIXED[0])
        keys.fill("")
        expect(button).to_be_enabled()
        self._pick(form, "dataset", "orders")
        form.locator("#element_topic").fill(day.topic)
        form.locator("#element_date_from").fill(DATE)
        form.locator("#element_date_to").fill(DATE)
        self._pick(form, "source", "corrections")
        form.locator("#element_corrections_file").fill(str(day.corrections))
        box = form.get_by_role("checkbox", name="Dry run")
        if box.is_checked() != dry_run:
            # The switch's input is visually hidden: its drawn control takes the click (Chakra's
            # Switch names it "switch:<id>:control").
            form.locator("[id='switch:element_dry_run:control']").click()
        expect(box).to_be_checked(checked=dry_run)
        self.shot_tall(f"{label}-form")
        button.click()
        run_id = new_run(self.server, self.dag_id, before)
        self.shot(f"{label}-triggered")
        return run_id

    def _pick(self, form: Locator, param: str, value: str) -> None:
        """One value of an enum Param's drop-down (its options open in a portal, outside the form)."""
        form.locator(f"#element_{param}").get_by_role("combobox").click()
        self.page.get_by_role("option", name=value, exact=True).click()
        expect(form.locator(f"input[name='element_{param}']")).to_have_value(value)

    def shot_tall(self, name: str) -> None:
        """A screenshot of the whole dialog (it scrolls inside a viewport-high modal)."""
        self.page.set_viewport_size({"width": 1400, "height": 2800})
        self.shot(name)
        self.page.set_viewport_size({"width": 1400, "height": 1000})

    def show_run(self, run_id: str, label: str) -> None:
        """docs/dlq-replay.md's way to the report: the run's ``replay`` task, its Logs (one line
        per envelope, then the summary) and Storage → XCom (``return_value``)."""
        task = f"{self.server.url}/dags/{self.dag_id}/runs/{run_id}/tasks/replay"
        self.page.goto(task)
        self.page.get_by_text(f"Replay {self.dag_id}/{run_id} of ").first.wait_for()
        self.shot(f"{label}-log")
        self.page.get_by_role("link", name="Storage", exact=True).click()
        self.page.get_by_role("link", name="XCom", exact=True).click()
        self.page.get_by_text("return_value").first.wait_for()
        self.shot(f"{label}-xcom")


def test_a_corrections_replay_from_the_ui_trigger_form_publishes_once_and_again_nothing(
    airflow_server: AirflowServer, broken_day: BrokenDay, artifacts: Path, kafka_bootstrap: str
) -> None:
    day = broken_day
    where = {
        e["original"]["order_number"]: f"{day.dlq}:{r.partition}:{r.offset}"
        for r, e in envelopes(kafka_bootstrap, day.topic)
    }
    dlq_before = read_topic(kafka_bootstrap, day.dlq)
    wait_registered(airflow_server, DAG_ID)

    with signed_in(airflow_server, artifacts, DAG_ID, ReplayUi) as ui:
        try:
            ui.unpause()

            # 1. The dry run: what would happen to each envelope; nothing is published.
            dry = ui.trigger(day, dry_run=True, label="dry-run")
            run = wait_for_run(airflow_server, DAG_ID, dry, RUN_TIMEOUT_S)
            assert run["conf"]["topic"] == day.topic
            assert (run["conf"]["source"], run["conf"]["dry_run"]) == ("corrections", True)
            ui.show_run(dry, "dry-run")
            report = xcom(airflow_server, DAG_ID, dry, "replay")
            assert report["dry_run"] is True
            outcomes = {line["key"]: line["outcome"] for line in report["envelopes"]}
            assert outcomes == dict.fromkeys(FIXED, "published")
            assert keys(read_topic(kafka_bootstrap, day.topic)) == GOOD
            assert read_topic(kafka_bootstrap, day.dlq) == dlq_before
            assert audit_records(kafka_bootstrap, f"{DAG_ID}/{dry}") == []

            # 2. The replay: the fixed rows once, nothing more in the DLQ, one audit record.
            first = ui.trigger(day, dry_run=False, label="replay")
            wait_for_run(airflow_server, DAG_ID, first, RUN_TIMEOUT_S)
            ui.show_run(first, "replay")
            report = xcom(airflow_server, DAG_ID, first, "replay")
            expected = {
                "selected": 3,
                "published": 3,
                "still_failing": 0,
                "skipped_already_published": 0,
                "needs_correction": 0,
                "skipped_unreadable": 0,
                "skipped_other_topic": 0,
            }
            assert report["counts"] == expected
            records = read_topic(kafka_bootstrap, day.topic)
            assert Counter(r.key_text for r in records) == Counter([*GOOD, *FIXED])
            replayed = {
                r.key_text: r.header("dlq.replay_of") for r in records if "dlq.replay_of" in r.headers
            }
            assert replayed == {key: where[key] for key in FIXED}
            assert read_topic(kafka_bootstrap, day.dlq) == dlq_before

            [audit] = audit_records(kafka_bootstrap, f"{DAG_ID}/{first}")
            assert audit["replay_id"] == f"{DAG_ID}/{first}"
            assert audit["who"] == airflow_server.username, "the signed-in user who pressed Trigger"
            assert (audit["topic"], audit["dlq_topic"]) == (day.topic, day.dlq)
            assert (audit["selection"]["date_from"], audit["selection"]["date_to"]) == (DATE, DATE)
            assert audit["source"]["kind"] == "corrections"
            assert audit["source"]["file"] == str(day.corrections)
            assert audit["source"]["rows"] == 3
            assert audit["counts"] == expected
            assert audit["status"] == "complete"
            assert (audit["dag_id"], audit["run_id"], audit["task_id"]) == (DAG_ID, first, "replay")
            assert audit["started_at"] <= audit["finished_at"]
            topic_after, dlq_after = records, read_topic(kafka_bootstrap, day.dlq)

            # 3. The same replay again: nothing new anywhere.
            second = ui.trigger(day, dry_run=False, label="again")
            wait_for_run(airflow_server, DAG_ID, second, RUN_TIMEOUT_S)
            ui.show_run(second, "again")
            report = xcom(airflow_server, DAG_ID, second, "replay")
            counts = report["counts"]
            assert (counts["published"], counts["skipped_already_published"]) == (0, 3)
            assert read_topic(kafka_bootstrap, day.topic) == topic_after
            assert read_topic(kafka_bootstrap, day.dlq) == dlq_after, "the second replay wrote to the DLQ"
            [audit] = audit_records(kafka_bootstrap, f"{DAG_ID}/{second}")
            assert audit["counts"] == counts
        finally:
            ui.pause()
