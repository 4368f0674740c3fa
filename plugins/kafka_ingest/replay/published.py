"""Which of the replayed keys are already on the topic for their day.

The decision (docs/dlq-replay.md, "Already published"): a record of the topic counts for day D
when its ``source.file`` header names a file of ``dt=D`` (EXTRACTS.md's layout), or a file the
DLQ's envelopes of day D came from (extracts kept elsewhere). Replayed records carry their
original's ``source.file``, so earlier replays count too. To keep this cheap and still correct:

* only the keys being replayed are looked for, and only in the partitions those keys go to when
  the producers use librdkafka's default partitioner (``consistent_random``: CRC-32 of the key
  modulo the partition count); with any other ``partitioner`` setting every partition is read;
* a partition is read from the first record stamped at or after a lower bound: the earlier of the
  day's start (UTC) and the oldest DLQ envelope of the day, minus :data:`SLACK` (a day's first
  publication cannot come much earlier than the first of its rejects, written in the same runs);
* up to the topic's end offsets recorded when the replay started (kept in its checkpoint), so a
  retry sees what the first try saw, and the replay's own records never count against it.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from kafka_ingest.replay.kafka_io import TopicReader

#: How much earlier than its first DLQ envelope a day's first record may have been published.
SLACK = timedelta(days=1)
_DEFAULT_PARTITIONERS = ("consistent_random", "consistent")


def published_keys(
    reader: TopicReader,
    topic: str,
    *,
    wanted: Collection[tuple[str, str]],
    day_files: Mapping[str, Collection[str]],
    since_ms: int,
    ends: Mapping[int, int],
    kafka_config: Mapping[str, Any],
) -> set[tuple[str, str]]:
    """The (date, key) pairs of ``wanted`` that are on ``topic`` below ``ends``."""
    if not wanted or not ends:
        return set()
    keys = {key for _, key in wanted}
    partitions = _partitions(keys, len(ends), kafka_config) or set(ends)
    starts = {p: o for p, o in reader.offsets_at(topic, since_ms).items() if p in partitions}
    bounded = {p: end for p, end in ends.items() if p in partitions}
    found: set[tuple[str, str]] = set()
    encoded = {key.encode(): key for key in keys}
    for message in reader.read(topic, starts, bounded):
        key = encoded.get(message.key or b"")
        if key is None:
            continue
        date = day_of(message.header("source.file"), day_files)
        if date is not None and (date, key) in wanted:
            found.add((date, key))
    return found


def lower_bound_ms(dates: Collection[str], oldest_envelope_ms: int | None) -> int:
    """Where to start reading: see the module docstring."""
    starts = [datetime.fromisoformat(d).replace(tzinfo=UTC) for d in dates]
    if oldest_envelope_ms is not None:
        starts.append(datetime.fromtimestamp(oldest_envelope_ms / 1000, UTC))
    if not starts:
        return 0
    return max(0, int((min(starts) - SLACK).timestamp() * 1000))


def day_of(file: str, day_files: Mapping[str, Collection[str]]) -> str | None:
    """The day a published record's ``source.file`` belongs to."""
    for part in PurePosixPath(file).parts:
        if part.startswith("dt="):
            return part[3:]
    for date, files in day_files.items():
        if file in files:
            return date
    return None


def _partitions(keys: Collection[str], count: int, kafka_config: Mapping[str, Any]) -> set[int] | None:
    if str(kafka_config.get("partitioner", "consistent_random")) not in _DEFAULT_PARTITIONERS:
        return None
    return {zlib.crc32(key.encode()) % count for key in keys}
