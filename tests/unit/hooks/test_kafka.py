"""The Kafka hook: the provider's connection resolution (``get_conn``) plus the password field."""

from __future__ import annotations

import json

import pytest

from kafka_ingest.hooks.kafka import TransactionalProducerHook

EXTRA = {
    "bootstrap.servers": "127.0.0.1:9093",
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "ssl.ca.location": "/tmp/ca.pem",
}


def _connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "kafka", **fields}))


def test_a_sasl_connections_login_and_password_become_librdkafka_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _connection(monkeypatch, "kafka_sasl", login="ingest", password="s3cret", extra=EXTRA)

    config = TransactionalProducerHook("kafka_sasl").client_config()

    assert config == {**EXTRA, "sasl.username": "ingest", "sasl.password": "s3cret"}


def test_a_plaintext_connection_is_its_extra_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    _connection(
        monkeypatch, "kafka_plain", login="ignored", password="ignored", extra={"bootstrap.servers": "b:9092"}
    )

    assert TransactionalProducerHook("kafka_plain").client_config() == {"bootstrap.servers": "b:9092"}
