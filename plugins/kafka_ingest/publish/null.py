"""What a dry run (``validate_only``) publishes through: a publisher and checkpoints that do nothing.

The job runs the same flow either way; these stand in for the producer and the checkpoint topic,
so a dry run needs no Kafka at all and reads no checkpoint (every file is judged in full).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from kafka_ingest.publish.checkpoints import Checkpoint
from kafka_ingest.publish.records import BatchResult, BatchToPublish, OutgoingMessage


class Publisher(Protocol):
    """What the job needs of a publisher (:class:`.transactions.TransactionalPublisher`)."""

    def init(self) -> None: ...

    def publish(
        self, batch: BatchToPublish, before_commit: Callable[[BatchToPublish], None] | None = None
    ) -> BatchResult: ...

    def close(self) -> None: ...


class CheckpointReader(Protocol):
    """What the job needs of a checkpoint store (:class:`.checkpoints.CheckpointStore`)."""

    def load(self, key: str) -> Checkpoint | None: ...

    def message(self, checkpoint: Checkpoint) -> OutgoingMessage: ...


class NullPublisher:
    """Commits nothing: a batch's result says what would have been published and dead-lettered.

    The error budget is not enforced (``before_commit`` is never called): a dry run reports the
    whole file instead of stopping where a real run would.
    """

    def init(self) -> None:
        return None

    def publish(
        self, batch: BatchToPublish, before_commit: Callable[[BatchToPublish], None] | None = None
    ) -> BatchResult:
        batch.checkpoint(batch)
        return BatchResult(published=len(batch.records), dlq=len(batch.dlq), attempts=1, committed=False)

    def close(self) -> None:
        return None


class _NoCheckpoints:
    def load(self, key: str) -> Checkpoint | None:
        return None

    def message(self, checkpoint: Checkpoint) -> OutgoingMessage:
        return OutgoingMessage("", checkpoint.to_json(), checkpoint.key.encode())


NO_CHECKPOINTS = _NoCheckpoints()
