"""The ingest and consumer principals' ACLs, derived from the same topic declarations.

Least privilege for the principal the operators log in as (docs/security.md says why each one):

============================  =================================  ===============================
resource                      operations                         why
============================  =================================  ===============================
each data and DLQ topic       WRITE, DESCRIBE                    produce; metadata (partitions)
the checkpoint topic          READ, WRITE, DESCRIBE              the checkpoint is written in the
                                                                 batch's transaction and read back
                                                                 on a retry (list offsets, fetch)
TransactionalId ``kafka-ingest/`` (prefixed)  WRITE, DESCRIBE    init/commit/abort transactions
                                                                 under the project's own ids only
============================  =================================  ===============================

Nothing on any consumer group: the checkpoint reader assigns its partition and never joins a group
or commits an offset, so no group request is sent (measured: a checkpoint read and a resume work
without a group ACL). Nothing on the cluster (no CREATE: topics come from ``topics ensure``; no
IdempotentWrite: not needed by transactional producers since KAFKA-10619), nothing on other topics.

The consumer principal (for downstream reads and the tests' checks) gets READ and DESCRIBE on the
data and DLQ topics and READ on every consumer group.

The replay principal (the DLQ replay, docs/dlq-replay.md) reads what the ingest principal may not:
READ, WRITE and DESCRIBE on the data topics (the keys already published for a day; the replayed
rows), the DLQ topics (the envelopes; rows that fail again), the checkpoint topic (the replay's
checkpoint, in the same transaction) and the replay's audit topic, and WRITE and DESCRIBE on the
prefixed TransactionalId ``kafka-ingest-replay/``. No group: its readers assign partitions and
never commit. The ingest principal gets nothing on the audit topic.

The registry principal (Apicurio's KafkaSQL storage, when a registry topic prefix is given) gets,
on the topics named ``<prefix>.`` (prefixed: its journal, snapshots and events topics), READ,
WRITE, DESCRIBE, DESCRIBE_CONFIGS and CREATE: it creates them itself at start (auto-create is off
on the brokers), checks their configs so no schema can be deleted by retention, writes every change
to the journal and reads it all back. On the groups named ``<prefix>-`` (prefixed) it gets READ:
KafkaSQL joins a new group on every start (``apicurio.kafkasql.consumer.group-prefix`` plus a
random id, so the whole journal is replayed). Nothing else: no other topic, no cluster operation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from kafka_ingest.provision.topics import TopicPlan

#: The prefix of every transactional id the pipeline uses (``publish.checkpoints.transactional_id_for``
#: builds them from it).
TRANSACTIONAL_ID_PREFIX = "kafka-ingest/"
INGEST_PRINCIPAL = "User:ingest"
CONSUMER_PRINCIPAL = "User:consumer"
REPLAY_PRINCIPAL = "User:replay"
#: The prefix of every transactional id a DLQ replay uses (``replay.checkpoint.replay_transactional_id``
#: builds them from it).
REPLAY_TRANSACTIONAL_ID_PREFIX = "kafka-ingest-replay/"
REGISTRY_PRINCIPAL = "User:registry"

_Grant = tuple[ResourceType, str, ResourcePatternType, str, AclOperation]


def ingest_grants(plans: Sequence[TopicPlan], principal: str = INGEST_PRINCIPAL) -> list[_Grant]:
    """What the ingest principal may do, and nothing more."""
    topic, literal, prefixed = ResourceType.TOPIC, ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    grants: list[_Grant] = []
    for plan in plans:
        if plan.role == "state":
            continue  # the replay's audit topic: the replay principal's alone
        operations = [AclOperation.WRITE, AclOperation.DESCRIBE]
        if plan.role == "checkpoints":
            operations.insert(0, AclOperation.READ)
        grants += [(topic, plan.name, literal, principal, op) for op in operations]
    grants += [
        (ResourceType.TRANSACTIONAL_ID, TRANSACTIONAL_ID_PREFIX, prefixed, principal, AclOperation.WRITE),
        (ResourceType.TRANSACTIONAL_ID, TRANSACTIONAL_ID_PREFIX, prefixed, principal, AclOperation.DESCRIBE),
    ]
    return grants


def consumer_grants(plans: Sequence[TopicPlan], principal: str = CONSUMER_PRINCIPAL) -> list[_Grant]:
    """Read access to the data and DLQ topics, for downstream consumers and the tests' checks."""
    topic, literal = ResourceType.TOPIC, ResourcePatternType.LITERAL
    grants: list[_Grant] = []
    for plan in plans:
        if plan.role in ("data", "dlq"):
            grants += [
                (topic, plan.name, literal, principal, op)
                for op in (AclOperation.READ, AclOperation.DESCRIBE)
            ]
    grants.append((ResourceType.GROUP, "*", literal, principal, AclOperation.READ))
    return grants


def replay_grants(plans: Sequence[TopicPlan], principal: str = REPLAY_PRINCIPAL) -> list[_Grant]:
    """What a DLQ replay reads and writes: every planned topic, and its own transactional ids."""
    literal, prefixed = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    operations = (AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE)
    grants: list[_Grant] = [
        (ResourceType.TOPIC, plan.name, literal, principal, op) for plan in plans for op in operations
    ]
    grants += [
        (ResourceType.TRANSACTIONAL_ID, REPLAY_TRANSACTIONAL_ID_PREFIX, prefixed, principal, op)
        for op in (AclOperation.WRITE, AclOperation.DESCRIBE)
    ]
    return grants


def registry_topic_prefix(prefix: str) -> str:
    """The prefix of the registry's topics (``_registry`` -> ``_registry.journal`` ...)."""
    return f"{prefix}."


def registry_group_prefix(prefix: str) -> str:
    """The prefix of the registry's consumer groups (Apicurio's group prefix, scripts/stack)."""
    return f"{prefix}-"


def registry_grants(prefix: str, principal: str = REGISTRY_PRINCIPAL) -> list[_Grant]:
    """What Apicurio's KafkaSQL storage needs with its topics named ``<prefix>.*``."""
    prefixed = ResourcePatternType.PREFIXED
    topic_ops = (
        AclOperation.READ,
        AclOperation.WRITE,
        AclOperation.DESCRIBE,
        AclOperation.DESCRIBE_CONFIGS,
        AclOperation.CREATE,
    )
    grants: list[_Grant] = [
        (ResourceType.TOPIC, registry_topic_prefix(prefix), prefixed, principal, op) for op in topic_ops
    ]
    grants.append((ResourceType.GROUP, registry_group_prefix(prefix), prefixed, principal, AclOperation.READ))
    return grants


def bindings(grants: Iterable[_Grant]) -> list[AclBinding]:
    return [
        AclBinding(kind, name, pattern, principal, "*", operation, AclPermissionType.ALLOW)
        for kind, name, pattern, principal, operation in grants
    ]


def ensure_acls(
    admin: AdminClient,
    plans: Sequence[TopicPlan],
    *,
    ingest: str = INGEST_PRINCIPAL,
    consumer: str = CONSUMER_PRINCIPAL,
    replay: str = REPLAY_PRINCIPAL,
    registry_prefix: str | None = None,
    registry: str = REGISTRY_PRINCIPAL,
    fix: bool = True,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the declared ACLs that are missing (creating is idempotent); report, never delete,
    any other ACL of these principals. One line per finding. With ``registry_prefix`` (the
    registry's topic prefix) the registry principal's grants too."""
    grants = [*ingest_grants(plans, ingest), *consumer_grants(plans, consumer), *replay_grants(plans, replay)]
    principals = [ingest, consumer, replay]
    if registry_prefix is not None:
        grants += registry_grants(registry_prefix, registry)
        principals.append(registry)
    wanted = bindings(grants)
    existing = set()
    for principal in principals:
        found = admin.describe_acls(
            AclBindingFilter(
                ResourceType.ANY,
                None,  # type: ignore[arg-type]  # None: any name (the stub says str)
                ResourcePatternType.ANY,
                principal,
                None,  # type: ignore[arg-type]  # any host
                AclOperation.ANY,
                AclPermissionType.ANY,
            ),
            request_timeout=timeout_s,
        ).result(timeout=timeout_s)
        existing.update(found)
    missing = [binding for binding in wanted if binding not in existing]
    lines = []
    if missing and fix:
        for future in admin.create_acls(missing, request_timeout=timeout_s).values():
            future.result(timeout=timeout_s)
    for binding in missing:
        lines.append(f"{'granted' if fix else 'missing':8} {_describe(binding)}")
    for binding in sorted(existing - set(wanted), key=str):
        lines.append(f"{'extra':8} {_describe(binding)} (not declared; left as is)")
    lines.append(
        f"acls     {len(wanted) - len(missing)} in place, {len(missing)} {'granted' if fix else 'missing'}"
    )
    return lines


def _describe(binding: AclBinding) -> str:
    pattern = "prefixed " if binding.resource_pattern_type == ResourcePatternType.PREFIXED else ""
    return (
        f"{binding.principal} {_name(binding.permission_type)} {_name(binding.operation)} on "
        f"{_name(binding.restype)} {pattern}{binding.name}"
    )


def _name(value: object) -> str:
    return str(getattr(value, "name", value))
