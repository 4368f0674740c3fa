"""Candidates judged again: current rules, the day's duplicate rule, and masked card numbers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from _envelopes import body, envelope, order

from kafka_ingest.encoding import make_table_encoder
from kafka_ingest.pan import luhn_valid, mask_card_number
from kafka_ingest.replay.candidates import Candidate, candidates
from kafka_ingest.replay.judge import (
    ALREADY_PUBLISHED,
    NEEDS_CORRECTION,
    PUBLISHED,
    STILL_FAILING,
    Verdict,
    judge,
    stand_in,
)
from kafka_ingest.serde import load_schema
from kafka_ingest.specs import TopicSpec
from kafka_ingest.topics.orders import ORDERS
from kafka_ingest.topics.payments import PAYMENTS
from kafka_ingest.validation import BatchValidator

CARD = "4111 1111 1111 1111"


def verdicts(spec: TopicSpec, rows: list[Candidate], published: Any = ()) -> list[Verdict]:
    encoder = make_table_encoder(load_schema(spec.schema_path), 1)
    return judge(spec, rows, validator=BatchValidator(spec), encoder=encoder, published=set(published))


def payment(card: str = CARD, **changes: Any) -> dict[str, Any]:
    row = {
        "payment_number": "PAY-1",
        "order_number": "ORD-1",
        "amount": "10.00",
        "currency": "USD",
        "method": "CARD",
        "status": "APPROVED",
        "card_number": mask_card_number(card) if card else card,
        "paid_at": "2026-01-05T10:00:00Z",
    }
    return {**row, **changes}


def payment_envelope(original: dict[str, Any], rules: tuple[str, ...], offset: int = 0) -> Any:
    env = envelope(
        offset,
        original,
        key_field="payment_number",
        topic="shopping.payment.processed",
        failed_rules=list(rules),
    )
    return env


@pytest.fixture(scope="module")
def orders_spec() -> TopicSpec:
    return ORDERS


def test_a_row_that_passes_the_current_rules_is_published_encoded(orders_spec: TopicSpec) -> None:
    [verdict] = verdicts(
        orders_spec, candidates(orders_spec, [envelope(original=order(currency="EUR"))], None)
    )
    assert verdict.outcome == PUBLISHED
    assert verdict.value is not None
    assert verdict.value[:5] == b"\x00\x00\x00\x00\x01"


def test_a_row_that_still_fails_names_the_rules(orders_spec: TopicSpec) -> None:
    [verdict] = verdicts(
        orders_spec, candidates(orders_spec, [envelope(original=order(currency="GBP"))], None)
    )
    assert (verdict.outcome, verdict.rules, verdict.stage) == (
        STILL_FAILING,
        ("currency_allowed",),
        "validate",
    )


def test_a_key_already_published_for_the_day_is_skipped(orders_spec: TopicSpec) -> None:
    rows = candidates(orders_spec, [envelope(original=order("ORD-7"))], None)
    [verdict] = verdicts(orders_spec, rows, published={("2026-01-05", "ORD-7")})
    assert verdict.outcome == ALREADY_PUBLISHED
    [other_day] = verdicts(orders_spec, rows, published={("2026-01-06", "ORD-7")})
    assert other_day.outcome == PUBLISHED


def test_the_first_of_two_replayed_rows_with_one_key_wins_in_file_and_row_order(
    orders_spec: TopicSpec,
) -> None:
    later = envelope(0, original=order("ORD-1"), source={**body()["source"], "row": 9})
    earlier = envelope(1, original=order("ORD-1"), source={**body()["source"], "row": 2})
    first, second = verdicts(orders_spec, candidates(orders_spec, [later, earlier], None))
    assert (first.outcome, first.rules) == (STILL_FAILING, ("key_unique_in_day",))
    assert second.outcome == PUBLISHED


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"stage": "read", "error_type": "wrong_field_count"}, "rejected when read"),
        ({"truncated": True}, "truncated"),
        ({"original": "ORD-1,raw line"}, "no original row"),
        ({"original": order(coupon_code="PROMO ****1111")}, "masked in the DLQ as possible card numbers"),
    ],
)
def test_originals_that_cannot_be_judged_again_need_a_correction(
    orders_spec: TopicSpec, changes: dict[str, Any], reason: str
) -> None:
    original = changes.pop("original", None)
    [verdict] = verdicts(orders_spec, candidates(orders_spec, [envelope(original=original, **changes)], None))
    assert verdict.outcome == NEEDS_CORRECTION
    assert reason in verdict.reason


def test_masked_card_rules_that_passed_at_first_read_count_as_passed() -> None:
    env = payment_envelope(payment(status="REFUNDED"), ("status_allowed",))
    [verdict] = verdicts(PAYMENTS, candidates(PAYMENTS, [env], None))
    assert verdict.outcome == PUBLISHED
    assert verdict.value is not None
    assert b"1111" in verdict.value


@pytest.mark.parametrize("rule", ["card_number_luhn", "card_number_only_for_card"])
def test_a_row_whose_masked_card_number_failed_its_rules_needs_a_correction(rule: str) -> None:
    env = payment_envelope(payment("4111 1111 1111 1112"), (rule,))
    [verdict] = verdicts(PAYMENTS, candidates(PAYMENTS, [env], None))
    assert verdict.outcome == NEEDS_CORRECTION
    assert rule in verdict.reason
    assert "1112" not in verdict.reason


def test_rows_without_a_card_number_are_judged_in_full() -> None:
    env = payment_envelope(payment("", method="POINTS", currency="usd"), ("currency_allowed",))
    [verdict] = verdicts(PAYMENTS, candidates(PAYMENTS, [env], None))
    assert (verdict.outcome, verdict.rules) == (STILL_FAILING, ("currency_allowed",))


def test_corrected_rows_carry_real_card_numbers_and_are_checked_in_full() -> None:
    from kafka_ingest.replay.corrections import Corrections

    env = payment_envelope(payment("4111 1111 1111 1112"), ("card_number_luhn",))
    fixed = Corrections("f.csv", "x", {"PAY-1": {**payment(), "card_number": "4111111111111111"}})
    wrong = Corrections("f.csv", "x", {"PAY-1": {**payment(), "card_number": "4111111111111112"}})
    assert verdicts(PAYMENTS, candidates(PAYMENTS, [env], fixed))[0].outcome == PUBLISHED
    assert verdicts(PAYMENTS, candidates(PAYMENTS, [env], wrong))[0].rules == ("card_number_luhn",)


def test_without_a_corrected_row_an_envelope_needs_a_correction() -> None:
    from kafka_ingest.replay.corrections import Corrections

    env = payment_envelope(payment(), ("status_allowed",))
    [verdict] = verdicts(PAYMENTS, candidates(PAYMENTS, [env], Corrections("f.csv", "x", {})))
    assert verdict.outcome == NEEDS_CORRECTION


@pytest.mark.parametrize("masked", ["************1111", "***************4242", "********0000"])
def test_stand_in_is_luhn_valid_and_keeps_the_last_four_digits(masked: str) -> None:
    number = stand_in(masked)
    assert number is not None
    assert luhn_valid(number)
    assert number.endswith(masked[-4:])
    assert 12 <= len(number) <= 19


def test_no_stand_in_without_four_digits() -> None:
    assert stand_in("****") is None


def test_spec_without_unique_key_has_no_duplicate_rule(orders_spec: TopicSpec) -> None:
    spec = replace(orders_spec, unique_key=False)
    rows = candidates(
        spec, [envelope(0, original=order("ORD-1")), envelope(1, original=order("ORD-1"))], None
    )
    assert [v.outcome for v in verdicts(spec, rows)] == [PUBLISHED, PUBLISHED]
