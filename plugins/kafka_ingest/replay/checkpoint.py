"""A replay's checkpoint: how far it got, on the ingestion's checkpoint topic.

It is written in the same transaction as each batch of replayed records and re-dead-lettered
envelopes, so it says exactly which part of the plan is committed. It also keeps the end offsets of
the DLQ and the topic recorded when the replay started: a retry reads up to the same ends, so it
makes the same plan (the same envelopes, the same "already published" keys) and resumes after the
last committed batch. The key is ``replay/<topic>/<replay id>``, beside the files' checkpoints.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from kafka_ingest.provision.acls import REPLAY_TRANSACTIONAL_ID_PREFIX
from kafka_ingest.publish.checkpoints import CheckpointStore
from kafka_ingest.publish.records import OutgoingMessage


def replay_checkpoint_key(topic: str, replay_id: str) -> str:
    return f"replay/{topic}/{replay_id}"


def replay_transactional_id(topic: str, replay_id: str) -> str:
    """One transactional id per replay: a retry of the same replay fences a zombie of it."""
    return f"{REPLAY_TRANSACTIONAL_ID_PREFIX}{topic}/{replay_id}"


@dataclass
class ReplayCheckpoint:
    replay_id: str
    topic: str
    dlq_ends: dict[int, int]
    topic_ends: dict[int, int]
    started_at: str
    #: the corrections file's SHA-256 ("" for originals): a retry must judge the same rows
    corrections_fingerprint: str = ""
    done: int = 0
    complete: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    updated_at: float = field(default_factory=time.time)

    @property
    def key(self) -> str:
        return replay_checkpoint_key(self.topic, self.replay_id)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, payload: bytes) -> ReplayCheckpoint:
        data: dict[str, Any] = json.loads(payload)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for name in ("dlq_ends", "topic_ends"):
            known[name] = {int(p): int(o) for p, o in known.get(name, {}).items()}
        return cls(**known)

    def message(self, store: CheckpointStore) -> OutgoingMessage:
        self.updated_at = time.time()
        return OutgoingMessage(
            store.topic, self.to_json(), self.key.encode(), partition=store.partition(self.key)
        )


def load_replay_checkpoint(store: CheckpointStore, topic: str, replay_id: str) -> ReplayCheckpoint | None:
    value = store.load_value(replay_checkpoint_key(topic, replay_id))
    return ReplayCheckpoint.from_json(value) if value else None
