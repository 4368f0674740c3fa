"""CheckpointStore against the local broker: the checkpoint topic it creates is compacted."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from kafka_ingest.checkpoints import CheckpointStore

pytestmark = pytest.mark.integration


def test_a_missing_checkpoint_topic_is_created_compacted_not_auto_created(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    """The store asks for the topic's own metadata; on a broker that auto-creates topics, that
    request would make a topic with the broker's defaults (3 partitions, ``delete``) unless the
    client forbids it, and the store would then find the topic and never compact it."""
    name = unique_topic("checkpoints")
    store = CheckpointStore(name, client_config={"bootstrap.servers": kafka_bootstrap})

    store.ensure_topic()

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    config = admin.describe_configs([resource])[resource].result(timeout=30)
    partitions = admin.list_topics(topic=name, timeout=30).topics[name].partitions
    assert (config["cleanup.policy"].value, len(partitions)) == ("compact", 1)
    assert store.partition("any/file.csv") == 0
