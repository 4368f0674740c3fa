"""ErrorBudget: the batch that would make the DLQ share or count pass its limit is refused."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kafka_ingest.pipeline.budget import ErrorBudget
from kafka_ingest.pipeline.settings import JobSettings
from kafka_ingest.publish.records import BatchToPublish, OutgoingMessage
from kafka_ingest.publish.transactions import BudgetExceeded

SETTINGS = JobSettings(extract_date="2026-01-15", max_dlq_ratio=0.1)


def with_dlq(count: int) -> BatchToPublish:
    dlq = [OutgoingMessage("t.dlq", b"{}", row=row) for row in range(count)]
    return BatchToPublish([], dlq, lambda batch: OutgoingMessage("c", b"{}"))


def budget(settings: JobSettings = SETTINGS) -> ErrorBudget:
    return ErrorBudget(settings, topic="t", dlq_topic="t.dlq")


def test_a_batch_within_the_ratio_passes() -> None:
    spending = budget()
    spending.read(100)
    spending.check(with_dlq(10))


def test_the_batch_that_passes_the_ratio_is_refused_naming_topic_counts_and_limits() -> None:
    spending = budget()
    spending.read(100)
    with pytest.raises(BudgetExceeded, match=r"for t: 11 of 100 rows .*11\.0%.*t\.dlq.*max_dlq_ratio=0\.1"):
        spending.check(with_dlq(11))


def test_committed_dlq_records_count_against_later_batches() -> None:
    spending = budget()
    spending.read(100)
    spending.check(with_dlq(8))
    spending.spent(8)
    spending.read(10)  # 110 rows read: 11 allowed, 8 spent
    spending.check(with_dlq(3))
    with pytest.raises(BudgetExceeded):
        spending.check(with_dlq(4))


def test_max_dlq_rows_limits_the_count_whatever_the_ratio() -> None:
    spending = budget(replace(SETTINGS, max_dlq_ratio=None, max_dlq_rows=2))
    spending.read(1_000_000)
    spending.check(with_dlq(2))
    with pytest.raises(BudgetExceeded, match="max_dlq_rows=2"):
        spending.check(with_dlq(3))


def test_no_limits_means_no_budget() -> None:
    spending = budget(replace(SETTINGS, max_dlq_ratio=None))
    spending.check(with_dlq(50))  # nothing read yet, all to the DLQ
