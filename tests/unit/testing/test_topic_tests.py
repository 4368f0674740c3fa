"""The helpers a topic's own tests use: rules on a few rows, and the records valid rows become."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from kafka_ingest.testing.topic_tests import failed_rules, records
from kafka_ingest.topics.payments import PAYMENTS

PAYMENT: dict[str, Any] = {
    "payment_number": "PAY-0001",
    "order_number": "ORD-0001",
    "amount": "25.99",
    "currency": "KRW",
    "method": "CARD",
    "status": "APPROVED",
    "card_number": "4111 1111 1111 1111",
    "paid_at": "2026-01-15T09:31:00+09:00",
}


def test_failed_rules_names_each_rows_rules_in_order_and_none_for_a_valid_row() -> None:
    rows = [PAYMENT, {**PAYMENT, "amount": "0.00", "currency": "usd"}, {**PAYMENT, "payment_number": None}]

    assert failed_rules(PAYMENTS, rows) == [
        (),
        ("amount_positive", "currency_allowed"),
        ("payment_number_format",),
    ]


def test_records_are_what_a_consumer_decodes() -> None:
    assert records(PAYMENTS, [PAYMENT]) == [
        {
            "payment_number": "PAY-0001",
            "order_number": "ORD-0001",
            "amount": Decimal("25.99"),
            "currency": "KRW",
            "method": "CARD",
            "status": "APPROVED",
            "card_last4": "1111",
            "paid_at": datetime(2026, 1, 15, 0, 31, tzinfo=UTC),
        }
    ]


def test_records_refuses_a_row_that_fails_a_rule() -> None:
    with pytest.raises(AssertionError, match=r"payments: rows fail rules.*\{1: \('status_allowed',\)\}"):
        records(PAYMENTS, [PAYMENT, {**PAYMENT, "status": "PENDING"}])
