"""Runs against the secured cluster, and the row-by-row exactly-once check.

A run is ``build_job`` + ``IngestionJob.run`` exactly as the operator wires them, logged in as the
ingest principal. Reading back is what a downstream consumer does: the consumer principal, a
``read_committed`` consumer over every partition up to its end, each record tied to its source row
by its ``source.file``/``source.row`` headers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any

from cluster_stack import Cluster
from confluent_kafka.schema_registry import SchemaRegistryClient

from kafka_ingest.batches import RunInfo
from kafka_ingest.pipeline.settings import JobSettings
from kafka_ingest.pipeline.summary import summarize
from kafka_ingest.pipeline.wiring import build_job
from kafka_ingest.runtime.metrics import NullSink, TopicMetrics
from kafka_ingest.specs import TopicSpec
from kafka_ingest.testing.samples import DayManifest
from kafka_ingest.testing.topics import read_topic
from kafka_ingest.topics.orders import ORDERS

DATE = "2026-01-01"
#: A try meeting a fault fails in seconds, not minutes (faults/helpers.py has the same reasoning).
FAST = {"transaction.timeout.ms": 10_000, "delivery.timeout.ms": 5_000, "socket.timeout.ms": 3_000}


@dataclass(frozen=True)
class Run:
    cluster: Cluster
    registry_url: str
    topic: str
    checkpoint_topic: str

    @classmethod
    def provisioned(
        cls,
        cluster: Cluster,
        registry_url: str,
        names: Callable[[str], str],
        *,
        state_topics: tuple[str, ...] = (),
    ) -> Run:
        """A run on topics of its own, created with their ACLs as ``topics ensure --acls`` would."""
        run = cls(cluster, registry_url, names("orders"), names("checkpoints"))
        cluster.provision(run.spec, checkpoint_topic=run.checkpoint_topic, state_topics=state_topics)
        return run

    @property
    def spec(self) -> TopicSpec:
        return replace(ORDERS, topic=self.topic)

    def attempt(
        self,
        files: Sequence[str],
        run_id: str,
        *,
        batch_size: int = 200,
        fast: bool = False,
        user: str = "ingest",
        spec: TopicSpec | None = None,
    ) -> dict[str, Any]:
        """One try of the day's ``files`` as ``user``, with the run's spec (or ``spec``: its rules)."""
        settings = JobSettings(
            extract_date=DATE, batch_size=batch_size, max_dlq_ratio=None, timeout_s=8.0 if fast else 60.0
        )
        job, schema_id = build_job(
            spec or self.spec,
            settings,
            kafka_config=self.cluster.config(user),
            registry_client=SchemaRegistryClient({"url": self.registry_url, "timeout": 10}),
            checkpoint_topic=self.checkpoint_topic,
            auto_register=True,
            metrics=TopicMetrics(self.topic, NullSink()),
            run=RunInfo("cluster", run_id, "publish", -1, 1),
            producer_overrides=FAST if fast else None,
        )
        return summarize(job.run(list(files)), topic=self.topic, schema_id=schema_id, validate_only=False)


@dataclass
class Record:
    key: bytes | None
    headers: dict[str, bytes]

    @property
    def source(self) -> tuple[str, int]:
        return PurePosixPath(self.headers["source.file"].decode()).name, int(self.headers["source.row"])


def read_committed(cluster: Cluster, topic: str, *, timeout_s: float = 60.0) -> list[Record]:
    """Every committed record of ``topic``, read as the consumer principal through the same reader
    the demo uses on the secured stack (``read_topic`` with a client config): it reads to the high
    watermark, so a record committed behind another producer's open transaction is not missed."""
    return [
        Record(record.key, dict(record.headers))
        for record in read_topic(cluster.config("consumer"), topic, timeout_s=timeout_s)
    ]


def assert_exactly_once(cluster: Cluster, topic: str, manifest: DayManifest) -> None:
    """Each valid row once, each rejected row once in the DLQ, nothing else."""
    records = read_committed(cluster, topic)
    positions = Counter(record.source for record in records)
    assert [where for where, count in positions.items() if count > 1] == [], "rows published twice"
    assert Counter((record.key or b"").decode() for record in records) == Counter(manifest.published)
    dlq = Counter(record.source for record in read_committed(cluster, f"{topic}.dlq"))
    assert [where for where, count in dlq.items() if count > 1] == [], "rows dead-lettered twice"
    assert set(dlq) == set(manifest.rejected)
