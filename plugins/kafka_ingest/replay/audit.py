"""One audit record per replay, on the compacted ``_kafka_ingest.replays`` topic.

Keyed by the replay id, written in the replay's last transaction (with its completed checkpoint),
so a replay that committed anything has exactly one audit record, and one that failed before its
end has none yet (its retry writes it). A dry run publishes nothing, so it writes none either: its
report is in the task's XCom and log.
"""

from __future__ import annotations

import json
from typing import Any

from kafka_ingest.publish.checkpoints import CheckpointStore
from kafka_ingest.publish.records import OutgoingMessage

#: The audit topic; compacted like the checkpoint topic, provisioned by ``topics ensure`` (a run never
#: creates a topic: docs/security.md).
DEFAULT_REPLAYS_TOPIC = "_kafka_ingest.replays"


def audit_message(store: CheckpointStore, record: dict[str, Any]) -> OutgoingMessage:
    """``record`` (see :meth:`ReplayReport.audit_record`) as the replay's audit message."""
    key = str(record["replay_id"])
    value = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    return OutgoingMessage(store.topic, value, key.encode(), partition=store.partition(key))
