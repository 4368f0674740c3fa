"""Envelopes for the replay unit tests, built as the DLQ module builds them."""

from __future__ import annotations

import json
from typing import Any

from kafka_ingest.replay.envelopes import Envelope, parse
from kafka_ingest.replay.kafka_io import Message

TOPIC = "shopping.order.created"


def order(key: str = "ORD-1", **changes: Any) -> dict[str, Any]:
    row = {
        "order_number": key,
        "user_id": "user-1",
        "status": "CREATED",
        "items": '[{"product_id": "P-1", "quantity": 2, "unit_price": "5.00"}]',
        "total_price": "10.00",
        "currency": "USD",
        "created_at": "2026-01-05T10:00:00Z",
        "coupon_code": None,
    }
    return {**row, **changes}


def body(original: Any = None, **changes: Any) -> dict[str, Any]:
    envelope = {
        "topic": TOPIC,
        "stage": "validate",
        "error_type": "ExpectationFailed",
        "error_message": "row failed 1 rule(s): currency_allowed",
        "failed_rules": ["currency_allowed"],
        "source": {
            "dataset": "orders",
            "date": "2026-01-05",
            "file": "/x/orders/dt=2026-01-05/part-0001.csv",
            "row": 3,
        },
        "run": {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1, "try_number": 1},
        "timestamp": "2026-01-06T00:00:00.000+00:00",
        "original": order() if original is None else original,
        "truncated": False,
    }
    return {**envelope, **changes}


def message(value: Any, offset: int = 0, key: bytes | None = None) -> Message:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return Message(f"{TOPIC}.dlq", 0, offset, key, raw, {}, 1_767_225_600_000)


def envelope(
    offset: int = 0, original: Any = None, key_field: str = "order_number", **changes: Any
) -> Envelope:
    parsed = parse(message(body(original, **changes), offset), changes.get("topic", TOPIC), key_field)
    assert isinstance(parsed, Envelope)
    return parsed
