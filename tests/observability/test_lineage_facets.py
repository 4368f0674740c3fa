"""OpenLineage facets of the ingest operator, built without services (kafka_ingest/lineage.py).

The operator runs with a stand-in job (as in test_operator_run.py); its facets are turned into a
full RunEvent with the provider's own serializer and checked against the OpenLineage JSON schema.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("airflow.providers.openlineage", reason="apache-airflow-providers-openlineage is pinned")

from lineage_schema import validate_event

from kafka_ingest import lineage
from kafka_ingest.operators.datasets import OrdersToKafkaOperator, PaymentsToKafkaOperator
from kafka_ingest.pipeline import FileSummary
from kafka_ingest.topics.orders import ORDERS

SERVERS = "127.0.0.1:19092,127.0.0.1:19093"
PAN = "4111111111111111"


def _event(operator_lineage: Any, event_type: str = "COMPLETE") -> dict[str, Any]:
    """A whole RunEvent around the operator's facets, as the provider would emit it."""
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.serde import Serde
    from openlineage.client.uuid import generate_new_uuid

    event = RunEvent(
        eventType=RunState[event_type],
        eventTime="2026-01-05T00:00:00+00:00",
        run=Run(runId=str(generate_new_uuid()), facets=operator_lineage.run_facets),
        job=Job(namespace="default", name="ingest_orders.publish"),
        producer=lineage.PRODUCER,
        inputs=operator_lineage.inputs,
        outputs=operator_lineage.outputs,
    )
    return dict(json.loads(Serde.to_json(event)))


@pytest.fixture
def run_operator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """Runs an operator over two local files with a stand-in job returning these summaries."""
    from kafka_ingest import wiring
    from kafka_ingest.hooks.kafka import TransactionalProducerHook
    from kafka_ingest.hooks.schema_registry import SchemaRegistryHook

    files = [tmp_path / "part-1.csv", tmp_path / "part-2.csv"]
    for f in files:
        f.write_text("order_number\n")

    def run(
        operator_class: type = OrdersToKafkaOperator, *, fail: Exception | None = None, **kwargs: Any
    ) -> Any:
        summaries = [
            FileSummary(
                file=str(files[0]),
                rows_read=10,
                published=7,
                dlq=3,
                dlq_by_stage={"read": 1, "validate": 2},
                dlq_by_rule={"status_allowed": 2, "key_unique_in_day": 1},
                bytes_published=700,
            ),
            FileSummary(file=str(files[1]), rows_read=5, published=5, bytes_published=500),
        ]

        class Job:
            def run(self, *_: Any) -> list[FileSummary]:
                if fail is not None:
                    raise fail
                return summaries

        monkeypatch.setattr(wiring, "build_job", lambda *a, **k: (Job(), 42))
        monkeypatch.setattr(
            TransactionalProducerHook, "client_config", lambda self: {"bootstrap.servers": SERVERS}
        )
        monkeypatch.setattr(SchemaRegistryHook, "get_client", lambda self: None)
        operator = operator_class(task_id="publish", extract_path=[str(f) for f in files], **kwargs)
        ti = SimpleNamespace(dag_id="d", run_id="r", task_id="publish", map_index=-1, try_number=1)
        try:
            operator.execute({"ti": ti})
        except Exception:
            if fail is None:
                raise
        return operator, files

    return run


def test_complete_event_names_each_file_and_the_topic_and_its_dlq_and_validates(run_operator: Any) -> None:
    operator, files = run_operator()

    event = _event(operator.get_openlineage_facets_on_complete(None))

    validate_event(event)
    assert [(i["namespace"], i["name"]) for i in event["inputs"]] == [("file", str(f)) for f in files]
    assert [(o["namespace"], o["name"]) for o in event["outputs"]] == [
        ("kafka://127.0.0.1:19092", ORDERS.topic),
        ("kafka://127.0.0.1:19092", f"{ORDERS.topic}.dlq"),
    ]
    assert "checkpoint" not in json.dumps(event["outputs"])


def test_input_schema_is_the_reader_columns_and_assertions_one_per_rule_with_failing_counts(
    run_operator: Any,
) -> None:
    from kafka_ingest.validation import row_rules

    operator, _ = run_operator()

    first = _event(operator.get_openlineage_facets_on_complete(None))["inputs"][0]

    assert [f["name"] for f in first["facets"]["schema"]["fields"]] == list(ORDERS.all_columns)
    assertions = {a["assertion"]: a for a in first["inputFacets"]["dataQualityAssertions"]["assertions"]}
    assert set(assertions) == {lineage.PARSES_ASSERTION, *(r.name for r in row_rules(ORDERS))}
    assert assertions["status_allowed"]["success"] is False
    assert assertions[lineage.PARSES_ASSERTION]["success"] is False
    assert assertions["currency_allowed"]["success"] is True
    if "failures" in assertions["status_allowed"]:
        assert (assertions["status_allowed"]["failures"], assertions["key_unique_in_day"]["failures"]) == (
            2,
            1,
        )


def test_outputs_carry_the_avro_schema_registry_id_and_statistics(run_operator: Any) -> None:
    operator, _ = run_operator()

    topic, dlq = _event(operator.get_openlineage_facets_on_complete(None))["outputs"]

    fields = {f["name"]: f for f in topic["facets"]["schema"]["fields"]}
    assert fields["total_price"]["type"] == "decimal(12,2)"
    assert [f["name"] for f in fields["items"]["fields"]] == ["product_id", "quantity", "unit_price"]
    assert topic["facets"]["kafkaIngestSchema"]["schemaId"] == 42
    assert topic["facets"]["kafkaIngestSchema"]["subject"] == f"{ORDERS.topic}-value"
    assert topic["outputFacets"]["outputStatistics"] == {
        **topic["outputFacets"]["outputStatistics"],
        "rowCount": 12,
        "size": 1200,
    }
    assert dlq["outputFacets"]["outputStatistics"]["rowCount"] == 3


def test_run_facet_carries_the_summary(run_operator: Any) -> None:
    operator, _ = run_operator()

    facet = _event(operator.get_openlineage_facets_on_complete(None))["run"]["facets"]["kafkaIngest"]

    assert (facet["rowsRead"], facet["published"], facet["dlq"], facet["skipped"], facet["dryRun"]) == (
        15,
        12,
        3,
        0,
        False,
    )
    assert facet["dlqByRule"] == {"status_allowed": 2, "key_unique_in_day": 1}


def test_dry_run_says_so_and_reports_no_output_statistics(run_operator: Any) -> None:
    operator, _ = run_operator(validate_only=True)

    event = _event(operator.get_openlineage_facets_on_complete(None))

    validate_event(event)
    assert event["run"]["facets"]["kafkaIngest"]["dryRun"] is True
    assert all("outputStatistics" not in o.get("outputFacets", {}) for o in event["outputs"])


def test_failure_event_carries_the_error_without_a_card_number(run_operator: Any) -> None:
    operator, _ = run_operator(PaymentsToKafkaOperator, fail=RuntimeError(f"broker said no about {PAN}"))

    event = _event(operator.get_openlineage_facets_on_failure(None), "FAIL")

    validate_event(event)
    message = event["run"]["facets"]["errorMessage"]["message"]
    assert "RuntimeError: broker said no" in message
    assert PAN not in json.dumps(event)


def test_start_event_lists_the_files_and_topic_before_anything_ran(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from kafka_ingest.hooks.kafka import TransactionalProducerHook

    monkeypatch.setattr(
        TransactionalProducerHook, "client_config", lambda self: {"bootstrap.servers": SERVERS}
    )
    (tmp_path / "part-1.jsonl").write_text("{}\n")
    operator = OrdersToKafkaOperator(task_id="publish", extract_path=str(tmp_path))

    event = _event(operator.get_openlineage_facets_on_start(), "START")

    validate_event(event)
    assert [i["name"] for i in event["inputs"]] == [str(tmp_path / "part-1.jsonl")]
    assert event["outputs"][0]["name"] == ORDERS.topic


def test_a_facet_builder_that_raises_is_logged_and_gives_empty_lineage(
    run_operator: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    operator, _ = run_operator()

    def broken(*_: Any, **__: Any) -> Any:
        raise ValueError("facet builder bug")

    monkeypatch.setattr(lineage, "operator_lineage", broken)
    with caplog.at_level(logging.WARNING, logger="kafka_ingest.lineage"):
        result = operator.get_openlineage_facets_on_complete(None)

    assert (result.inputs, result.outputs, result.run_facets) == ([], [], {})
    assert "facet builder bug" in caplog.text


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/data/orders/dt=2026-01-05/part-1.csv", ("file", "/data/orders/dt=2026-01-05/part-1.csv")),
        ("file:///data/part-1.csv", ("file", "/data/part-1.csv")),
        (
            "s3://landing/orders/dt=2026-01-05/part-1.csv.gz",
            ("s3://landing", "orders/dt=2026-01-05/part-1.csv.gz"),
        ),
        ("gs://bucket/a/b.parquet", ("gs://bucket", "a/b.parquet")),
    ],
)
def test_files_are_named_as_openlineage_names_them(path: str, expected: tuple[str, str]) -> None:
    assert lineage.file_dataset_name(path) == expected


def test_kafka_namespace_is_the_first_bootstrap_server_without_its_protocol() -> None:
    assert lineage.kafka_namespace("SASL_SSL://b1:9093,b2:9093") == "kafka://b1:9093"
