"""Payments replayed from originals: a masked card number is never guessed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ingest_helpers import Endpoints, Record, decode_values, with_topic
from replay_helpers import keys, land_and_ingest, replay_dag, run_replay, wrong_rule

from kafka_ingest.testing.topics import read_topic
from kafka_ingest.topics.payments import PAYMENTS

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow]


def payment(key: str, status: str, card: str) -> dict[str, Any]:
    return {
        "payment_number": key,
        "order_number": "ORD-0001",
        "amount": "10.00",
        "currency": "USD",
        "method": "CARD",
        "status": status,
        "card_number": card,
        "paid_at": "2026-01-05T10:00:00Z",
    }


def test_card_rows_replay_with_last4_from_the_mask_and_bad_cards_need_a_correction(
    endpoints: Endpoints,
    unique_name: Callable[[str], str],
    tmp_path: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
) -> None:
    topic = unique_name("replaycards")
    spec = wrong_rule(with_topic(PAYMENTS, topic), "_status_allowed", "status", "REFUNDED")
    rows = [
        payment("PAY-0001", "APPROVED", "4111 1111 1111 1111"),
        payment("PAY-0002", "REFUNDED", "4242-4242-4242-4242"),  # wrongly refused: replays
        payment("PAY-0003", "APPROVED", "4111111111111112"),  # fails Luhn: needs a correction
    ]
    land_and_ingest(endpoints, spec, tmp_path, rows)
    dag = replay_dag(unique_name("replay_dag").replace("-", "_"))

    run, report = run_replay(dag, dataset="payments", topic=topic)

    assert run.state == "success"
    assert report is not None
    outcome = {line["key"]: (line["outcome"], line["reason"]) for line in report["envelopes"]}
    assert outcome["PAY-0002"][0] == "published"
    assert outcome["PAY-0003"][0] == "needs a correction"
    assert "card_number_luhn" in outcome["PAY-0003"][1]
    records = read_topic(kafka_bootstrap, topic)
    assert keys(records) == ["PAY-0001", "PAY-0002"]
    [replayed] = [r for r in records if r.key_text == "PAY-0002"]
    record = Record(topic, replayed.partition, replayed.offset, replayed.key, replayed.value)
    [value] = decode_values(schema_registry_url, topic, [record])
    assert value["card_last4"] == "4242"
    assert value["status"] == "REFUNDED"
    dlq = read_topic(kafka_bootstrap, f"{topic}.dlq")
    assert len(dlq) == 2, "a row that needs a correction is reported, not dead-lettered again"
    for record_ in (*records, *dlq):
        assert b"4111111111111112" not in record_.value
        assert b"4242424242424242" not in record_.value
