"""Avro schemas as files, and the schema registry pre-check.

The registry is consulted exactly once per task, before anything is produced
(:func:`resolve_schema_id`); after that the encoders (``encode/``) turn records into bytes with no
registry traffic and no per-record schema work.

Nothing here imports Airflow, so the core can be tested and benchmarked without a scheduler; the
operator maps :class:`SchemaCheckError` to ``AirflowFailException`` (a retry cannot help) and
:class:`SchemaRegistryUnavailable` to a retryable ``AirflowException``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import fastavro
from confluent_kafka.schema_registry import RegisteredSchema, Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from kafka_ingest.errors import PermanentError

#: HTTP statuses after which the same request may succeed later (confluent-kafka's own list).
_RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Registry error codes meaning "no such subject / version / schema" (Confluent and Apicurio).
_NOT_FOUND_CODES = frozenset({40400, 40401, 40402, 40403})


def _transport_errors() -> tuple[type[Exception], ...]:
    """Network failures (refused, reset, DNS, timeout) of whichever httpx the registry client uses."""
    errors = []
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


_TRANSPORT_ERRORS = _transport_errors()


class SchemaCheckError(PermanentError):
    """The local schema cannot be used with the registry as it is; a retry cannot help."""


class IncompatibleSchemaError(SchemaCheckError):
    """The registry judged the local schema incompatible with the subject's latest version."""


class RegistryAuthError(SchemaCheckError):
    """The registry refused the connection's credentials (401) or role (403)."""


class SchemaRegistryUnavailable(Exception):
    """The registry could not be reached or answered 5xx/429; a later retry may succeed."""


@dataclass(frozen=True)
class LoadedSchema:
    """An Avro schema read from disk once: its registry text, fastavro's parse and its name."""

    text: str
    parsed: dict[str, Any]
    name: str

    def registry_schema(self) -> Schema:
        """The schema as the registry client wants it."""
        return Schema(self.text, "AVRO")


def load_schema(path: str | Path) -> LoadedSchema:
    """Read and parse an ``.avsc`` file; a broken file is a :class:`SchemaCheckError`.

    ``text`` is compact JSON in the file's key order: whitespace never makes two copies of a schema
    look different to the registry, and nothing Avro-significant (docs, defaults, logical types) is
    dropped, as the Parsing Canonical Form would.
    """
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        parsed = fastavro.parse_schema(raw)
    except (json.JSONDecodeError, fastavro.schema.SchemaParseException, fastavro.schema.UnknownType) as exc:
        raise SchemaCheckError(f"Avro schema file {path} is not a valid schema: {exc}") from exc
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise SchemaCheckError(f"Avro schema file {path} must hold a record schema")
    text = json.dumps(raw, separators=(",", ":"), ensure_ascii=False)
    return LoadedSchema(text=text, parsed=parsed, name=parsed["name"])


# --------------------------------------------------------------------------- registry pre-check


def resolve_schema_id(
    client: SchemaRegistryClient, subject: str, schema: LoadedSchema, *, auto_register: bool
) -> int:
    """Return the registry id to frame every record with, checking the schema first.

    Done once per task, before any produce, so an unusable schema fails the task before a single
    record (or DLQ record) is written. ``auto_register`` (dev) checks compatibility against the
    latest version before registering, so an incompatible schema is never even attempted;
    without it (prod) only an identical, already registered version is accepted: schemas then
    change through a release process, not as a side effect of a data load.
    """
    with _registry_errors(client, subject):
        if auto_register:
            return _check_and_register(client, subject, schema)
        return _require_registered(client, subject, schema)


def _check_and_register(client: SchemaRegistryClient, subject: str, schema: LoadedSchema) -> int:
    latest = _latest_version(client, subject)
    if latest is not None and not _is_compatible(client, subject, schema, latest):
        raise IncompatibleSchemaError(
            _incompatible_message(client, subject, schema, latest) + " Nothing was registered."
        )
    try:
        return int(client.register_schema(subject, schema.registry_schema()))
    except SchemaRegistryError as exc:
        if exc.http_status_code != 409:
            raise
        # A transitive rule or a concurrent registration can still reject it; say what the registry said.
        raise IncompatibleSchemaError(
            f"Schema registry at {_registry_url(client)} refused {schema.name} as incompatible with subject "
            f"'{subject}' (latest version {_version_label(latest)}): {exc.error_message}"
        ) from exc


def _require_registered(client: SchemaRegistryClient, subject: str, schema: LoadedSchema) -> int:
    try:
        return int(client.lookup_schema(subject, schema.registry_schema()).schema_id)  # type: ignore[arg-type]
    except SchemaRegistryError as exc:
        if not _is_not_found(exc):
            raise
    latest = _latest_version(client, subject)
    if latest is not None and not _is_compatible(client, subject, schema, latest):
        raise IncompatibleSchemaError(
            f"{_incompatible_message(client, subject, schema, latest)} It is not registered "
            "either: fix the schema, then register it through your release process."
        )
    verdict = (
        "The subject has no versions."
        if latest is None
        else f"The local schema would be compatible with version {latest.version}."
    )
    raise SchemaCheckError(
        f"Subject '{subject}' at {_registry_url(client)} has no version identical to the local schema "
        f"{schema.name} (latest version: {_version_label(latest)}). {verdict} Register it through your "
        "release process (auto_register is meant for development only)."
    )


def _latest_version(client: SchemaRegistryClient, subject: str) -> RegisteredSchema | None:
    """The subject's latest version, fresh: ``get_latest_version`` caches it for the client's life."""
    try:
        return client.get_version(subject, "latest")
    except SchemaRegistryError as exc:
        if _is_not_found(exc):
            return None
        raise


def _is_compatible(
    client: SchemaRegistryClient, subject: str, schema: LoadedSchema, latest: RegisteredSchema
) -> bool:
    version = latest.version if latest.version is not None else "latest"
    return bool(client.test_compatibility(subject, schema.registry_schema(), version=version))


def _incompatible_message(
    client: SchemaRegistryClient, subject: str, schema: LoadedSchema, latest: RegisteredSchema
) -> str:
    """Name the subject, both versions, the rule and what is incompatible, as precisely as we can.

    Confluent answers ``?verbose=true`` with the reasons; Apicurio's ccompat API accepts the flag
    but sends none, so a local field-level diff stands in for them.
    """
    reasons = _registry_reasons(client, subject, schema, latest) or _field_changes(
        latest.schema.schema_str or "{}", schema.text
    )
    detail = "; ".join(reasons) if reasons else "the registry gave no detail"
    return (
        f"Local schema {schema.name} is incompatible with version {latest.version} (schema id "
        f"{latest.schema_id}) of subject '{subject}' at {_registry_url(client)} under "
        f"{_compatibility_level(client, subject)} compatibility: {detail}."
    )


def _registry_reasons(
    client: SchemaRegistryClient, subject: str, schema: LoadedSchema, latest: RegisteredSchema
) -> list[str]:
    """The registry's own incompatibility messages, when it gives any (best effort)."""
    path = f"compatibility/subjects/{quote(subject, safe='')}/versions/{latest.version}?verbose=true"
    try:
        # The public test_compatibility() drops the messages; the client's REST session keeps auth/TLS.
        response = client._rest_client.post(path, body=schema.registry_schema().to_dict())
    except Exception:  # detail only: never let it hide the verdict
        return []
    messages = response.get("messages") if isinstance(response, dict) else None
    return [str(m) for m in messages] if isinstance(messages, list) else []


def _compatibility_level(client: SchemaRegistryClient, subject: str) -> str:
    for target in (subject, None):
        try:
            return str(client.get_compatibility(target))
        except Exception:  # message detail only; Confluent has no per-subject level unless set
            continue
    return "the registry's configured"


def _field_changes(old_text: str, new_text: str) -> list[str]:
    """A local diff of top-level record fields, labelled as ours, for registries without reasons."""
    try:
        old = {f["name"]: f for f in json.loads(old_text).get("fields", [])}
        new = {f["name"]: f for f in json.loads(new_text).get("fields", [])}
    except (ValueError, AttributeError, TypeError, KeyError):  # not a record: no field diff to offer
        return []
    changes = [
        f"new field '{n}' has no default" for n, f in new.items() if n not in old and "default" not in f
    ]
    changes += [
        f"field '{n}' changed type from {describe_type(old[n]['type'])} to {describe_type(f['type'])}"
        for n, f in new.items()
        if n in old and _type_key(old[n]["type"]) != _type_key(f["type"])
    ]
    changes += [f"field '{n}' was removed" for n in old if n not in new]
    return [f"local diff: {c}" for c in changes]


def _type_key(avro_type: Any) -> str:
    return json.dumps(avro_type, sort_keys=True)


def _is_not_found(exc: SchemaRegistryError) -> bool:
    return exc.http_status_code == 404 and exc.error_code in _NOT_FOUND_CODES


def _version_label(latest: RegisteredSchema | None) -> str:
    return "none" if latest is None else f"{latest.version} (schema id {latest.schema_id})"


@contextmanager
def _registry_errors(client: SchemaRegistryClient, subject: str) -> Iterator[None]:
    """Sort registry failures by whether a retry can help, with credential-free messages."""
    where = f"Schema registry at {_registry_url(client)} (subject '{subject}')"
    try:
        yield
    except SchemaRegistryError as exc:
        status = exc.http_status_code
        if status in _RETRYABLE_STATUSES or status >= 500:
            raise SchemaRegistryUnavailable(_scrub(f"{where} is unavailable: {exc}", client)) from exc
        hint = _status_hint(exc)
        if status in (401, 403):
            raise RegistryAuthError(_scrub(f"{where} refused the request: {exc}{hint}", client)) from exc
        raise SchemaCheckError(_scrub(f"{where} rejected the request: {exc}{hint}", client)) from exc
    except _TRANSPORT_ERRORS as exc:
        problem = f"{type(exc).__name__}: {exc}"
        raise SchemaRegistryUnavailable(_scrub(f"{where} is unreachable: {problem}", client)) from exc


def _status_hint(exc: SchemaRegistryError) -> str:
    if exc.http_status_code in (401, 403):
        return ". Check the connection's login and password."
    if exc.http_status_code == 404 and exc.error_code not in _NOT_FOUND_CODES:
        return ". Is the URL the Confluent-compatible API (for Apicurio: .../apis/ccompat/v7)?"
    return ""


def _registry_url(client: SchemaRegistryClient) -> str:
    return redact_url(str(client.config().get("url", "?")))


def redact_url(url: str) -> str:
    """The URL(s), comma-separated, with any ``user:password@`` removed: for logs and messages."""
    redacted = []
    for part in url.split(","):
        split = urlsplit(part.strip())
        redacted.append(split._replace(netloc=split.netloc.rsplit("@", 1)[-1]).geturl())
    return ",".join(redacted)


def _scrub(message: str, client: SchemaRegistryClient) -> str:
    """Remove any secret of the client's configuration that a lower layer may have echoed."""
    conf = client.config()
    secrets = [str(conf.get(k) or "") for k in ("ssl.key.password", "bearer.auth.token")]
    secrets.append(str(conf.get("basic.auth.user.info") or ":").split(":", 1)[-1])
    secrets += [urlsplit(u.strip()).password or "" for u in str(conf.get("url", "")).split(",")]
    for secret in secrets:
        if len(secret) >= 4:  # shorter ones would garble the message and protect nothing
            message = message.replace(secret, "***")
    return message


def describe_type(avro_type: Any) -> str:
    """A short, value-free name for an Avro type, for messages."""
    if isinstance(avro_type, list):
        return " | ".join(describe_type(t) for t in avro_type)
    if isinstance(avro_type, str):
        return avro_type.rsplit(".", 1)[-1]
    logical = avro_type.get("logicalType")
    if logical == "decimal":
        return f"decimal({avro_type.get('precision')},{avro_type.get('scale', 0)})"
    if logical:
        return str(logical)
    kind = avro_type.get("type")
    if kind == "array":
        return f"array of {describe_type(avro_type['items'])}"
    if kind in ("record", "enum", "fixed"):
        return f"{kind} {str(avro_type.get('name', '')).rsplit('.', 1)[-1]}"
    return describe_type(kind)
