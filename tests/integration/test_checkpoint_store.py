"""CheckpointStore against the local broker: it never creates its topic, the provisioned one is
compacted, and a new store reads its offsets without waiting out librdkafka's leader-query timer."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from kafka_ingest.provision.topics import MissingTopicError
from kafka_ingest.publish.checkpoints import CheckpointStore
from kafka_ingest.testing.provision import provision_topics

pytestmark = pytest.mark.integration


def test_a_missing_checkpoint_topic_is_reported_and_not_created(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    """The store asks for the topic's own metadata; a topic made by that request would get the
    broker's defaults (3 partitions, ``delete``) and never be compacted. Topics come from
    ``topics ensure``; the store names the command instead."""
    name = unique_topic("checkpoints")
    store = CheckpointStore(name, client_config={"bootstrap.servers": kafka_bootstrap})

    with pytest.raises(MissingTopicError, match="python -m kafka_ingest topics ensure"):
        store.ensure_topic()

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    assert name not in admin.list_topics(timeout=30).topics


def test_a_provisioned_checkpoint_topic_is_compacted_with_one_partition(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    name = unique_topic("checkpoints")
    provision_topics(kafka_bootstrap, checkpoint_topic=name)
    store = CheckpointStore(name, client_config={"bootstrap.servers": kafka_bootstrap})

    store.ensure_topic()

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    config = admin.describe_configs([resource])[resource].result(timeout=30)
    partitions = admin.list_topics(topic=name, timeout=30).topics[name].partitions
    assert (config["cleanup.policy"].value, len(partitions)) == ("compact", 1)
    assert store.partition("any/file.csv") == 0


@contextmanager
def _cores_busy() -> Iterator[None]:
    """Four processes spinning on the two cores: the race below shows on a busy machine."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def test_a_new_store_reads_its_offsets_without_the_3_s_leader_query_retry(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    """Each task makes a new store and reads its file's checkpoint. With a new admin client per
    offset request, a client's first ``list_offsets`` could send its leader query on the bootstrap
    connection just as librdkafka dropped it, and wait 3 s for the retry timer (this test failed
    that way with such clients; see ``CheckpointStore._admin``)."""
    name = unique_topic("checkpoints")
    config = {"bootstrap.servers": kafka_bootstrap}
    provision_topics(kafka_bootstrap, checkpoint_topic=name)
    seconds = []
    with _cores_busy():
        for _ in range(200):
            started = time.monotonic()
            store = CheckpointStore(name, client_config=config)
            store.ensure_topic()  # as build_job does, before the file's checkpoint is read
            assert store.load("orders/2026-01-15/part-0001.csv") is None
            seconds.append(time.monotonic() - started)
    assert max(seconds) < 1.5, f"slowest starts: {sorted(seconds)[-3:]}"
