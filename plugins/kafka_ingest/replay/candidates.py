"""The row each selected envelope replays: its original as read, or its corrected row.

From the original (source ``original``) only what the envelope holds whole can be judged again.
It needs a correction, never a guess, when:

* it was rejected at the ``read`` stage: the record could not be split into the topic's columns
  (its original is the raw text, possibly cut at read time);
* the envelope was ``truncated`` to fit the DLQ's size bound;
* a value outside the masked columns holds what masking leaves (``****1234``): the DLQ scrubbed
  something that looked like a card number out of free text, so the value is no longer the one read.

Masked columns (the card number) are handled by :mod:`.judge`, which knows the rules that read them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kafka_ingest.replay.corrections import Corrections
from kafka_ingest.replay.envelopes import Envelope
from kafka_ingest.specs import Stage, TopicSpec

ORIGINAL = "original"
CORRECTIONS = "corrections"
SOURCES = (ORIGINAL, CORRECTIONS)

#: What ``pan.mask_card_number`` leaves: at least four ``*``, then at most four digits.
_MASKED = re.compile(r"\*{4,}[0-9]{0,4}")


@dataclass
class Candidate:
    """A selected envelope and the row to judge; ``needs_correction`` says why there is none."""

    envelope: Envelope
    row: dict[str, Any] | None
    from_original: bool
    needs_correction: str | None = None


def candidates(
    spec: TopicSpec, envelopes: Sequence[Envelope], corrections: Corrections | None
) -> list[Candidate]:
    if corrections is None:
        return [_from_original(spec, e) for e in envelopes]
    return [_corrected(e, corrections) for e in envelopes]


def _corrected(envelope: Envelope, corrections: Corrections) -> Candidate:
    row = corrections.rows.get(envelope.key or "")
    if row is None:
        return Candidate(envelope, None, False, "no row for its key in the corrections file")
    return Candidate(envelope, dict(row), False)


def _from_original(spec: TopicSpec, envelope: Envelope) -> Candidate:
    reason = _why_not_replayable(spec, envelope)
    if reason is not None:
        return Candidate(envelope, None, True, reason)
    original = envelope.original
    return Candidate(envelope, {column: original.get(column) for column in spec.all_columns}, True)


def _why_not_replayable(spec: TopicSpec, envelope: Envelope) -> str | None:
    original = envelope.original
    if envelope.stage == Stage.READ:
        return f"rejected when read ({envelope.error_type}): the record was never split into columns"
    if envelope.truncated:
        return "the envelope's original was truncated to fit the DLQ"
    if not isinstance(original, dict):
        return "the envelope holds no original row"
    missing = [c for c in spec.columns if c not in original]
    if missing:
        return f"the original lacks column(s) {', '.join(missing)}"
    scrubbed = [
        column
        for column, value in original.items()
        if column not in spec.masked_columns and isinstance(value, str) and _MASKED.search(value)
    ]
    if scrubbed:
        return f"column(s) {', '.join(scrubbed)} were masked in the DLQ as possible card numbers"
    return None
