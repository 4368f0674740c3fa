"""Producer settings: our throughput defaults, the connection's, the operator's, and what exactly-once needs.

docs/performance.md says how the defaults were chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Throughput-oriented defaults; see docs/performance.md for how they were chosen.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "compression.type": "lz4",
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "transaction.timeout.ms": 60_000,
    "delivery.timeout.ms": 60_000,
    "socket.timeout.ms": 30_000,
    "statistics.interval.ms": 10_000,
    # Connect to every broker as soon as it is known, not when first needed: init_transactions()
    # can only start once a broker learned from the cluster is up (docs/performance.md).
    "enable.sparse.connections": False,
}

#: What exactly-once needs; an operator or connection cannot override these.
PRODUCER_REQUIRED: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "max.in.flight.requests.per.connection": 5,
}

#: Keys that only make sense for consumers or admin clients, dropped before building a producer.
_NON_PRODUCER_KEYS = ("group.id", "auto.offset.reset", "enable.auto.commit", "isolation.level")


def producer_config(
    connection_config: Mapping[str, Any],
    transactional_id: str,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Defaults < connection extra < operator overrides < what exactly-once requires."""
    config = {**PRODUCER_DEFAULTS, **connection_config, **(overrides or {})}
    for key in _NON_PRODUCER_KEYS:
        config.pop(key, None)
    config.update(PRODUCER_REQUIRED)
    config["transactional.id"] = transactional_id
    return config
