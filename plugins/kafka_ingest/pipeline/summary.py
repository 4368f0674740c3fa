"""What a run reports: one summary per file, the operator's XCom summary, progress in the log."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from kafka_ingest.batches import RejectedRow
from kafka_ingest.errors import PermanentError
from kafka_ingest.publish.records import BatchResult, BatchToPublish, OutgoingMessage, RecordColumns
from kafka_ingest.runtime.metrics import TopicMetrics
from kafka_ingest.specs import Stage

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 5.0


class ReconciliationError(PermanentError):
    """Rows read != published + DLQ + skipped: something was lost or counted twice."""


@dataclass
class FileSummary:
    """What happened to one file; the job's XCom summary lists these."""

    file: str
    fingerprint: str = ""
    status: str = "published"
    rows_read: int = 0
    published: int = 0
    dlq: int = 0
    skipped: int = 0
    batches: int = 0
    dlq_by_stage: dict[str, int] = field(default_factory=dict)
    #: rows dead-lettered per failed rule (a row failing two rules counts under both)
    dlq_by_rule: dict[str, int] = field(default_factory=dict)
    #: encoded value bytes committed to the topic (lineage's outputStatistics)
    bytes_published: int = 0
    #: wall-clock seconds the file took in this run (rows/s in the run report)
    seconds: float = 0.0
    checkpoint: str = ""

    def reconciled(self) -> FileSummary:
        """This summary, if rows read = published + DLQ + skipped; else :class:`ReconciliationError`."""
        if self.rows_read != self.published + self.dlq + self.skipped:
            raise ReconciliationError(
                f"{self.file}: rows read {self.rows_read} != published {self.published} + DLQ "
                f"{self.dlq} + skipped {self.skipped}."
            )
        return self

    def add_dlq(self, stages: dict[str, int]) -> None:
        for stage, count in stages.items():
            self.dlq_by_stage[stage] = self.dlq_by_stage.get(stage, 0) + count


def summarize(
    files: Sequence[FileSummary], *, topic: str, schema_id: int, validate_only: bool
) -> dict[str, Any]:
    """The small JSON-able summary the operator returns to XCom."""
    totals = {
        name: sum(getattr(f, name) for f in files)
        for name in ("rows_read", "published", "dlq", "skipped", "batches")
    }
    return {
        "topic": topic,
        "schema_id": schema_id,
        "validate_only": validate_only,
        "files": len(files),
        **totals,
        "per_file": [asdict(f) for f in files],
    }


def count_batch(
    summary: FileSummary,
    metrics: TopicMetrics,
    result: BatchResult,
    stages: dict[str, int],
    batch: BatchToPublish,
    rejected: Sequence[RejectedRow],
) -> None:
    """Count one batch's outcome (``stages``: its rejects per stage) in the file's summary and metrics."""
    if result.moved_to_dlq:
        stages[str(Stage.PRODUCE)] = stages.get(str(Stage.PRODUCE), 0) + len(result.moved_to_dlq)
    if result.committed:
        metrics.timing("commit_latency", result.commit_seconds)
        metrics.incr("batches_committed")
        metrics.incr("batches_aborted", result.attempts - 1)
    summary.published += result.published
    summary.bytes_published += _value_bytes(batch.records)  # without records moved to the DLQ
    summary.dlq += result.dlq
    for row in rejected:
        for rule in row.rules:
            summary.dlq_by_rule[rule] = summary.dlq_by_rule.get(rule, 0) + 1
    summary.batches += 1
    summary.add_dlq(stages)
    for stage, count in stages.items():
        metrics.incr(f"rows_dlq.{stage}", count)
    metrics.incr("rows_published", result.published)
    metrics.incr("rows_dlq", result.dlq)


def _value_bytes(records: Sequence[OutgoingMessage]) -> int:
    """The records' encoded value bytes (one C-level pass over a column)."""
    if isinstance(records, RecordColumns):
        return sum(map(len, records.values))
    return sum(len(r.value) for r in records)


def count_stages(rejected: Iterable[RejectedRow]) -> dict[str, int]:
    """Rejected rows per stage."""
    counts: dict[str, int] = {}
    for row in rejected:
        counts[str(row.stage)] = counts.get(str(row.stage), 0) + 1
    return counts


class Progress:
    """Logs rows and rows/s every few seconds on long files."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._started = self._last = time.monotonic()

    def update(self, rows: int) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S:
            self._last = now
            log.info("%s: %d rows so far, %.0f rows/s", self._path, rows, rows / (now - self._started))

    def done(self, summary: FileSummary) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        summary.seconds = round(elapsed, 3)
        log.info(
            "%s: %d rows read, %d published, %d to DLQ, %d skipped in %.1fs (%.0f rows/s)",
            self._path,
            summary.rows_read,
            summary.published,
            summary.dlq,
            summary.skipped,
            elapsed,
            summary.rows_read / elapsed,
        )
