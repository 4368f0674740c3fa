"""Topic declarations, the plan ``topics ensure`` derives from them, and the ingest principal's ACLs."""

from __future__ import annotations

from dataclasses import replace

import pytest
from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType

from kafka_ingest.provision.acls import (
    REGISTRY_PRINCIPAL,
    REPLAY_PRINCIPAL,
    REPLAY_TRANSACTIONAL_ID_PREFIX,
    TRANSACTIONAL_ID_PREFIX,
    consumer_grants,
    ingest_grants,
    registry_grants,
    replay_grants,
)
from kafka_ingest.provision.security import redacted, with_credentials
from kafka_ingest.provision.topics import effective, plan_topics
from kafka_ingest.publish.checkpoints import transactional_id_for
from kafka_ingest.replay.checkpoint import replay_transactional_id
from kafka_ingest.topic_settings import CHECKPOINT_TOPIC, DATA_TOPIC, DLQ_TOPIC, TopicSettings
from kafka_ingest.topics.orders import ORDERS
from kafka_ingest.topics.payments import PAYMENTS
from kafka_ingest.topics_command import discover_specs


def test_a_min_isr_above_the_replication_factor_is_refused() -> None:
    with pytest.raises(ValueError, match="no write could ever succeed"):
        TopicSettings(replication_factor=2, min_insync_replicas=3)


def test_an_unknown_cleanup_policy_is_refused() -> None:
    with pytest.raises(ValueError, match=r"cleanup\.policy"):
        TopicSettings(cleanup_policy="forever")


def test_the_declared_configs_carry_retention_cleanup_and_min_isr() -> None:
    assert DATA_TOPIC.topic_configs() == {
        "cleanup.policy": "delete",
        "retention.ms": str(7 * 24 * 3600 * 1000),
        "min.insync.replicas": "2",
    }
    assert CHECKPOINT_TOPIC.topic_configs()["cleanup.policy"] == "compact"


def test_each_spec_declares_its_topic_and_dlq_layout_beside_its_schema() -> None:
    for spec in (ORDERS, PAYMENTS):
        assert (spec.topic_settings, spec.dlq_settings) == (DATA_TOPIC, DLQ_TOPIC)
        assert (spec.topic_settings.replication_factor, spec.topic_settings.min_insync_replicas) == (3, 2)


def test_the_plan_has_each_specs_topic_and_dlq_and_one_checkpoint_topic() -> None:
    plans = plan_topics([ORDERS, PAYMENTS, ORDERS], "_cp", suffix=".x")
    assert [(p.name, p.role) for p in plans] == [
        ("shopping.order.created.x", "data"),
        ("shopping.order.created.x.dlq", "dlq"),
        ("shopping.payment.processed.x", "data"),
        ("shopping.payment.processed.x.dlq", "dlq"),
        ("_cp", "checkpoints"),
    ]


def test_the_replays_topic_is_laid_out_like_the_checkpoint_topic_and_granted_to_the_replay_only() -> None:
    """The replay wrote its audit topic's creation into CheckpointStore.ensure_topic, which no
    longer creates: ``topics ensure`` must declare it, compacted, or a replay fails."""
    plans = plan_topics([ORDERS], "_cp", state_topics=["_replays", "_cp"])
    assert [(p.name, p.role, p.settings) for p in plans][-2:] == [
        ("_cp", "checkpoints", CHECKPOINT_TOPIC),
        ("_replays", "state", CHECKPOINT_TOPIC),
    ]
    ingest = {name for kind, name, *_ in ingest_grants(plans) if kind == ResourceType.TOPIC}
    consumer = {name for kind, name, *_ in consumer_grants(plans) if kind == ResourceType.TOPIC}
    replay = {(name, op) for kind, name, _, _, op in replay_grants(plans) if kind == ResourceType.TOPIC}
    assert "_replays" not in ingest | consumer
    assert {("_replays", AclOperation.READ), ("_replays", AclOperation.WRITE)} <= replay


def test_the_replay_principal_reads_and_writes_every_planned_topic_under_its_own_transactional_ids() -> None:
    plans = plan_topics([ORDERS], "_cp", state_topics=["_replays"])
    grants = replay_grants(plans)
    on = {(kind, name, pattern, op) for kind, name, pattern, _, op in grants}
    topic, literal = ResourceType.TOPIC, ResourcePatternType.LITERAL
    operations = (AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE)
    names = (ORDERS.topic, ORDERS.dlq_topic, "_cp", "_replays")
    prefix, prefixed = REPLAY_TRANSACTIONAL_ID_PREFIX, ResourcePatternType.PREFIXED
    assert on == {(topic, name, literal, op) for name in names for op in operations} | {
        (ResourceType.TRANSACTIONAL_ID, prefix, prefixed, AclOperation.WRITE),
        (ResourceType.TRANSACTIONAL_ID, prefix, prefixed, AclOperation.DESCRIBE),
    }
    assert {principal for *_, principal, _ in grants} == {REPLAY_PRINCIPAL}
    assert not any(kind == ResourceType.GROUP for kind, *_ in grants)


def test_every_transactional_id_a_replay_uses_is_under_the_replay_prefix_not_the_ingest_one() -> None:
    tid = replay_transactional_id("shopping.order.created", "manual__2026-01-01")
    assert tid.startswith(REPLAY_TRANSACTIONAL_ID_PREFIX)
    assert not tid.startswith(TRANSACTIONAL_ID_PREFIX)


def test_a_small_cluster_caps_replicas_and_min_isr_and_says_so() -> None:
    assert effective(DATA_TOPIC, 3) == (3, 2, [])
    replicas, min_isr, notes = effective(DATA_TOPIC, 1)
    assert (replicas, min_isr) == (1, 1)
    assert "declared 3 and 2" in notes[0]


def test_topics_ensure_finds_the_built_in_specs() -> None:
    topics = {spec.topic for spec in discover_specs()}
    assert {ORDERS.topic, PAYMENTS.topic} <= topics


def test_the_ingest_principal_gets_write_on_its_topics_and_read_only_on_checkpoints() -> None:
    grants = ingest_grants(plan_topics([ORDERS], "_cp"))
    on = {(kind, name, pattern, op) for kind, name, pattern, _, op in grants}
    topic, literal = ResourceType.TOPIC, ResourcePatternType.LITERAL
    assert on == {
        (topic, ORDERS.topic, literal, AclOperation.WRITE),
        (topic, ORDERS.topic, literal, AclOperation.DESCRIBE),
        (topic, ORDERS.dlq_topic, literal, AclOperation.WRITE),
        (topic, ORDERS.dlq_topic, literal, AclOperation.DESCRIBE),
        (topic, "_cp", literal, AclOperation.READ),
        (topic, "_cp", literal, AclOperation.WRITE),
        (topic, "_cp", literal, AclOperation.DESCRIBE),
        (
            ResourceType.TRANSACTIONAL_ID,
            TRANSACTIONAL_ID_PREFIX,
            ResourcePatternType.PREFIXED,
            AclOperation.WRITE,
        ),
        (
            ResourceType.TRANSACTIONAL_ID,
            TRANSACTIONAL_ID_PREFIX,
            ResourcePatternType.PREFIXED,
            AclOperation.DESCRIBE,
        ),
    }


def test_every_transactional_id_the_pipeline_uses_is_under_the_granted_prefix() -> None:
    assert transactional_id_for("t/orders/2026-01-01/part-0001.csv").startswith(TRANSACTIONAL_ID_PREFIX)


def test_the_consumer_principal_reads_data_and_dlq_but_not_checkpoints() -> None:
    names = {name for kind, name, *_ in consumer_grants(plan_topics([replace(ORDERS, topic="t")], "_cp"))}
    assert names == {"t", "t.dlq", "*"}


def test_the_registry_principal_gets_its_prefixed_topics_and_groups_and_nothing_else() -> None:
    grants = registry_grants("_registry")

    topics = {
        op
        for kind, name, pattern, _, op in grants
        if (kind, name, pattern) == (ResourceType.TOPIC, "_registry.", ResourcePatternType.PREFIXED)
    }
    groups = {
        op
        for kind, name, pattern, _, op in grants
        if (kind, name, pattern) == (ResourceType.GROUP, "_registry-", ResourcePatternType.PREFIXED)
    }
    assert topics == {
        AclOperation.READ,
        AclOperation.WRITE,
        AclOperation.DESCRIBE,
        AclOperation.DESCRIBE_CONFIGS,
        AclOperation.CREATE,
    }
    assert groups == {AclOperation.READ}
    assert len(grants) == 6
    assert {principal for *_, principal, _ in grants} == {REGISTRY_PRINCIPAL}


def test_the_connections_password_field_becomes_the_sasl_password() -> None:
    extra = {"bootstrap.servers": "b:1", "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512"}
    config = with_credentials(extra, "ingest", "s3cret")
    assert (config["sasl.username"], config["sasl.password"]) == ("ingest", "s3cret")
    assert "s3cret" not in str(redacted(config))


def test_plaintext_and_oauthbearer_connections_get_no_password() -> None:
    assert "sasl.password" not in with_credentials({"bootstrap.servers": "b:1"}, "u", "p")
    oauth = {"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER"}
    assert "sasl.password" not in with_credentials(oauth, "u", "p")


def test_a_password_in_the_extra_wins_over_the_password_field() -> None:
    extra = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.password": "x"}
    assert with_credentials(extra, "u", "p")["sasl.password"] == "x"
