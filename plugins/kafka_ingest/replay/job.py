"""The replay's transaction loop: plan once, then commit records, envelopes and checkpoint together.

Order of operations, which is what makes a replay exactly-once:

1. read the corrections file, if any (a bad file stops here: nothing is published);
2. create the replay's producer and ``init_transactions()``: a zombie of the same replay is fenced
   and its open transaction aborted; only then read the replay's checkpoint;
3. a completed checkpoint: nothing to do. Otherwise plan against the end offsets recorded in the
   checkpoint (or now, on a first try): read the DLQ, select, build the rows, judge them;
4. per batch of the plan, after the last committed one: one transaction with the replayed records,
   the envelopes of rows that failed again and the advanced checkpoint;
5. one last transaction: the completed checkpoint and the audit record.

A dry run does 1 and 3 only (no producer, no checkpoint) and reports each envelope's fate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from confluent_kafka import Producer

from kafka_ingest.batches import Headers, RejectedRow
from kafka_ingest.checkpoints import CheckpointStore
from kafka_ingest.dlq import DlqEnvelopeBuilder, RunInfo, SourceInfo, dlq_headers, dlq_key
from kafka_ingest.encoding import TableEncoder
from kafka_ingest.metrics import TopicMetrics
from kafka_ingest.pipeline import _correlation_prefix
from kafka_ingest.publisher import BatchToPublish, OutgoingMessage, TransactionalPublisher
from kafka_ingest.replay.audit import DEFAULT_REPLAYS_TOPIC, audit_message
from kafka_ingest.replay.candidates import CORRECTIONS, ORIGINAL, SOURCES, Candidate, candidates
from kafka_ingest.replay.checkpoint import (
    ReplayCheckpoint,
    load_replay_checkpoint,
    replay_transactional_id,
)
from kafka_ingest.replay.corrections import Corrections, check_keys_selected, load_corrections
from kafka_ingest.replay.envelopes import REPLAY_OF_HEADER, Envelope, Unusable, parse
from kafka_ingest.replay.errors import ReplayInputError
from kafka_ingest.replay.judge import PUBLISHED, STILL_FAILING, Verdict, judge
from kafka_ingest.replay.kafka_io import TopicReader
from kafka_ingest.replay.published import lower_bound_ms, published_keys
from kafka_ingest.replay.report import ReplayReport
from kafka_ingest.replay.selection import Selection, select
from kafka_ingest.specs import Stage, TopicSpec
from kafka_ingest.validation import BatchValidator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplaySettings:
    """One replay's knobs. ``replay_id`` names the replay: a retry with the same id resumes it."""

    replay_id: str
    selection: Selection
    source: str = ORIGINAL
    corrections_file: str | None = None
    dry_run: bool = False
    who: str = ""
    batch_size: int = 1_000
    max_attempts: int = 3
    timeout_s: float = 60.0
    read_timeout_s: float = 90.0

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ReplayInputError(f"Replay source must be one of {', '.join(SOURCES)}, not {self.source!r}.")
        if (self.source == CORRECTIONS) != bool(self.corrections_file):
            raise ReplayInputError(
                "A corrections file is needed with source 'corrections', and only then "
                f"(source {self.source!r}, file {self.corrections_file!r})."
            )
        if not self.replay_id.strip():
            raise ReplayInputError("A replay needs a replay id.")


@dataclass
class _Item:
    """One selected envelope, its row and its verdict: one step of the plan."""

    candidate: Candidate
    verdict: Verdict

    @property
    def envelope(self) -> Envelope:
        return self.candidate.envelope


@dataclass
class _Plan:
    items: list[_Item]
    unusable: list[Unusable]


class ReplayJob:
    """Replays a topic's DLQ envelopes; see the module docstring for the order of operations."""

    def __init__(
        self,
        spec: TopicSpec,
        settings: ReplaySettings,
        *,
        kafka_config: Mapping[str, Any],
        encoder: TableEncoder,
        metrics: TopicMetrics,
        run: RunInfo,
        producer_factory: Callable[[str], Producer] | None,
        checkpoint_topic: str,
        replays_topic: str = DEFAULT_REPLAYS_TOPIC,
        corrections: Corrections | None = None,
    ) -> None:
        """``corrections``: the corrections file already read (else :meth:`run` reads it first)."""
        if not settings.dry_run and producer_factory is None:
            raise ValueError("A replay that publishes needs a producer factory.")
        self.spec = spec
        self.settings = settings
        self._kafka_config = dict(kafka_config)
        self._encoder = encoder
        self._metrics = metrics
        self._run = run
        self._producer_factory = producer_factory
        self._checkpoint_topic = checkpoint_topic
        self._replays_topic = replays_topic
        self._loaded = corrections
        self._reader = TopicReader(kafka_config, timeout_s=settings.read_timeout_s)
        self._dlq = DlqEnvelopeBuilder(spec, run)
        # An original's masked columns are masked already: masking them again would lose the last
        # four digits a later replay needs.
        self._dlq_as_held = DlqEnvelopeBuilder(replace(spec, masked_columns={}), run)

    def run(self) -> ReplayReport:
        corrections = self._corrections()
        report = self._new_report(corrections)
        if self.settings.dry_run:
            plan = self._plan(self._fresh_checkpoint(corrections), corrections)
            self._report_plan(report, plan)
            report.status = "dry run"
            report.finished_at = _now()
            return report
        return self._publish(report, corrections)

    # -- publishing -------------------------------------------------------------------------

    def _publish(self, report: ReplayReport, corrections: Corrections | None) -> ReplayReport:
        checkpoints = self._store(self._checkpoint_topic)
        audits = self._store(self._replays_topic)
        tid = replay_transactional_id(self.spec.topic, self.settings.replay_id)
        assert self._producer_factory is not None
        publisher = TransactionalPublisher(
            self._producer_factory(tid),
            transactional_id=tid,
            max_attempts=self.settings.max_attempts,
            timeout_s=self.settings.timeout_s,
        )
        try:
            publisher.init()
            previous = load_replay_checkpoint(checkpoints, self.spec.topic, self.settings.replay_id)
            if previous is not None and previous.complete:
                log.info("Replay %s is already complete: nothing to do.", self.settings.replay_id)
                report.status, report.counts = "already complete", dict(previous.counts)
                report.started_at, report.finished_at = previous.started_at, _now()
                return report
            checkpoint = previous or self._fresh_checkpoint(corrections)
            self._check_same_input(checkpoint, corrections)
            report.started_at = checkpoint.started_at
            plan = self._plan(checkpoint, corrections)
            self._report_plan(report, plan)
            if checkpoint.done:
                log.info(
                    "Resuming replay %s after %d committed envelope(s).",
                    self.settings.replay_id,
                    checkpoint.done,
                )
            self._commit_batches(publisher, checkpoints, checkpoint, plan.items)
            report.finished_at = _now()
            checkpoint.complete, checkpoint.counts = True, dict(report.counts)
            audit = audit_message(audits, report.audit_record(**self._run_ids()))
            publisher.publish(BatchToPublish([audit], [], lambda _batch: checkpoint.message(checkpoints)))
            return report
        finally:
            publisher.close()

    def _commit_batches(
        self,
        publisher: TransactionalPublisher,
        store: CheckpointStore,
        checkpoint: ReplayCheckpoint,
        items: Sequence[_Item],
    ) -> None:
        size = max(1, self.settings.batch_size)
        for start in range(checkpoint.done, len(items), size):
            chunk = items[start : start + size]
            records = [self._record(item) for item in chunk if item.verdict.outcome == PUBLISHED]
            dlq = [m for item in chunk if (m := self._dlq_again(item)) is not None]
            done = start + len(chunk)

            def advanced(_batch: BatchToPublish, done: int = done) -> OutgoingMessage:
                return replace(checkpoint, done=done).message(store)

            publisher.publish(BatchToPublish(records, dlq, advanced))
            checkpoint.done = done
            self._metrics.incr("rows_replayed", len(records))
            self._metrics.incr("rows_replay_failed", sum(i.verdict.outcome == STILL_FAILING for i in chunk))

    def _record(self, item: _Item) -> OutgoingMessage:
        envelope, row = item.envelope, item.candidate.row or {}
        name = PurePosixPath(envelope.file).name
        correlation = f"{_correlation_prefix(self.spec.topic, envelope.date, name)}-{envelope.row}"
        headers: Headers = [
            ("event_type", self.spec.event_type.encode()),
            ("source.file", envelope.file.encode()),
            ("dag_id", self._run.dag_id.encode()),
            ("run_id", self._run.run_id.encode()),
            ("task_id", self._run.task_id.encode()),
            ("source.row", str(envelope.row).encode()),
            ("correlation_id", correlation.encode()),
            (REPLAY_OF_HEADER, str(envelope.ref).encode()),
        ]
        assert item.verdict.value is not None
        return OutgoingMessage(
            self.spec.topic, item.verdict.value, str(row[self.spec.key_field]).encode(), headers
        )

    def _dlq_again(self, item: _Item) -> OutgoingMessage | None:
        """The envelope of a row that failed again; None when it fails exactly as the replayed
        envelope (itself a replay's) says: writing it again would only add noise, and replaying
        the same selection twice must add nothing."""
        verdict, envelope, candidate = item.verdict, item.envelope, item.candidate
        if verdict.outcome != STILL_FAILING or _fails_as_before(item):
            return None
        rejected = RejectedRow(
            row=envelope.row,
            stage=Stage(verdict.stage),
            error_type=verdict.error_type,
            message=verdict.reason,
            rules=verdict.rules,
            original=candidate.row,
        )
        source = SourceInfo(envelope.dataset or self.spec.dataset, envelope.date, envelope.file)
        replay = {
            "id": self.settings.replay_id,
            "count": envelope.replay_count + 1,
            "of": envelope.ref.as_dict(),
        }
        builder = self._dlq_as_held if candidate.from_original else self._dlq
        headers = [*dlq_headers(rejected, source), (REPLAY_OF_HEADER, str(envelope.ref).encode())]
        return OutgoingMessage(
            self.spec.dlq_topic,
            builder.build(rejected, source, replay=replay),
            dlq_key(rejected, self.spec),
            headers,
            row=envelope.row,
        )

    # -- planning ---------------------------------------------------------------------------

    def _plan(self, checkpoint: ReplayCheckpoint, corrections: Corrections | None) -> _Plan:
        envelopes: list[Envelope] = []
        unusable: list[Unusable] = []
        dlq_starts = dict.fromkeys(checkpoint.dlq_ends, 0)
        for message in self._reader.read(self.spec.dlq_topic, dlq_starts, checkpoint.dlq_ends):
            parsed = parse(message, self.spec.topic, self.spec.key_field)
            (envelopes if isinstance(parsed, Envelope) else unusable).append(parsed)  # type: ignore[arg-type]
        selected = select(envelopes, self.settings.selection, self.settings.replay_id)
        if corrections is not None:
            check_keys_selected(corrections, [e.key for e in selected])
        rows = candidates(self.spec, selected, corrections)
        published = self._published(rows, envelopes, checkpoint)
        verdicts = judge(
            self.spec, rows, validator=BatchValidator(self.spec), encoder=self._encoder, published=published
        )
        items = [_Item(c, v) for c, v in zip(rows, verdicts, strict=True)]
        for item in items:
            if item.verdict.outcome == STILL_FAILING and _fails_as_before(item):
                item.verdict.reason += f" (as when replay {item.envelope.replay_id} tried; not written again)"
        return _Plan(items, unusable)

    def _published(
        self, rows: Sequence[Candidate], envelopes: Sequence[Envelope], checkpoint: ReplayCheckpoint
    ) -> set[tuple[str, str]]:
        wanted = {
            (c.envelope.date, str(c.row[self.spec.key_field]))
            for c in rows
            if c.row is not None and c.needs_correction is None and c.row.get(self.spec.key_field)
        }
        dates = {date for date, _ in wanted}
        day_files: dict[str, set[str]] = {}
        for envelope in envelopes:
            if envelope.date in dates:
                day_files.setdefault(envelope.date, set()).add(envelope.file)
        oldest = min((e.written_ms for e in envelopes if e.date in dates and e.written_ms > 0), default=None)
        return published_keys(
            self._reader,
            self.spec.topic,
            wanted=wanted,
            day_files=day_files,
            since_ms=lower_bound_ms(dates, oldest),
            ends=checkpoint.topic_ends,
            kafka_config=self._kafka_config,
        )

    def _report_plan(self, report: ReplayReport, plan: _Plan) -> None:
        for item in plan.items:
            envelope = item.envelope
            report.add(
                item.verdict.outcome,
                selected=True,
                dlq=str(envelope.ref),
                key=envelope.key,
                date=envelope.date,
                file=envelope.file,
                row=envelope.row,
                reason=item.verdict.reason,
            )
        for skipped in plan.unusable:
            report.add(skipped.outcome, selected=False, dlq=str(skipped.ref), reason=skipped.reason)
        for line in report.envelopes:
            log.info(
                "%s %s row %s key %s: %s %s",
                line["dlq"],
                line.get("file", ""),
                line.get("row", ""),
                line.get("key", ""),
                line["outcome"],
                line.get("reason", ""),
            )

    # -- helpers ----------------------------------------------------------------------------

    def _corrections(self) -> Corrections | None:
        if self.settings.source != CORRECTIONS or not self.settings.corrections_file:
            return None
        if self._loaded is not None:
            return self._loaded
        return load_corrections(self.settings.corrections_file, self.spec)

    def _fresh_checkpoint(self, corrections: Corrections | None) -> ReplayCheckpoint:
        return ReplayCheckpoint(
            replay_id=self.settings.replay_id,
            topic=self.spec.topic,
            dlq_ends=self._reader.end_offsets(self.spec.dlq_topic),
            topic_ends=self._reader.end_offsets(self.spec.topic),
            started_at=_now(),
            corrections_fingerprint=corrections.fingerprint if corrections else "",
        )

    def _check_same_input(self, checkpoint: ReplayCheckpoint, corrections: Corrections | None) -> None:
        now = corrections.fingerprint if corrections else ""
        if checkpoint.done and checkpoint.corrections_fingerprint != now:
            raise ReplayInputError(
                f"Replay {self.settings.replay_id} committed part of its plan with another corrections "
                "file (or none); resuming with this one would mix two plans. Restore the file, or start "
                "a new replay (another replay id): what was published is then skipped as already published."
            )

    def _store(self, topic: str) -> CheckpointStore:
        store = CheckpointStore(
            topic, client_config=self._kafka_config, read_timeout_s=self.settings.read_timeout_s
        )
        store.ensure_topic(timeout_s=self.settings.timeout_s)
        return store

    def _new_report(self, corrections: Corrections | None) -> ReplayReport:
        source: dict[str, Any] = {"kind": self.settings.source}
        if corrections is not None:
            source.update(file=corrections.path, sha256=corrections.fingerprint, rows=len(corrections.rows))
        return ReplayReport(
            replay_id=self.settings.replay_id,
            topic=self.spec.topic,
            dry_run=self.settings.dry_run,
            who=self.settings.who,
            started_at=_now(),
            selection=self.settings.selection.as_dict(),
            source=source,
        )

    def _run_ids(self) -> dict[str, str]:
        return {"dag_id": self._run.dag_id, "run_id": self._run.run_id, "task_id": self._run.task_id}


def _fails_as_before(item: _Item) -> bool:
    envelope, verdict = item.envelope, item.verdict
    return (
        bool(envelope.replay_id)
        and item.candidate.from_original
        and (verdict.stage, verdict.error_type, verdict.rules)
        == (envelope.stage, envelope.error_type, envelope.failed_rules)
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
