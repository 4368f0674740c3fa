"""The payments extract -> ``shopping.payment.processed`` (EXTRACTS.md, "Payments").

One named rule per rule of the contract's table, each failing on a missing value too:

=============================  ================================================================
rule                           passes when
=============================  ================================================================
``payment_number_format``      present, 1-64 of ``A-Z 0-9 -``, first a letter or digit
``order_number_format``        the same, for the order number
``amount_format``              a decimal with at most 2 places that fits ``decimal(12,2)``
``amount_positive``            > 0 (judged when well-formed; ``-0.00`` and ``0.00`` fail)
``currency_allowed``           exactly one of :data:`CURRENCIES`
``method_allowed``             exactly one of :data:`METHODS`
``status_allowed``             exactly one of :data:`STATUSES`
``card_number_only_for_card``  a card number is present if and only if the method is ``CARD``
                               (judged when the method is allowed)
``card_number_luhn``           a present card number has 12-19 digits, single spaces or dashes
                               between them, and passes the Luhn check
``paid_at_with_offset``        an ISO 8601 timestamp of a real instant, with ``Z`` or ``±HH:MM``
``key_unique_in_day``          (added by the validator) first occurrence of the payment number
=============================  ================================================================

Cardholder data: the full card number never leaves the extract's own column. ``prepare`` derives
only booleans and ``_card_last4`` from it, the record carries ``card_last4`` alone, and
``masked_columns`` masks the column in DLQ records
(:func:`kafka_ingest.publish.masking.mask_card_number`). A blank
card number (spaces only) counts as absent, like any blank value.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from kafka_ingest.publish.masking import mask_card_number
from kafka_ingest.specs import TopicSpec
from kafka_ingest.topic_settings import DATA_TOPIC, DLQ_TOPIC
from kafka_ingest.topics._rules import (
    CODE_PATTERN,
    arrow_series,
    card_last4,
    cents_to_decimal_array,
    checked,
    full_match,
    luhn_card_numbers,
    millis_to_timestamp_array,
    one_of,
    parse_money,
    parse_timestamps,
    present,
    text_column,
)

COLUMNS = (
    "payment_number",
    "order_number",
    "amount",
    "currency",
    "method",
    "status",
    "card_number",
    "paid_at",
)
CURRENCIES = ("KRW", "USD", "EUR", "JPY")
METHODS = ("CARD", "BANK_TRANSFER", "VIRTUAL_ACCOUNT", "MOBILE", "POINTS")
STATUSES = ("APPROVED", "DECLINED", "CANCELLED", "REFUNDED")

RULES = tuple(
    checked(name)
    for name in (
        "payment_number_format",
        "order_number_format",
        "amount_format",
        "amount_positive",
        "currency_allowed",
        "method_allowed",
        "status_allowed",
        "card_number_only_for_card",
        "card_number_luhn",
        "paid_at_with_offset",
    )
)


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """Parse the batch's text once, column-wise, into typed columns and one boolean per rule."""
    amount = parse_money(text_column(frame, "amount"))
    method = text_column(frame, "method")
    card = text_column(frame, "card_number")
    has_card = present(card)
    card_ok = has_card & luhn_card_numbers(card)
    paid = parse_timestamps(text_column(frame, "paid_at"))
    return frame.assign(
        _payment_number_format=full_match(text_column(frame, "payment_number"), CODE_PATTERN),
        _order_number_format=full_match(text_column(frame, "order_number"), CODE_PATTERN),
        _amount_format=amount.ok,
        _amount_positive=~amount.ok | (amount.cents > 0),
        _currency_allowed=one_of(text_column(frame, "currency"), CURRENCIES),
        _method_allowed=one_of(method, METHODS),
        _status_allowed=one_of(text_column(frame, "status"), STATUSES),
        _card_number_only_for_card=~one_of(method, METHODS) | (has_card == one_of(method, ("CARD",))),
        _card_number_luhn=~has_card | card_ok,
        _paid_at_with_offset=paid.ok & paid.has_offset,
        _amount=arrow_series(cents_to_decimal_array(amount.cents, amount.ok), frame),
        _paid_at=arrow_series(millis_to_timestamp_array(paid.millis, paid.ok), frame),
        _card_last4=arrow_series(card_last4(card, card_ok), frame),
    )


def to_table(frame: pd.DataFrame) -> pa.Table:
    """Prepared valid rows as an Arrow table shaped like ``PaymentProcessed`` (card: last four only)."""
    return pa.table(
        {
            "payment_number": text_column(frame, "payment_number"),
            "order_number": text_column(frame, "order_number"),
            "amount": pa.array(frame["_amount"].array),
            "currency": text_column(frame, "currency"),
            "method": text_column(frame, "method"),
            "status": text_column(frame, "status"),
            "card_last4": pa.array(frame["_card_last4"].array),
            "paid_at": pa.array(frame["_paid_at"].array),
        }
    )


PAYMENTS = TopicSpec(
    dataset="payments",
    topic="shopping.payment.processed",
    schema_file="shopping.payment.processed-value.avsc",
    key_field="payment_number",
    columns=COLUMNS,
    rules=RULES,
    prepare=prepare,
    to_table=to_table,
    event_type="PaymentProcessed",
    masked_columns={"card_number": mask_card_number},
    # Three partitions, RF 3, min ISR 2; kept a week, its DLQ a month (topic_settings.py).
    topic_settings=DATA_TOPIC,
    dlq_settings=DLQ_TOPIC,
)
