"""A DLQ replay on the secured cluster runs as a principal of its own, ``User:replay``: it reads
the DLQ and the topic, which the ingest principal may only write, and commits under its own
transactional ids (``kafka-ingest-replay/``). The ingest principal cannot replay, and is told so
before anything is read.

The day is ingested as the ingest principal with a rule that was wrong (it refused every JPY
order); the replay runs the production rules, as after the fix (docs/dlq-replay.md).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cluster_helpers import DATE, Run, read_committed
from cluster_stack import Cluster
from confluent_kafka.schema_registry import SchemaRegistryClient

from kafka_ingest.batches import RunInfo
from kafka_ingest.provision.access import AccessDenied
from kafka_ingest.replay.job import ReplaySettings
from kafka_ingest.replay.selection import Selection
from kafka_ingest.replay.wiring import build_replay_job
from kafka_ingest.runtime.metrics import NullSink, TopicMetrics
from kafka_ingest.specs import TopicSpec
from kafka_ingest.testing.samples import DayManifest, write_day
from kafka_ingest.testing.topics import read_topic

pytestmark = [pytest.mark.cluster]


@pytest.fixture
def replays_topic(names: Callable[[str], str]) -> str:
    return names("replays")


@pytest.fixture
def run(cluster: Cluster, schema_registry_url: str, names: Callable[[str], str], replays_topic: str) -> Run:
    return Run.provisioned(cluster, schema_registry_url, names, state_topics=(replays_topic,))


@pytest.fixture
def manifest(tmp_path: Path) -> DayManifest:
    return write_day(tmp_path, "orders", DATE, rows=300, formats=("csv",), bad_ratio=0.0)


def refusing_jpy(spec: TopicSpec) -> TopicSpec:
    """``spec`` with its currency rule wrongly refusing JPY: the bug the replay follows."""

    def prepare(frame: pd.DataFrame) -> pd.DataFrame:
        prepared = spec.prepare(frame)
        allowed = prepared["_currency_allowed"] & (frame["currency"] != "JPY").to_numpy()
        return prepared.assign(_currency_allowed=allowed)

    return replace(spec, prepare=prepare)


def replay(run: Run, replays_topic: str, user: str, replay_id: str) -> dict[str, Any]:
    """The day's DLQ replayed from the originals with the current rules, logged in as ``user``."""
    day = Selection(date_from=DATE, date_to=DATE)
    settings = ReplaySettings(replay_id=replay_id, selection=day, who=user)
    job = build_replay_job(
        run.spec,
        settings,
        kafka_config=run.cluster.config(user),
        conn_id=f"kafka_{user}",
        registry_client=SchemaRegistryClient({"url": run.registry_url, "timeout": 10}),
        checkpoint_topic=run.checkpoint_topic,
        replays_topic=replays_topic,
        metrics=TopicMetrics(run.topic, NullSink()),
        run=RunInfo("cluster", replay_id, "replay"),
    )
    return job.run().as_dict()


def test_the_replay_principal_replays_a_day_exactly_once_with_only_its_acls(
    run: Run, replays_topic: str, manifest: DayManifest
) -> None:
    summary = run.attempt(manifest.files, "r1", spec=refusing_jpy(run.spec))
    dlq_before = read_committed(run.cluster, run.spec.dlq_topic)
    assert summary["dlq"] == len(dlq_before) > 0

    first = replay(run, replays_topic, "replay", "cluster-replay-1")
    again = replay(run, replays_topic, "replay", "cluster-replay-2")

    assert first["counts"]["published"] == len(dlq_before)
    assert again["counts"]["published"] == 0
    assert again["counts"]["skipped_already_published"] == len(dlq_before)
    keys = Counter((record.key or b"").decode() for record in read_committed(run.cluster, run.topic))
    assert keys == Counter(manifest.published)  # every order once: the JPY ones by the replay
    assert len(read_committed(run.cluster, run.spec.dlq_topic)) == len(dlq_before)
    # Read as the super user: the test's reader joins a group, which neither principal may.
    audits = [json.loads(r.value) for r in read_topic(run.cluster.config("admin"), replays_topic)]
    assert [a["who"] for a in audits] == ["replay", "replay"]


def test_the_ingest_principal_cannot_replay_and_is_told_which_acls_it_lacks(
    run: Run, replays_topic: str, manifest: DayManifest
) -> None:
    run.attempt(manifest.files, "r1", spec=refusing_jpy(run.spec))
    dlq_before = read_committed(run.cluster, run.spec.dlq_topic)

    with pytest.raises(AccessDenied) as refused:
        replay(run, replays_topic, "ingest", "cluster-replay-as-ingest")

    message = str(refused.value)
    assert "Kafka connection 'kafka_ingest'" in message
    assert f"READ on topic {run.spec.dlq_topic}" in message
    assert f"on topic {replays_topic}" in message
    assert len(read_committed(run.cluster, run.topic)) == len(manifest.published) - len(dlq_before)
    assert read_committed(run.cluster, run.spec.dlq_topic) == dlq_before
