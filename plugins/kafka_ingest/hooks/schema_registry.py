"""An Airflow Connection -> a confluent-kafka ``SchemaRegistryClient``.

The registry URL, credentials and TLS settings live in a Connection, never in DAG code, so the same
DAG runs against a local Apicurio and a production registry. The client is the Confluent one: point
it at a Confluent-compatible API (for Apicurio, ``.../apis/ccompat/v7``).

Connection fields:

* URL: ``extra["url"]`` if set (a comma-separated list is allowed), else ``host`` when it is a full
  URL (``http://127.0.0.1:8081/apis/ccompat/v7``, as JSON connections keep it), else built from
  ``host``, ``port`` and ``schema`` (``http``/``https`` as the scheme, anything else as the path,
  as URI-style connections ``schema-registry://host:8081/apis%2Fccompat%2Fv7`` give it).
* ``login``/``password``: HTTP basic auth.
* ``extra``: any ``SchemaRegistryClient`` option (``ssl.ca.location``, ``timeout``,
  ``max.retries``, ...); other keys are ignored with a warning naming them. ``timeout`` defaults to
  :data:`DEFAULT_TIMEOUT_S`: the client's own default is none at all, so a registry that accepts
  connections and never answers would hang the task forever.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import urlsplit

from airflow.sdk import BaseHook
from confluent_kafka.schema_registry import SchemaRegistryClient

from kafka_ingest.registry import redact_url

#: ``SchemaRegistryClient`` options accepted from a connection's extra, with a type to coerce
#: URI-style (string) values to; ``None`` keeps the value as given.
CLIENT_OPTIONS: dict[str, type | None] = {
    "ssl.ca.location": None,
    "ssl.key.location": str,
    "ssl.key.password": str,
    "ssl.certificate.location": str,
    "proxy": str,
    "timeout": float,
    "cache.capacity": int,
    "cache.latest.ttl.sec": float,
    "max.retries": int,
    "retries.wait.ms": int,
    "retries.max.wait.ms": int,
    "bearer.auth.credentials.source": str,
    "bearer.auth.token": str,
    "bearer.auth.logical.cluster": str,
    "bearer.auth.identity.pool.id": str,
    "bearer.auth.client.id": str,
    "bearer.auth.client.secret": str,
    "bearer.auth.scope": str,
    "bearer.auth.issuer.endpoint.url": str,
}
#: Seconds per HTTP request to the registry unless the connection's extra sets ``timeout``; with the
#: client's default 3 retries and their backoff, a hung registry fails the pre-check in under a minute.
DEFAULT_TIMEOUT_S = 10.0
#: Extra keys this hook reads itself.
_OWN_KEYS = frozenset({"url"})


class ConnectionLike(Protocol):
    """The Connection attributes the client configuration is built from."""

    conn_id: str
    host: str | None
    port: int | None
    schema: str | None
    login: str | None
    password: str | None

    @property
    def extra_dejson(self) -> dict[str, Any]: ...


class SchemaRegistryHook(BaseHook):
    """Builds (once) a ``SchemaRegistryClient`` from an Airflow Connection.

    :param schema_registry_conn_id: the connection to read; ``schema_registry_default`` if omitted.
    """

    conn_name_attr = "schema_registry_conn_id"
    default_conn_name = "schema_registry_default"
    conn_type = "schema_registry"
    hook_name = "Schema Registry"

    def __init__(self, schema_registry_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schema_registry_conn_id = schema_registry_conn_id
        self._client: SchemaRegistryClient | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel the generic form for a registry: URL in host, basic auth in login/password."""
        return {
            "hidden_fields": [],
            "relabeling": {"host": "Registry URL or host", "schema": "Scheme or path", "login": "Username"},
            "placeholders": {
                "host": "http://127.0.0.1:8081/apis/ccompat/v7",
                "extra": '{"ssl.ca.location": "/etc/ssl/registry-ca.pem", "timeout": 10}',
            },
        }

    def get_client(self) -> SchemaRegistryClient:
        """The client for this connection, built on first use and reused (it caches schemas)."""
        if self._client is None:
            self._client = self._get_client(self.client_config())
        return self._client

    def get_conn(self) -> SchemaRegistryClient:
        """Airflow's generic accessor; same as :meth:`get_client`."""
        return self.get_client()

    def client_config(self) -> dict[str, Any]:
        """Read the connection and return the client configuration (it holds the password)."""
        conn = self.get_connection(self.schema_registry_conn_id)
        config, ignored = build_client_config(conn)
        if ignored:
            self.log.warning(
                "Schema registry connection %s: ignoring extra keys that are not client options: %s",
                conn.conn_id,
                ", ".join(ignored),
            )
        self.log.info(
            "Schema registry connection %s: %s (basic auth: %s)",
            conn.conn_id,
            redact_url(config["url"]),
            "yes" if "basic.auth.user.info" in config else "no",
        )
        return config

    def _get_client(self, config: dict[str, Any]) -> SchemaRegistryClient:
        """The one factory subclasses override (for example to return a mock in tests)."""
        return SchemaRegistryClient(config)

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's connection test: list subjects, which needs a reachable, authorised API."""
        try:
            subjects = self.get_client().get_subjects()
        except Exception as exc:  # reported to the UI, not raised
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"Connected; {len(subjects)} subjects."


def build_client_config(conn: ConnectionLike) -> tuple[dict[str, Any], list[str]]:
    """Return ``(client config, ignored extra keys)`` for a connection; a pure function.

    Unknown extra keys are returned rather than passed on, because the client rejects any key it
    does not know ("Unrecognized properties") and a connection's extra often carries UI leftovers.
    """
    extra = dict(conn.extra_dejson)
    url = str(extra.get("url") or _url_from_fields(conn))
    config: dict[str, Any] = {"url": url, "timeout": DEFAULT_TIMEOUT_S}
    if conn.login:
        if any(urlsplit(u.strip()).username for u in url.split(",")):
            raise ValueError(
                f"Schema registry connection {conn.conn_id} sets a login and also credentials in the URL"
            )
        config["basic.auth.user.info"] = f"{conn.login}:{conn.password or ''}"
    for key, value in extra.items():
        if key in CLIENT_OPTIONS:
            config[key] = _coerce(key, value)
    ignored = sorted(k for k in extra if k not in CLIENT_OPTIONS and k not in _OWN_KEYS)
    return config, ignored


def _url_from_fields(conn: ConnectionLike) -> str:
    host = (conn.host or "").strip()
    if not host:
        raise ValueError(f"Schema registry connection {conn.conn_id} has no host and no extra 'url'")
    if "://" in host:
        return host
    schema = (conn.schema or "").strip("/")
    scheme = schema if schema in ("http", "https") else "http"
    path = "" if schema in ("", "http", "https") else f"/{schema}"
    port = f":{conn.port}" if conn.port else ""
    return f"{scheme}://{host}{port}{path}"


def _coerce(key: str, value: Any) -> Any:
    """URI-style extras arrive as strings; the client type-checks numbers and booleans."""
    kind = CLIENT_OPTIONS[key]
    if key == "ssl.ca.location" and str(value).lower() == "false":
        return False  # the client's switch for "do not verify the server certificate"
    if kind is None or isinstance(value, kind):
        return value
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Schema registry option {key} must be a {kind.__name__}") from exc
