"""The demo's reads log in as a deployment's principals on the secured stack, and use the plain
bootstrap address on the plaintext one (which defines no ``kafka_consumer``)."""

from __future__ import annotations

import json

import pytest

from kafka_ingest.testing import demo

SECURED_EXTRA = {
    "bootstrap.servers": "127.0.0.1:9192",
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "ssl.ca.location": "/stack/kafka-secrets/ca.pem",
}


def test_on_the_plaintext_stack_the_consumer_read_uses_the_bootstrap_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_KAFKA_CONSUMER", raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:9092")

    assert demo._kafka(demo.CONSUMER_CONN_ID) == "127.0.0.1:9092"


def test_on_the_secured_stack_the_consumer_read_logs_in_as_the_consumer_principal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connection = {"conn_type": "kafka", "login": "consumer", "password": "s3cret", "extra": SECURED_EXTRA}
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_CONSUMER", json.dumps(connection))
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:9192")

    client = demo._kafka(demo.CONSUMER_CONN_ID)

    assert isinstance(client, dict)
    assert client["bootstrap.servers"] == "127.0.0.1:9192"
    assert client["security.protocol"] == "SASL_SSL"
    assert client["ssl.ca.location"] == "/stack/kafka-secrets/ca.pem"
    assert (client["sasl.username"], client["sasl.password"]) == ("consumer", "s3cret")
