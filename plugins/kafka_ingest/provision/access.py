"""Fail at once, naming the connection, when a connection's credentials or CA are refused.

librdkafka treats a refused SASL login or an untrusted broker certificate like a broker that is
down: it reports the error to ``error_cb`` and keeps retrying, so a request waits out its whole
timeout and the task is retried for nothing. A wrong password or CA is not transient. Before a
secured run builds anything, :func:`check_kafka_access` asks the cluster for metadata with an
error callback and turns an authentication or TLS failure into :class:`AccessDenied` (permanent)
within seconds. Messages name the connection id and librdkafka's reason, never a secret.

A 401/403 from the registry is already permanent (``serde.RegistryAuthError``);
:func:`registry_denied` adds the connection id to its message.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from kafka_ingest.errors import PermanentError

_AUTH_CODES = frozenset({KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError.SASL_AUTHENTICATION_FAILED})


#: What a run does to its topics (the ACLs ``topics ensure --acls`` grants, acls.py).
WRITE = ("WRITE", "DESCRIBE")
READ = ("READ", "DESCRIBE")
READ_WRITE = ("READ", "WRITE", "DESCRIBE")


class AccessDenied(PermanentError):
    """A connection's credentials, certificate authority or ACLs were refused."""


def check_kafka_access(
    config: Mapping[str, Any],
    conn_id: str,
    *,
    needs: Mapping[str, Iterable[str]] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Raise :class:`AccessDenied` if the cluster refuses ``config``'s login or TLS, or if the
    principal lacks an operation ``needs`` lists for a topic (``{"t.dlq": ["WRITE"]}``), so a
    missing ACL fails the run before anything is produced rather than at its first commit. A
    plaintext connection is not checked (nothing to refuse). Other failures are left to the run."""
    if str(config.get("security.protocol", "plaintext")).lower() == "plaintext":
        return
    refused: list[str] = []

    def on_error(error: KafkaError) -> None:
        if error.code() in _AUTH_CODES:
            refused.append(error.str())

    settings = {k: v for k, v in config.items() if not k.startswith(("transactional.", "enable.idem"))}
    admin = AdminClient({**settings, "error_cb": on_error})  # type: ignore[dict-item]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=1.0)
        except KafkaException:
            admin.poll(0)  # serves error_cb
            if refused:
                raise AccessDenied(
                    f"Kafka connection '{conn_id}' was refused by the cluster: {refused[0]}. Check the "
                    "connection's login and password (SASL) or its ssl.ca.location (TLS); no retry can "
                    "fix it."
                ) from None
            continue
        if needs:
            _check_operations(admin, needs, conn_id, max(1.0, deadline - time.monotonic()))
        return


def _check_operations(
    admin: AdminClient, needs: Mapping[str, Iterable[str]], conn_id: str, timeout_s: float
) -> None:
    """Each topic's operations the principal is authorized for (DescribeTopics), against ``needs``."""
    futures = admin.describe_topics(
        TopicCollection(list(needs)), include_authorized_operations=True, request_timeout=timeout_s
    )
    missing = []
    for topic, future in futures.items():
        try:
            allowed = {
                getattr(op, "name", str(op))
                for op in future.result(timeout=timeout_s).authorized_operations or []
            }
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_AUTHORIZATION_FAILED:
                raise
            allowed = set()
        missing += [
            f"{op} on topic {topic}" for op in needs[topic] if op not in allowed and "ALL" not in allowed
        ]
    if missing:
        raise AccessDenied(
            f"Kafka connection '{conn_id}' is not authorized for {', '.join(missing)}: nothing was "
            "produced. Grant its principal the ACLs it needs (`python -m kafka_ingest topics ensure "
            "--acls` grants the ingest and the replay principal theirs, docs/security.md)."
        )


def registry_denied(exc: Exception, conn_id: str) -> AccessDenied:
    """A registry 401/403 as :class:`AccessDenied`, naming the connection (the subject is in ``exc``)."""
    return AccessDenied(f"Schema registry connection '{conn_id}': {exc}")
