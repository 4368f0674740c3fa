"""Broker faults on the secured 3-broker cluster (RF 3, min ISR 2), checked row by row.

Each test kills nodes with SIGKILL at a set point of a run (inside a transaction, or between two),
lets the run finish or fail, starts the nodes again with ``scripts/stack kafka-up`` (their data
kept) and, where the first try failed, retries; then a read_committed consumer must see every valid
row exactly once and every rejected row once in the DLQ.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import Run, assert_exactly_once
from cluster_stack import NODES, Cluster

from kafka_ingest.publish.transactions import TransactionalPublisher
from kafka_ingest.testing.samples import DayManifest, write_day

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
ROWS = 2_000


@pytest.fixture
def run(healthy: Cluster, schema_registry_url: str, names: Callable[[str], str]) -> Run:
    return Run.provisioned(healthy, schema_registry_url, names)


@pytest.fixture
def manifest(tmp_path: Path) -> DayManifest:
    return write_day(tmp_path, "orders", "2026-01-01", rows=ROWS, formats=("csv",))


def inside_transaction(number: int, action: Callable[[], None], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``action`` when commit ``number`` is about to happen: the batch's records are on the
    brokers (flushed), the transaction not yet committed."""
    commit = TransactionalPublisher._commit
    calls = [0]

    def wrapper(self: TransactionalPublisher, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == number:
            self._producer.flush(30)
            action()
        return commit(self, *args, **kwargs)

    monkeypatch.setattr(TransactionalPublisher, "_commit", wrapper)


def after_commit(number: int, action: Callable[[], None], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``action`` right after commit ``number``, before the next batch begins."""
    commit = TransactionalPublisher._commit
    calls = [0]

    def wrapper(self: TransactionalPublisher, *args: Any, **kwargs: Any) -> Any:
        result = commit(self, *args, **kwargs)
        calls[0] += 1
        if calls[0] == number:
            action()
        return result

    monkeypatch.setattr(TransactionalPublisher, "_commit", wrapper)


def first_try(run: Run, manifest: DayManifest) -> tuple[Any, float]:
    started = time.monotonic()
    try:
        result: Any = run.attempt(manifest.files, "try-1", fast=True)
    except Exception as exc:
        result = exc
    return result, time.monotonic() - started


def test_the_data_leaders_sigkill_mid_transaction_loses_and_duplicates_nothing(
    run: Run, manifest: DayManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    leader = run.cluster.leader(run.topic, 0)
    inside_transaction(3, lambda: run.cluster.kill(leader), monkeypatch)

    result, _ = first_try(run, manifest)
    monkeypatch.undo()
    if isinstance(result, Exception):  # the retry Airflow would make, with the node still down
        run.attempt(manifest.files, "try-2")

    assert run.cluster.pid(leader) is None, "the leader was not killed"
    assert_exactly_once(run.cluster, run.topic, manifest)
    run.cluster.up()
    assert_exactly_once(run.cluster, run.topic, manifest)


def test_two_of_three_brokers_down_mid_run_aborts_within_bounds_and_the_retry_publishes_the_rest(
    run: Run, manifest: DayManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below min ISR (2) no write can be acknowledged: the open transaction is aborted, never half
    committed; the try fails within its bound; after the restart the retry resumes after the last
    committed batch."""
    survivor = run.cluster.leader(run.checkpoint_topic, 0)
    victims = [node for node in NODES if node != survivor]
    inside_transaction(3, lambda: [run.cluster.kill(node) for node in victims], monkeypatch)

    result, seconds = first_try(run, manifest)
    monkeypatch.undo()

    assert isinstance(result, Exception), f"a try below min ISR succeeded: {result}"
    assert seconds < 120, f"the failing try took {seconds:.0f}s"
    run.cluster.up()
    retry = run.attempt(manifest.files, "try-2")
    assert retry["skipped"] >= 2 * 200, "the retry did not resume after the committed batches"
    assert_exactly_once(run.cluster, run.topic, manifest)


def test_the_checkpoint_leader_killed_between_batches_loses_and_duplicates_nothing(
    run: Run, manifest: DayManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    leader = run.cluster.leader(run.checkpoint_topic, 0)
    after_commit(2, lambda: run.cluster.kill(leader), monkeypatch)

    result, _ = first_try(run, manifest)
    monkeypatch.undo()
    if isinstance(result, Exception):
        run.attempt(manifest.files, "try-2")

    assert run.cluster.pid(leader) is None
    run.cluster.up()
    assert_exactly_once(run.cluster, run.topic, manifest)
    again = run.attempt(manifest.files, "rerun")  # the checkpoints survived the leader change
    assert (again["published"], again["dlq"]) == (0, 0)
