"""A file's batches on their way to a transaction: parse -> judge -> encode, ahead on threads.

Two stages run beside the one that publishes: the *parse* stage reads the batch, applies the
duplicate rule and the resume filter and computes the spec's typed columns and rule flags (Arrow
and numpy: mostly outside the GIL); the *judge* stage runs GX on :data:`JUDGED_TOGETHER` parsed
batches at a time (one GX run: its cost is almost all fixed) and encodes the valid rows (mostly
Python). While one batch is produced and its transaction commits, the next ones are judged and
parsed. Every stage handles batches in file order (the one-pass duplicate rule needs that) and
hands them on in that order; the hand-overs are bounded, so memory stays bounded by a few batches
whatever the file's size. An error surfaces where it would without the threads: after the
batches before it were published.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numpy as np
import pyarrow as pa

from kafka_ingest.batches import ReadBatch, RejectedRow
from kafka_ingest.encode.table import TableEncoder
from kafka_ingest.pipeline.duplicates import DuplicateScope
from kafka_ingest.pipeline.settings import JobSettings
from kafka_ingest.publish.messages import MessageBuilder, rows_as_read
from kafka_ingest.publish.records import OutgoingMessage
from kafka_ingest.read import ExtractPath, file_name, read_extract
from kafka_ingest.runtime.metrics import TopicMetrics
from kafka_ingest.runtime.prefetch import prefetch
from kafka_ingest.specs import Stage, TopicSpec
from kafka_ingest.validate.validator import BatchValidator, ValidationOutcome

_T = TypeVar("_T")

#: Parsed batches judged by one GX run: GX's cost per run is almost all fixed, so two batches per
#: run halve it for one more batch in memory and one batch's parse of latency (docs/performance.md).
JUDGED_TOGETHER = 2


@dataclass
class Parsed:
    """A batch after the parse stage: what survived the resume filter, and the spec's prepared frame."""

    file: str
    table: pa.Table | None
    rows: np.ndarray
    rejected: list[RejectedRow]
    skipped: int
    frame: Any = None
    seconds: float = 0.0  # time spent preparing, counted into validate_latency


@dataclass
class Judged:
    """A batch ready for its transaction: its records and rejects, and the rows as read."""

    records: Sequence[OutgoingMessage]
    rejected: list[RejectedRow]
    skipped: int
    table: pa.Table | None = None
    row_numbers: np.ndarray | None = None

    def original(self, row: int) -> dict[str, Any] | None:
        """Row ``row`` as read, for a record that turns out too large to publish (rare, so lazy)."""
        if self.table is None or self.row_numbers is None:
            return None
        position = int(np.searchsorted(self.row_numbers, row))
        if position >= len(self.row_numbers) or self.row_numbers[position] != row:
            return None
        return rows_as_read(self.table, [position])[0]


class BatchStages:
    """The stages of one run: reading, the duplicate rule, ``prepare``, GX and encoding."""

    def __init__(
        self,
        spec: TopicSpec,
        settings: JobSettings,
        *,
        encoder: TableEncoder,
        duplicates: DuplicateScope,
        metrics: TopicMetrics,
    ) -> None:
        self.spec, self.settings = spec, settings
        self.encoder = encoder
        self.validator = BatchValidator(spec)
        self.duplicates = duplicates
        self._metrics = metrics

    def batches(
        self, path: ExtractPath, resume_after: int, messages: MessageBuilder
    ) -> Generator[tuple[ReadBatch, Judged], None, None]:
        """Each read batch of ``path`` after row ``resume_after``, judged, prepared ahead on threads."""
        parsed = prefetch(self._parsed(path, resume_after), JUDGED_TOGETHER, name="parse-ahead")
        try:
            judged = prefetch(self._judged(parsed, messages), 1, name="judge-ahead")
            try:
                yield from judged
            finally:
                judged.close()
        finally:
            parsed.close()

    def _parsed(self, path: ExtractPath, resume_after: int) -> Iterator[tuple[ReadBatch, Parsed]]:
        batches = read_extract(  # the file is opened on the parse-ahead thread
            path,
            columns=self.spec.columns,
            optional_columns=self.spec.optional_columns,
            json_columns=self.spec.reader.json_columns,
            batch_rows=self.settings.batch_size,
            options=self.spec.reader,
        )
        for batch in batches:
            yield batch, self.parse(batch, resume_after)

    def parse(self, batch: ReadBatch, resume_after: int) -> Parsed:
        """The duplicate rule, the resume filter and the spec's ``prepare`` (typed columns, rule flags)."""
        table, rows, rejected, skipped = batch.table, batch.row_numbers, list(batch.rejected), 0
        self._metrics.incr("rows_read", batch.rows_read)
        # Judged before the resume filter: the one-pass rule must see the keys of skipped rows too.
        first = None
        if self.spec.unique_key:
            keys = table.column(self.spec.key_field)
            first = self.duplicates.is_first_occurrence(file_name(batch.file), rows, keys)
        if resume_after and batch.last_row <= resume_after:
            return Parsed(batch.file, None, rows[:0], [], batch.rows_read)
        if resume_after:
            keep = rows > resume_after
            skipped = int((~keep).sum()) + sum(r.row <= resume_after for r in rejected)
            table, rows = table.filter(pa.array(keep)), rows[keep]
            first = first[keep] if first is not None else None
            rejected = [r for r in rejected if r.row > resume_after]
        if table.num_rows == 0:
            return Parsed(batch.file, None, rows, rejected, skipped)
        started = time.monotonic()
        frame = table.to_pandas()
        if first is not None:
            frame["_first_occurrence"] = first
        parsed = Parsed(batch.file, table, rows, rejected, skipped, self.spec.prepare(frame))
        parsed.seconds = time.monotonic() - started
        return parsed

    def _judged(
        self, parsed: Iterator[tuple[ReadBatch, Parsed]], messages: MessageBuilder
    ) -> Iterator[tuple[ReadBatch, Judged]]:
        """GX once per group of parsed batches, then each batch's records."""
        for group in _in_groups(parsed, JUDGED_TOGETHER):
            started = time.monotonic()
            frames = [p.frame for _, p in group if p.frame is not None]
            try:
                outcomes: Iterator[ValidationOutcome] | None = iter(self.validator.validate_together(frames))
            except Exception:
                if len(frames) < 2:
                    raise
                outcomes = None  # judged one by one below: the batches before the failing one go first
            seconds = (time.monotonic() - started) / max(1, len(frames))
            for batch, p in group:
                outcome = None
                if p.frame is not None:
                    outcome = next(outcomes) if outcomes is not None else self.validate(p.frame)
                yield batch, self.judge(p, outcome, seconds, messages)

    def validate(self, frame: Any) -> ValidationOutcome:
        """GX on the rows that can fail (see :meth:`BatchValidator.validate_rows_that_can_fail`)."""
        return self.validator.validate_rows_that_can_fail(frame)

    def judge(
        self, parsed: Parsed, outcome: ValidationOutcome | None, seconds: float, messages: MessageBuilder
    ) -> Judged:
        """The batch's rejects from GX's verdict (``outcome``), then its valid rows encoded as records."""
        table, rows, rejected = parsed.table, parsed.rows, parsed.rejected
        if table is None or parsed.frame is None or outcome is None:
            return Judged([], rejected, parsed.skipped)
        self._metrics.timing("validate_latency", parsed.seconds + seconds)
        failed = sorted(outcome.failed_rules.items())
        originals = rows_as_read(table, [position for position, _ in failed])
        for (position, rules), original in zip(failed, originals, strict=True):
            rejected.append(
                RejectedRow(
                    row=int(rows[position]),
                    stage=Stage.VALIDATE,
                    error_type="ExpectationFailed",
                    message=f"row failed {len(rules)} rule(s): {', '.join(rules)}",
                    rules=tuple(rules),
                    original=original,
                )
            )
        valid_positions = np.flatnonzero(outcome.valid)
        self._metrics.incr("rows_valid", len(valid_positions))
        records = self.encode(parsed, outcome.valid, valid_positions, rejected, messages)
        return Judged(records, rejected, parsed.skipped, table, rows)

    def encode(
        self,
        parsed: Parsed,
        valid: np.ndarray,
        positions: np.ndarray,
        rejected: list[RejectedRow],
        messages: MessageBuilder,
    ) -> Sequence[OutgoingMessage]:
        """The valid rows as records; a row the encoder refuses becomes a reject at stage serialize."""
        assert parsed.table is not None
        table, rows = parsed.table, parsed.rows
        started = time.monotonic()
        values, errors = self.encoder.encode_table(self.spec.to_table(parsed.frame[valid]))
        self._metrics.timing("serialize_latency", time.monotonic() - started)
        failed = [int(positions[index]) for index, _, _ in errors]
        for position, (_, error_type, message), original in zip(
            failed, errors, rows_as_read(table, failed), strict=True
        ):
            rejected.append(
                RejectedRow(
                    row=int(rows[position]),
                    stage=Stage.SERIALIZE,
                    error_type=error_type,
                    message=message,
                    original=original,
                )
            )
        records = cast(list[bytes], values)
        if errors:  # rows that failed to encode are in the DLQ now, not among the records
            encoded = np.fromiter((value is not None for value in values), dtype=bool, count=len(values))
            positions, records = positions[encoded], [value for value in values if value is not None]
        return messages.records(table, rows, positions, records)


def _in_groups(items: Iterator[_T], size: int) -> Iterator[list[_T]]:
    """``items`` in lists of ``size`` (the last may be shorter).

    If taking an item raises, the items taken before it are handed on first, then the error: a
    batch that cannot be read must not keep the batches before it from being published.
    """
    while True:
        group: list[_T] = []
        try:
            while len(group) < size:
                group.append(next(items))
        except StopIteration:
            if group:
                yield group
            return
        except Exception:
            if group:
                yield group
            raise
        yield group
