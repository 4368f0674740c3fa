"""The schema guard: checkpoints record the schema id and fingerprint they were written with, and a
run fails before producing when the registry no longer returns that schema for that id."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any, cast

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from kafka_ingest.checkpoints import Checkpoint, CheckpointStore
from kafka_ingest.dlq import RunInfo
from kafka_ingest.metrics import NullSink, TopicMetrics
from kafka_ingest.pipeline import IngestionJob, JobSettings
from kafka_ingest.schema_guard import (
    SchemaGuard,
    SchemaIdChangedError,
    SchemaStamp,
    recorded_stamp,
    schema_fingerprint,
)
from kafka_ingest.serde import AvroEncoder, SchemaRegistryUnavailable, load_schema
from kafka_ingest.testing.samples import order_row, write_rows
from kafka_ingest.topics.orders import ORDERS
from kafka_ingest.topics.payments import PAYMENTS

ORDERS_TEXT = load_schema(ORDERS.schema_path).text
PAYMENTS_TEXT = load_schema(PAYMENTS.schema_path).text
ORDERS_FP = schema_fingerprint(ORDERS_TEXT)
KEY = "shopping.order.created/orders/2026-01-15/part-0001.csv"
SUBJECT = "shopping.order.created-value"


class FakeRegistry:
    """The registry client's two calls the guard makes; ``schemas`` maps id -> schema text."""

    def __init__(self, schemas: dict[int, str], *, status: int | None = None) -> None:
        self.schemas = schemas
        self.status = status
        self.asked: list[int] = []

    def get_schema(self, schema_id: int) -> Schema:
        self.asked.append(schema_id)
        if self.status is not None:
            raise SchemaRegistryError(self.status, self.status * 100, "registry says no")
        if schema_id not in self.schemas:
            raise SchemaRegistryError(404, 40403, f"Schema {schema_id} not found")
        return Schema(self.schemas[schema_id], "AVRO")

    def config(self) -> dict[str, Any]:
        return {"url": "http://user:secret-pw@registry.test:8081/apis/ccompat/v7"}


def guard(registry: FakeRegistry, current_id: int = 7) -> SchemaGuard:
    client = cast(SchemaRegistryClient, registry)
    return SchemaGuard(client, SUBJECT, SchemaStamp(current_id, ORDERS_FP))


def written_with(schema_id: int, fingerprint: str = ORDERS_FP) -> Checkpoint:
    return Checkpoint(
        key=KEY, fingerprint="sha256:file", rows_done=10, schema_id=schema_id, schema_fingerprint=fingerprint
    )


# --------------------------------------------------------------------------- fingerprints


def test_the_fingerprint_ignores_whitespace_and_key_order() -> None:
    spread = json.dumps(dict(reversed(list(json.loads(ORDERS_TEXT).items()))), indent=4)
    assert schema_fingerprint(spread) == ORDERS_FP


def test_the_fingerprint_changes_with_anything_a_record_decodes_to() -> None:
    raw = json.loads(ORDERS_TEXT)
    raw["fields"] = list(reversed(raw["fields"]))
    assert schema_fingerprint(json.dumps(raw)) != ORDERS_FP
    assert schema_fingerprint(PAYMENTS_TEXT) != ORDERS_FP


def test_text_that_is_not_json_still_has_a_fingerprint() -> None:
    assert schema_fingerprint('syntax = "proto3";') != schema_fingerprint('syntax = "proto2";')


# --------------------------------------------------------------------------- stamping


def test_a_stamped_checkpoint_keeps_its_schema_id_and_fingerprint_through_json() -> None:
    checkpoint = Checkpoint(key=KEY, fingerprint="sha256:file")
    guard(FakeRegistry({})).stamp(checkpoint)

    read = Checkpoint.from_json(checkpoint.to_json())

    assert recorded_stamp(read) == SchemaStamp(7, ORDERS_FP)


def test_a_checkpoint_from_before_the_guard_reads_with_no_stamp() -> None:
    old = b'{"key":"%s","fingerprint":"sha256:file","rows_done":3,"complete":false}' % KEY.encode()

    read = Checkpoint.from_json(old)

    assert (read.rows_done, read.schema_id, read.schema_fingerprint) == (3, 0, "")
    assert recorded_stamp(read) is None


# --------------------------------------------------------------------------- checking


def test_a_file_never_published_needs_no_registry_request() -> None:
    registry = FakeRegistry({})
    guard(registry).check(None)
    assert registry.asked == []


def test_the_same_schema_under_the_recorded_id_passes_with_one_request_per_id() -> None:
    registry = FakeRegistry({3: json.dumps(json.loads(ORDERS_TEXT), indent=2)})
    checking = guard(registry)

    checking.check(written_with(3))
    checking.check(written_with(3))

    assert registry.asked == [3]


def test_the_runs_own_id_needs_no_request() -> None:
    registry = FakeRegistry({})
    guard(registry, current_id=3).check(written_with(3))
    assert registry.asked == []


def test_another_schema_under_the_recorded_id_fails_naming_subject_id_fingerprints_and_remedies() -> None:
    registry = FakeRegistry({3: PAYMENTS_TEXT})

    with pytest.raises(SchemaIdChangedError) as raised:
        guard(registry).check(written_with(3))

    message = str(raised.value)
    named = [SUBJECT, KEY, "schema id 3", ORDERS_FP, schema_fingerprint(PAYMENTS_TEXT)]
    remedies = ["Restore the registry", "re-register", "reprocess=True alone does not bypass"]
    assert [part for part in named + remedies if part not in message] == []
    assert "secret-pw" not in message


def test_an_id_the_registry_no_longer_knows_fails_too() -> None:
    with pytest.raises(SchemaIdChangedError, match="now returns no schema at all for that id"):
        guard(FakeRegistry({1: ORDERS_TEXT})).check(written_with(3))


def test_a_registry_that_cannot_answer_is_a_retryable_failure() -> None:
    with pytest.raises(SchemaRegistryUnavailable):
        guard(FakeRegistry({}, status=503)).check(written_with(3))


def test_a_checkpoint_from_before_the_guard_is_let_through_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = FakeRegistry({})
    checking = guard(registry)

    with caplog.at_level(logging.WARNING, logger="kafka_ingest.schema_guard"):
        checking.check(written_with(0, ""))
        checking.check(written_with(0, ""))

    assert registry.asked == []
    assert len([r for r in caplog.records if "records no schema id" in r.getMessage()]) == 1


# --------------------------------------------------------------------------- in the job


class NeverProducer:
    """Starts transactions; producing anything fails the test."""

    def __init__(self, transactional_id: str) -> None:
        self.produced = 0

    def init_transactions(self, timeout: float) -> None:
        pass

    def begin_transaction(self) -> None:
        raise AssertionError("a transaction was begun despite the guard")

    def produce(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a record was produced despite the guard")

    def flush(self, timeout: float) -> int:
        return 0


class OneCheckpoint:
    topic = "checkpoints"

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint

    def load(self, key: str) -> Checkpoint:
        return Checkpoint.from_json(self.checkpoint.to_json())

    def partition(self, key: str) -> int:
        return 0


@pytest.mark.parametrize("reprocess", [False, True])
def test_a_job_fails_before_producing_when_the_recorded_id_names_another_schema(
    tmp_path: Path, reprocess: bool
) -> None:
    extract = tmp_path / "part-0001.csv"
    write_rows(extract, [order_row(n, random.Random(n)) for n in range(1, 4)])
    recorded = Checkpoint(
        key=KEY, fingerprint="sha256:old", rows_done=1, schema_id=3, schema_fingerprint=ORDERS_FP
    )
    job = IngestionJob(
        ORDERS,
        JobSettings(extract_date="2026-01-15", reprocess=reprocess),
        encoder=AvroEncoder(load_schema(ORDERS.schema_path), 7),
        producer_factory=NeverProducer,  # type: ignore[arg-type]
        checkpoints=cast(CheckpointStore, OneCheckpoint(recorded)),
        metrics=TopicMetrics(ORDERS.topic, NullSink()),
        run=RunInfo(dag_id="d", run_id="r", task_id="t", try_number=1),
        schema_guard=guard(FakeRegistry({3: PAYMENTS_TEXT})),
    )

    with pytest.raises(SchemaIdChangedError):
        job.run([str(extract)])
