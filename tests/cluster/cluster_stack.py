"""The secured 3-broker cluster the cluster tests kill nodes of and log in to (see conftest.py).

``make test-cluster`` starts it with the project's own script (``scripts/stack kafka-up`` with
``KAFKA_BROKERS=3 KAFKA_SECURITY=sasl_ssl`` in the stack dir ``.stack-cluster``, on ports of its
own), beside the main stack whose registry the runs use. The fixtures read the cluster's
connections the way the product does: from ``scripts/stack-env.sh`` in that mode (passwords from
the generated secrets), through the connection's login/password mapping.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from kafka_ingest.provision.acls import ensure_acls
from kafka_ingest.provision.security import with_credentials
from kafka_ingest.provision.topics import ensure_topics, plan_topics
from kafka_ingest.specs import TopicSpec

REPO = Path(__file__).resolve().parents[2]
#: What `make test-cluster` passes; the defaults match the Makefile's.
CLUSTER_ENV = {
    "KAFKA_BROKERS": "3",
    "KAFKA_SECURITY": "sasl_ssl",
    "STACK_DIR": os.environ.get("KAFKA_TEST_CLUSTER_STACK_DIR", str(REPO / ".stack-cluster")),
    "KAFKA_CLUSTER_BASE_PORT": os.environ.get("KAFKA_TEST_CLUSTER_BASE_PORT", "9292"),
}
NODES = ("kafka-1", "kafka-2", "kafka-3")


def cluster_environment(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The stack's environment in cluster mode (not this session's, which is the main stack's);
    ``overrides`` (e.g. a registry's ports of its own) are set before stack-env.sh derives the
    rest, so the registry's URL and connection follow them."""
    derived = ("KAFKA_BOOTSTRAP", "KAFKA_SECRETS", "AIRFLOW_CONN_KAFKA", "REGISTRY_SECRETS")
    if overrides:
        derived += ("SCHEMA_REGISTRY_URL", "SCHEMA_REGISTRY_AUTH", "AIRFLOW_CONN_SCHEMA_REGISTRY_DEFAULT")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(derived)}
    script = f'. "{REPO}/scripts/stack-env.sh" && env -0'
    env = {**keep, **CLUSTER_ENV, **(overrides or {})}
    out = subprocess.run(["bash", "-c", script], env=env, check=True, capture_output=True)
    return dict(entry.partition("=")[::2] for entry in out.stdout.decode().split("\0") if "=" in entry)


@dataclass
class Cluster:
    env: dict[str, str]

    @property
    def stack_dir(self) -> Path:
        return Path(self.env["STACK_DIR"])

    @property
    def bootstrap(self) -> str:
        return self.env["KAFKA_BOOTSTRAP"]

    def connection(self, user: str) -> dict[str, Any]:
        return dict(
            json.loads(self.env[f"AIRFLOW_CONN_KAFKA_{'DEFAULT' if user == 'ingest' else user.upper()}"])
        )

    def config(self, user: str) -> dict[str, Any]:
        """librdkafka settings for ``user`` (ingest, admin, consumer), mapped as the hook maps them."""
        conn = self.connection(user)
        return with_credentials(conn["extra"], conn["login"], conn["password"])

    def admin(self) -> AdminClient:
        return AdminClient(self.config("admin"))

    def provision(self, *specs: TopicSpec, checkpoint_topic: str, state_topics: tuple[str, ...] = ()) -> None:
        """Topics and ACLs for the specs, as ``topics ensure --acls`` writes them (``state_topics``:
        the replay's audit topic)."""
        admin = self.admin()
        plans = plan_topics(specs, checkpoint_topic, state_topics=state_topics)
        ensure_topics(admin, plans)
        ensure_acls(admin, plans)

    def pid(self, node: str) -> int | None:
        try:
            pid = int((self.stack_dir / "run" / f"{node}.pid").read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def kill(self, node: str) -> None:
        """SIGKILL, as a crashed host would end it."""
        pid = self.pid(node)
        assert pid is not None, f"{node} is not running"
        os.kill(pid, signal.SIGKILL)
        while self.pid(node) is not None:
            time.sleep(0.1)

    def node_of(self, broker_id: int) -> str:
        return f"kafka-{broker_id}"

    def leader(self, topic: str, partition: int = 0) -> str:
        metadata = self.admin().list_topics(topic=topic, timeout=30).topics[topic]
        return self.node_of(metadata.partitions[partition].leader)

    def up(self) -> None:
        """``scripts/stack kafka-up``: starts every node that is not running, with its data."""
        done = subprocess.run(
            [str(REPO / "scripts/stack"), "kafka-up"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        self.wait_all_in_sync()

    def wait_all_in_sync(self, timeout_s: float = 180) -> None:
        """Every node registered and every partition's replicas in sync again."""
        deadline = time.monotonic() + timeout_s
        while True:
            metadata = self.admin().list_topics(timeout=30)
            lagging = [
                f"{name}[{p.id}]"
                for name, topic in metadata.topics.items()
                for p in topic.partitions.values()
                if len(p.isrs) < len(p.replicas)
            ]
            if len(metadata.brokers) == len(NODES) and not lagging:
                return
            assert time.monotonic() < deadline, f"not in sync after {timeout_s}s: {lagging[:5]}"
            time.sleep(1)
