"""How a topic is laid out on the cluster: partitions, replicas, retention, cleanup, min ISR.

Declared once per spec (``TopicSpec.topic_settings`` and ``dlq_settings``, beside the schema in the
topic's module) and applied by ``python -m kafka_ingest topics ensure`` (:mod:`.provisioning`).
The brokers never create a topic on their own (``auto.create.topics.enable=false``): a topic made
by a metadata request would get the broker's defaults, not these.

The defaults are a production shape: three replicas, two of which must acknowledge a write
(``acks=all`` with ``min.insync.replicas=2``: one broker may be lost without losing a committed
record or refusing writes). A development cluster with fewer brokers gets them capped by
``topics ensure``, which says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSettings:
    """One topic's declared layout and the configs ``topics ensure`` keeps equal to it.

    :param partitions: the topic's partition count. Never changed once the topic exists: more
        partitions send a key to another partition (per-key order breaks; checkpoint keys would not
        be found), so a difference is reported, not fixed.
    :param replication_factor: replicas per partition (capped at the number of brokers).
    :param min_insync_replicas: replicas that must hold a write before ``acks=all`` succeeds.
    :param retention_ms: how long records are kept (``-1``: forever); ignored by compaction alone.
    :param cleanup_policy: ``delete`` or ``compact`` (a difference is reported, not fixed: it
        decides what happens to records already written).
    :param configs: further topic configs (``segment.ms``, ...), kept like ``retention.ms``.
    """

    partitions: int = 3
    replication_factor: int = 3
    min_insync_replicas: int = 2
    retention_ms: int = 7 * DAY_MS
    cleanup_policy: str = "delete"
    configs: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.partitions < 1 or self.replication_factor < 1 or self.min_insync_replicas < 1:
            raise ValueError(f"partitions, replication factor and min ISR must be at least 1: {self}")
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"min.insync.replicas {self.min_insync_replicas} > replication factor "
                f"{self.replication_factor}: no write could ever succeed with acks=all."
            )
        if self.cleanup_policy not in ("delete", "compact", "compact,delete", "delete,compact"):
            raise ValueError(f"cleanup.policy {self.cleanup_policy!r} is not delete, compact or both.")

    def topic_configs(self, min_insync_replicas: int | None = None) -> dict[str, str]:
        """The configs a topic is created with and compared against (``min_insync_replicas``:
        the capped value on a small cluster)."""
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            "min.insync.replicas": str(min_insync_replicas or self.min_insync_replicas),
            **self.configs,
        }


#: A data topic: three partitions, kept a week.
DATA_TOPIC = TopicSettings()
#: A DLQ topic: one partition is plenty for the bad rows; kept a month, long enough to triage and
#: replay them after a holiday.
DLQ_TOPIC = TopicSettings(partitions=1, retention_ms=30 * DAY_MS)
#: The checkpoint topic: compacted (the latest checkpoint per file key wins), one partition (a
#: checkpoint's partition is a hash of its key over the partition count, so that count must never
#: change), small segments so compaction actually runs on a low-traffic topic.
CHECKPOINT_TOPIC = TopicSettings(
    partitions=1,
    retention_ms=-1,
    cleanup_policy="compact",
    configs={"segment.ms": str(6 * 3600 * 1000), "min.cleanable.dirty.ratio": "0.1"},
)
