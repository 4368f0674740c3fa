"""A DLQ record as a typed envelope, or the reason it cannot be one.

An envelope that is not a JSON object, or that names another topic, is not replayable: it is
reported (``unreadable``, ``other topic``) and skipped, and never stops the replay.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka_ingest.replay.kafka_io import Message

#: The header on replayed records and re-dead-lettered envelopes: ``<dlq topic>:<partition>:<offset>``.
REPLAY_OF_HEADER = "dlq.replay_of"


@dataclass(frozen=True)
class DlqRef:
    """Where an envelope sits: what ``dlq.replay_of`` names."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


@dataclass(frozen=True)
class Envelope:
    """One DLQ envelope (README, "DLQ records"), with its place on the DLQ topic."""

    ref: DlqRef
    topic: str
    stage: str
    error_type: str
    failed_rules: tuple[str, ...]
    dataset: str
    date: str
    file: str
    row: int
    original: Any
    truncated: bool
    key: str | None
    #: when the envelope was written (the record's timestamp)
    written_ms: int = 0
    #: the envelope's ``replay`` block when a replay wrote it (a row that failed again)
    replay: Mapping[str, Any] = field(default_factory=dict)

    @property
    def replay_id(self) -> str:
        return str(self.replay.get("id", ""))

    @property
    def replay_count(self) -> int:
        return int(self.replay.get("count", 0) or 0)

    @property
    def replay_of(self) -> DlqRef | None:
        of = self.replay.get("of")
        if not isinstance(of, Mapping):
            return None
        return DlqRef(str(of.get("topic", "")), int(of.get("partition", -1)), int(of.get("offset", -1)))

    def order(self) -> tuple[str, str, int]:
        """(date, file name, row): the day's duplicate-rule order."""
        return (self.date, self.file.rsplit("/", 1)[-1], self.row)


@dataclass(frozen=True)
class Unusable:
    """A DLQ record that cannot be replayed, and why (reported, then skipped)."""

    ref: DlqRef
    reason: str
    outcome: str


UNREADABLE = "skipped: unreadable"
OTHER_TOPIC = "skipped: other topic"


def parse(message: Message, topic: str, key_field: str) -> Envelope | Unusable:
    """The envelope of ``message``, or why it is not one of ``topic``'s."""
    ref = DlqRef(message.topic, message.partition, message.offset)
    try:
        body = json.loads(message.value or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        return Unusable(ref, f"not valid JSON ({type(exc).__name__})", UNREADABLE)
    if not isinstance(body, dict):
        return Unusable(ref, "not a JSON object", UNREADABLE)
    if body.get("topic") != topic:
        return Unusable(ref, f"an envelope of topic {str(body.get('topic'))[:200]!r}", OTHER_TOPIC)
    try:
        return _envelope(ref, body, message, key_field)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return Unusable(ref, f"fields missing or of the wrong type ({type(exc).__name__})", UNREADABLE)


def _envelope(ref: DlqRef, body: dict[str, Any], message: Message, key_field: str) -> Envelope:
    source = body["source"]
    original = body.get("original")
    key = original.get(key_field) if isinstance(original, dict) else None
    if not isinstance(key, str) or not key:
        key = message.key.decode("utf-8", "replace") if message.key else None
    replay = body.get("replay")
    return Envelope(
        ref=ref,
        topic=str(body["topic"]),
        stage=str(body.get("stage", "")),
        error_type=str(body.get("error_type", "")),
        failed_rules=tuple(str(rule) for rule in body.get("failed_rules") or ()),
        dataset=str(source.get("dataset", "")),
        date=str(source["date"]),
        file=str(source.get("file", "")),
        row=int(source.get("row", 0)),
        original=original,
        truncated=bool(body.get("truncated", False)),
        key=key,
        written_ms=message.timestamp_ms,
        replay=replay if isinstance(replay, dict) else {},
    )
