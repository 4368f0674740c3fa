"""Replaying from the envelopes' originals after a rule fix, through the ``replay_dlq`` DAG.

Each test lands a day of orders whose ``currency_allowed`` rule wrongly refused JPY, so the JPY
rows sit in the DLQ; the replay runs the production rules (JPY allowed) with ``dag.test()``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ingest_helpers import Endpoints, statsd_counters, with_topic
from replay_helpers import (
    DATE,
    audit_records,
    envelopes,
    keys,
    land_and_ingest,
    replay_dag,
    run_replay,
    wrong_rule,
)

from kafka_ingest.testing.topics import read_topic
from kafka_ingest.topics.orders import ORDERS

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow]

VALID = ["ORD-0001", "ORD-0002", "ORD-0003", "ORD-0004"]
JPY = ["ORD-0005", "ORD-0006", "ORD-0007"]
GBP = "ORD-0008"


def order(key: str, currency: str = "USD") -> dict[str, Any]:
    return {
        "order_number": key,
        "user_id": "user-1",
        "status": "CREATED",
        "items": [{"product_id": "P-1", "quantity": 2, "unit_price": "5.00"}],
        "total_price": "10.00",
        "currency": currency,
        "created_at": "2026-01-05T10:00:00Z",
        "coupon_code": "",
    }


@pytest.fixture
def day(endpoints: Endpoints, unique_name: Callable[[str], str], tmp_path: Path) -> str:
    """A day ingested with the wrong rule: 4 published, 3 JPY and 1 GBP in the DLQ; its topic."""
    topic = unique_name("replay")
    spec = wrong_rule(with_topic(ORDERS, topic), "_currency_allowed", "currency", "JPY")
    rows = [order(k) for k in VALID] + [order(k, "JPY") for k in JPY] + [order(GBP, "GBP")]
    land_and_ingest(endpoints, spec, tmp_path, rows)
    assert keys(read_topic(endpoints.bootstrap, topic)) == VALID
    return topic


@pytest.fixture
def dag(unique_name: Callable[[str], str]) -> Any:
    return replay_dag(unique_name("replay_dag").replace("-", "_"))


def test_rule_fixed_replay_from_originals_publishes_the_rows_once_with_replay_of(
    day: str, dag: Any, kafka_bootstrap: str
) -> None:
    before = envelopes(kafka_bootstrap, day)
    where = {
        envelope["original"]["order_number"]: f"{record.partition}:{record.offset}"
        for record, envelope in before
    }

    run, report = run_replay(dag, dataset="orders", topic=day, date_from=DATE, date_to=DATE)

    assert run.state == "success"
    assert report is not None
    assert report["counts"] == {
        "selected": 4,
        "published": 3,
        "still_failing": 1,
        "skipped_already_published": 0,
        "needs_correction": 0,
        "skipped_unreadable": 0,
        "skipped_other_topic": 0,
    }
    records = read_topic(kafka_bootstrap, day)
    assert keys(records) == sorted(VALID + JPY)
    replayed = {r.key_text: r for r in records if "dlq.replay_of" in r.headers}
    assert sorted(replayed) == JPY
    for key, record in replayed.items():
        assert record.header("dlq.replay_of") == f"{day}.dlq:{where[key]}"
        assert record.header("source.row")
        assert record.header("source.file").endswith("part-0001.csv")
        assert record.header("correlation_id")
        assert record.header("event_type") == "OrderCreated"


def test_a_row_that_still_fails_goes_back_to_the_dlq_with_replay_of_and_a_count(
    day: str, dag: Any, kafka_bootstrap: str
) -> None:
    [(gbp_record, _)] = [
        (r, e) for r, e in envelopes(kafka_bootstrap, day) if e["original"]["currency"] == "GBP"
    ]

    run, _ = run_replay(dag, dataset="orders", topic=day, rules=["currency_allowed"])

    assert run.state == "success"
    again = [(r, e) for r, e in envelopes(kafka_bootstrap, day) if "replay" in e]
    assert len(again) == 1
    record, envelope = again[0]
    assert envelope["failed_rules"] == ["currency_allowed"]
    assert envelope["replay"]["of"] == {
        "topic": f"{day}.dlq",
        "partition": gbp_record.partition,
        "offset": gbp_record.offset,
    }
    assert envelope["replay"]["count"] == 1
    assert envelope["replay"]["id"] == f"{run.dag_id}/{run.run_id}"
    assert record.header("dlq.replay_of") == f"{day}.dlq:{gbp_record.partition}:{gbp_record.offset}"


def test_replaying_the_same_selection_twice_publishes_nothing_the_second_time(
    day: str, dag: Any, kafka_bootstrap: str
) -> None:
    run_replay(dag, dataset="orders", topic=day, date_from=DATE)
    topic_after, dlq_after = read_topic(kafka_bootstrap, day), read_topic(kafka_bootstrap, f"{day}.dlq")

    run, report = run_replay(dag, dataset="orders", topic=day, date_from=DATE)

    assert run.state == "success"
    assert report is not None
    counts = report["counts"]
    assert (counts["published"], counts["skipped_already_published"], counts["still_failing"]) == (0, 3, 1)
    assert read_topic(kafka_bootstrap, day) == topic_after
    assert read_topic(kafka_bootstrap, f"{day}.dlq") == dlq_after, "the second replay wrote to the DLQ"


def test_dry_run_lists_each_envelope_and_publishes_nothing(day: str, dag: Any, kafka_bootstrap: str) -> None:
    dlq_before = read_topic(kafka_bootstrap, f"{day}.dlq")

    run, report = run_replay(dag, dataset="orders", topic=day, dry_run=True)

    assert run.state == "success"
    assert report is not None
    assert report["dry_run"] is True
    outcomes = {line["key"]: line["outcome"] for line in report["envelopes"]}
    assert outcomes == {**dict.fromkeys(JPY, "published"), GBP: "still failing"}
    assert "would be published (dry run: nothing was)" in report["summary"]
    assert keys(read_topic(kafka_bootstrap, day)) == VALID
    assert read_topic(kafka_bootstrap, f"{day}.dlq") == dlq_before
    assert audit_records(kafka_bootstrap, f"{run.dag_id}/") == []


def test_audit_record_says_who_when_what_and_how_many(day: str, dag: Any, kafka_bootstrap: str) -> None:
    run, report = run_replay(
        dag, dataset="orders", topic=day, keys=[*JPY, GBP], error_types=["ExpectationFailed"]
    )

    [audit] = audit_records(kafka_bootstrap, f"{run.dag_id}/{run.run_id}")
    assert report is not None
    assert audit["replay_id"] == f"{run.dag_id}/{run.run_id}"
    assert audit["topic"] == day
    assert audit["dlq_topic"] == f"{day}.dlq"
    assert audit["counts"] == report["counts"]
    assert audit["counts"]["published"] == 3
    assert audit["selection"]["keys"] == [*JPY, GBP]
    assert audit["selection"]["error_types"] == ["ExpectationFailed"]
    assert audit["source"] == {"kind": "original"}
    assert audit["status"] == "complete"
    assert audit["started_at"] <= audit["finished_at"]
    assert (audit["dag_id"], audit["run_id"], audit["task_id"]) == (run.dag_id, run.run_id, "replay")
    assert audit["who"] == "dag_test", "the DAG run's triggering user (dag.test() names itself)"
    assert "envelopes" not in audit
    assert json.dumps(audit)  # plain JSON


def test_replay_metrics_count_replayed_and_failed_rows_per_topic(
    day: str, dag: Any, kafka_bootstrap: str, stack: Any
) -> None:
    prefix = f"airflow.kafka_ingest.{day.replace('.', '_')}."

    def counters() -> dict[str, int]:
        return statsd_counters(stack.statsd_host, stack.statsd_admin_port, prefix)

    before = counters()
    run_replay(dag, dataset="orders", topic=day)

    wanted = {"rows_replayed": 3, "rows_replay_failed": 1}
    deadline = time.monotonic() + 10
    while True:  # UDP: the counters arrive a moment later
        after = counters()
        delta = {name: after.get(name, 0) - before.get(name, 0) for name in wanted}
        if delta == wanted or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert delta == wanted


def test_cli_dry_run_then_replay_then_resume_id_does_nothing_more(
    day: str, kafka_bootstrap: str, schema_registry_url: str
) -> None:
    base = [sys.executable, "-m", "kafka_ingest", "replay", "orders", "--topic", day, "--from", DATE]
    base += ["--bootstrap", kafka_bootstrap, "--registry-url", schema_registry_url, "--user", "oncall-anna"]

    def cli(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *extra], capture_output=True, text=True, timeout=300, check=False)

    dry = cli("--dry-run")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "3 would be published (dry run: nothing was)" in dry.stdout
    assert keys(read_topic(kafka_bootstrap, day)) == VALID

    done = cli("--replay-id", f"cli-test/{day}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "3 published, 1 still failing" in done.stdout
    [audit] = audit_records(kafka_bootstrap, f"cli-test/{day}")
    assert audit["who"] == "oncall-anna"

    again = cli("--replay-id", f"cli-test/{day}")
    assert again.returncode == 0
    assert "(already complete)" in again.stdout
    assert keys(read_topic(kafka_bootstrap, day)) == sorted(VALID + JPY)
    assert len(audit_records(kafka_bootstrap, f"cli-test/{day}")) == 1


def test_cli_refuses_a_bad_corrections_file_with_exit_status_2_before_any_service(
    day: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    bad = tmp_path / "fix.csv"
    bad.write_text("user_id\nu\n", encoding="utf-8")
    args = ["orders", "--topic", day, "--bootstrap", kafka_bootstrap, "--corrections", str(bad)]
    result = subprocess.run(
        [sys.executable, "-m", "kafka_ingest", "replay", *args, "--registry-url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2
    assert "no key column 'order_number'" in result.stderr
