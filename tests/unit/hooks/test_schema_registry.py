"""Specifications for SchemaRegistryHook: an Airflow Connection becomes a registry client config."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from kafka_ingest.hooks.schema_registry import DEFAULT_TIMEOUT_S, SchemaRegistryHook

PASSWORD = "pa55:w0rd/with@odd"
URL = "http://127.0.0.1:8081/apis/ccompat/v7"


@pytest.fixture
def connection(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Sets ``schema_registry_default`` from JSON, the way the stack and docker-compose do."""

    def set_connection(conn_id: str = "schema_registry_default", **fields: Any) -> None:
        body = {"conn_type": "schema_registry", **fields}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(body))

    return set_connection


def emitted(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    """Everything logged: Airflow's task-SDK logging renders through structlog to the console."""
    captured = capsys.readouterr()
    return caplog.text + captured.out + captured.err


def test_hook_declares_itself_in_provider_style() -> None:
    assert SchemaRegistryHook.conn_name_attr == "schema_registry_conn_id"
    assert SchemaRegistryHook.default_conn_name == "schema_registry_default"
    assert SchemaRegistryHook.conn_type == "schema_registry"
    assert SchemaRegistryHook.hook_name == "Schema Registry"
    assert SchemaRegistryHook().schema_registry_conn_id == "schema_registry_default"


def test_a_full_url_in_host_is_the_registry_url(connection: Any) -> None:
    connection(host=URL)

    assert SchemaRegistryHook().client_config() == {"url": URL, "timeout": DEFAULT_TIMEOUT_S}


def test_login_and_password_become_basic_auth(connection: Any) -> None:
    connection(host=URL, login="ingest", password=PASSWORD)

    config = SchemaRegistryHook().client_config()

    assert config["basic.auth.user.info"] == f"ingest:{PASSWORD}"


def test_host_port_and_scheme_fields_build_the_url(connection: Any) -> None:
    connection(host="registry.example", port=8443, schema="https")

    assert SchemaRegistryHook().client_config()["url"] == "https://registry.example:8443"


def test_a_uri_style_connection_keeps_its_path_in_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_REGISTRY_URI",
        "schema-registry://ingest:secret@registry.example:8081/apis%2Fccompat%2Fv7",
    )

    config = SchemaRegistryHook("registry_uri").client_config()

    assert config["url"] == "http://registry.example:8081/apis/ccompat/v7"
    assert config["basic.auth.user.info"] == "ingest:secret"


def test_extra_url_wins_and_client_options_pass_through_typed(connection: Any) -> None:
    extra = {"url": URL, "ssl.ca.location": "/etc/ca.pem", "timeout": "10", "max.retries": "2"}
    connection(host="ignored.example", extra=extra)

    config = SchemaRegistryHook().client_config()

    assert config == {"url": URL, "ssl.ca.location": "/etc/ca.pem", "timeout": 10.0, "max.retries": 2}


def test_requests_time_out_by_default_so_a_hung_registry_cannot_hang_the_task(connection: Any) -> None:
    connection(host=URL)

    assert SchemaRegistryHook().get_client().config()["timeout"] == DEFAULT_TIMEOUT_S


def test_unknown_extra_keys_are_dropped_with_a_warning_naming_them(
    connection: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    connection(host=URL, extra={"auto_register": True, "timeout": 5})

    with caplog.at_level(logging.INFO):
        config = SchemaRegistryHook().client_config()

    assert "auto_register" not in config
    assert "ignoring extra keys that are not client options: auto_register" in emitted(caplog, capsys)
    SchemaRegistryClient(config)  # the client rejects unknown keys: none reach it


def test_credentials_both_in_the_url_and_in_login_are_refused(connection: Any) -> None:
    connection(extra={"url": "http://a:b@registry.example:8081"}, login="ingest", password=PASSWORD)

    with pytest.raises(ValueError, match="login and also credentials in the URL"):
        SchemaRegistryHook().client_config()


def test_a_connection_without_host_or_url_is_a_wiring_error(connection: Any) -> None:
    connection()

    with pytest.raises(ValueError, match="schema_registry_default has no host"):
        SchemaRegistryHook().client_config()


def test_the_password_never_reaches_logs_or_repr(
    connection: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    connection(host=URL, login="ingest", password=PASSWORD, extra={"timeout": 5, "unknown": 1})
    hook = SchemaRegistryHook()

    with caplog.at_level(logging.DEBUG):
        hook.get_client()

    logged = emitted(caplog, capsys)
    assert "127.0.0.1:8081" in logged
    assert PASSWORD not in logged
    assert PASSWORD not in repr(hook) + str(hook)


def test_the_client_is_built_once_per_hook(connection: Any) -> None:
    connection(host=URL, login="ingest", password=PASSWORD)
    hook = SchemaRegistryHook()

    client = hook.get_client()

    assert isinstance(client, SchemaRegistryClient)
    assert hook.get_client() is client
    assert hook.get_conn() is client
    assert client.config() == {
        "url": URL,
        "timeout": DEFAULT_TIMEOUT_S,
        "basic.auth.user.info": f"ingest:{PASSWORD}",
    }


def test_ui_field_behaviour_relabels_the_generic_form() -> None:
    behaviour = SchemaRegistryHook.get_ui_field_behaviour()

    assert behaviour["relabeling"]["host"] == "Registry URL or host"
    assert "ccompat" in behaviour["placeholders"]["host"]
