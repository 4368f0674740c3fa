"""Specifications for exactly-once: reruns, crashes at any point, and a zombie attempt.

Each test publishes one orders file in several transactions and checks the topic as a downstream
read_committed consumer sees it: every valid row exactly once, nothing of an aborted transaction,
and counts that reconcile with the sample's manifest. Records say which attempt wrote them in
their ``run_id`` header.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from confluent_kafka import Producer
from ingest_helpers import (
    DATE,
    RUN,
    Endpoints,
    Record,
    by_source,
    read_topic,
    run_job,
    task_context,
    with_topic,
)

from kafka_ingest.batches import RunInfo
from kafka_ingest.errors import PermanentError
from kafka_ingest.operators.datasets import OrdersToKafkaOperator
from kafka_ingest.pipeline import wiring
from kafka_ingest.pipeline.resume import ExtractChangedError
from kafka_ingest.publish.transactions import ProducerFenced
from kafka_ingest.testing.provision import provision_topics
from kafka_ingest.testing.samples import DayManifest, write_day
from kafka_ingest.topics.orders import ORDERS

pytestmark = pytest.mark.integration

DRIVER = Path(__file__).with_name("ingest_driver.py")
ROWS = 300
BATCH_SIZE = 60


def attempt(run_id: str) -> RunInfo:
    return RunInfo(RUN.dag_id, run_id, RUN.task_id, RUN.map_index, 1)


@pytest.fixture
def manifest(tmp_path: Path) -> DayManifest:
    return write_day(tmp_path, "orders", DATE, rows=ROWS, formats=("csv",), bad_ratio=0.04)


@pytest.fixture
def topic(unique_name: Callable[[str], str]) -> str:
    return unique_name("orders")


def rejected_rows(manifest: DayManifest) -> set[int]:
    return {row for _, row in manifest.rejected}


def valid_rows_up_to(manifest: DayManifest, last_row: int) -> int:
    return last_row - len({r for r in rejected_rows(manifest) if r <= last_row})


def run_driver(
    endpoints: Endpoints, manifest: DayManifest, topic: str, **crash: int
) -> subprocess.CompletedProcess[str]:
    args: dict[str, Any] = {
        "bootstrap": endpoints.bootstrap,
        "registry_url": endpoints.registry_url,
        "checkpoint_topic": endpoints.checkpoint_topic,
        "dataset": "orders",
        "topic": topic,
        "files": manifest.files,
        "date": DATE,
        "batch_size": BATCH_SIZE,
        "run_id": "attempt-1",
        **crash,
    }
    return subprocess.run(
        [sys.executable, str(DRIVER), json.dumps(args)], capture_output=True, text=True, timeout=120
    )


def assert_every_valid_row_exactly_once(records: list[Record], manifest: DayManifest) -> None:
    keys = Counter(record.key.decode() for record in records if record.key is not None)
    assert [key for key, count in keys.items() if count > 1] == []
    assert set(keys) == set(manifest.published)
    assert len(records) == len(manifest.published)


def test_a_rerun_of_a_completed_run_publishes_nothing_new_and_says_so(
    endpoints: Endpoints, manifest: DayManifest, topic: str
) -> None:
    spec = with_topic(ORDERS, topic)
    first = run_job(endpoints, spec, manifest.files, batch_size=BATCH_SIZE)

    rerun = run_job(endpoints, spec, manifest.files, batch_size=BATCH_SIZE, run=attempt("rerun"))

    assert first["published"] == len(manifest.published)
    assert (rerun["rows_read"], rerun["skipped"], rerun["published"], rerun["dlq"]) == (ROWS, ROWS, 0, 0)
    assert rerun["batches"] == 0
    assert rerun["per_file"][0]["status"] == "already published"
    records = read_topic(endpoints.bootstrap, topic)
    assert_every_valid_row_exactly_once(records, manifest)
    assert {record.header("run_id") for record in records} == {RUN.run_id}
    assert len(read_topic(endpoints.bootstrap, spec.dlq_topic)) == len(manifest.rejected)


def test_a_rerun_after_the_file_changed_fails_and_publishes_nothing_of_the_new_version(
    endpoints: Endpoints, manifest: DayManifest, topic: str
) -> None:
    spec = with_topic(ORDERS, topic)
    run_job(endpoints, spec, manifest.files, batch_size=BATCH_SIZE)
    path = Path(manifest.files[0])
    path.write_bytes(path.read_bytes().replace(b"CREATED", b"CONFIRMED", 1))

    with pytest.raises(ExtractChangedError, match="reprocess=True") as changed:
        run_job(endpoints, spec, manifest.files, batch_size=BATCH_SIZE, run=attempt("rerun"))

    assert isinstance(changed.value, PermanentError)
    assert str(path) in str(changed.value)
    records = read_topic(endpoints.bootstrap, topic)
    assert_every_valid_row_exactly_once(records, manifest)
    assert {record.header("run_id") for record in records} == {RUN.run_id}


def test_after_a_sigkill_between_batches_a_rerun_publishes_every_valid_row_exactly_once(
    endpoints: Endpoints, manifest: DayManifest, topic: str
) -> None:
    committed_batches = 2
    spec = with_topic(ORDERS, topic)
    killed = run_driver(endpoints, manifest, topic, kill_after_commits=committed_batches)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    done = committed_batches * BATCH_SIZE

    rerun = run_job(endpoints, spec, manifest.files, batch_size=BATCH_SIZE, run=attempt("attempt-2"))

    records = read_topic(endpoints.bootstrap, topic)
    assert_every_valid_row_exactly_once(records, manifest)
    first_run = [r for r in records if r.header("run_id") == "attempt-1"]
    assert max(r.row for r in first_run) <= done
    assert len(first_run) == valid_rows_up_to(manifest, done)
    assert len(first_run) + rerun["published"] == len(manifest.published)
    assert (rerun["rows_read"], rerun["skipped"]) == (ROWS, done)
    assert rerun["per_file"][0]["status"] == f"resumed after row {done}"
    dlq = by_source(read_topic(endpoints.bootstrap, spec.dlq_topic))
    assert {row for _, row in dlq} == rejected_rows(manifest)


def test_after_a_sigkill_inside_a_transaction_a_rerun_shows_nothing_of_the_aborted_batch(
    endpoints: Endpoints, manifest: DayManifest, topic: str
) -> None:
    spec = with_topic(ORDERS, topic)
    killed = run_driver(endpoints, manifest, topic, kill_in_transaction=2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    done, aborted = 2 * BATCH_SIZE, range(2 * BATCH_SIZE + 1, 3 * BATCH_SIZE + 1)

    rerun = run_job(endpoints, spec, manifest.files, batch_size=BATCH_SIZE, run=attempt("attempt-2"))

    records = read_topic(endpoints.bootstrap, topic)
    assert_every_valid_row_exactly_once(records, manifest)
    first_run = [r for r in records if r.header("run_id") == "attempt-1"]
    assert [r.row for r in first_run if r.row in aborted] == []
    assert len(first_run) + rerun["published"] == len(manifest.published)
    assert rerun["skipped"] == done
    everything = read_topic(endpoints.bootstrap, topic, isolation="read_uncommitted")
    produced_then_aborted = {
        r.row for r in everything if r.header("run_id") == "attempt-1" and r.row in aborted
    }
    assert len(produced_then_aborted) == len(aborted) - len(rejected_rows(manifest) & set(aborted))
    dlq = by_source(read_topic(endpoints.bootstrap, spec.dlq_topic))
    assert {row for _, row in dlq} == rejected_rows(manifest)


@dataclass
class Zombie:
    """Where the first attempt (the thread ``attempt-1``) is held until a second one fenced it."""

    where: str
    committed: threading.Event = field(default_factory=threading.Event)
    fenced: threading.Event = field(default_factory=threading.Event)
    stalled: bool = False


class HeldProducer:
    """A real producer; the first attempt's is held as its :class:`Zombie` says."""

    def __init__(self, config: dict[str, Any], zombie: Zombie) -> None:
        self._producer = Producer(config)
        self._zombie = zombie
        self._first = threading.current_thread().name == "attempt-1"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)

    def init_transactions(self, *args: Any) -> None:
        self._producer.init_transactions(*args)
        if not self._first:
            self._zombie.fenced.set()

    def produce(self, *args: Any, **kwargs: Any) -> None:
        zombie = self._zombie
        if (
            self._first
            and zombie.where == "while_producing"
            and zombie.committed.is_set()
            and not zombie.stalled
        ):
            zombie.stalled = True
            assert zombie.fenced.wait(60)
            self._producer.produce(*args, **kwargs)
            time.sleep(1.0)  # the broker refuses that produce request: from now on produce() fails
            return
        self._producer.produce(*args, **kwargs)

    def commit_transaction(self, *args: Any) -> None:
        zombie = self._zombie
        if self._first and zombie.where == "before_commit" and zombie.committed.is_set():
            assert zombie.fenced.wait(60)
        self._producer.commit_transaction(*args)
        if self._first:
            zombie.committed.set()


@pytest.fixture(params=["before_commit", "while_producing"])
def zombie(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Zombie:
    """Once attempt 1 committed a batch, it is held inside its next transaction until attempt 2's
    ``init_transactions()`` returned; then it commits (``before_commit``) or goes on producing
    (``while_producing``, after the broker refused a produce request of its fenced epoch)."""
    zombie = Zombie(request.param)
    monkeypatch.setattr(wiring, "Producer", lambda config: HeldProducer(config, zombie))
    return zombie


def test_a_second_attempt_fences_a_still_running_first_and_every_row_is_published_once(
    endpoints: Endpoints, manifest: DayManifest, topic: str, zombie: Zombie
) -> None:
    provision_topics(
        endpoints.bootstrap, with_topic(ORDERS, topic), checkpoint_topic=endpoints.checkpoint_topic
    )

    def operator() -> OrdersToKafkaOperator:
        return OrdersToKafkaOperator(
            task_id="publish",
            extract_path=manifest.files[0],
            extract_date=DATE,
            topic=topic,
            checkpoint_topic=endpoints.checkpoint_topic,
            batch_size=BATCH_SIZE,
        )

    failures: list[BaseException] = []

    def first_attempt() -> None:
        try:
            operator().execute(task_context(attempt("attempt-1")))  # type: ignore[arg-type]
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=first_attempt, name="attempt-1")
    thread.start()
    assert zombie.committed.wait(60), f"the first attempt never committed a batch: {failures}"

    second = operator().execute(task_context(attempt("attempt-2")))  # type: ignore[arg-type]
    thread.join(60)

    assert not thread.is_alive()
    assert len(failures) == 1, "the first attempt was not stopped"
    assert isinstance(failures[0], AirflowFailException), repr(failures[0])
    assert isinstance(failures[0].__cause__, ProducerFenced), repr(failures[0].__cause__)
    assert "fenced" in str(failures[0])
    records = read_topic(endpoints.bootstrap, topic)
    assert_every_valid_row_exactly_once(records, manifest)
    first_run = [r for r in records if r.header("run_id") == "attempt-1"]
    assert {r.row for r in first_run} == set(range(1, BATCH_SIZE + 1)) - rejected_rows(manifest)
    assert second["skipped"] == BATCH_SIZE
    assert len(first_run) + second["published"] == len(manifest.published)
    assert second["rows_read"] == ROWS
