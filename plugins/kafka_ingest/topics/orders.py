"""The orders extract -> ``shopping.order.created`` (EXTRACTS.md, "Orders").

One named rule per rule of the contract's table, each failing on a missing value too, so a DLQ
record says what was wrong with the row once per defect:

============================  =================================================================
rule                          passes when
============================  =================================================================
``order_number_format``       present, 1-64 of ``A-Z 0-9 -``, first a letter or digit
``user_id_required``          present (not null, empty or blank)
``status_allowed``            exactly one of :data:`STATUSES`
``items_valid``               a JSON array of >= 1 valid items (see :mod:`._items`)
``total_price_format``        a decimal with at most 2 places that fits ``decimal(12,2)``
``total_price_non_negative``  >= 0 (judged when well-formed)
``total_matches_items``       equal, in cents, to the sum of quantity x unit_price (judged when
                              the total is well-formed and >= 0 and the items are valid)
``currency_allowed``          exactly one of :data:`CURRENCIES`
``created_at_with_offset``    an ISO 8601 timestamp of a real instant, with ``Z`` or ``±HH:MM``
``key_unique_in_day``         (added by the validator) first occurrence of the order number
============================  =================================================================

Decisions beyond the contract (shared ones are in :mod:`._rules` and :mod:`._items`):

- ``user_id`` is published as given (the contract gives it no pattern); blank counts as missing.
- ``coupon_code`` is "any Unicode text": only null or ``""`` mean none (published as null); any
  other text, even whitespace, is published as is.
- ``12.5`` and ``12.50`` are the same total: totals are compared as integer cents.
- A JSON ``null`` as the items text is present but has no items, so it fails ``items_valid``.
- ``prepare`` only adds columns (``_<rule>`` booleans and the typed ``_items``, ``_total_price``,
  ``_created_at`` that :func:`to_table` publishes); the extract's columns stay as read.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kafka_ingest.specs import ReaderOptions, TopicSpec
from kafka_ingest.topic_settings import DATA_TOPIC, DLQ_TOPIC
from kafka_ingest.topics._items import parse_items
from kafka_ingest.topics._rules import (
    CODE_PATTERN,
    arrow_series,
    cents_to_decimal_array,
    checked,
    full_match,
    millis_to_timestamp_array,
    one_of,
    parse_money,
    parse_timestamps,
    present,
    text_column,
)

COLUMNS = ("order_number", "user_id", "status", "items", "total_price", "currency", "created_at")
OPTIONAL_COLUMNS = ("coupon_code",)
STATUSES = ("CREATED", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED")
CURRENCIES = ("KRW", "USD", "EUR", "JPY")

RULES = tuple(
    checked(name)
    for name in (
        "order_number_format",
        "user_id_required",
        "status_allowed",
        "items_valid",
        "total_price_format",
        "total_price_non_negative",
        "total_matches_items",
        "currency_allowed",
        "created_at_with_offset",
    )
)


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """Parse the batch's text once, column-wise, into typed columns and one boolean per rule."""
    items = parse_items(text_column(frame, "items"))
    total = parse_money(text_column(frame, "total_price"))
    total_usable = total.ok & ~total.negative
    created = parse_timestamps(text_column(frame, "created_at"))
    return frame.assign(
        _order_number_format=full_match(text_column(frame, "order_number"), CODE_PATTERN),
        _user_id_required=present(text_column(frame, "user_id")),
        _status_allowed=one_of(text_column(frame, "status"), STATUSES),
        _items_valid=items.valid,
        _total_price_format=total.ok,
        _total_price_non_negative=~total.negative,
        _total_matches_items=~(total_usable & items.valid) | (total.cents == items.total_cents),
        _currency_allowed=one_of(text_column(frame, "currency"), CURRENCIES),
        _created_at_with_offset=created.ok & created.has_offset,
        _items=arrow_series(items.lists, frame),
        _total_price=arrow_series(cents_to_decimal_array(total.cents, total.ok), frame),
        _created_at=arrow_series(millis_to_timestamp_array(created.millis, created.ok), frame),
    )


def to_table(frame: pd.DataFrame) -> pa.Table:
    """Prepared valid rows as an Arrow table shaped like ``OrderCreated`` (for column-wise encoders)."""
    coupon = text_column(frame, "coupon_code")
    return pa.table(
        {
            "order_number": text_column(frame, "order_number"),
            "user_id": text_column(frame, "user_id"),
            "status": text_column(frame, "status"),
            "items": pa.array(frame["_items"].array),
            "total_price": pa.array(frame["_total_price"].array),
            "currency": text_column(frame, "currency"),
            "created_at": pa.array(frame["_created_at"].array),
            "coupon_code": pc.if_else(pa.array(present(coupon, blank_is_absent=False)), coupon, None),
        }
    )


ORDERS = TopicSpec(
    dataset="orders",
    topic="shopping.order.created",
    schema_file="shopping.order.created-value.avsc",
    key_field="order_number",
    columns=COLUMNS,
    optional_columns=OPTIONAL_COLUMNS,
    rules=RULES,
    prepare=prepare,
    to_table=to_table,
    event_type="OrderCreated",
    reader=ReaderOptions(json_columns=("items",)),
    # Three partitions, RF 3, min ISR 2; kept a week, its DLQ a month (topic_settings.py).
    topic_settings=DATA_TOPIC,
    dlq_settings=DLQ_TOPIC,
)
