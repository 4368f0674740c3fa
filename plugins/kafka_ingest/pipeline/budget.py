"""The error budget: a run fails once too many of the rows it read would go to the DLQ."""

from __future__ import annotations

from kafka_ingest.pipeline.settings import JobSettings
from kafka_ingest.publish.records import BatchToPublish
from kafka_ingest.publish.transactions import BudgetExceeded


class ErrorBudget:
    """Counts a run's rows read and dead-lettered, and refuses the batch that would overspend.

    :meth:`check` runs with the batch produced but not committed (the publisher's
    ``before_commit``), so the batch that crosses the budget is aborted, never committed.
    """

    def __init__(self, settings: JobSettings, *, topic: str, dlq_topic: str) -> None:
        self._max_ratio, self._max_rows = settings.max_dlq_ratio, settings.max_dlq_rows
        self._topic, self._dlq_topic = topic, dlq_topic
        self.rows_read = 0
        self.dlq = 0

    def read(self, rows: int) -> None:
        """Count the rows of a batch about to be committed (records and rejects)."""
        self.rows_read += rows

    def spent(self, dlq: int) -> None:
        """Count the DLQ records of a batch that committed."""
        self.dlq += dlq

    def check(self, batch: BatchToPublish) -> None:
        """Raise :class:`BudgetExceeded` if committing ``batch`` would overspend the budget."""
        dlq_total = self.dlq + len(batch.dlq)
        ratio = dlq_total / max(1, self.rows_read)
        limit_rows, limit_ratio = self._max_rows, self._max_ratio
        if (limit_rows is not None and dlq_total > limit_rows) or (
            limit_ratio is not None and ratio > limit_ratio
        ):
            raise BudgetExceeded(
                f"Error budget exceeded for {self._topic}: {dlq_total} of {self.rows_read} "
                f"rows read so far ({ratio:.1%}) would go to {self._dlq_topic} (max_dlq_rows="
                f"{limit_rows}, max_dlq_ratio={limit_ratio}). The open transaction was aborted; fix the "
                "extract or raise the budget."
            )
