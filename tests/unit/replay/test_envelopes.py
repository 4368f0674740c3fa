"""A DLQ record becomes a typed envelope, or a reason to skip it that never stops the replay."""

from __future__ import annotations

from _envelopes import TOPIC, body, envelope, message

from kafka_ingest.replay.envelopes import OTHER_TOPIC, UNREADABLE, DlqRef, Unusable, parse


def test_envelope_fields_and_place_on_the_dlq() -> None:
    parsed = envelope(offset=7)
    assert parsed.ref == DlqRef(f"{TOPIC}.dlq", 0, 7)
    assert (parsed.date, parsed.row, parsed.key, parsed.failed_rules) == (
        "2026-01-05",
        3,
        "ORD-1",
        ("currency_allowed",),
    )
    assert str(parsed.ref) == f"{TOPIC}.dlq:0:7"
    assert parsed.replay_of is None
    assert parsed.replay_count == 0


def test_replay_block_names_the_envelope_it_came_from() -> None:
    parsed = envelope(replay={"id": "r1", "count": 2, "of": {"topic": "t.dlq", "partition": 1, "offset": 9}})
    assert (parsed.replay_id, parsed.replay_count, parsed.replay_of) == ("r1", 2, DlqRef("t.dlq", 1, 9))


def test_non_json_record_is_unreadable() -> None:
    parsed = parse(message(b"\xff not json"), TOPIC, "order_number")
    assert isinstance(parsed, Unusable)
    assert parsed.outcome == UNREADABLE


def test_json_that_is_not_an_envelope_is_unreadable() -> None:
    assert parse(message([1, 2]), TOPIC, "order_number").outcome == UNREADABLE  # type: ignore[union-attr]
    assert parse(message({"topic": TOPIC}), TOPIC, "order_number").outcome == UNREADABLE  # type: ignore[union-attr]


def test_envelope_of_another_topic_is_reported_as_such() -> None:
    parsed = parse(message(body(topic="shopping.payment.processed")), TOPIC, "order_number")
    assert isinstance(parsed, Unusable)
    assert parsed.outcome == OTHER_TOPIC


def test_key_falls_back_to_the_record_key_when_the_original_is_raw_text() -> None:
    parsed = parse(message(body("ORD-9,broken line"), key=b"ORD-9"), TOPIC, "order_number")
    assert not isinstance(parsed, Unusable)
    assert parsed.key == "ORD-9"
