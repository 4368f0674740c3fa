"""Find a day's records that an earlier run published, without reading the topic's history.

A rerun publishes nothing: the day's records were written by an earlier run, at a time the rerun
does not know. The day's checkpoints do: each file's last checkpoint record was produced in the
same transaction as the file's last batch, after its records, and says how many records and DLQ
envelopes the file's latest publication holds. So the records lie before that checkpoint record's
timestamp, and the search reads backwards from it in windows of doubling length until it has
found every row the checkpoints count. It gives up once it has read ``budget`` records and says
how far it got, rather than scanning to the log's start.

The first window starts where the publication is known to have started, when the caller knows
(``after_ms``: the checkpoints' ``started_at``, see :func:`began`): the search then reads what
that publication wrote and what the topic received meanwhile, however close to it the topic's
history was written. Without it the first window is a guess, the 10 s before the
last checkpoint (then 20 s, 40 s, ...): on a topic that received millions of records just before
the run (a stack filled moments earlier), that guess reads them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kafka_ingest.publish.checkpoints import Checkpoint, partition_for
from kafka_ingest.testing.topics import Client, TopicReader, TopicRecord

FIRST_WINDOW_S = 10.0
#: Records produced in the same transaction, just before its checkpoint record, can carry a later
#: timestamp by this much at most (they are stamped when produced, on the same machine's clock).
CLOCK_MARGIN_S = 1.0
DEFAULT_BUDGET = 500_000


@dataclass(frozen=True)
class FileCheckpoint:
    """A file's last committed checkpoint and when its record was written (ms since the epoch)."""

    checkpoint: Checkpoint
    timestamp: int


@dataclass
class Located:
    """The rows found (the latest copy of each (file, row)), and what finding them cost."""

    records: list[TopicRecord] = field(default_factory=list)
    expected: int = 0
    scanned: int = 0
    #: how far back the search read (ms since the epoch); 0 when it read nothing
    reached: int = 0

    @property
    def complete(self) -> bool:
        return len(self.records) >= self.expected


def last_checkpoints(
    bootstrap: Client, checkpoint_topic: str, keys: Iterable[str], *, timeout_s: float = 30.0
) -> dict[str, FileCheckpoint]:
    """The last committed checkpoint of each key that has one, read as the pipeline reads them:
    only the partitions the keys live on, up to their high watermark, read_committed."""
    wanted = set(keys)
    found: dict[str, FileCheckpoint] = {}
    with TopicReader(bootstrap, checkpoint_topic, timeout_s=timeout_s) as reader:
        if not reader.partitions or not wanted:
            return found
        ends = reader.watermarks()
        used = {partition_for(key, len(reader.partitions)) for key in wanted}
        starts = {p: ends[p][0] for p in used}
        for record in reader.read(starts, {p: ends[p][1] for p in used}):
            key = record.key_text
            if key in wanted and record.value:
                found[key] = FileCheckpoint(Checkpoint.from_json(record.value), record.timestamp)
    return found


def read_back(
    bootstrap: Client,
    topic: str,
    *,
    files: Iterable[str],
    before_ms: int,
    expected: int,
    after_ms: int | None = None,
    budget: int = DEFAULT_BUDGET,
    timeout_s: float = 30.0,
) -> Located:
    """The records of ``files`` (their ``source.file`` header) written before ``before_ms``,
    searched backwards from then until ``expected`` distinct rows are found (see the module doc).

    ``after_ms``: when the publication began, if known; the first window reaches back to it
    (less :data:`CLOCK_MARGIN_S`) instead of :data:`FIRST_WINDOW_S`."""
    paths = set(files)
    located = Located(expected=expected)
    if expected <= 0:
        return located
    latest: dict[tuple[str, int], TopicRecord] = {}
    with TopicReader(bootstrap, topic, timeout_s=timeout_s) as reader:
        ends = reader.watermarks()
        upper = reader.offsets_at((before_ms / 1000) + CLOCK_MARGIN_S, ends)
        window = FIRST_WINDOW_S
        if after_ms is not None and after_ms <= before_ms:
            window = (before_ms - after_ms) / 1000 + CLOCK_MARGIN_S
        while True:
            since_s = before_ms / 1000 - window
            lower = {p: min(offset, upper[p]) for p, offset in reader.offsets_at(since_s, ends).items()}
            for record in reader.read(lower, upper):
                if record.header("source.file") in paths:
                    _keep_latest(latest, record)
            located.reached = int(since_s * 1000)
            at_start = all(lower[p] <= low for p, (low, _) in ends.items())
            if len(latest) >= expected or at_start or reader.scanned >= budget:
                break
            upper, window = lower, window * 2
        located.scanned = reader.scanned
    located.records = sorted(latest.values(), key=lambda r: (r.header("source.file"), r.row))
    return located


def _keep_latest(latest: dict[tuple[str, int], TopicRecord], record: TopicRecord) -> None:
    where = (record.header("source.file"), record.row)
    kept = latest.get(where)
    if kept is None or (record.timestamp, record.offset) > (kept.timestamp, kept.offset):
        latest[where] = record


def newest(checkpoints: Mapping[str, FileCheckpoint]) -> int:
    """The latest checkpoint record's timestamp (ms): the day's records were all written before."""
    return max((c.timestamp for c in checkpoints.values()), default=0)


def began(checkpoints: Mapping[str, FileCheckpoint]) -> int | None:
    """When the earliest of the files' publications began (ms), or None if a checkpoint does not
    say (written before ``started_at`` was recorded): the day's records were all written after."""
    starts = [c.checkpoint.started_at for c in checkpoints.values()]
    if not starts or min(starts) <= 0:
        return None
    return int(min(starts) * 1000)
