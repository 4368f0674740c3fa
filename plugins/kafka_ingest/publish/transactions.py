"""The transaction loop: one batch, its DLQ records and its checkpoint commit or abort together.

This is the one place that talks to the producer. Per batch it begins a transaction, produces the
valid records, the DLQ records and the checkpoint, and commits. What can go wrong, and what
happens then:

* a record librdkafka refuses as too large at ``produce()`` (over ``message.max.bytes``, 1 MB by
  default, as is the broker's default limit): the transaction is aborted, the record is moved to
  the DLQ (stage ``produce``) and the batch is produced again. A topic whose own
  ``max.message.bytes`` is lower makes the broker refuse the whole produce request instead, and
  no delivery report could say which record it was (the broker refuses the request as a whole,
  and confluent-kafka's reports carry no headers): that is an abortable error like the next one.
  Give such a topic's producer the same ``message.max.bytes`` (the operator's
  ``producer_config``) and librdkafka refuses the record itself;
* an abortable error (``txn_requires_abort``: a delivery timeout, a broker that went away): the
  transaction is aborted and the whole batch produced again, at most ``max_attempts`` times, then
  :class:`PublishError` (retryable: Airflow's retry resumes from the last checkpoint);
* a retriable commit error: the commit is retried within the same transaction;
* a fatal error, notably being fenced by a newer attempt with the same transactional id:
  :class:`ProducerFenced` / :class:`PublishError` at once, with nothing of the batch visible.

A delivery failure therefore never passes silently: in a transaction, any failed message makes
the commit fail, and the commit is what decides. That is why records are produced without a
delivery callback: a Python callback costs each record a message state and a GIL round trip when
its report is served (docs/performance.md), for reports nothing needs.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable

from confluent_kafka import KafkaError, KafkaException, Producer

from kafka_ingest.errors import PermanentError
from kafka_ingest.publish.records import BatchResult, BatchToPublish, OutgoingMessage, RecordColumns

log = logging.getLogger(__name__)


class PublishError(Exception):
    """A batch could not be committed; nothing of it is visible. A retry may succeed."""


class ProducerFenced(PermanentError):
    """A newer attempt of the same work took over the transactional id; this one must stop."""


class BudgetExceeded(PermanentError):
    """Raised by a batch check before commit; the open transaction is aborted first."""


_TOO_LARGE = {KafkaError.MSG_SIZE_TOO_LARGE}
_FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


class TransactionalPublisher:
    """Publishes batches through one transactional producer (one per unit of work)."""

    def __init__(
        self,
        producer: Producer,
        *,
        transactional_id: str,
        max_attempts: int = 3,
        timeout_s: float = 60.0,
    ) -> None:
        self._producer = producer
        self.transactional_id = transactional_id
        self._max_attempts = max_attempts
        self._timeout_s = timeout_s
        self._refused: list[OutgoingMessage] = []  # refused at produce() as too large

    def init(self) -> None:
        """Register the transactional id: fences older producers and aborts their open transaction."""
        try:
            self._producer.init_transactions(self._timeout_s)
        except KafkaException as exc:
            raise self._error("initialise transactions", exc) from exc

    def publish(
        self, batch: BatchToPublish, before_commit: Callable[[BatchToPublish], None] | None = None
    ) -> BatchResult:
        """Commit ``batch`` atomically, retrying abortable failures; see the module docstring."""
        moved: list[int] = []
        for attempt in range(1, self._max_attempts + 1):
            try:
                self._producer.begin_transaction()
                self._produce_all(batch)
                if before_commit is not None:
                    before_commit(batch)
                started = time.monotonic()
                self._commit()
                return BatchResult(
                    published=len(batch.records),
                    dlq=len(batch.dlq),
                    attempts=attempt,
                    moved_to_dlq=moved,
                    commit_seconds=time.monotonic() - started,
                )
            except BudgetExceeded:
                self._abort_after_budget()
                raise
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.fatal() or error.code() in _FENCED or not error.txn_requires_abort():
                    raise self._error("commit a batch", exc) from exc
                self._abort()
                moved.extend(self._move_too_large(batch))
                log.warning(
                    "Transaction %s aborted (attempt %d/%d): %s",
                    self.transactional_id,
                    attempt,
                    self._max_attempts,
                    error.str(),
                )
        raise PublishError(
            f"Transaction {self.transactional_id} failed {self._max_attempts} times; nothing of the "
            "batch is visible and the next attempt resumes from the last checkpoint."
        )

    def close(self) -> None:
        """Flush what is left; never raises, so it cannot mask how the work ended.

        Once the last transaction committed or failed, nothing here can change the outcome, and a
        producer that hit a fatal error (fenced) raises that error again from ``flush()``.
        """
        try:
            self._producer.flush(self._timeout_s)
        except Exception as exc:  # the transactional calls already decided; see the docstring
            log.warning("Closing producer %s: %s", self.transactional_id, exc)

    def _produce_all(self, batch: BatchToPublish) -> None:
        """Produce the whole batch; records refused for their size are all collected before aborting."""
        self._refused.clear()
        rest: Iterable[OutgoingMessage] = (*batch.dlq, batch.checkpoint(batch))
        if isinstance(batch.records, RecordColumns):
            refused = self._produce_columns(batch.records)
        else:
            rest = itertools.chain(batch.records, rest)
            refused = False
        refused = self._produce_messages(rest) or refused
        if refused:
            raise KafkaException(
                KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "record too large", txn_requires_abort=True)
            )

    def _produce_columns(self, records: RecordColumns) -> bool:
        """The hot loop: one ``produce()`` per record straight from the columns. True if any was
        refused as too large; the rare paths (a full queue, a refused record) go through
        :meth:`_after_refusal` with the record as a message."""
        refused = False
        produce, topic = self._producer.produce, records.topic
        columns = zip(records.values, records.keys, records.header_lists(), records.rows, strict=True)
        for value, key, headers, row in columns:
            try:
                # Positional, in the order of the C signature (topic, value, key, partition,
                # on_delivery, callback, timestamp, headers; confluent-kafka is pinned): each
                # keyword would cost a str built and hashed per record.
                produce(topic, value, key, -1, None, None, 0, headers)
            except (BufferError, KafkaException) as exc:
                message = OutgoingMessage(topic, value, key, headers, row=row)
                refused = not self._after_refusal(message, exc) or refused
        return refused

    def _produce_messages(self, messages: Iterable[OutgoingMessage]) -> bool:
        """One ``produce()`` per message; True if any was refused as too large."""
        refused = False
        produce = self._producer.produce
        for message in messages:
            try:
                produce(
                    message.topic,
                    value=message.value,
                    key=message.key,
                    headers=message.headers,
                    partition=message.partition,
                )
            except (BufferError, KafkaException) as exc:
                refused = not self._after_refusal(message, exc) or refused
        return refused

    def _after_refusal(self, message: OutgoingMessage, error: BufferError | KafkaException) -> bool:
        """``produce()`` raised ``error`` for ``message``: a full local queue is served and the
        message queued again (True); a message too large is noted for the DLQ (False); any other
        error propagates."""
        if isinstance(error, BufferError):
            self._producer.poll(0.05)
            return self._produce(message)
        self._note_refused(message, error)
        return False

    def _produce(self, message: OutgoingMessage) -> bool:
        """Queue one message; False if librdkafka refused it as too large (noted in ``_refused``)."""
        while True:
            try:
                self._producer.produce(
                    message.topic,
                    value=message.value,
                    key=message.key,
                    headers=message.headers,
                    partition=message.partition,
                )
                return True
            except BufferError:
                self._producer.poll(0.05)
            except KafkaException as exc:
                self._note_refused(message, exc)
                return False

    def _note_refused(self, message: OutgoingMessage, exc: KafkaException) -> None:
        """Note a record refused as too large (the batch will move it to the DLQ); re-raise the rest."""
        if exc.args[0].code() not in _TOO_LARGE:
            raise exc
        self._refused.append(message)

    def _commit(self) -> None:
        deadline = time.monotonic() + self._timeout_s
        while True:
            try:
                self._producer.commit_transaction(max(1.0, deadline - time.monotonic()))
                return
            except KafkaException as exc:
                if exc.args[0].retriable() and time.monotonic() < deadline:
                    continue
                raise

    def _abort(self) -> None:
        try:
            self._producer.abort_transaction(self._timeout_s)
        except KafkaException as exc:
            raise self._error("abort a transaction", exc) from exc

    def _abort_after_budget(self) -> None:
        """Abort the batch that overspent the budget; a failed abort does not hide the budget.

        The budget decides how the task ends: a retry would overspend it again. An abort the broker
        refuses (INVALID_TXN_STATE was seen under load, before the batch reached the coordinator)
        leaves a producer that can no longer commit, and the next attempt's ``init_transactions()``
        fences it and aborts whatever it left open, so nothing of the batch becomes visible.
        """
        try:
            self._abort()
        except PublishError as failed:
            log.warning("After the error budget was exceeded: %s", failed)

    def _fatal_error(self) -> KafkaError | None:
        """The error that made the producer unusable: ``produce()`` only says ``_FATAL``, while a
        transactional call fails with the fatal error itself (``_FENCED`` for a zombie)."""
        try:
            self._producer.abort_transaction(min(self._timeout_s, 5.0))
        except KafkaException as exc:
            return exc.args[0]
        return None

    def _move_too_large(self, batch: BatchToPublish) -> list[int]:
        """Replace records refused for their size by DLQ records, so the retry can succeed.

        A refused record is found by the source row it carries (``OutgoingMessage.row``).
        """
        rows = {message.row for message in self._refused if message.row}
        if not rows or batch.on_too_large is None:
            return []
        moved = [record for record in batch.records if record.row in rows]
        batch.dlq.extend(batch.on_too_large(record, "record too large for the broker") for record in moved)
        gone = {record.row for record in moved}
        if isinstance(batch.records, RecordColumns):
            batch.records = batch.records.without(gone)
        else:
            batch.records = [record for record in batch.records if record.row not in gone]
        return [record.row for record in moved]

    def _error(self, action: str, exc: KafkaException) -> Exception:
        error: KafkaError = exc.args[0]
        if error.code() == KafkaError._FATAL:
            error = self._fatal_error() or error
        if error.code() in _FENCED:
            return ProducerFenced(
                f"Producer {self.transactional_id} was fenced while trying to {action}: a newer attempt "
                "of the same work is running; this attempt stops without publishing."
            )
        kind = "fatal" if error.fatal() else "retriable" if error.retriable() else "non-retriable"
        return PublishError(
            f"Producer {self.transactional_id} could not {action} ({kind} error {error.name()}: "
            f"{error.str()}); nothing of the open batch is visible."
        )
