"""Dead-letter envelopes: what a rejected row looks like on ``<topic>.dlq``.

An envelope is a JSON object a person on call can read without tools: the stage and rules that
rejected the row, where it came from, which run read it, and the original row. Two policies keep it
safe to publish:

* **Masking.** The spec's sensitive columns are masked, and any Luhn-valid 12-19 digit sequence in
  free text (a raw line that could not be split into columns, an error message, a mislabelled
  column) is masked to its last four digits, so a card number cannot leak through a DLQ record.
* **Bounded size.** An envelope never exceeds ``max_bytes`` (below the broker's message limit):
  long values are cut first, then the whole original, and ``truncated`` says so. The record's key
  is bounded too (:func:`dlq_key`), so a broken row cannot make its DLQ record too large to send.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kafka_ingest.batches import Headers, RejectedRow
from kafka_ingest.pan import may_hold_pans, scrub_pans
from kafka_ingest.specs import TopicSpec

#: Envelopes stay below librdkafka's and the broker's default 1 MB message limit.
DEFAULT_MAX_ENVELOPE_BYTES = 256 * 1024
#: Longest row key a DLQ record keeps as its Kafka key (a valid key has at most 64 characters).
MAX_KEY_CHARS = 1_024
_MAX_MESSAGE_CHARS = 2_000
_MAX_VALUE_CHARS = 4_096


@dataclass(frozen=True)
class RunInfo:
    """Which run read a row: the DLQ's ``run`` block and the ``dag/run/task`` headers."""

    dag_id: str = ""
    run_id: str = ""
    task_id: str = ""
    map_index: int = -1
    try_number: int = 0
    #: how many times the run was cleared: tells a retry (same) from a rerun (higher)
    clear_number: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "map_index": self.map_index,
            "try_number": self.try_number,
        }


@dataclass(frozen=True)
class SourceInfo:
    """Where a batch came from: the DLQ's ``source`` block."""

    dataset: str
    date: str
    file: str


class DlqEnvelopeBuilder:
    """Turns :class:`RejectedRow` values into masked, bounded DLQ message values."""

    def __init__(self, spec: TopicSpec, run: RunInfo, *, max_bytes: int = DEFAULT_MAX_ENVELOPE_BYTES) -> None:
        self._spec = spec
        self._run = run.as_dict()
        self._max_bytes = max_bytes

    def build(
        self, rejected: RejectedRow, source: SourceInfo, *, replay: Mapping[str, Any] | None = None
    ) -> bytes:
        """The envelope's bytes; ``replay`` (a row that failed again when replayed: the envelope it
        came from, the replay's id and count) is added as the ``replay`` block when given."""
        envelope: dict[str, Any] = {
            "topic": self._spec.topic,
            "stage": str(rejected.stage),
            "error_type": rejected.error_type,
            "error_message": _cut(scrub_pans(rejected.message), _MAX_MESSAGE_CHARS),
            "failed_rules": list(rejected.rules),
            "source": {
                "dataset": source.dataset,
                "date": source.date,
                "file": source.file,
                "row": rejected.row,
            },
            "run": self._run,
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "original": self._masked_original(rejected.original),
            "truncated": False,
        }
        if replay is not None:
            envelope["replay"] = dict(replay)
        text = _json(envelope)
        # One scan of the whole envelope instead of one per value of the original: most rows hold
        # no twelve digits close together anywhere, and then scrubbing could change nothing.
        if may_hold_pans(text):
            envelope["original"] = _scrubbed(envelope["original"])
            text = _json(envelope)
        return self._bounded(envelope, text.encode())

    def _masked_original(self, original: Mapping[str, Any] | str | None) -> Any:
        """The row as read with the spec's sensitive columns masked (free text is scrubbed by
        :meth:`build`)."""
        if original is None or isinstance(original, str):
            return original
        return {str(column): value for column, value in self._spec.mask_row(original).items()}

    def _bounded(self, envelope: dict[str, Any], encoded: bytes) -> bytes:
        if len(encoded) <= self._max_bytes:
            return encoded
        envelope["truncated"] = True
        original = envelope["original"]
        if isinstance(original, dict):
            envelope["original"] = {
                key: _cut(value, _MAX_VALUE_CHARS) if isinstance(value, str) else value
                for key, value in original.items()
            }
        elif isinstance(original, str):
            envelope["original"] = _cut(original, _MAX_VALUE_CHARS)
        encoded = _dumps(envelope)
        if len(encoded) <= self._max_bytes:
            return encoded
        envelope["original"] = _cut(json.dumps(envelope["original"], ensure_ascii=False), 1_024)
        return _dumps(envelope)


def dlq_key(rejected: RejectedRow, spec: TopicSpec) -> bytes | None:
    """The DLQ record's key: the row's key field, masked and scrubbed like ``original``.

    None when the row has no key, or one longer than :data:`MAX_KEY_CHARS`: only a broken row has
    such a key, and kept whole it would make the record outgrow the broker's limit (the
    envelope's bound does not cover the key), failing the batch instead of dead-lettering the row.
    """
    if not isinstance(rejected.original, Mapping):
        return None
    value = spec.mask_row({spec.key_field: rejected.original.get(spec.key_field)})[spec.key_field]
    if not isinstance(value, str) or not value or len(value) > MAX_KEY_CHARS:
        return None
    return scrub_pans(value).encode()


def dlq_headers(rejected: RejectedRow, source: SourceInfo) -> Headers:
    """Headers that let consumers route DLQ records without parsing the envelope."""
    return [
        ("dlq.stage", str(rejected.stage).encode()),
        ("dlq.error_type", rejected.error_type.encode()),
        ("source.file", source.file.encode()),
        ("source.row", str(rejected.row).encode()),
    ]


def _scrubbed(value: Any) -> Any:
    """Free-text scrubbing through nested values too (e.g. a CSV row's surplus fields)."""
    if isinstance(value, str):
        return scrub_pans(value)
    if isinstance(value, (list, tuple)):
        return [_scrubbed(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _scrubbed(item) for key, item in value.items()}
    return value


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated {len(text) - limit} chars]"


#: ``json.dumps`` with these arguments would make a new encoder for every envelope.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def _json(envelope: Mapping[str, Any]) -> str:
    return _ENCODER.encode(envelope)


def _dumps(envelope: Mapping[str, Any]) -> bytes:
    return _json(envelope).encode()
