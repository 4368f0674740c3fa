"""The secured cluster's promises: the ingest principal can do its job and nothing more, and a
refused login, CA or ACL fails the task at once, naming the connection, with no secret anywhere:
not in the error, the logs, the rendered template fields, the metrics sent or XCom.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from cluster_helpers import DATE, Run, assert_exactly_once, read_committed
from cluster_stack import Cluster
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from kafka_ingest.operators.datasets import OrdersToKafkaOperator
from kafka_ingest.testing.samples import DayManifest, write_day

pytestmark = [pytest.mark.cluster]
CONN = "kafka_cluster_test"


@pytest.fixture
def run(cluster: Cluster, schema_registry_url: str, names: Callable[[str], str]) -> Run:
    return Run.provisioned(cluster, schema_registry_url, names)


@pytest.fixture
def manifest(tmp_path: Path) -> DayManifest:
    return write_day(tmp_path, "orders", DATE, rows=300, formats=("csv",), bad_ratio=0.05)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


class SentMetrics:
    """Every StatsD metric the operator sends (Airflow's ``Stats`` replaced for the test), as text."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def incr(self, stat: str, count: int = 1, rate: float = 1) -> None:
        self.lines.append(f"{stat}:{count}|c")

    def gauge(self, stat: str, value: float, rate: float = 1, delta: bool = False) -> None:
        self.lines.append(f"{stat}:{value}|g")

    def timing(self, stat: str, dt: Any) -> None:
        self.lines.append(f"{stat}:{dt}|ms")


@dataclass
class Failure:
    """What a refused try leaves behind: its error, the operator's rendered template fields, the
    metrics it sent and the XComs it pushed (a failed try returns none)."""

    error: AirflowFailException
    rendered: dict[str, Any]
    metrics: list[str]
    xcoms: list[Any]

    def texts(self) -> list[str]:
        return [str(self.error), json.dumps(self.rendered, default=str), *self.metrics, *map(str, self.xcoms)]


def operator_run(
    run: Run, manifest: DayManifest, monkeypatch: pytest.MonkeyPatch, connection: dict[str, Any]
) -> Failure:
    """One try of the real operator with ``connection`` as its Kafka connection; it must fail."""
    registry = {"conn_type": "schema_registry", "host": run.registry_url}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(connection))
    monkeypatch.setenv("AIRFLOW_CONN_SCHEMA_REGISTRY_DEFAULT", json.dumps(registry))
    sent = SentMetrics()
    monkeypatch.setattr("kafka_ingest.runtime.metrics.airflow_stats_sink", lambda: sent)
    operator = OrdersToKafkaOperator(
        task_id="publish",
        extract_path=manifest.files,
        extract_date=DATE,
        topic=run.topic,
        checkpoint_topic=run.checkpoint_topic,
        kafka_config_id=CONN,
    )
    xcoms: list[Any] = []
    ti = SimpleNamespace(
        dag_id="cluster",
        run_id="r1",
        task_id="publish",
        map_index=-1,
        try_number=1,
        xcom_push=lambda key, value, **_: xcoms.append((key, value)),
    )
    with pytest.raises(AirflowFailException) as failure:
        operator.execute({"ti": ti})  # type: ignore[arg-type]
    rendered = {name: getattr(operator, name) for name in operator.template_fields}
    return Failure(failure.value, rendered, sent.lines, xcoms)


def assert_no_secret(cluster: Cluster, *texts: str) -> None:
    secrets = [
        (cluster.stack_dir / "kafka-secrets" / f"{u}.password").read_text().strip()
        for u in ("admin", "ingest")
    ]
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_the_ingest_principal_publishes_a_day_exactly_once_with_only_its_acls(
    run: Run, manifest: DayManifest
) -> None:
    summary = run.attempt(manifest.files, "r1", batch_size=100)
    again = run.attempt(manifest.files, "r2", batch_size=100)

    assert summary["published"] == len(manifest.published)
    assert again["published"] == 0  # the checkpoint read back with READ on its topic, no group ACL
    assert_exactly_once(run.cluster, run.topic, manifest)


def test_a_wrong_sasl_password_fails_at_once_naming_the_connection_and_no_secret(
    run: Run, manifest: DayManifest, monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture
) -> None:
    connection = {**run.cluster.connection("ingest"), "password": "not-the-password"}

    failure = operator_run(run, manifest, monkeypatch, connection)

    message = str(failure.error)
    assert f"Kafka connection '{CONN}'" in message
    assert "Authentication failed" in message or "SASL authentication" in message
    assert failure.rendered["kafka_config_id"] == CONN  # what a rendered-template view shows
    assert failure.xcoms == []
    for text in (logs.text, *failure.texts()):
        assert "not-the-password" not in text
    assert_no_secret(run.cluster, logs.text, *failure.texts())
    assert read_committed(run.cluster, run.topic) == []


def test_an_untrusted_ca_fails_at_once_naming_the_connection(
    run: Run,
    manifest: DayManifest,
    monkeypatch: pytest.MonkeyPatch,
    logs: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other"),
            *("-keyout", str(tmp_path / "other.key"), "-out", str(other_ca)),
        ],
        check=True,
        capture_output=True,
    )
    connection = run.cluster.connection("ingest")
    connection["extra"] = {**connection["extra"], "ssl.ca.location": str(other_ca)}

    failure = operator_run(run, manifest, monkeypatch, connection)

    message = str(failure.error)
    assert f"Kafka connection '{CONN}'" in message
    assert "certificate verify failed" in message
    assert_no_secret(run.cluster, logs.text, *failure.texts())


def test_without_write_on_its_dlq_the_task_fails_before_producing_naming_topic_and_operation(
    run: Run, manifest: DayManifest, monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture
) -> None:
    admin = run.cluster.admin()
    dlq_write = AclBindingFilter(
        ResourceType.TOPIC,
        run.spec.dlq_topic,
        ResourcePatternType.LITERAL,
        "User:ingest",
        "*",
        AclOperation.WRITE,
        AclPermissionType.ALLOW,
    )
    assert admin.delete_acls([dlq_write])[dlq_write].result(timeout=30)

    failure = operator_run(run, manifest, monkeypatch, run.cluster.connection("ingest"))

    assert f"WRITE on topic {run.spec.dlq_topic}" in str(failure.error)
    assert read_committed(run.cluster, run.topic) == []
    assert read_committed(run.cluster, run.spec.dlq_topic) == []
    assert_no_secret(run.cluster, logs.text, *failure.texts())


def test_a_transactional_id_outside_the_granted_prefix_is_refused(run: Run) -> None:
    producer = Producer({**run.cluster.config("ingest"), "transactional.id": f"someone-else/{run.topic}"})
    with pytest.raises(KafkaException) as refused:
        producer.init_transactions(30)
    assert "TRANSACTIONAL_ID_AUTHORIZATION_FAILED" in refused.value.args[0].name()


def test_the_ingest_principal_cannot_create_topics_or_read_other_topics(
    run: Run, names: Callable[[str], str]
) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(run.cluster.config("ingest"))
    topic = names("not-mine")
    future = admin.create_topics([NewTopic(topic, 1, 1)])[topic]
    with pytest.raises(KafkaException) as refused:
        future.result(timeout=30)
    assert "AUTHORIZATION_FAILED" in refused.value.args[0].name()
