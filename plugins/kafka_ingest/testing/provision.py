"""Provision a spec's topics the way ``topics ensure`` does, for tests, the demo and the bench.

The brokers never create topics (``auto.create.topics.enable=false``), and a run refuses to start
without its three topics, so whoever makes up a topic name (a test's unique topic, a bench run)
provisions it first, with the spec's declared layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka.admin import AdminClient

from kafka_ingest.provision.topics import Outcome, ensure_topics, plan_topics
from kafka_ingest.specs import TopicSpec


def provision_topics(
    kafka: str | Mapping[str, Any], *specs: TopicSpec, checkpoint_topic: str, suffix: str = ""
) -> list[Outcome]:
    """Create the specs' data and DLQ topics and the checkpoint topic; ``kafka`` is bootstrap
    servers or a librdkafka config (an admin's, on a secured cluster)."""
    config: dict[str, Any] = {"bootstrap.servers": kafka} if isinstance(kafka, str) else dict(kafka)
    return ensure_topics(AdminClient(config), plan_topics(specs, checkpoint_topic, suffix))
