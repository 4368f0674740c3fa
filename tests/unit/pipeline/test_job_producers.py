"""IngestionJob and its producer per file: made before the file is hashed, initialised only for a
readable file, closed always; the file is hashed while its transactions start and its checkpoint
is read."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any, cast

import pytest

from kafka_ingest.batches import RunInfo
from kafka_ingest.encode.avro import AvroEncoder
from kafka_ingest.pipeline import job as pipeline_job
from kafka_ingest.pipeline.job import IngestionJob
from kafka_ingest.pipeline.settings import JobSettings
from kafka_ingest.publish.checkpoints import Checkpoint, CheckpointStore
from kafka_ingest.read import ExtractReadError
from kafka_ingest.registry import load_schema
from kafka_ingest.runtime.metrics import NullSink, TopicMetrics
from kafka_ingest.testing.samples import order_row, write_rows
from kafka_ingest.topics.orders import ORDERS

RUN = RunInfo(dag_id="ingest_orders", run_id="manual__producer", task_id="publish", try_number=1)


class RecordingProducer:
    """Records which producer calls a job makes; refuses to start transactions when told to."""

    def __init__(
        self, transactional_id: str, *, refuse_init: bool = False, events: list[str] | None = None
    ) -> None:
        self.transactional_id = transactional_id
        self.calls: list[str] = []
        self._refuse_init = refuse_init
        self._events = events

    def init_transactions(self, timeout: float) -> None:
        self.calls.append("init_transactions")
        if self._events is not None:
            self._events.append("init_transactions")
        if self._refuse_init:
            raise RuntimeError("broker unreachable")

    def flush(self, timeout: float) -> int:
        self.calls.append("flush")
        return 0


def publishing_job(
    made: list[RecordingProducer],
    *,
    refuse_init: bool = False,
    checkpoints: Any = None,
    events: list[str] | None = None,
) -> IngestionJob:
    """A job whose producers are recorded in ``made``; ``events`` (if given) notes each producer
    made and each transactions start, in order."""

    def producer_factory(transactional_id: str) -> Any:
        if events is not None:
            events.append("producer")
        made.append(RecordingProducer(transactional_id, refuse_init=refuse_init, events=events))
        return made[-1]

    return IngestionJob(
        ORDERS,
        JobSettings(extract_date="2026-01-15"),
        encoder=AvroEncoder(load_schema(ORDERS.schema_path), 1),
        producer_factory=producer_factory,
        checkpoints=cast(CheckpointStore, checkpoints or object()),  # by default never reached
        metrics=TopicMetrics(ORDERS.topic, NullSink()),
        run=RUN,
    )


def test_a_file_that_cannot_be_read_closes_its_producer_without_starting_transactions(tmp_path: Path) -> None:
    made: list[RecordingProducer] = []

    with pytest.raises(ExtractReadError):
        publishing_job(made).run([str(tmp_path / "part-0001.csv")])

    assert [producer.calls for producer in made] == [["flush"]]


def test_a_producer_that_cannot_start_transactions_is_closed_too(tmp_path: Path) -> None:
    extract = tmp_path / "part-0001.csv"
    write_rows(extract, [order_row(1, random.Random(1))])
    made: list[RecordingProducer] = []

    with pytest.raises(Exception, match="broker unreachable"):
        publishing_job(made, refuse_init=True).run([str(extract)])

    assert [producer.calls for producer in made] == [["init_transactions", "flush"]]


def test_the_file_is_hashed_while_transactions_start_and_the_checkpoint_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The producer comes first; the hash then waits until the checkpoint read has begun: run one
    after the other, they would never meet and the hash would time out."""
    extract = tmp_path / "part-0001.csv"
    write_rows(extract, [order_row(1, random.Random(1))])
    reading = threading.Event()
    events: list[str] = []
    hashed_on: list[str] = []

    def fingerprint(path: Any) -> str:
        events.append("fingerprint")
        hashed_on.append(threading.current_thread().name)
        if not reading.wait(timeout=10):
            raise AssertionError("the checkpoint was not being read while the file was hashed")
        return "sha256:same"

    class Checkpoints:
        topic = "checkpoints"

        def load(self, key: str) -> Checkpoint:
            reading.set()
            return Checkpoint(key=key, fingerprint="sha256:same", rows_done=1, complete=True, published=1)

    monkeypatch.setattr(pipeline_job, "fingerprint", fingerprint)
    made: list[RecordingProducer] = []

    [summary] = publishing_job(made, checkpoints=Checkpoints(), events=events).run([str(extract)])

    assert summary.status == "already published"
    assert summary.fingerprint == "sha256:same"
    assert events[0] == "producer"
    assert hashed_on != [threading.current_thread().name]
    assert [producer.calls for producer in made] == [["init_transactions", "flush"]]
