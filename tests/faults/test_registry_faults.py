"""The Schema Registry is down, hung, or goes away in the middle of a run.

These run the real operator (``OrdersToKafkaOperator.execute``) with Airflow connections from
``AIRFLOW_CONN_*`` variables, the registry reached through a plain ``FaultProxy``: what Airflow
sees is the point (a retryable ``AirflowException``, not an ``AirflowFailException``). The
registry is consulted once, before any producer exists; after that the schema id is cached.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from helpers import (
    FAST_TIMEOUTS,
    after_commits,
    assert_checkpoints_complete,
    assert_exactly_once,
    assert_nothing_published,
    assert_reconciles,
    execute_operator,
    set_connections,
    timed,
)
from ingest_helpers import DATE, Endpoints, read_topic
from stack import FaultStack

from kafka_ingest.registry import SchemaRegistryUnavailable
from kafka_ingest.testing.samples import DayManifest, write_day

pytestmark = [pytest.mark.integration, pytest.mark.faults]

ROWS, BATCH = 2000, 200
#: The connection's client options: a 2 s HTTP timeout and one quick retry, so outages fail fast.
REGISTRY_OPTIONS = {"timeout": 2, "max.retries": 1, "retries.wait.ms": 100}
#: No ``timeout``: the hook's default (10 s) is what ends a hung request.
HOOK_DEFAULT_TIMEOUT = {"max.retries": 0}


@pytest.fixture
def manifest(tmp_path: Path) -> DayManifest:
    return write_day(tmp_path, "orders", DATE, rows=ROWS, formats=("csv",), bad_ratio=0.04, seed=31)


@pytest.fixture
def registry_options() -> dict[str, Any]:
    return REGISTRY_OPTIONS


@pytest.fixture
def operator(
    stack: FaultStack,
    endpoints: Endpoints,
    topic: str,
    manifest: DayManifest,
    monkeypatch: pytest.MonkeyPatch,
    registry_options: dict[str, Any],
) -> Callable[[str], Any]:
    """``operator(run_id)`` executes one try of the task; the registry behind its proxy."""
    set_connections(monkeypatch, endpoints.bootstrap, stack.registry.proxied_url, registry_options)

    def execute(run_id: str) -> Any:
        return execute_operator(
            run_id,
            extract_path=manifest.files,
            topic=topic,
            checkpoint_topic=endpoints.checkpoint_topic,
            producer_config=dict(FAST_TIMEOUTS),
        )

    return execute


def assert_retryable_registry_failure(error: Any) -> None:
    assert isinstance(error, AirflowException), repr(error)
    assert not isinstance(error, AirflowFailException), "a registry outage must leave retries to Airflow"
    assert isinstance(error.__cause__, SchemaRegistryUnavailable), repr(error.__cause__)


@pytest.mark.parametrize(
    ("outage", "registry_options"), [("refused", REGISTRY_OPTIONS), ("hung", HOOK_DEFAULT_TIMEOUT)]
)
def test_a_registry_down_at_start_fails_the_task_retryably_before_anything_is_produced(
    stack: FaultStack, endpoints: Endpoints, topic: str, manifest: DayManifest, operator: Any, outage: str
) -> None:
    if outage == "refused":
        stack.registry.proxy.refuse()
    else:
        stack.registry.proxy.blackhole()  # accepts, never answers: only the HTTP timeout ends it

    error, seconds = timed(lambda: operator("attempt-1"))

    assert_retryable_registry_failure(error)
    assert f"subject '{topic}-value'" in str(error)
    assert seconds < 25, f"the pre-check took {seconds:.0f}s to give up"
    assert_nothing_published(endpoints, "orders", topic)
    assert read_topic(endpoints.bootstrap, endpoints.checkpoint_topic) == []

    stack.registry.proxy.normal()
    summary = operator("attempt-2")
    outcome = assert_exactly_once(endpoints, "orders", topic, manifest)
    assert_reconciles(outcome, summary, "attempt-2", manifest)


def test_a_registry_that_goes_down_mid_run_is_not_needed_again(
    stack: FaultStack,
    endpoints: Endpoints,
    topic: str,
    manifest: DayManifest,
    operator: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def registry_gone() -> None:
        stack.registry.proxy.refuse()
        stack.registry.proxy.cut_all()

    after_commits(1, registry_gone, monkeypatch)
    summary = operator("attempt-1")

    assert summary["published"] == len(manifest.published)
    outcome = assert_exactly_once(endpoints, "orders", topic, manifest)
    assert_reconciles(outcome, summary, "attempt-1", manifest)
    assert_checkpoints_complete(endpoints, "orders", topic, manifest)


def test_a_retry_while_the_registry_is_still_down_publishes_nothing_and_the_next_one_finishes(
    stack: FaultStack,
    endpoints: Endpoints,
    topic: str,
    manifest: DayManifest,
    operator: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Attempt 1 loses the registry after its first batch and dies after its third; attempt 2
    meets the outage at its pre-check; attempt 3 runs once the registry is back."""

    def crash() -> None:
        raise RuntimeError("simulated crash of attempt 1")

    after_commits(1, stack.registry.proxy.refuse, monkeypatch)
    after_commits(3, crash, monkeypatch)
    first = timed(lambda: operator("attempt-1"))[0]  # the hooks fire once: at commits 1 and 3
    assert isinstance(first, AirflowException), repr(first)
    assert "simulated crash" in str(first)
    committed = len(read_topic(endpoints.bootstrap, topic))

    second = timed(lambda: operator("attempt-2"))[0]

    assert_retryable_registry_failure(second)
    assert len(read_topic(endpoints.bootstrap, topic)) == committed, "attempt 2 published something"
    stack.registry.proxy.normal()
    summary = operator("attempt-3")
    outcome = assert_exactly_once(endpoints, "orders", topic, manifest)
    assert_reconciles(outcome, summary, "attempt-3", manifest)
    assert "attempt-2" not in outcome.records_by_run
