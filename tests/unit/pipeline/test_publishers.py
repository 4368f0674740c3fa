"""FilePublishers: one transactional publisher per file, keyed like its checkpoint; a dry run
gets a publisher that commits nothing and needs no producer."""

from __future__ import annotations

from typing import Any

import pytest

from kafka_ingest.pipeline.publishers import FilePublishers
from kafka_ingest.pipeline.settings import JobSettings
from kafka_ingest.publish.null import NullPublisher
from kafka_ingest.publish.transactions import TransactionalPublisher

KEYS = [f"shopping.order.created/orders/2026-01-15/part-{n}.csv" for n in (2, 3)]


class Producer:
    def __init__(self, transactional_id: str, made: list[Producer]) -> None:
        self.transactional_id, self.calls = transactional_id, []  # type: ignore[var-annotated]
        made.append(self)

    def init_transactions(self, timeout: float) -> None:
        self.calls.append("init_transactions")

    def flush(self, timeout: float) -> int:
        self.calls.append("flush")
        return 0


def publishers(made: list[Producer], **settings: Any) -> FilePublishers:
    return FilePublishers(lambda tid: Producer(tid, made), JobSettings(extract_date="2026-01-15", **settings))


def test_a_file_gets_a_transactional_publisher_whose_id_is_its_checkpoint_key() -> None:
    made: list[Producer] = []
    publisher = publishers(made).for_key(KEYS[0])
    assert isinstance(publisher, TransactionalPublisher)
    assert [p.transactional_id for p in made] == [f"kafka-ingest/{KEYS[0]}"]


def test_fencing_starts_and_closes_the_transactions_of_each_file_in_order() -> None:
    made: list[Producer] = []
    publishers(made).fence(KEYS)
    assert [p.transactional_id for p in made] == [f"kafka-ingest/{key}" for key in KEYS]
    assert all(p.calls == ["init_transactions", "flush"] for p in made)


def test_a_dry_run_makes_no_producer_and_commits_nothing() -> None:
    made: list[Producer] = []
    dry = publishers(made, validate_only=True)
    dry.fence(KEYS)
    assert isinstance(dry.for_key(KEYS[0]), NullPublisher)
    assert made == []


def test_a_dry_run_needs_no_producer_factory_but_a_publishing_run_does() -> None:
    assert isinstance(
        FilePublishers(None, JobSettings("2026-01-15", validate_only=True)).for_key(KEYS[0]), NullPublisher
    )
    with pytest.raises(ValueError, match="needs a producer factory"):
        FilePublishers(None, JobSettings("2026-01-15"))
