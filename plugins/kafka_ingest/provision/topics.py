"""Topics are provisioned up front, from the specs, and a run checks they are there.

``python -m kafka_ingest topics ensure`` (run by ``make up`` and ``make demo``) creates each spec's
data topic, its ``<topic>.dlq`` and the checkpoint topic with the layout the spec declares
(:mod:`.topic_settings`). It is idempotent: a topic that exists is compared with its declaration,
and a difference (drift) is reported; only configs whose change cannot touch a record already
written are put right (retention, min ISR, segment settings). Partitions, replication factor and
cleanup policy are reported only: changing them moves keys, needs a reassignment plan, or decides
what happens to data already written, which is a person's call.

A run (:func:`require_topics`) checks its three topics before it reads anything, so a missing topic
fails the task at once with the topic's name and the command that creates it, instead of waiting
on a broker that will never create it (``auto.create.topics.enable=false``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from kafka_ingest.errors import PermanentError
from kafka_ingest.specs import TopicSpec
from kafka_ingest.topic_settings import CHECKPOINT_TOPIC, TopicSettings

ENSURE_COMMAND = "python -m kafka_ingest topics ensure"
#: Configs whose change leaves every record already written as it is.
SAFE_TO_FIX = frozenset(
    {
        "retention.ms",
        "min.insync.replicas",
        "segment.ms",
        "min.cleanable.dirty.ratio",
        "max.message.bytes",
        "retention.bytes",
    }
)


class MissingTopicError(PermanentError):
    """A topic the run writes to does not exist, or the run may not see it; brokers do not create
    topics on their own, so no retry can help until someone provisions it."""


@dataclass(frozen=True)
class TopicPlan:
    """A topic and how it is declared; ``role`` is ``data``, ``dlq``, ``checkpoints`` or ``state``
    (laid out like the checkpoint topic, but only the replay's: its audit topic)."""

    name: str
    settings: TopicSettings
    role: str


@dataclass
class Outcome:
    """What ``ensure`` found and did for one topic."""

    topic: str
    status: str = "ok"  # ok | created | fixed | drift | missing
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{self.status:8} {self.topic}" + (f": {'; '.join(self.notes)}" if self.notes else "")


def plan_topics(
    specs: Iterable[TopicSpec], checkpoint_topic: str, suffix: str = "", *, state_topics: Iterable[str] = ()
) -> list[TopicPlan]:
    """Each spec's data and DLQ topic (``suffix`` appended, as the DAG factory does), and the
    checkpoint topic, once each; ``state_topics`` are more compacted topics laid out like the
    checkpoint topic (the DLQ replay's ``_kafka_ingest.replays``), granted to the replay principal."""
    plans: dict[str, TopicPlan] = {}
    for spec in specs:
        topic = spec.topic + suffix
        plans.setdefault(topic, TopicPlan(topic, spec.topic_settings, "data"))
        plans.setdefault(f"{topic}.dlq", TopicPlan(f"{topic}.dlq", spec.dlq_settings, "dlq"))
    plans.setdefault(checkpoint_topic, TopicPlan(checkpoint_topic, CHECKPOINT_TOPIC, "checkpoints"))
    for name in state_topics:
        plans.setdefault(name, TopicPlan(name, CHECKPOINT_TOPIC, "state"))
    return list(plans.values())


def spec_plans(spec: TopicSpec, checkpoint_topic: str) -> list[TopicPlan]:
    """The three topics one run of ``spec`` writes to."""
    return plan_topics([spec], checkpoint_topic)


def ensure_topics(
    admin: AdminClient, plans: Sequence[TopicPlan], *, fix: bool = True, timeout_s: float = 30.0
) -> list[Outcome]:
    """Create what is missing and compare what exists; ``fix=False`` only reports."""
    # Each topic's own metadata, not the cluster's: a cluster of thousands of topics costs a
    # short-lived task tens of MB and ~0.1 s per full listing.
    found, brokers = {}, 0
    for plan in plans:
        metadata = admin.list_topics(topic=plan.name, timeout=timeout_s)
        brokers = len(metadata.brokers)
        topic = metadata.topics.get(plan.name)
        if topic is not None and topic.error is None and topic.partitions:
            found[plan.name] = topic
    outcomes = []
    missing = [plan for plan in plans if plan.name not in found]
    created = _create(admin, missing, brokers, timeout_s) if fix else {}
    for plan in plans:
        if plan.name in created:
            outcomes.append(created[plan.name])
        elif plan.name not in found:
            outcomes.append(Outcome(plan.name, "missing", [f"would create it: {describe(plan, brokers)}"]))
        else:
            outcomes.append(_compare(admin, plan, found[plan.name], brokers, fix, timeout_s))
    return outcomes


def effective(settings: TopicSettings, brokers: int) -> tuple[int, int, list[str]]:
    """Replication factor and min ISR on a cluster of ``brokers`` (capped on a small development
    cluster, with a note saying so)."""
    replicas = min(settings.replication_factor, max(brokers, 1))
    min_isr = min(settings.min_insync_replicas, replicas)
    notes = []
    if replicas < settings.replication_factor:
        notes.append(
            f"replication factor {replicas} and min ISR {min_isr} (declared {settings.replication_factor} "
            f"and {settings.min_insync_replicas}; the cluster has {brokers} broker(s))"
        )
    return replicas, min_isr, notes


def describe(plan: TopicPlan, brokers: int) -> str:
    replicas, min_isr, _ = effective(plan.settings, brokers)
    s = plan.settings
    retention = "forever" if s.retention_ms < 0 else f"{s.retention_ms / 86_400_000:g}d"
    return (
        f"{s.partitions} partition(s), RF {replicas}, min ISR {min_isr}, {s.cleanup_policy}, "
        f"retention {retention}"
    )


def _create(
    admin: AdminClient, plans: Sequence[TopicPlan], brokers: int, timeout_s: float
) -> dict[str, Outcome]:
    if not plans:
        return {}
    new = []
    for plan in plans:
        replicas, min_isr, _ = effective(plan.settings, brokers)
        new.append(
            NewTopic(
                plan.name,
                num_partitions=plan.settings.partitions,
                replication_factor=replicas,
                config=plan.settings.topic_configs(min_isr),
            )
        )
    outcomes = {}
    futures = admin.create_topics(new, request_timeout=timeout_s)
    for plan in plans:
        name = plan.name
        try:
            futures[name].result(timeout=timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        notes = [describe(plan, brokers), *effective(plan.settings, brokers)[2]]
        outcomes[name] = Outcome(name, "created", notes)
    _wait_visible(admin, [plan.name for plan in plans], timeout_s)
    return outcomes


def _wait_visible(admin: AdminClient, names: Sequence[str], timeout_s: float) -> None:
    """Until each new topic has its partitions and their leaders in the brokers' metadata.

    CreateTopics answers once the controller has committed the topic; a broker's metadata cache
    follows a moment later (seconds on a loaded machine), and until then the topic reads as
    unknown: a run started right after provisioning would fail as if it were missing (seen in
    tests/integration/test_registry_restart.py). Past the bound the caller's own checks speak.
    """
    deadline = time.monotonic() + timeout_s
    pending = list(names)
    while pending and time.monotonic() < deadline:
        topic = admin.list_topics(topic=pending[0], timeout=timeout_s).topics.get(pending[0])
        if (
            topic is not None
            and topic.error is None
            and topic.partitions
            and all(p.leader >= 0 for p in topic.partitions.values())
        ):
            pending.pop(0)
        else:
            time.sleep(0.2)


def _compare(
    admin: AdminClient, plan: TopicPlan, topic: Any, brokers: int, fix: bool, timeout_s: float
) -> Outcome:
    outcome = Outcome(plan.name)
    declared = plan.settings
    replicas, min_isr, capped = effective(declared, brokers)
    partitions = len(topic.partitions)
    if partitions != declared.partitions:
        outcome.notes.append(
            f"{partitions} partition(s), declared {declared.partitions}: not changed (a different count "
            "sends keys to other partitions; change it by hand if that is intended)"
        )
    actual_rf = min((len(p.replicas) for p in topic.partitions.values()), default=0)
    if actual_rf != replicas:
        outcome.notes.append(
            f"replication factor {actual_rf}, declared {replicas}: not changed (needs a partition "
            "reassignment: kafka-reassign-partitions)"
        )
    resource = ConfigResource(ResourceType.TOPIC, plan.name)
    current = admin.describe_configs([resource], request_timeout=timeout_s)[resource].result(
        timeout=timeout_s
    )
    to_set = []
    for name, value in declared.topic_configs(min_isr).items():
        have = current[name].value if name in current else None
        if have == value:
            continue
        if name in SAFE_TO_FIX:
            to_set.append(ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET))
            outcome.notes.append(f"{name} {have} -> {value}" + ("" if fix else " (would fix)"))
        else:
            outcome.notes.append(
                f"{name} {have}, declared {value}: not changed (it decides what happens to records "
                "already written)"
            )
    if to_set and fix:
        resource = ConfigResource(ResourceType.TOPIC, plan.name, incremental_configs=to_set)
        admin.incremental_alter_configs([resource], request_timeout=timeout_s)[resource].result(
            timeout=timeout_s
        )
    fixed_only = len(to_set) == len(outcome.notes)
    if outcome.notes:
        outcome.status = "fixed" if fix and fixed_only else "drift"
    elif capped:
        outcome.notes.extend(capped)
    return outcome


def require_topics(admin: AdminClient, topics: Iterable[str], *, timeout_s: float = 30.0) -> dict[str, int]:
    """Each topic's partition count; raises :class:`MissingTopicError` naming the topics a run
    cannot use and the command that creates them."""
    found, missing, denied = {}, [], []
    for topic in dict.fromkeys(topics):
        metadata = admin.list_topics(topic=topic, timeout=timeout_s).topics.get(topic)
        error = None if metadata is None else metadata.error
        if error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            denied.append(topic)
        elif metadata is None or error is not None or not metadata.partitions:
            missing.append(topic)
        else:
            found[topic] = len(metadata.partitions)
    problems = []
    if missing:
        problems.append(
            f"Topic(s) {', '.join(missing)} do not exist, and the brokers do not create topics on their "
            f"own: create them with `{ENSURE_COMMAND}` (`make up` runs it)."
        )
    if denied:
        problems.append(
            f"Not authorized to DESCRIBE topic(s) {', '.join(denied)}: grant the ingest principal its ACLs "
            f"(`{ENSURE_COMMAND} --acls`, docs/security.md)."
        )
    if problems:
        raise MissingTopicError(" ".join(problems))
    return found
