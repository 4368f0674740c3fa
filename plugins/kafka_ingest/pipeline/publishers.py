"""Each file's publisher: a transactional one per checkpoint key, or a null one for a dry run.

The job asks for a publisher per file and never checks whether it is a dry run: that choice is
made here, once (``publish/null.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from kafka_ingest.pipeline.settings import JobSettings, ProducerFactory
from kafka_ingest.publish.checkpoints import transactional_id_for
from kafka_ingest.publish.null import NullPublisher, Publisher
from kafka_ingest.publish.transactions import TransactionalPublisher


class FilePublishers:
    """Makes the publisher of one file, keyed like its checkpoint.

    The transactional id comes from the checkpoint key, so a retry of the same file on any worker
    gets the same id, and its ``init_transactions()`` fences the attempt before it.
    """

    def __init__(self, producer_factory: ProducerFactory | None, settings: JobSettings) -> None:
        if producer_factory is None and not settings.validate_only:
            raise ValueError("A job that publishes needs a producer factory.")
        self._producer_factory = producer_factory
        self._settings = settings

    def for_key(self, key: str) -> Publisher:
        if self._producer_factory is None or self._settings.validate_only:
            return NullPublisher()
        transactional_id = transactional_id_for(key)
        return TransactionalPublisher(
            self._producer_factory(transactional_id),
            transactional_id=transactional_id,
            max_attempts=self._settings.max_attempts,
            timeout_s=self._settings.timeout_s,
        )

    def fence(self, keys: Sequence[str]) -> None:
        """Fence the earlier attempts of these files before any checkpoint is read.

        A crashed or frozen attempt may have left a transaction open on the checkpoint partition,
        and a read_committed read of any checkpoint there waits until the broker aborts it
        (``transaction.timeout.ms``). Each file's ``init_transactions()`` aborts its own leftover
        at once; the first file's happens anyway before its checkpoint is read, the others' would
        come only after the earlier files' reads.
        """
        for key in keys:
            publisher = self.for_key(key)
            publisher.init()
            publisher.close()
