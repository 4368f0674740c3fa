"""One ingestion run: extract files -> validation -> Avro -> transactional batches, reconciled.

:class:`IngestionJob` owns the order of operations for each file, which is what makes a run
exactly-once:

1. make the file's producer and ``init_transactions()`` (fences older attempts) while the file is
   fingerprinted;
2. read the file's checkpoint (only now: nothing can change it any more) and decide
   (:func:`~kafka_ingest.pipeline.resume.decide_resume`): skip, resume after a row, or fail on a
   changed file;
3. per batch (``pipeline/stages.py``): parse, judge, encode, then commit records + DLQ records +
   checkpoint in one transaction, within the error budget;
4. mark the file complete; reconcile rows read = published + DLQ + skipped.

Nothing here imports Airflow: the operator wires in connections and run ids, the benchmark uses
the job directly. A dry run (``validate_only``) is the same flow through a publisher and a
checkpoint store that do nothing (``publish/null.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import replace
from typing import Any

from kafka_ingest.batches import RunInfo, SourceInfo
from kafka_ingest.encode.table import TableEncoder
from kafka_ingest.pipeline.budget import ErrorBudget
from kafka_ingest.pipeline.duplicates import DuplicateScope
from kafka_ingest.pipeline.publishers import FilePublishers
from kafka_ingest.pipeline.resume import Resume, Skip, decide_resume
from kafka_ingest.pipeline.schema_guard import SchemaGuard
from kafka_ingest.pipeline.settings import JobSettings, ProducerFactory
from kafka_ingest.pipeline.stages import BatchStages, Judged
from kafka_ingest.pipeline.summary import FileSummary, Progress, count_batch, count_stages
from kafka_ingest.publish.checkpoints import Checkpoint, CheckpointStore, checkpoint_key
from kafka_ingest.publish.messages import MessageBuilder
from kafka_ingest.publish.null import NO_CHECKPOINTS, CheckpointReader, Publisher
from kafka_ingest.publish.records import BatchToPublish
from kafka_ingest.read import check_unchanged, file_name, file_state, fingerprint, pinned
from kafka_ingest.runtime.allocation import tuned_for_ingestion
from kafka_ingest.runtime.metrics import TopicMetrics
from kafka_ingest.specs import TopicSpec

log = logging.getLogger(__name__)


class IngestionJob:
    """Publishes a set of extract files of one dataset day to a spec's topic.

    :param encoder: the Avro encoder bound to the registered schema id (``encode/table.py``).
    :param producer_factory: transactional id -> a new (not yet initialised) producer.
    :param checkpoints: the checkpoint store. Both are None for a dry run (``validate_only``).
    :param schema_guard: stamps checkpoints with the schema id and checks earlier ones
        (``pipeline/schema_guard.py``).
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
        self.spec, self.settings, self._metrics, self._run = spec, settings, metrics, run
        self._schema_guard = schema_guard
        self._publishers = FilePublishers(producer_factory, settings)
        self._checkpoints: CheckpointReader = NO_CHECKPOINTS
        if not settings.validate_only:
            if checkpoints is None:
                raise ValueError("A job that publishes needs a checkpoint store.")
            self._checkpoints = checkpoints
        self.stages = BatchStages(
            spec,
            settings,
            encoder=encoder,
            duplicates=DuplicateScope(spec, settings.batch_size),
            metrics=metrics,
        )
        self._budget = ErrorBudget(settings, topic=spec.topic, dlq_topic=spec.dlq_topic)

    def run(self, files: Sequence[str], day_files: Sequence[str] | None = None) -> list[FileSummary]:
        """Publish ``files`` in name order; ``day_files`` (default: ``files``) scope the duplicate rule."""
        ordered = sorted(files, key=file_name)
        with tuned_for_ingestion():
            self._publishers.fence([self._key(path) for path in ordered[1:]])
            self.stages.duplicates.cover(sorted(day_files or files, key=file_name), ordered)
            return [self._ingest_file(path).reconciled() for path in ordered]

    def _key(self, path: str) -> str:
        return checkpoint_key(self.spec.topic, self.spec.dataset, self.settings.extract_date, file_name(path))

    def _ingest_file(self, path: str) -> FileSummary:
        key = self._key(path)
        # The producer is made first: it connects to the cluster while the file is checked and
        # hashed (see publish/config.py on sparse connections and init_transactions()).
        publisher = self._publishers.for_key(key)
        try:
            return self._publish_file(path, key, publisher)
        finally:
            publisher.close()

    def _publish_file(self, path: str, key: str, publisher: Publisher) -> FileSummary:
        """One file, resumed after its last checkpoint, or skipped when published and unchanged."""
        self.stages.duplicates.record_before(file_name(path))
        state = file_state(path)
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
        decision = decide_resume(previous, summary.fingerprint, self.settings, self._run, file=path)
        if isinstance(decision, Skip):
            return self._skip(path, summary, decision.previous)
        _log_decision(path, decision)
        checkpoint = self._stream(path, summary, decision, publisher, state)
        done = replace(checkpoint, complete=True)
        publisher.publish(BatchToPublish([], [], lambda _batch: self._checkpoints.message(done)))
        summary.status = _status(decision)
        return summary

    def _skip(self, path: str, summary: FileSummary, previous: Checkpoint) -> FileSummary:
        log.info("%s was already published completely (%s); nothing to do.", path, previous.key)
        summary.status = "already published"
        summary.rows_read = summary.skipped = previous.rows_done
        self.stages.duplicates.record([path])
        self._metrics.incr("rows_read", previous.rows_done)
        self._metrics.incr("rows_skipped", previous.rows_done)
        return summary

    def _stream(
        self, path: str, summary: FileSummary, decision: Resume, publisher: Publisher, state: tuple[Any, ...]
    ) -> Checkpoint:
        """Publish the file's batches after ``decision.after``; returns the last checkpoint committed.

        Before each commit, and before the file counts as done, the file must still be as it was
        fingerprinted (``state``): a file truncated under the reader ends early without a read
        error, and its last, cut row would otherwise be committed and the file marked complete.
        """
        checkpoint = Checkpoint.start(
            summary.checkpoint,
            summary.fingerprint,
            self._run,
            reprocess=self.settings.reprocess,
            base=decision.base,
        )
        if self._schema_guard is not None:
            self._schema_guard.stamp(checkpoint)
        source = SourceInfo(self.spec.dataset, self.settings.extract_date, path)
        messages = MessageBuilder(self.spec, self._run, source, file_name(path))
        progress = Progress(path)
        # closing(): a failed commit stops the stages' threads now, not when the traceback is freed.
        with closing(self.stages.batches(pinned(path), decision.after, messages)) as batches:
            for batch, judged in batches:
                summary.rows_read += batch.rows_read
                summary.skipped += judged.skipped
                self._metrics.incr("rows_skipped", judged.skipped)
                if judged.records or judged.rejected:
                    check_unchanged(path, state)
                    checkpoint = self._commit(
                        judged, messages, summary, checkpoint, batch.last_row, publisher
                    )
                progress.update(summary.rows_read)
        check_unchanged(path, state)
        progress.done(summary)
        return checkpoint

    def _commit(
        self,
        judged: Judged,
        messages: MessageBuilder,
        summary: FileSummary,
        checkpoint: Checkpoint,
        rows_done: int,
        publisher: Publisher,
    ) -> Checkpoint:
        """One batch's transaction; returns the checkpoint it committed."""
        dlq = [messages.dlq(r) for r in sorted(judged.rejected, key=lambda r: r.row)]
        self._budget.read(len(judged.records) + len(judged.rejected))
        committed = [checkpoint]

        def next_checkpoint(current: BatchToPublish) -> Any:
            committed.append(checkpoint.after(rows_done, len(current.records), len(current.dlq)))
            return self._checkpoints.message(committed[-1])

        batch = BatchToPublish(
            judged.records,
            dlq,
            next_checkpoint,
            on_too_large=lambda message, why: messages.too_large(message, why, judged.original(message.row)),
        )
        result = publisher.publish(batch, before_commit=self._budget.check)
        self._budget.spent(result.dlq)
        count_batch(summary, self._metrics, result, count_stages(judged.rejected), batch, judged.rejected)
        return committed[-1]


def _log_decision(path: str, decision: Resume) -> None:
    if decision.why == "reprocess":
        log.warning("Reprocessing %s: republishing it from row 1 as asked.", path)
    elif decision.base is not None:
        log.info(
            "Resuming %s after row %d (checkpoint of try %d).", path, decision.after, decision.base.try_number
        )


def _status(decision: Resume) -> str:
    if decision.why == "validate only":
        return "validated only"
    return f"resumed after row {decision.after}" if decision.after else "published"
