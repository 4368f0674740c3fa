"""``topics ensure`` against the stack's broker, and a run that meets a missing topic.

The brokers never create topics (``auto.create.topics.enable=false``): each spec's topics are
provisioned with their declared layout, a second ensure changes nothing, drift is reported and
only what cannot touch written records is fixed, and a run without its topic fails before it
reads its extract, naming the topic and the command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException
from confluent_kafka import Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    ResourceType,
)
from ingest_helpers import DATE, Endpoints, task_context

from kafka_ingest.operators.datasets import OrdersToKafkaOperator
from kafka_ingest.provision.topics import ensure_topics, plan_topics
from kafka_ingest.testing.provision import provision_topics
from kafka_ingest.topic_settings import DAY_MS
from kafka_ingest.topics.orders import ORDERS

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def topic_configs(admin: AdminClient, topic: str) -> dict[str, str]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    return {name: entry.value for name, entry in entries.items()}


def alter(admin: AdminClient, topic: str, name: str, value: str) -> None:
    entry = ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)


def test_the_broker_does_not_create_topics_on_its_own(kafka_bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    broker = next(iter(admin.list_topics(timeout=30).brokers))
    resource = ConfigResource(ResourceType.BROKER, str(broker))
    config = admin.describe_configs([resource])[resource].result(timeout=30)
    assert config["auto.create.topics.enable"].value == "false"


def test_ensure_creates_each_topic_with_its_declared_layout_then_changes_nothing(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    spec, checkpoints = replace(ORDERS, topic=unique_name("orders")), unique_name("checkpoints")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})

    first = provision_topics(kafka_bootstrap, spec, checkpoint_topic=checkpoints)
    second = provision_topics(kafka_bootstrap, spec, checkpoint_topic=checkpoints)

    assert [o.status for o in first] == ["created"] * 3
    assert [o.status for o in second] == ["ok"] * 3
    metadata = admin.list_topics(timeout=30).topics
    layout = {
        name: (len(metadata[name].partitions), topic_configs(admin, name)["cleanup.policy"])
        for name in (spec.topic, spec.dlq_topic, checkpoints)
    }
    assert layout == {spec.topic: (3, "delete"), spec.dlq_topic: (1, "delete"), checkpoints: (1, "compact")}
    assert topic_configs(admin, spec.dlq_topic)["retention.ms"] == str(30 * DAY_MS)


def test_drift_is_reported_and_only_what_is_safe_is_fixed(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    spec, checkpoints = replace(ORDERS, topic=unique_name("orders")), unique_name("checkpoints")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    provision_topics(kafka_bootstrap, spec, checkpoint_topic=checkpoints)
    alter(admin, spec.topic, "retention.ms", "60000")
    alter(admin, spec.dlq_topic, "cleanup.policy", "compact")
    admin.create_partitions([NewPartitions(checkpoints, 2)])[checkpoints].result(timeout=30)
    deadline = time.monotonic() + 30
    while len(admin.list_topics(topic=checkpoints, timeout=30).topics[checkpoints].partitions) < 2:
        assert time.monotonic() < deadline, "the new partition never showed in the metadata"
        time.sleep(0.2)

    plans = plan_topics([spec], checkpoints)
    report = {o.topic: o for o in ensure_topics(AdminClient({"bootstrap.servers": kafka_bootstrap}), plans)}

    assert report[spec.topic].status == "fixed"
    assert topic_configs(admin, spec.topic)["retention.ms"] == str(7 * DAY_MS)
    assert report[spec.dlq_topic].status == "drift"
    assert report[spec.dlq_topic].notes[0].startswith("cleanup.policy compact, declared delete: not changed")
    assert topic_configs(admin, spec.dlq_topic)["cleanup.policy"] == "compact"
    assert report[checkpoints].status == "drift"
    assert "2 partition(s), declared 1: not changed" in report[checkpoints].notes[0]


def test_the_command_checks_then_provisions_a_suffixed_set_of_topics(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    suffix, checkpoints = "." + unique_name("cmd"), unique_name("checkpoints")
    command = [sys.executable, "-m", "kafka_ingest", "topics", "ensure", "--bootstrap", kafka_bootstrap]
    command += ["--suffix", suffix, "--checkpoint-topic", checkpoints]
    env = {**os.environ, "PYTHONPATH": str(REPO / "plugins")}

    check = subprocess.run([*command, "--check"], capture_output=True, text=True, env=env, timeout=120)
    ensure = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    again = subprocess.run([*command, "--check"], capture_output=True, text=True, env=env, timeout=120)

    assert check.returncode == 1, check.stdout + check.stderr
    assert f"missing  {ORDERS.topic}{suffix}: would create it" in check.stdout
    assert ensure.returncode == 0, ensure.stdout + ensure.stderr
    assert f"created  {ORDERS.topic}{suffix}.dlq" in ensure.stdout
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"ok       {checkpoints}" in again.stdout


def test_a_run_without_its_topic_fails_before_reading_naming_the_topic_and_the_command(
    endpoints: Endpoints, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    """The extract does not even exist: the topic check comes first, and no retry can help."""
    topic = unique_name("orders")
    operator = OrdersToKafkaOperator(
        task_id="publish",
        extract_path=[str(tmp_path / "part-0001.csv")],
        extract_date=DATE,
        topic=topic,
        checkpoint_topic=endpoints.checkpoint_topic,
    )
    (tmp_path / "part-0001.csv").write_text("order_number\n")

    with pytest.raises(AirflowFailException) as failure:
        operator.execute(task_context())  # type: ignore[arg-type]

    message = str(failure.value)
    assert topic in message
    assert "python -m kafka_ingest topics ensure" in message
    assert topic not in AdminClient({"bootstrap.servers": endpoints.bootstrap}).list_topics(timeout=30).topics


def test_a_producer_cannot_create_a_topic_by_writing_to_it(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("nowhere")
    errors: list[str] = []
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.timeout.ms": 3000})
    producer.produce(topic, b"x", on_delivery=lambda err, _msg: errors.append(str(err)))
    producer.flush(10)
    assert len(errors) == 1, errors
    assert errors[0] != "None", "the record was delivered"
    assert topic not in AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=30).topics
