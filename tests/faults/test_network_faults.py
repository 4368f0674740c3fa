"""The network between the task and the broker is slow, refuses, swallows or cuts connections.

Every attempt here reaches the broker only through ``proxy.FaultProxy``: it bootstraps on the
proxy and the broker advertises the proxy on that listener, so the client's reconnects go through
it too. The checks read the topics directly. Client timeouts are small for the first attempt
(``FAST_TIMEOUTS``, 3 s for init/commit/abort), so "no hang" is checked against a bound in seconds;
the retry runs with the defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from helpers import (
    FAILS_WITHIN_S,
    RETRYABLE,
    Attempt,
    after_commits,
    assert_checkpoints_complete,
    assert_exactly_once,
    assert_nothing_published,
    assert_reconciles,
    fast_first_attempt,
    run_attempt,
    timed,
)
from ingest_helpers import DATE, Endpoints
from stack import FaultStack

from kafka_ingest.testing.samples import DayManifest, write_day

pytestmark = [pytest.mark.integration, pytest.mark.faults]

ROWS = 2000


@pytest.fixture
def manifest(tmp_path: Path) -> DayManifest:
    return write_day(tmp_path, "orders", DATE, rows=ROWS, formats=("csv",), bad_ratio=0.04, seed=23)


def then_retry_completes(
    proxied: Endpoints, endpoints: Endpoints, topic: str, manifest: DayManifest, first: Any
) -> None:
    """After the fault is gone, attempt 2 (through the proxy) finishes the job exactly once."""
    print(f"attempt 1: {first!r}")
    summary = first
    run_id = "attempt-1"
    if not isinstance(first, dict):
        retry = Attempt(proxied, topic, tuple(manifest.files), "attempt-2", try_number=2)
        summary, run_id = run_attempt(retry), "attempt-2"
    outcome = assert_exactly_once(endpoints, "orders", topic, manifest)
    assert_reconciles(outcome, summary, run_id, manifest)
    assert_checkpoints_complete(endpoints, "orders", topic, manifest)


def test_added_latency_slows_the_run_but_every_valid_row_is_published_exactly_once(
    stack: FaultStack, proxied: Endpoints, endpoints: Endpoints, topic: str, manifest: DayManifest
) -> None:
    stack.kafka.proxy.latency(0.02)  # every request and every response waits 20 ms

    slow = Attempt(proxied, topic, tuple(manifest.files), "attempt-1")  # default timeouts
    summary, seconds = timed(lambda: run_attempt(slow))

    assert isinstance(summary, dict), repr(summary)
    print(f"with 20 ms per frame: {seconds:.1f}s")
    then_retry_completes(proxied, endpoints, topic, manifest, summary)


def test_latency_beyond_the_socket_timeout_fails_the_attempt_in_bounded_time(
    stack: FaultStack,
    proxied: Endpoints,
    endpoints: Endpoints,
    topic: str,
    manifest: DayManifest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    after_commits(2, lambda: stack.kafka.proxy.latency(2.0), monkeypatch)  # > socket.timeout.ms (1.5 s)

    first, seconds = fast_first_attempt(proxied, topic, manifest)
    monkeypatch.undo()
    stack.kafka.proxy.normal()

    assert isinstance(first, RETRYABLE), repr(first)
    assert seconds < FAILS_WITHIN_S, f"attempt 1 took {seconds:.0f}s to fail"
    then_retry_completes(proxied, endpoints, topic, manifest, first)


def test_a_broker_refusing_connections_at_start_fails_the_attempt_before_anything_is_produced(
    stack: FaultStack, proxied: Endpoints, endpoints: Endpoints, topic: str, manifest: DayManifest
) -> None:
    stack.kafka.proxy.refuse()

    first, seconds = fast_first_attempt(proxied, topic, manifest)

    assert isinstance(first, KafkaException), repr(first)  # Kafka's own "Failed to get metadata"
    assert first.args[0].code() in (KafkaError._TRANSPORT, KafkaError._TIMED_OUT), repr(first)
    assert seconds < FAILS_WITHIN_S, f"attempt 1 took {seconds:.0f}s to fail"
    assert_nothing_published(endpoints, "orders", topic)
    stack.kafka.proxy.accept()
    then_retry_completes(proxied, endpoints, topic, manifest, first)


def test_connections_that_hang_mid_run_fail_the_attempt_in_bounded_time(
    stack: FaultStack,
    proxied: Endpoints,
    endpoints: Endpoints,
    topic: str,
    manifest: DayManifest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Open connections are reset and new ones are accepted but never answered (a dropping
    firewall, a half-dead load balancer)."""

    def hang() -> None:
        stack.kafka.proxy.blackhole()
        stack.kafka.proxy.cut_all()

    after_commits(2, hang, monkeypatch)
    first, seconds = fast_first_attempt(proxied, topic, manifest)
    monkeypatch.undo()
    stack.kafka.proxy.normal()

    assert isinstance(first, RETRYABLE), repr(first)
    assert seconds < FAILS_WITHIN_S, f"attempt 1 took {seconds:.0f}s to fail"
    then_retry_completes(proxied, endpoints, topic, manifest, first)


def test_all_connections_cut_mid_run_are_survived_or_fail_cleanly(
    stack: FaultStack,
    proxied: Endpoints,
    endpoints: Endpoints,
    topic: str,
    manifest: DayManifest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    after_commits(3, stack.kafka.proxy.cut_all, monkeypatch)
    first, seconds = fast_first_attempt(proxied, topic, manifest)
    monkeypatch.undo()

    assert isinstance(first, (dict, *RETRYABLE)), repr(first)
    assert stack.kafka.proxy.stats.cuts == 1
    assert seconds < FAILS_WITHIN_S
    then_retry_completes(proxied, endpoints, topic, manifest, first)


@pytest.mark.parametrize("when", ["request", "response"])
def test_connections_cut_in_the_middle_of_a_commit_never_duplicate_or_lose_a_batch(
    stack: FaultStack,
    proxied: Endpoints,
    endpoints: Endpoints,
    topic: str,
    manifest: DayManifest,
    monkeypatch: pytest.MonkeyPatch,
    when: str,
) -> None:
    """``request``: the commit never reached the broker. ``response``: the broker committed and
    the answer was lost, so the client cannot know whether the batch is in."""
    after_commits(3, lambda: stack.kafka.proxy.cut_on_commit(when), monkeypatch)
    first, seconds = fast_first_attempt(proxied, topic, manifest)
    monkeypatch.undo()

    assert stack.kafka.proxy.stats.commit_cuts == [when]
    assert isinstance(first, (dict, *RETRYABLE)), repr(first)
    assert seconds < FAILS_WITHIN_S
    then_retry_completes(proxied, endpoints, topic, manifest, first)
