"""The broker dies, comes back late, or freezes in the middle of a run.

The first attempt runs with small client timeouts (``helpers.FAST_TIMEOUTS``: delivery 2 s,
transaction 5 s, socket 1.5 s; init/commit/abort 3 s), so a fault surfaces in seconds. It must
either recover or fail with a retryable error inside a bound those timeouts explain, never hang;
then the retry (Airflow's next try, with the default timeouts) must leave every valid row exactly
once on the topic.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    FAILS_WITHIN_S,
    RETRYABLE,
    Attempt,
    after_commits,
    assert_checkpoints_complete,
    assert_exactly_once,
    assert_reconciles,
    fast_first_attempt,
    run_attempt,
)
from ingest_helpers import DATE, Endpoints
from stack import FaultStack

from kafka_ingest.publish.transactions import PublishError
from kafka_ingest.testing.samples import DayManifest, write_day

pytestmark = [pytest.mark.integration, pytest.mark.faults]

Later = Callable[[float, Callable[[], Any]], None]
ROWS = 2000


@pytest.fixture
def manifest(tmp_path: Path) -> DayManifest:
    return write_day(tmp_path, "orders", DATE, rows=ROWS, formats=("csv",), bad_ratio=0.04, seed=11)


def retry_completes(endpoints: Endpoints, topic: str, manifest: DayManifest, first: object) -> None:
    """Attempt 2 on a healthy broker: every valid row exactly once, counts reconcile."""
    retry = Attempt(endpoints, topic, tuple(manifest.files), "attempt-2", try_number=2)
    summary = run_attempt(retry)
    outcome = assert_exactly_once(endpoints, "orders", topic, manifest)
    assert_reconciles(outcome, summary, "attempt-2", manifest)
    assert_checkpoints_complete(endpoints, "orders", topic, manifest)
    print(f"attempt 1: {first!r}; committed by attempt: {dict(outcome.records_by_run)}")


def test_a_broker_killed_mid_run_and_restarted_leaves_each_valid_row_exactly_once(
    stack: FaultStack,
    endpoints: Endpoints,
    topic: str,
    manifest: DayManifest,
    later: Later,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    restarted = threading.Event()

    def restart() -> None:
        stack.restart_kafka()
        restarted.set()

    def kill_then_restart_soon() -> None:
        stack.kafka.kill()
        later(2.0, restart)

    after_commits(3, kill_then_restart_soon, monkeypatch)
    first, seconds = fast_first_attempt(endpoints, topic, manifest)
    monkeypatch.undo()

    assert isinstance(first, (dict, *RETRYABLE)), repr(first)
    assert seconds < FAILS_WITHIN_S + 30, f"attempt 1 took {seconds:.0f}s"
    assert restarted.wait(120), "the broker did not come back"
    retry_completes(endpoints, topic, manifest, first)


def test_a_broker_down_longer_than_the_delivery_and_transaction_timeouts_fails_the_attempt_in_bounded_time(
    stack: FaultStack,
    endpoints: Endpoints,
    topic: str,
    manifest: DayManifest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    after_commits(3, stack.kafka.kill, monkeypatch)
    first, seconds = fast_first_attempt(endpoints, topic, manifest)
    monkeypatch.undo()

    assert isinstance(first, PublishError), repr(first)
    assert "nothing of the open batch is visible" in str(first) or "resumes from the last checkpoint" in str(
        first
    )
    assert seconds < FAILS_WITHIN_S, f"attempt 1 took {seconds:.0f}s to fail"
    stack.restart_kafka()
    retry_completes(endpoints, topic, manifest, first)


def test_a_broker_frozen_longer_than_the_transaction_timeout_fails_or_recovers_and_the_retry_is_exactly_once(
    stack: FaultStack,
    endpoints: Endpoints,
    topic: str,
    manifest: DayManifest,
    later: Later,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGSTOP: connections stay open, nothing answers (a GC pause, a frozen VM), then SIGCONT."""
    assert stack.kafka.process is not None
    pid = stack.kafka.process.pid

    def freeze() -> None:
        os.kill(pid, signal.SIGSTOP)
        later(7.0, lambda: os.kill(pid, signal.SIGCONT))  # > transaction.timeout.ms (5 s)

    after_commits(3, freeze, monkeypatch)
    first, seconds = fast_first_attempt(endpoints, topic, manifest)
    monkeypatch.undo()

    assert isinstance(first, (dict, *RETRYABLE)), repr(first)
    assert seconds < FAILS_WITHIN_S + 7, f"attempt 1 took {seconds:.0f}s"
    stack.kafka.wait_ready()
    retry_completes(endpoints, topic, manifest, first)
