"""The registry must still mean, by a schema id, the schema a file's records were written with.

A record on a topic carries only a schema id (the Confluent wire format), so what it decodes to is
whatever the registry answers for that id *today*. A registry that lost its storage hands ids out
afresh: the id on yesterday's orders may now name the payments schema, and consumers then read
wrong data without an error. Each checkpoint therefore records the id and a fingerprint of the
schema its batches were written with (:meth:`SchemaGuard.stamp`), and before a file is produced
again, resumed, reprocessed or skipped, :meth:`SchemaGuard.check` asks the registry for that id and
compares fingerprints. A mismatch, or an id the registry no longer knows, fails the task at once
(:class:`SchemaIdChangedError` is permanent) before any record of the file is produced;
``reprocess`` does not bypass it, because reprocessing would put records of two registries' ids on
one topic.

Checkpoints written before the guard existed carry no id: they are let through with a warning
(nothing to compare against), and the first batch this run commits records the id from then on.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from confluent_kafka.schema_registry.error import SchemaRegistryError

from kafka_ingest.errors import PermanentError
from kafka_ingest.serde import _is_not_found, _registry_errors, redact_url

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from kafka_ingest.checkpoints import Checkpoint

log = logging.getLogger(__name__)


class SchemaIdChangedError(PermanentError):
    """The registry no longer returns, for a checkpoint's schema id, the schema it recorded."""


@dataclass(frozen=True)
class SchemaStamp:
    """A schema id and the fingerprint of the schema it stood for when records were written."""

    schema_id: int
    fingerprint: str


def schema_fingerprint(schema_text: str) -> str:
    """SHA-256 of the schema's JSON with sorted keys and no whitespace.

    Whitespace and key order are how registries differ when they hand a schema back (Confluent
    re-serialises it, Apicurio returns it as sent); anything that changes what a record decodes
    to (a name, a type, a field, a logical type, a default) changes the fingerprint. Text that is
    not JSON is hashed as it is.
    """
    try:
        normal = json.dumps(
            json.loads(schema_text), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
    except ValueError:
        normal = schema_text
    return hashlib.sha256(normal.encode()).hexdigest()


def recorded_stamp(checkpoint: Checkpoint) -> SchemaStamp | None:
    """What ``checkpoint`` recorded, or None for a checkpoint written before the guard existed."""
    if not checkpoint.schema_id or not checkpoint.schema_fingerprint:
        return None
    return SchemaStamp(checkpoint.schema_id, checkpoint.schema_fingerprint)


class SchemaGuard:
    """Stamps checkpoints with this run's schema, and checks earlier ones against the registry.

    :param client: the run's registry client.
    :param subject: the topic's value subject (for messages).
    :param current: the id this run encodes with, and its schema's fingerprint.
    """

    def __init__(self, client: SchemaRegistryClient, subject: str, current: SchemaStamp) -> None:
        self._client = client
        self.subject = subject
        self.current = current
        self._verified: set[SchemaStamp] = {current}
        self._warned_unstamped = False

    def stamp(self, checkpoint: Checkpoint) -> None:
        """Record this run's schema id and fingerprint in a checkpoint it is about to write."""
        checkpoint.schema_id = self.current.schema_id
        checkpoint.schema_fingerprint = self.current.fingerprint

    def check(self, checkpoint: Checkpoint | None) -> None:
        """Raise :class:`SchemaIdChangedError` unless the registry still means what ``checkpoint``
        recorded. One registry request per distinct id per run."""
        if checkpoint is None:
            return
        recorded = recorded_stamp(checkpoint)
        if recorded is None:
            if not self._warned_unstamped:
                self._warned_unstamped = True
                log.warning(
                    "Checkpoint %s records no schema id (written before the schema guard existed): its "
                    "records cannot be checked against the registry; checkpoints from now on record id %d.",
                    checkpoint.key,
                    self.current.schema_id,
                )
            return
        if recorded in self._verified:
            return
        found = self._registry_fingerprint(recorded.schema_id)
        if found != recorded.fingerprint:
            raise SchemaIdChangedError(self._message(checkpoint, recorded, found))
        self._verified.add(recorded)

    def _registry_fingerprint(self, schema_id: int) -> str | None:
        """The fingerprint of what the registry returns for ``schema_id``; None if it has no such id."""
        with _registry_errors(self._client, self.subject):
            try:
                schema = self._client.get_schema(schema_id)
            except SchemaRegistryError as exc:
                if _is_not_found(exc):
                    return None
                raise
        return schema_fingerprint(schema.schema_str or "")

    def _message(self, checkpoint: Checkpoint, recorded: SchemaStamp, found: str | None) -> str:
        now = "no schema at all" if found is None else f"a schema with fingerprint {found}"
        return (
            f"Schema id {recorded.schema_id} no longer names the schema {checkpoint.key} was written with: "
            f"its checkpoint recorded schema id {recorded.schema_id} with fingerprint {recorded.fingerprint} "
            f"(subject '{self.subject}'), and the registry at {_url(self._client)} now returns {now} for "
            f"that id. The records already published carry id {recorded.schema_id}, so consumers would "
            "decode them with the wrong schema or not at all; nothing was produced. Restore the "
            "registry's storage so that the id names that schema again (the local stack keeps it in "
            "Kafka: docs/reliability.md), or, on purpose, re-register the schema and reprocess after "
            "forgetting this file's checkpoint (reprocess=True alone does not bypass this check)."
        )


def _url(client: Any) -> str:
    return redact_url(str(client.config().get("url", "?")))
