"""DLQ envelopes: what a rejected row looks like on ``<topic>.dlq``, masked and bounded."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafka_ingest.batches import RejectedRow, RunInfo, SourceInfo
from kafka_ingest.publish import masking as pan
from kafka_ingest.publish.dlq import DEFAULT_MAX_ENVELOPE_BYTES, MAX_KEY_CHARS, DlqEnvelopeBuilder, dlq_key
from kafka_ingest.publish.headers import dlq_headers
from kafka_ingest.read import read_extract
from kafka_ingest.specs import Stage, TopicSpec
from kafka_ingest.topics.payments import PAYMENTS

CARD = "4111111111111111"
RUN = RunInfo(
    dag_id="ingest_payments", run_id="scheduled__2026-01-15", task_id="publish", map_index=2, try_number=3
)
SOURCE = SourceInfo(
    dataset="payments", date="2026-01-15", file="s3://extracts/payments/dt=2026-01-15/part-0001.csv"
)


def spec() -> TopicSpec:
    """The payments spec with a recognisable mask on its sensitive column."""
    return replace(PAYMENTS, masked_columns={"card_number": lambda value: "<masked " + value[-4:] + ">"})


_PLAIN_ROW = {"payment_number": "PAY-00000042", "card_number": "", "note": ""}


def rejected(original: dict[str, Any] | str | None, **changes: Any) -> RejectedRow:
    fields: dict[str, Any] = {
        "row": 42,
        "stage": Stage.VALIDATE,
        "error_type": "ExpectationFailed",
        "message": "row failed 2 rule(s): amount_positive, currency_allowed",
        "rules": ("amount_positive", "currency_allowed"),
        "original": original,
    }
    return RejectedRow(**(fields | changes))


def envelope(
    row: RejectedRow, *, max_bytes: int = DEFAULT_MAX_ENVELOPE_BYTES, of: TopicSpec | None = None
) -> Any:
    return json.loads(build(row, max_bytes=max_bytes, of=of))


def build(
    row: RejectedRow, *, max_bytes: int = DEFAULT_MAX_ENVELOPE_BYTES, of: TopicSpec | None = None
) -> bytes:
    return DlqEnvelopeBuilder(of or spec(), RUN, max_bytes=max_bytes).build(row, SOURCE)


def shows_only_last_four(text: str, pan: str) -> bool:
    """The PAN is absent in any layout, and its last four digits follow a mask character."""
    digits = re.sub(r"[^0-9]", "", pan)
    return pan not in text and digits not in text and re.search(rf"\*[ -]?{digits[-4:]}", text) is not None


# -- envelope fields ---------------------------------------------------------------------------


def test_envelope_says_which_stage_and_rules_rejected_the_row() -> None:
    value = envelope(rejected(_PLAIN_ROW))
    assert value["topic"] == "shopping.payment.processed"
    assert value["stage"] == "validate"
    assert value["error_type"] == "ExpectationFailed"
    assert value["error_message"] == "row failed 2 rule(s): amount_positive, currency_allowed"
    assert value["failed_rules"] == ["amount_positive", "currency_allowed"]


def test_envelope_names_the_source_file_and_row() -> None:
    assert envelope(rejected(_PLAIN_ROW))["source"] == {
        "dataset": "payments",
        "date": "2026-01-15",
        "file": "s3://extracts/payments/dt=2026-01-15/part-0001.csv",
        "row": 42,
    }


def test_envelope_names_the_run_that_read_the_row() -> None:
    assert envelope(rejected(_PLAIN_ROW))["run"] == {
        "dag_id": "ingest_payments",
        "run_id": "scheduled__2026-01-15",
        "task_id": "publish",
        "map_index": 2,
        "try_number": 3,
    }


def test_envelope_carries_the_original_row_and_is_not_truncated_when_small() -> None:
    value = envelope(rejected(_PLAIN_ROW))
    assert value["original"] == {"payment_number": "PAY-00000042", "card_number": "", "note": ""}
    assert value["truncated"] is False


def test_envelope_timestamp_is_utc_iso_8601_with_milliseconds() -> None:
    stamp = envelope(rejected(_PLAIN_ROW))["timestamp"]
    parsed = datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == timedelta(0)
    assert re.search(r"T\d\d:\d\d:\d\d\.\d{3}", stamp)


def test_a_row_without_an_original_has_a_null_original() -> None:
    assert envelope(rejected(None, stage=Stage.READ))["original"] is None


def test_non_text_values_of_the_original_are_kept_as_they_are() -> None:
    value = envelope(rejected({"payment_number": "PAY-1", "card_number": None, "note": 7}))
    assert value["original"] == {"payment_number": "PAY-1", "card_number": None, "note": 7}


def test_dlq_headers_carry_stage_error_type_file_and_row() -> None:
    assert dlq_headers(rejected(_PLAIN_ROW), SOURCE) == [
        ("dlq.stage", b"validate"),
        ("dlq.error_type", b"ExpectationFailed"),
        ("source.file", b"s3://extracts/payments/dt=2026-01-15/part-0001.csv"),
        ("source.row", b"42"),
    ]


# -- masking -----------------------------------------------------------------------------------


def test_the_dlq_key_is_the_rows_key() -> None:
    assert dlq_key(rejected(_PLAIN_ROW), spec()) == b"PAY-00000042"


def test_a_row_without_a_key_or_without_columns_has_no_dlq_key() -> None:
    assert dlq_key(rejected({**_PLAIN_ROW, "payment_number": ""}), spec()) is None
    assert dlq_key(rejected(f"PAY-1,{CARD}"), spec()) is None


def test_a_card_number_in_the_key_column_is_masked_in_the_dlq_key_as_in_the_envelope() -> None:
    row = rejected({**_PLAIN_ROW, "payment_number": CARD})

    assert dlq_key(row, spec()) == b"************1111"
    assert envelope(row)["original"]["payment_number"] == "************1111"


def test_a_key_too_long_for_a_key_gives_the_dlq_record_none() -> None:
    assert dlq_key(rejected({**_PLAIN_ROW, "payment_number": "P" * MAX_KEY_CHARS}), spec())
    assert dlq_key(rejected({**_PLAIN_ROW, "payment_number": "P" * (MAX_KEY_CHARS + 1)}), spec()) is None


def test_a_declared_sensitive_column_is_masked_by_the_specs_function() -> None:
    value = envelope(rejected({"payment_number": "PAY-1", "card_number": CARD, "note": ""}))
    assert value["original"]["card_number"] == "<masked 1111>"


def test_a_declared_sensitive_column_is_masked_even_when_not_luhn_valid() -> None:
    value = envelope(rejected({"payment_number": "PAY-1", "card_number": "4111111111111112", "note": ""}))
    assert value["original"]["card_number"] == "<masked 1112>"


def test_the_payments_spec_never_lets_a_card_number_into_a_dlq_record() -> None:
    row = rejected({"payment_number": "PAY-1", "method": "POINTS", "card_number": CARD})
    encoded = build(row, of=PAYMENTS).decode()
    assert CARD not in encoded
    assert json.loads(encoded)["original"]["card_number"].endswith("1111")


@pytest.mark.parametrize(
    "pan", ["4111111111111111", "5500-0000-0000-0004", "3400 0000 0000 009", "6011000000000004"]
)
def test_a_card_number_in_an_undeclared_column_is_masked_to_its_last_four(pan: str) -> None:
    value = envelope(rejected({"payment_number": "PAY-1", "card_number": "", "note": f"paid with {pan}."}))
    assert shows_only_last_four(value["original"]["note"], pan)


@pytest.mark.parametrize(
    "pan", ["4111 1111 1111 1111", "5500-0000-0000-0004", "3400 0000 0000 009", "6011000000000004"]
)
def test_a_card_number_in_a_raw_line_is_masked_to_its_last_four(pan: str) -> None:
    raw = f'PAY-00000001,ORD-00000002,12.00,USD,CARD,APPROVED,"{pan},2026-01-15T10:00:00Z'
    value = envelope(rejected(raw, stage=Stage.READ, error_type="bad_quoting", rules=()))
    assert shows_only_last_four(value["original"], pan)
    assert value["original"].startswith("PAY-00000001,ORD-00000002,12.00,USD,CARD,APPROVED,")


def test_a_card_number_in_the_error_message_is_masked() -> None:
    row = rejected(_PLAIN_ROW, message=f"line 7: cannot parse amount near '{CARD}'")
    assert shows_only_last_four(envelope(row)["error_message"], CARD)


@pytest.mark.parametrize(
    "text",
    [
        "ORD-20260115000001",  # a 14-digit order number
        "ref 123456789012",  # 12 digits, not Luhn-valid
        "9999-8888-7777-6666",  # card-shaped, not Luhn-valid
        "1234567890123456789",  # 19 digits, not Luhn-valid
    ],
)
def test_long_digit_strings_that_fail_the_luhn_check_are_kept(text: str) -> None:
    value = envelope(rejected({"payment_number": "PAY-1", "card_number": "", "note": text}))
    assert value["original"]["note"] == text


def test_digit_strings_shorter_than_twelve_are_kept_even_when_luhn_valid() -> None:
    value = envelope(rejected({"payment_number": "PAY-1", "card_number": "", "note": "zip 79927398713"}))
    assert value["original"]["note"] == "zip 79927398713"


@pytest.mark.parametrize("text", [f"{CARD} 12.00", f"paid 12 {CARD}", "4111 1111 1111 1111 7 items"])
def test_a_card_number_next_to_another_number_is_masked(text: str) -> None:
    value = envelope(rejected({"payment_number": "PAY-1", "card_number": "", "note": text}))
    assert CARD not in re.sub(r"[^0-9]", "", value["original"]["note"])


def test_a_card_number_shifted_into_a_surplus_csv_field_is_masked(tmp_path: Path) -> None:
    # An unquoted "1,000,000.00" shifts every later field two places right: the card number
    # lands in the reader's ``_extra`` list rather than in the card_number column.
    extract = tmp_path / "part-0001.csv"
    extract.write_text(
        ",".join(PAYMENTS.columns)
        + f"\nPAY-00000001,ORD-00000001,1,000,000.00,USD,CARD,APPROVED,{CARD},2026-01-15T10:00:00Z\n"
    )
    (row,) = [r for batch in read_extract(str(extract), columns=PAYMENTS.columns) for r in batch.rejected]
    assert CARD not in build(row, of=PAYMENTS).decode()


# -- bounded size ------------------------------------------------------------------------------


def test_a_huge_field_is_cut_and_the_envelope_marked_truncated() -> None:
    row = rejected({"payment_number": "PAY-1", "card_number": "", "note": "x" * 1_000_000})
    encoded = build(row)
    value = json.loads(encoded)
    assert len(encoded) <= DEFAULT_MAX_ENVELOPE_BYTES
    assert value["truncated"] is True
    assert value["original"]["payment_number"] == "PAY-1"
    assert value["original"]["note"].startswith("x" * 1_000)


def test_a_huge_raw_line_is_cut_and_the_envelope_marked_truncated() -> None:
    row = rejected("PAY-1," + "y" * 2_000_000, stage=Stage.READ, error_type="line_too_long", rules=())
    encoded = build(row)
    value = json.loads(encoded)
    assert len(encoded) <= DEFAULT_MAX_ENVELOPE_BYTES
    assert value["truncated"] is True
    assert value["original"].startswith("PAY-1,yyy")


def test_many_fields_are_cut_to_fit_and_the_envelope_marked_truncated() -> None:
    row = rejected({f"column_{i}": "z" * 200 for i in range(5_000)})
    encoded = build(row)
    value = json.loads(encoded)
    assert len(encoded) <= DEFAULT_MAX_ENVELOPE_BYTES
    assert value["truncated"] is True
    assert value["source"]["row"] == 42
    assert value["failed_rules"] == ["amount_positive", "currency_allowed"]


def test_truncation_keeps_masking() -> None:
    note = f"paid with {CARD} " + "x" * 1_000_000
    encoded = build(rejected({"payment_number": "PAY-1", "card_number": CARD, "note": note})).decode()
    assert CARD not in encoded


_TEXT = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    max_bytes=st.integers(16 * 1024, DEFAULT_MAX_ENVELOPE_BYTES),
    message=st.tuples(_TEXT, st.integers(1, 2_000)),
    fields=st.lists(st.tuples(_TEXT, _TEXT, st.integers(1, 100_000)), min_size=1, max_size=20),
)
def test_an_envelope_never_exceeds_max_bytes(
    max_bytes: int, message: tuple[str, int], fields: list[tuple[str, str, int]]
) -> None:
    original = {name * 3: value * repeat for name, value, repeat in fields}
    row = rejected(original, message=message[0] * message[1])
    assert len(build(row, max_bytes=max_bytes)) <= max_bytes


@settings(max_examples=500)
@given(st.text(st.sampled_from(list("0123456789   --a.٣")), max_size=60))
def test_text_skipped_by_the_twelve_digit_precheck_is_text_the_full_scrub_keeps(text: str) -> None:
    """scrub_pans returns early when no twelve digits are close enough to be a card number; the
    full scrub (every digit run judged) must agree on every input."""
    full = pan._DIGIT_RUN.sub(lambda run: pan._mask_run(run.group(0)), text)
    assert pan.scrub_pans(text) == full


@settings(max_examples=500)
@given(st.text(st.sampled_from(list("0123456789 -a.٣\n")), max_size=60))
def test_may_hold_pans_is_true_wherever_twelve_digits_could_form_a_card_number(text: str) -> None:
    """The byte-level check may answer True for text no card number fits (then the full scrub
    decides), never False for text one could: every match of the card-number shape counts."""
    if re.search(r"[0-9](?:[ -]?[0-9]){11}", text):
        assert pan.may_hold_pans(text)
    assert pan.may_hold_pans(f'{{"note":{json.dumps(text, ensure_ascii=False)}}}') == pan.may_hold_pans(text)


_FREE_TEXT = st.one_of(
    st.text(st.sampled_from(list("0123456789 -x")), max_size=40),
    st.sampled_from(["4111 1111 1111 1111", "5500-0000-0000-0004", f"paid {CARD}.", "ORD-20260115000001"]),
    _TEXT,
)


@settings(max_examples=300, deadline=None)
@given(
    original=st.one_of(
        st.dictionaries(st.sampled_from(["payment_number", "card_number", "note", "extra"]), _FREE_TEXT),
        _FREE_TEXT,
        st.lists(_FREE_TEXT, max_size=3).map(lambda surplus: {"note": "x", "surplus": surplus}),
    ),
    message=_FREE_TEXT,
)
def test_one_check_of_the_envelope_gives_what_scrubbing_each_value_gives(original: Any, message: str) -> None:
    """The builder scans the encoded envelope once and scrubs the original's values only when the
    scan finds digits enough: the same bytes as scrubbing every value of it, one by one."""
    row = rejected(original, message=message)
    builder = DlqEnvelopeBuilder(spec(), RUN)
    got = json.loads(builder.build(row, SOURCE))
    masked = spec().mask_row(original) if isinstance(original, dict) else original
    expected = (
        {key: _every_value_scrubbed(value) for key, value in masked.items()}
        if isinstance(masked, dict)
        else _every_value_scrubbed(masked)
    )
    assert got["original"] == expected
    assert got["error_message"] == pan.scrub_pans(message)


def _every_value_scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return pan.scrub_pans(value)
    if isinstance(value, list):
        return [_every_value_scrubbed(item) for item in value]
    return value
