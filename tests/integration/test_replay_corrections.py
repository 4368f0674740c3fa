"""Replaying from a corrections file, and every kind of bad input, through the ``replay_dlq`` DAG."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from ingest_helpers import Endpoints, csv_text, with_topic
from replay_helpers import DATE, envelopes, keys, land_and_ingest, replay_dag, run_replay

from kafka_ingest.testing.topics import read_topic
from kafka_ingest.topics.orders import ORDERS

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow]

GOOD = ["ORD-0001", "ORD-0002"]
BAD = ["ORD-0003", "ORD-0004", "ORD-0005"]


def order(key: str, currency: str = "USD", total: str = "10.00") -> dict[str, Any]:
    return {
        "order_number": key,
        "user_id": "user-1",
        "status": "CREATED",
        "items": [{"product_id": "P-1", "quantity": 2, "unit_price": "5.00"}],
        "total_price": total,
        "currency": currency,
        "created_at": "2026-01-05T10:00:00Z",
        "coupon_code": "",
    }


@pytest.fixture
def day(endpoints: Endpoints, unique_name: Callable[[str], str], tmp_path: Path) -> str:
    """A day whose data was wrong: 3 rows with a total that does not match their items."""
    topic = unique_name("replayfix")
    rows = [order(k) for k in GOOD] + [order(k, total="11.00") for k in BAD]
    land_and_ingest(endpoints, with_topic(ORDERS, topic), tmp_path, rows)
    return topic


@pytest.fixture
def dag(unique_name: Callable[[str], str]) -> Any:
    return replay_dag(unique_name("replay_dag").replace("-", "_"))


def corrections(
    tmp_path: Path, rows: list[dict[str, Any]], name: str = "fix.csv", columns: Any = None
) -> str:
    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        path.write_text(csv_text(columns or ORDERS.all_columns, rows), encoding="utf-8")
    return str(path)


def test_corrections_file_replays_the_corrected_rows(
    day: str, dag: Any, kafka_bootstrap: str, tmp_path: Path
) -> None:
    fixed = corrections(tmp_path, [order(BAD[0]), order(BAD[1], total="12.00")])

    run, report = run_replay(
        dag, dataset="orders", topic=day, source="corrections", corrections_file=fixed, keys=BAD[:2]
    )

    assert run.state == "success"
    assert report is not None
    counts = report["counts"]
    assert (counts["selected"], counts["published"], counts["still_failing"]) == (2, 1, 1)
    assert keys(read_topic(kafka_bootstrap, day)) == sorted([*GOOD, BAD[0]])
    assert report["source"]["kind"] == "corrections"
    assert report["source"]["rows"] == 2
    assert len(report["source"]["sha256"]) == 64


def test_a_selected_envelope_without_a_corrected_row_needs_a_correction(
    day: str, dag: Any, kafka_bootstrap: str, tmp_path: Path
) -> None:
    fixed = corrections(tmp_path, [order(BAD[0])], name="fix.jsonl")

    _, report = run_replay(dag, dataset="orders", topic=day, source="corrections", corrections_file=fixed)

    assert report is not None
    assert (report["counts"]["published"], report["counts"]["needs_correction"]) == (1, 2)


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("unknown column", "unknown column(s) 'colour'"),
        ("stray key", "match no selected DLQ envelope: 'ORD-9999'"),
    ],
)
# Missing key or required columns and duplicate keys: tests/unit/replay/test_corrections.py and the
# CLI test; here the file's problems that only the run can find or that must fail the DAG run.
def test_a_bad_corrections_file_fails_with_a_clear_message_and_publishes_nothing(
    day: str,
    dag: Any,
    kafka_bootstrap: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    problem: str,
    message: str,
) -> None:
    rows, columns = [order(BAD[0])], list(ORDERS.all_columns)
    if problem == "unknown column":
        rows, columns = [{**order(BAD[0]), "colour": "red"}], [*columns, "colour"]
    else:
        rows.append(order("ORD-9999"))
    path = corrections(tmp_path, rows, columns=columns)
    dlq_before = read_topic(kafka_bootstrap, f"{day}.dlq")

    run, report = run_replay(dag, dataset="orders", topic=day, source="corrections", corrections_file=path)

    assert run.state == "failed"
    assert report is None
    assert message in capfd.readouterr().out + caplog.text
    assert keys(read_topic(kafka_bootstrap, day)) == GOOD
    assert read_topic(kafka_bootstrap, f"{day}.dlq") == dlq_before


def test_a_selection_that_matches_nothing_succeeds_with_zero_and_says_so(
    day: str, dag: Any, kafka_bootstrap: str
) -> None:
    run, report = run_replay(dag, dataset="orders", topic=day, date_from="2026-02-01")

    assert run.state == "success"
    assert report is not None
    assert report["counts"]["selected"] == 0
    assert "matched no envelope: nothing to replay" in report["summary"]
    assert keys(read_topic(kafka_bootstrap, day)) == GOOD


def test_unreadable_and_foreign_dlq_records_are_reported_and_skipped(
    day: str, dag: Any, kafka_bootstrap: str
) -> None:
    [(_, envelope)] = envelopes(kafka_bootstrap, day)[:1]
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(f"{day}.dlq", value=b"{not json")
    producer.produce(f"{day}.dlq", value=json.dumps({**envelope, "topic": "some.other.topic"}).encode())
    assert producer.flush(30) == 0

    run, report = run_replay(dag, dataset="orders", topic=day)

    assert run.state == "success"
    assert report is not None
    counts = report["counts"]
    assert (counts["selected"], counts["skipped_unreadable"], counts["skipped_other_topic"]) == (3, 1, 1)
    assert counts["still_failing"] == 3
    reasons = [line["reason"] for line in report["envelopes"] if line["outcome"].startswith("skipped")]
    assert any("not valid JSON" in r for r in reasons)
    assert any("some.other.topic" in r for r in reasons)
    assert DATE in {line.get("date") for line in report["envelopes"]}
