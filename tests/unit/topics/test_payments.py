"""The payments spec: every EXTRACTS.md rule, card numbers (Luhn, masking), and its records.

Rule cases are validated together in one GX run (a module fixture), then asserted one per test:
each case changes one or two fields of a valid payment and must fail exactly the listed rules.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import fastavro
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafka_ingest.encode.avro import records_from_table
from kafka_ingest.publish.masking import mask_card_number
from kafka_ingest.specs import TopicSpec
from kafka_ingest.topics import payments
from kafka_ingest.topics._rules import luhn_card_numbers
from kafka_ingest.topics.payments import CURRENCIES, METHODS, PAYMENTS, STATUSES
from kafka_ingest.validate.validator import BatchValidator


def luhn_ok(digits: str) -> bool:
    """The textbook Luhn check, one digit at a time (the reference for the vectorized one)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


VISA = "4111111111111111"
VALID: dict[str, Any] = {
    "payment_number": "PAY-0001",
    "order_number": "ORD-0001",
    "amount": "25.99",
    "currency": "KRW",
    "method": "CARD",
    "status": "APPROVED",
    "card_number": "4111 1111 1111 1111",
    "paid_at": "2026-01-15T09:31:00+09:00",
}
NO_CARD = {"method": "BANK_TRANSFER", "card_number": ""}

# case id -> (fields changed from VALID, rules the row must fail)
CASES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "valid_card": ({}, ()),
    "valid_without_card": (NO_CARD, ()),
    "payment_number_empty": ({"payment_number": ""}, ("payment_number_format",)),
    "payment_number_null": ({"payment_number": None}, ("payment_number_format",)),
    "payment_number_lowercase": ({"payment_number": "pay-1"}, ("payment_number_format",)),
    "payment_number_65_chars": ({"payment_number": "P" * 65}, ("payment_number_format",)),
    "payment_number_leading_dash": ({"payment_number": "-PAY"}, ("payment_number_format",)),
    "order_number_null": ({"order_number": None}, ("order_number_format",)),
    "order_number_space_inside": ({"order_number": "ORD 1"}, ("order_number_format",)),
    "amount_integer": ({"amount": "26"}, ()),
    "amount_one_decimal": ({"amount": "25.9"}, ()),
    "amount_empty": ({"amount": ""}, ("amount_format",)),
    "amount_null": ({"amount": None}, ("amount_format",)),
    "amount_three_decimals": ({"amount": "25.999"}, ("amount_format",)),
    "amount_exponent": ({"amount": "1e2"}, ("amount_format",)),
    "amount_nan": ({"amount": "NaN"}, ("amount_format",)),
    "amount_infinity": ({"amount": "Infinity"}, ("amount_format",)),
    "amount_negative_infinity": ({"amount": "-Infinity"}, ("amount_format",)),
    "amount_thousands_separator": ({"amount": "1,000.00"}, ("amount_format",)),
    "amount_over_decimal_12_2": ({"amount": "12345678901.00"}, ("amount_format",)),
    "amount_zero": ({"amount": "0.00"}, ("amount_positive",)),
    "amount_negative_zero": ({"amount": "-0.00"}, ("amount_positive",)),
    "amount_negative": ({"amount": "-25.99"}, ("amount_positive",)),
    "amount_smallest": ({"amount": "0.01"}, ()),
    "currency_usd": ({"currency": "USD"}, ()),
    "currency_unknown": ({"currency": "WON"}, ("currency_allowed",)),
    "currency_empty": ({"currency": ""}, ("currency_allowed",)),
    "method_each_non_card": ({**NO_CARD, "method": "VIRTUAL_ACCOUNT"}, ()),
    "method_lowercase": ({"method": "card"}, ("method_allowed",)),
    "method_unknown_with_card": ({"method": "CASH"}, ("method_allowed",)),
    "method_null_without_card": ({"method": None, "card_number": ""}, ("method_allowed",)),
    "status_refunded": ({"status": "REFUNDED"}, ()),
    "status_unknown": ({"status": "PENDING"}, ("status_allowed",)),
    "status_null": ({"status": None}, ("status_allowed",)),
    "card_missing_on_card": ({"card_number": ""}, ("card_number_only_for_card",)),
    "card_null_on_card": ({"card_number": None}, ("card_number_only_for_card",)),
    "card_blank_on_card": ({"card_number": "   "}, ("card_number_only_for_card",)),
    "card_on_bank_transfer": ({"method": "BANK_TRANSFER"}, ("card_number_only_for_card",)),
    "card_on_points": ({"method": "POINTS"}, ("card_number_only_for_card",)),
    "card_blank_on_mobile": ({"method": "MOBILE", "card_number": " "}, ()),
    "card_digits_only": ({"card_number": VISA}, ()),
    "card_dashes": ({"card_number": "4111-1111-1111-1111"}, ()),
    "card_mixed_separators": ({"card_number": "4111 1111-1111 1111"}, ()),
    "card_12_digits": ({"card_number": with_check_digit("41111111111")}, ()),
    "card_19_digits": ({"card_number": with_check_digit("411111111111111111")}, ()),
    "card_11_digits": ({"card_number": with_check_digit("4111111111")}, ("card_number_luhn",)),
    "card_20_digits": ({"card_number": with_check_digit("4111111111111111111")}, ("card_number_luhn",)),
    "card_bad_check_digit": ({"card_number": "4111111111111112"}, ("card_number_luhn",)),
    "card_double_space": ({"card_number": "4111  1111 1111 1111"}, ("card_number_luhn",)),
    "card_leading_dash": ({"card_number": "-4111111111111111"}, ("card_number_luhn",)),
    "card_trailing_space": ({"card_number": "4111111111111111 "}, ("card_number_luhn",)),
    "card_letter": ({"card_number": "4111111111111a11"}, ("card_number_luhn",)),
    "card_dot_separator": ({"card_number": "4111.1111.1111.1111"}, ("card_number_luhn",)),
    "card_non_ascii_digits": ({"card_number": "\uff14" + "\uff11" * 15}, ("card_number_luhn",)),
    "card_invalid_on_bank_transfer": (
        {"method": "BANK_TRANSFER", "card_number": "4111111111111112"},
        ("card_number_only_for_card", "card_number_luhn"),
    ),
    "paid_at_z": ({"paid_at": "2026-01-15T00:31:00.5Z"}, ()),
    "paid_at_without_offset": ({"paid_at": "2026-01-15T09:31:00"}, ("paid_at_with_offset",)),
    "paid_at_impossible_date": ({"paid_at": "2026-04-31T09:31:00Z"}, ("paid_at_with_offset",)),
    "paid_at_null": ({"paid_at": None}, ("paid_at_with_offset",)),
}


def frame_of(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as the reader hands them on: one string column per spec column."""
    schema = pa.schema([(column, pa.string()) for column in PAYMENTS.all_columns])
    frame = pa.Table.from_pylist(rows, schema=schema).to_pandas()
    frame["_first_occurrence"] = True
    return frame


def roundtrip(record: dict[str, Any]) -> dict[str, Any]:
    schema = fastavro.parse_schema(json.loads(PAYMENTS.schema_path.read_text()))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, record)
    buffer.seek(0)
    decoded = fastavro.schemaless_reader(buffer, schema, schema)
    assert isinstance(decoded, dict)
    return decoded


@pytest.fixture(scope="module")
def failures() -> dict[str, tuple[str, ...]]:
    rows = [{**VALID, **change} for change, _ in CASES.values()]
    outcome = BatchValidator(PAYMENTS).validate(PAYMENTS.prepare(frame_of(rows)))
    return {case: outcome.failed_rules.get(position, ()) for position, case in enumerate(CASES)}


@pytest.mark.parametrize("case", list(CASES))
def test_row_fails_exactly_the_rules_it_breaks(case: str, failures: dict[str, tuple[str, ...]]) -> None:
    assert failures[case] == CASES[case][1]


def test_every_rule_has_a_failing_case() -> None:
    single = {rules[0] for _, rules in CASES.values() if len(rules) == 1}
    assert single == {rule.name for rule in PAYMENTS.rules}


def test_arrow_table_has_the_avro_record_fields_in_order() -> None:
    fields = [field["name"] for field in json.loads(PAYMENTS.schema_path.read_text())["fields"]]
    assert payments.to_table(PAYMENTS.prepare(frame_of([VALID]))).column_names == fields


def test_value_sets_match_the_avro_enums() -> None:
    schema = json.loads(PAYMENTS.schema_path.read_text())
    enums = {
        field["name"]: field["type"]["symbols"] for field in schema["fields"] if "symbols" in field["type"]
    }
    assert (tuple(enums["currency"]), tuple(enums["method"]), tuple(enums["status"])) == (
        CURRENCIES,
        METHODS,
        STATUSES,
    )


def test_card_payment_maps_to_a_record_with_only_the_last_four_digits() -> None:
    (record,) = records_of(PAYMENTS, PAYMENTS.prepare(frame_of([VALID])))
    assert record == {
        "payment_number": "PAY-0001",
        "order_number": "ORD-0001",
        "amount": Decimal("25.99"),
        "currency": "KRW",
        "method": "CARD",
        "status": "APPROVED",
        "card_last4": "1111",
        "paid_at": int(datetime(2026, 1, 15, 0, 31, tzinfo=UTC).timestamp() * 1000),
    }


def test_payment_without_card_has_no_last_four() -> None:
    (record,) = records_of(PAYMENTS, PAYMENTS.prepare(frame_of([{**VALID, **NO_CARD}])))
    assert record["card_last4"] is None


def test_records_round_trip_through_the_avro_schema() -> None:
    rows = [VALID, {**VALID, **NO_CARD, "amount": "0.5"}]
    for record in records_of(PAYMENTS, PAYMENTS.prepare(frame_of(rows))):
        decoded = roundtrip(record)
        assert decoded == {**record, "paid_at": decoded["paid_at"]}
        assert decoded["paid_at"] == datetime.fromtimestamp(record["paid_at"] / 1000, UTC)


def test_prepare_adds_no_column_holding_the_card_number() -> None:
    prepared = PAYMENTS.prepare(frame_of([VALID, {**VALID, "card_number": VISA}]))
    derived = prepared.drop(columns=list(PAYMENTS.all_columns)).astype(str)
    assert not derived.apply(lambda column: column.str.contains("41111111")).any().any()


def test_rule_columns_are_never_null() -> None:
    prepared = PAYMENTS.prepare(frame_of([{column: None for column in VALID}, VALID]))
    flags = prepared[[f"_{rule.name}" for rule in PAYMENTS.rules]]
    assert flags.dtypes.eq(bool).all()
    assert not flags.isna().any().any()


def test_dlq_rows_mask_the_card_number_to_its_last_four_digits() -> None:
    assert PAYMENTS.mask_row(VALID)["card_number"] == "************1111"


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("4111111111111111", "************1111"),
        ("4111-1111-1111-1111", "************1111"),
        ("4111 1111 1111 1111 exp 12/28", "*" * 16 + "1228"),
        ("411111111111", "********1111"),
        ("123456", "****3456"),
        ("1234", "****"),
        ("12", "****"),
        ("not a card", "****"),
        ("", "****"),
        ("٤١١١١١١١١١١١١١١١", "****"),
    ],
)
def test_masking_shows_at_most_the_last_four_digits(value: str, masked: str) -> None:
    assert mask_card_number(value) == masked


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_masking_never_reveals_more_than_four_digits(value: str) -> None:
    masked = mask_card_number(value)
    assert sum(char.isdigit() for char in masked) <= 4
    assert set(masked[:-4]) <= {"*"}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="0123456789", min_size=12, max_size=19), min_size=1, max_size=50))
def test_vectorized_luhn_agrees_with_the_textbook_check(numbers: list[str]) -> None:
    assert luhn_card_numbers(pa.array(numbers)).tolist() == [luhn_ok(n) for n in numbers]


def test_known_test_card_numbers_pass_luhn() -> None:
    cards = [
        "4111111111111111",
        "5555555555554444",
        "378282246310005",
        "6011111111111117",
        "3530111333300000",
    ]
    assert luhn_card_numbers(pa.array(cards)).all()


def records_of(spec: TopicSpec, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The valid, prepared rows as Avro-ready dicts, as the reference encoder gets them."""
    return records_from_table(spec.to_table(frame))
