"""One ingestion run: extract files → validation → Avro → transactional batches, reconciled.

:class:`IngestionJob` owns the order of operations for each file, which is what makes a run
exactly-once:

1. fingerprint the file; create its producer and ``init_transactions()`` (fences older attempts);
2. read the file's checkpoint (only now: nothing can change it any more) and decide — complete
   and unchanged: skip; changed since a partial or complete publish: fail unless reprocessing;
   partial: resume after ``rows_done``;
3. per batch: validate, encode, and commit records + DLQ records + checkpoint in one transaction;
4. mark the file complete; reconcile rows read = published + DLQ + skipped.

Nothing here imports Airflow: the operator wires in connections and run ids, the benchmark uses
the job directly.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any, TypeVar, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Producer

from kafka_ingest.allocation import tuned_for_ingestion
from kafka_ingest.batches import Headers, ReadBatch, RejectedRow
from kafka_ingest.checkpoints import Checkpoint, CheckpointStore, checkpoint_key
from kafka_ingest.dedup import DuplicateIndex, SeenKeys
from kafka_ingest.dlq import DlqEnvelopeBuilder, RunInfo, SourceInfo, dlq_headers, dlq_key
from kafka_ingest.encoding import TableEncoder
from kafka_ingest.errors import PermanentError
from kafka_ingest.metrics import TopicMetrics
from kafka_ingest.prefetch import prefetch
from kafka_ingest.publisher import (
    BatchToPublish,
    BudgetExceeded,
    OutgoingMessage,
    RecordColumns,
    TransactionalPublisher,
)
from kafka_ingest.readers import (
    ExtractPath,
    ExtractReadError,
    file_state,
    fingerprint,
    pinned,
    read_extract,
)
from kafka_ingest.schema_guard import SchemaGuard
from kafka_ingest.specs import Stage, TopicSpec
from kafka_ingest.validation import BatchValidator, ValidationOutcome

log = logging.getLogger(__name__)
_T = TypeVar("_T")

PROGRESS_EVERY_S = 5.0
#: Parsed batches judged by one GX run. GX's cost per run is almost all fixed (~0.1 s for the
#: orders suite), ~20 % of the pipeline's CPU at one run per 50k-row batch; two batches per run
#: halve it for one more batch in memory and one batch's parse of latency (docs/performance.md).
JUDGED_TOGETHER = 2


class ExtractChangedError(PermanentError):
    """A file changed after part of it was published; mixing versions would corrupt the topic."""


class ReconciliationError(PermanentError):
    """Rows read != published + DLQ + skipped: something was lost or counted twice."""


@dataclass(frozen=True)
class JobSettings:
    """The knobs of one run (the operator's arguments, minus the Airflow wiring)."""

    extract_date: str
    batch_size: int = 50_000
    reprocess: bool = False
    dry_run: bool = False
    max_dlq_ratio: float | None = 0.1
    max_dlq_rows: int | None = None
    max_attempts: int = 3
    timeout_s: float = 60.0
    #: False encodes with fastavro record by record (the reference path; same bytes, slower).
    columnar_encoder: bool = True


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

    def reconciles(self) -> bool:
        return self.rows_read == self.published + self.dlq + self.skipped


ProducerFactory = Callable[[str], Producer]


@dataclass
class _Parsed:
    """A batch after the parse stage: what survived the resume filter, and the spec's prepared frame."""

    file: str
    table: pa.Table | None
    rows: np.ndarray
    rejected: list[RejectedRow]
    skipped: int
    frame: Any = None
    seconds: float = 0.0  # time spent preparing, counted into validate_latency


@dataclass
class _Prepared:
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
        return _rows_as_read(self.table, [position])[0]


class IngestionJob:
    """Publishes a set of extract files of one dataset day to a spec's topic.

    :param producer_factory: transactional id → a new (not yet initialised) producer.
    :param checkpoints: the checkpoint store (None only for dry runs).
    :param encoder: the Avro encoder bound to the registered schema id (``encoding.py``).
    :param schema_guard: stamps checkpoints with that id and checks earlier ones (``schema_guard.py``).
    """

    def __init__(
        self,
        spec: TopicSpec,
        settings: JobSettings,
        *,
        encoder: TableEncoder,
        producer_factory: ProducerFactory | None,
        checkpoints: CheckpointStore | None,
        metrics: TopicMetrics,
        run: RunInfo,
        schema_guard: SchemaGuard | None = None,
    ) -> None:
        if not settings.dry_run and (producer_factory is None or checkpoints is None):
            raise ValueError("A job that publishes needs a producer factory and a checkpoint store.")
        self.spec = spec
        self.settings = settings
        self._encoder = encoder
        self._producer_factory = producer_factory
        self._checkpoints = checkpoints
        self._metrics = metrics
        self._run = run
        self._schema_guard = schema_guard
        self._validator = BatchValidator(spec)
        self._dlq = DlqEnvelopeBuilder(spec, run)
        self._duplicates: DuplicateIndex | SeenKeys = DuplicateIndex.empty()
        self._unrecorded: list[str] = []
        self._rows_read_total = 0
        self._dlq_total = 0

    def run(self, files: Sequence[str], day_files: Sequence[str] | None = None) -> list[FileSummary]:
        """Publish ``files`` in name order; ``day_files`` (default: ``files``) scope the duplicate rule."""
        ordered = sorted(files, key=_file_name)
        with tuned_for_ingestion():
            self._fence_earlier_attempts(ordered[1:])
            if self.spec.unique_key:
                self._duplicates = self._duplicate_rule(sorted(day_files or files, key=_file_name), ordered)
            summaries = []
            for path in ordered:
                summary = self._ingest_file(path)
                if not summary.reconciles():
                    raise ReconciliationError(
                        f"{path}: rows read {summary.rows_read} != published {summary.published} + DLQ "
                        f"{summary.dlq} + skipped {summary.skipped}."
                    )
                summaries.append(summary)
        return summaries

    def _fence_earlier_attempts(self, files: Sequence[str]) -> None:
        """Fence the earlier attempts of these files before any checkpoint is read.

        A crashed or frozen attempt may have left a transaction open on the checkpoint partition,
        and a read_committed read of any checkpoint there waits until the broker aborts it
        (``transaction.timeout.ms``, a minute by default). Each file's ``init_transactions()``
        aborts its own leftover at once; the first file's happens anyway before its checkpoint
        is read, the others' would come only after the earlier files' reads.
        """
        if self.settings.dry_run or self._producer_factory is None:
            return
        for path in files:
            name = _file_name(path)
            key = checkpoint_key(self.spec.topic, self.spec.dataset, self.settings.extract_date, name)
            publisher = self._new_publisher(key)
            publisher.init()
            publisher.close()

    # -- one file -------------------------------------------------------------------------

    def _ingest_file(self, path: str) -> FileSummary:
        name = _file_name(path)
        key = checkpoint_key(self.spec.topic, self.spec.dataset, self.settings.extract_date, name)
        # The producer is made first: it connects to the cluster while the file is checked and
        # hashed (see publisher.PRODUCER_DEFAULTS on sparse connections and init_transactions()).
        publisher = None if self.settings.dry_run else self._new_publisher(key)
        try:
            return self._publish_file(path, name, key, publisher)
        finally:
            if publisher is not None:
                publisher.close()

    def _new_publisher(self, key: str) -> TransactionalPublisher:
        assert self._producer_factory is not None
        transactional_id = transactional_id_for(key)
        return TransactionalPublisher(
            self._producer_factory(transactional_id),
            transactional_id=transactional_id,
            max_attempts=self.settings.max_attempts,
            timeout_s=self.settings.timeout_s,
        )

    def _publish_file(
        self, path: str, name: str, key: str, publisher: TransactionalPublisher | None
    ) -> FileSummary:
        """One file, resumed after its last checkpoint; ``publisher`` None: a dry run."""
        self._record_keys_before(name)
        state = file_state(path)
        if publisher is None:
            summary = FileSummary(file=path, fingerprint=fingerprint(path), checkpoint=key)
            self._stream(path, summary, resume_after=0, publisher=None, key=key, state=state)
            summary.status = "dry run"
            return summary
        assert self._checkpoints is not None
        # The file is hashed while the transactions start and the checkpoint is read: hashing
        # reads the whole file outside the GIL, the other two wait on the broker. Pinned here, so
        # the hash and the read share one filesystem (one simplecache copy; see PinnedFile).
        with ThreadPoolExecutor(1, thread_name_prefix="fingerprint") as hashing:
            hashed = hashing.submit(fingerprint, pinned(path))
            publisher.init()
            previous = self._checkpoints.load(key)
            summary = FileSummary(file=path, fingerprint=hashed.result(), checkpoint=key)
        if self._schema_guard is not None:  # before anything of the file is produced, reprocess or not
            self._schema_guard.check(previous)
        resume_after = self._resume_position(path, summary, previous)
        if previous is not None and previous.complete and resume_after is None:
            summary.status = "already published"
            summary.rows_read = summary.skipped = previous.rows_done
            log.info("%s was already published completely (%s); nothing to do.", path, key)
            self._record_keys([path])
            self._metrics.incr("rows_read", previous.rows_done)
            self._metrics.incr("rows_skipped", previous.rows_done)
            return summary
        start = resume_after or 0
        base = previous if start and previous is not None else None
        checkpoint = self._stream(
            path, summary, resume_after=start, publisher=publisher, key=key, state=state, base=base
        )
        checkpoint.complete = True
        publisher.publish(BatchToPublish([], [], lambda _batch: self._checkpoint_message(checkpoint)))
        if start:
            summary.status = f"resumed after row {start}"
        return summary

    def _resume_position(self, path: str, summary: FileSummary, previous: Checkpoint | None) -> int | None:
        """Where to start; None means "complete and unchanged". Raises when the file changed.

        Reprocessing starts from row 1 once per attempt of the run: an automatic retry of a task
        that is already reprocessing the file resumes from that reprocessing's checkpoint, as any
        retry does (else it would publish again what the failed try had committed). Clearing the
        run or task (a backfill of existing runs does) is a new attempt and starts over.
        """
        if previous is None:
            return 0
        if self.settings.reprocess and not self._continues(previous):
            log.warning("Reprocessing %s: republishing it from row 1 as asked.", path)
            return 0
        if previous.fingerprint != summary.fingerprint:
            raise ExtractChangedError(
                f"{path} changed since rows 1-{previous.rows_done} of it were published (fingerprint "
                f"{previous.fingerprint} then, {summary.fingerprint} now). Nothing of the new version "
                "was published. Restore the original file, or rerun with reprocess=True to publish the "
                "new version in full."
            )
        if previous.complete:
            return None
        log.info(
            "Resuming %s after row %d (checkpoint of try %d).", path, previous.rows_done, previous.try_number
        )
        return previous.rows_done

    def _continues(self, previous: Checkpoint) -> bool:
        """Whether ``previous`` was written by an earlier try of this attempt's reprocessing."""
        same_attempt = (previous.run_id, previous.clear_number) == (self._run.run_id, self._run.clear_number)
        return previous.reprocess and same_attempt

    def _stream(
        self,
        path: str,
        summary: FileSummary,
        *,
        resume_after: int,
        publisher: TransactionalPublisher | None,
        key: str,
        state: tuple[Any, ...],
        base: Checkpoint | None = None,
    ) -> Checkpoint:
        """Publish the file's batches after ``resume_after``; returns the last checkpoint written.

        Before each commit, and before the file counts as done, the file must still be as it was
        fingerprinted (``state``): a file truncated under the reader ends early without a read
        error, and its last, cut row would otherwise be committed and the file marked complete.
        """
        checkpoint = Checkpoint(
            key=key,
            fingerprint=summary.fingerprint,
            run_id=self._run.run_id,
            try_number=self._run.try_number,
            clear_number=self._run.clear_number,
            reprocess=self.settings.reprocess,
        )
        if self._schema_guard is not None:
            self._schema_guard.stamp(checkpoint)
        if base is not None:
            checkpoint.rows_done, checkpoint.published = base.rows_done, base.published
            checkpoint.dlq, checkpoint.batches = base.dlq, base.batches
        source = SourceInfo(self.spec.dataset, self.settings.extract_date, path)
        progress = _Progress(path)
        # closing(): a failed commit stops the stages' threads now, not when the traceback is freed.
        with closing(self._prepared(pinned(path), resume_after)) as batches:
            for batch, prepared in batches:
                summary.rows_read += batch.rows_read
                summary.skipped += prepared.skipped
                self._metrics.incr("rows_skipped", prepared.skipped)
                if not prepared.records and not prepared.rejected:
                    progress.update(summary.rows_read)
                    continue
                checkpoint.rows_done = batch.last_row
                _check_unchanged(path, state)
                self._commit(prepared, source, summary, checkpoint, publisher)
                progress.update(summary.rows_read)
        _check_unchanged(path, state)
        progress.done(summary)
        return checkpoint

    def _commit(
        self,
        prepared: _Prepared,
        source: SourceInfo,
        summary: FileSummary,
        checkpoint: Checkpoint,
        publisher: TransactionalPublisher | None,
    ) -> None:
        dlq = [self._dlq_message(r, source) for r in sorted(prepared.rejected, key=lambda r: r.row)]
        self._rows_read_total += len(prepared.records) + len(prepared.rejected)
        stages = _stages(prepared.rejected)
        if publisher is None:
            published, dlq_count = len(prepared.records), len(dlq)
            summary.bytes_published += _value_bytes(prepared.records)
        else:
            batch = BatchToPublish(
                prepared.records,
                dlq,
                lambda current: self._checkpoint_message(_advanced(checkpoint, current)),
                on_too_large=lambda message, why: self._too_large(
                    message, why, source, prepared.original(message.row)
                ),
            )
            result = publisher.publish(batch, before_commit=self._check_budget)
            published, dlq_count = result.published, result.dlq
            summary.bytes_published += _value_bytes(batch.records)  # without records moved to the DLQ
            checkpoint.published += published
            checkpoint.dlq += dlq_count
            checkpoint.batches += 1
            if result.moved_to_dlq:
                stages[str(Stage.PRODUCE)] = stages.get(str(Stage.PRODUCE), 0) + len(result.moved_to_dlq)
            self._metrics.timing("commit_latency", result.commit_seconds)
            self._metrics.incr("batches_committed")
            self._metrics.incr("batches_aborted", result.attempts - 1)
        self._dlq_total += dlq_count
        summary.published += published
        summary.dlq += dlq_count
        summary.batches += 1
        for stage, count in stages.items():
            summary.dlq_by_stage[stage] = summary.dlq_by_stage.get(stage, 0) + count
            self._metrics.incr(f"rows_dlq.{stage}", count)
        for row in prepared.rejected:
            for rule in row.rules:
                summary.dlq_by_rule[rule] = summary.dlq_by_rule.get(rule, 0) + 1
        self._metrics.incr("rows_published", published)
        self._metrics.incr("rows_dlq", dlq_count)

    def _check_budget(self, batch: BatchToPublish) -> None:
        """Called with the batch produced but not committed: over budget, it is aborted."""
        dlq_total = self._dlq_total + len(batch.dlq)
        ratio = dlq_total / max(1, self._rows_read_total)
        limit_rows, limit_ratio = self.settings.max_dlq_rows, self.settings.max_dlq_ratio
        if (limit_rows is not None and dlq_total > limit_rows) or (
            limit_ratio is not None and ratio > limit_ratio
        ):
            raise BudgetExceeded(
                f"Error budget exceeded for {self.spec.topic}: {dlq_total} of {self._rows_read_total} "
                f"rows read so far ({ratio:.1%}) would go to {self.spec.dlq_topic} (max_dlq_rows="
                f"{limit_rows}, max_dlq_ratio={limit_ratio}). The open transaction was aborted; fix the "
                "extract or raise the budget."
            )

    # -- one batch ------------------------------------------------------------------------

    def _prepared(
        self, path: ExtractPath, resume_after: int
    ) -> Generator[tuple[ReadBatch, _Prepared], None, None]:
        """Each read batch with its records and rejects, ready to publish, prepared ahead on threads.

        Two stages run beside the one that publishes: the *parse* stage reads the batch, applies
        the duplicate rule and computes the spec's typed columns and rule flags (Arrow and numpy:
        mostly outside the GIL); the *judge* stage runs GX on :data:`JUDGED_TOGETHER` parsed
        batches at a time (one GX run: its cost is almost all fixed) and encodes the records
        (mostly Python). While this batch is produced and its transaction commits, the next ones
        are judged and parsed. Every stage handles batches in file order (the one-pass duplicate
        rule needs that) and hands them on in that order; the hand-overs are bounded, so memory
        stays bounded by a few batches whatever the file's size. An error surfaces where it would
        without the threads: after the batches before it were published.
        """
        parsed = prefetch(self._parsed(path, resume_after), JUDGED_TOGETHER, name="parse-ahead")
        try:
            judged = prefetch(self._judged(parsed), 1, name="judge-ahead")
            try:
                yield from judged
            finally:
                judged.close()
        finally:
            parsed.close()

    def _parsed(self, path: ExtractPath, resume_after: int) -> Iterator[tuple[ReadBatch, _Parsed]]:
        for batch in self._read(path):  # the file is opened on the parse-ahead thread
            yield batch, self._parse(batch, resume_after)

    def _read(self, path: ExtractPath) -> Iterable[ReadBatch]:
        return read_extract(
            path,
            columns=self.spec.columns,
            optional_columns=self.spec.optional_columns,
            json_columns=self.spec.reader.json_columns,
            batch_rows=self.settings.batch_size,
            options=self.spec.reader,
        )

    def _parse(self, batch: ReadBatch, resume_after: int) -> _Parsed:
        """The duplicate rule, the resume filter and the spec's ``prepare`` (typed columns, rule flags)."""
        table, rows, rejected, skipped = batch.table, batch.row_numbers, list(batch.rejected), 0
        self._metrics.incr("rows_read", batch.rows_read)
        # Judged before the resume filter: the one-pass rule must see the keys of skipped rows too.
        first = None
        if self.spec.unique_key:
            keys = table.column(self.spec.key_field)
            first = self._duplicates.is_first_occurrence(_file_name(batch.file), rows, keys)
        if resume_after and batch.last_row <= resume_after:
            return _Parsed(batch.file, None, rows[:0], [], batch.rows_read)
        if resume_after:
            keep = rows > resume_after
            skipped = int((~keep).sum()) + sum(r.row <= resume_after for r in rejected)
            table, rows = table.filter(pa.array(keep)), rows[keep]
            first = first[keep] if first is not None else None
            rejected = [r for r in rejected if r.row > resume_after]
        if table.num_rows == 0:
            return _Parsed(batch.file, None, rows, rejected, skipped)
        started = time.monotonic()
        frame = table.to_pandas()
        if first is not None:
            frame["_first_occurrence"] = first
        parsed = _Parsed(batch.file, table, rows, rejected, skipped, self.spec.prepare(frame))
        parsed.seconds = time.monotonic() - started
        return parsed

    def _judged(self, parsed: Iterator[tuple[ReadBatch, _Parsed]]) -> Iterator[tuple[ReadBatch, _Prepared]]:
        """The judge stage: GX once per group of parsed batches, then each batch's records."""
        for group in _in_groups(parsed, JUDGED_TOGETHER):
            started = time.monotonic()
            frames = [p.frame for _, p in group if p.frame is not None]
            try:
                outcomes: Iterator[ValidationOutcome] | None = iter(self._validate_together(frames))
            except Exception:
                if len(frames) < 2:
                    raise
                outcomes = None  # judged one by one below: the batches before the failing one go first
            seconds = (time.monotonic() - started) / max(1, len(frames))
            for batch, p in group:
                outcome = None
                if p.frame is not None:
                    outcome = next(outcomes) if outcomes is not None else self._validate(p.frame)
                yield batch, self._judge(p, outcome, seconds)

    def _judge(self, parsed: _Parsed, outcome: ValidationOutcome | None, seconds: float) -> _Prepared:
        """The batch's rejects from GX's verdict (``outcome``), then its valid rows encoded as records."""
        table, rows, rejected = parsed.table, parsed.rows, parsed.rejected
        if table is None or parsed.frame is None or outcome is None:
            return _Prepared([], rejected, parsed.skipped)
        self._metrics.timing("validate_latency", parsed.seconds + seconds)
        failed = sorted(outcome.failed_rules.items())
        originals = _rows_as_read(table, [position for position, _ in failed])
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
        records = self._encode(
            parsed.file, table, rows, parsed.frame, outcome.valid, valid_positions, rejected
        )
        return _Prepared(records, rejected, parsed.skipped, table, rows)

    def _validate_together(self, frames: list[Any]) -> list[ValidationOutcome]:
        """GX on the rows that can fail of several batches, in one run (``validate_together``)."""
        return self._validator.validate_together(frames)

    def _validate(self, prepared: Any) -> ValidationOutcome:
        """GX on the rows that can fail (see :meth:`BatchValidator.validate_rows_that_can_fail`)."""
        return self._validator.validate_rows_that_can_fail(prepared)

    def _encode(
        self,
        path: str,
        table: pa.Table,
        rows: np.ndarray,
        prepared: Any,
        valid: np.ndarray,
        positions: np.ndarray,
        rejected: list[RejectedRow],
    ) -> RecordColumns:
        started = time.monotonic()
        values, errors = self._encoder.encode_table(self.spec.to_table(prepared[valid]))
        self._metrics.timing("serialize_latency", time.monotonic() - started)
        failed = [int(positions[index]) for index, _, _ in errors]
        for position, (_, error_type, message), original in zip(
            failed, errors, _rows_as_read(table, failed), strict=True
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
        # Keys and the per-row header values are built column-wise, as bytes, by Arrow (a Python
        # f-string, encode() and numpy scalar per row cost more than encoding the record), and
        # stay columns up to produce() (RecordColumns: no message object per record).
        take = pa.array(positions)
        numbers = pa.array(rows[positions])
        row_text = pc.cast(numbers, pa.string())
        correlation = _correlation_prefix(self.spec.topic, self.settings.extract_date, _file_name(path))
        return RecordColumns(
            self.spec.topic,
            records,
            pc.cast(table.column(self.spec.key_field).take(take), pa.binary()).to_pylist(),
            numbers.to_pylist(),
            self._common_headers(path),
            {
                "source.row": pc.cast(row_text, pa.binary()).to_pylist(),
                "correlation_id": pc.cast(
                    pc.binary_join_element_wise(f"{correlation}-", row_text, ""), pa.binary()
                ).to_pylist(),
            },
        )

    # -- helpers --------------------------------------------------------------------------

    def _common_headers(self, path: str) -> Headers:
        return [
            ("event_type", self.spec.event_type.encode()),
            ("source.file", path.encode()),
            ("dag_id", self._run.dag_id.encode()),
            ("run_id", self._run.run_id.encode()),
            ("task_id", self._run.task_id.encode()),
        ]

    def _dlq_message(self, rejected: RejectedRow, source: SourceInfo) -> OutgoingMessage:
        return OutgoingMessage(
            self.spec.dlq_topic,
            self._dlq.build(rejected, source),
            dlq_key(rejected, self.spec),
            dlq_headers(rejected, source),
            row=rejected.row,
        )

    def _too_large(
        self, message: OutgoingMessage, why: str, source: SourceInfo, original: dict[str, Any] | None
    ) -> OutgoingMessage:
        """The DLQ record of a record refused for its size: the row as read, like any reject's."""
        rejected = RejectedRow(
            row=message.row,
            stage=Stage.PRODUCE,
            error_type="RecordTooLarge",
            message=f"{why}: the encoded record is {len(message.value)} bytes",
            original=original or {self.spec.key_field: (message.key or b"").decode()},
        )
        return self._dlq_message(rejected, source)

    def _checkpoint_message(self, checkpoint: Checkpoint) -> OutgoingMessage:
        assert self._checkpoints is not None
        return OutgoingMessage(
            self._checkpoints.topic,
            checkpoint.to_json(),
            checkpoint.key.encode(),
            partition=self._checkpoints.partition(checkpoint.key),
        )

    def _duplicate_rule(self, day_files: Sequence[str], files: Sequence[str]) -> DuplicateIndex | SeenKeys:
        """How this job decides the day's duplicate rule.

        When every file it publishes is in the day's scope, it decides in one pass
        (:class:`SeenKeys`): the files it publishes are judged as they stream, and the scope's
        other files up to its last one are key-scanned when their turn comes. Otherwise (files
        outside the day's listing) it pre-scans the scope into a :class:`DuplicateIndex`.
        """
        last = _file_name(files[-1]) if files else ""
        scope = [f for f in day_files if _file_name(f) <= last]
        publishing = {_file_name(f) for f in files}
        if not publishing <= {_file_name(f) for f in scope}:
            return DuplicateIndex.build(self._key_chunks(scope))
        self._unrecorded = [f for f in scope if _file_name(f) not in publishing]
        return SeenKeys()

    def _record_keys_before(self, name: str) -> None:
        """Feed the one-pass rule the scope's unpublished files that come before ``name``."""
        while self._unrecorded and _file_name(self._unrecorded[0]) < name:
            self._record_keys([self._unrecorded.pop(0)])

    def _record_keys(self, paths: Sequence[str]) -> None:
        if isinstance(self._duplicates, SeenKeys):
            for file, rows, keys in self._key_chunks(paths):
                self._duplicates.record(file, rows, keys)

    def _key_chunks(self, paths: Sequence[str]) -> Iterator[tuple[str, np.ndarray, pa.Array]]:
        """The key column of ``paths``, read as a full read numbers and rejects the rows."""
        for path in paths:
            for batch in read_extract(
                path,
                columns=(self.spec.key_field,),
                batch_rows=max(self.settings.batch_size, 100_000),
                options=self.spec.reader,
            ):
                yield _file_name(path), batch.row_numbers, batch.table.column(0).combine_chunks()


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


def _advanced(checkpoint: Checkpoint, batch: BatchToPublish) -> Checkpoint:
    """The checkpoint as it will be once ``batch`` commits."""
    return replace(
        checkpoint,
        published=checkpoint.published + len(batch.records),
        dlq=checkpoint.dlq + len(batch.dlq),
        batches=checkpoint.batches + 1,
        updated_at=time.time(),
    )


def transactional_id_for(checkpoint_key: str) -> str:
    """One transactional id per unit of work (topic, dataset, date, file), the same on every try.

    Fencing and checkpoints must cover the same unit: whichever run, DAG or map index publishes a
    file, a second attempt at the same file fences the first.
    """
    return f"kafka-ingest/{checkpoint_key}"


def summarize(files: Sequence[FileSummary], *, topic: str, schema_id: int, dry_run: bool) -> dict[str, Any]:
    """The small JSON-able summary the operator returns to XCom."""
    totals = {
        name: sum(getattr(f, name) for f in files)
        for name in ("rows_read", "published", "dlq", "skipped", "batches")
    }
    return {
        "topic": topic,
        "schema_id": schema_id,
        "dry_run": dry_run,
        "files": len(files),
        **totals,
        "per_file": [asdict(f) for f in files],
    }


def _rows_as_read(table: pa.Table, positions: Sequence[int]) -> list[dict[str, Any]]:
    """The rows at ``positions`` as read, for DLQ records: one ``take`` for all of them."""
    return cast(list[dict[str, Any]], table.take(pa.array(positions, pa.int64())).to_pylist())


def _check_unchanged(path: str, state: tuple[Any, ...]) -> None:
    now = file_state(path)
    if now != state:
        raise ExtractReadError(
            str(path),
            f"changed while it was being read (size and stamps {state} then, {now} now); nothing read "
            "after the change was committed. A retry resumes after the last committed batch once the "
            "file is back as it was, and fails as changed if it is not.",
        )


def _file_name(path: str) -> str:
    return PurePosixPath(str(path).rstrip("/")).name


def _correlation_prefix(topic: str, date: str, file_name: str) -> str:
    return hashlib.sha1(f"{topic}|{date}|{file_name}".encode(), usedforsecurity=False).hexdigest()[:16]


def _value_bytes(records: Sequence[OutgoingMessage]) -> int:
    """The records' encoded value bytes (one C-level pass over a column)."""
    if isinstance(records, RecordColumns):
        return sum(map(len, records.values))
    return sum(len(r.value) for r in records)


def _stages(rejected: Iterable[RejectedRow]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rejected:
        counts[str(row.stage)] = counts.get(str(row.stage), 0) + 1
    return counts


class _Progress:
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
