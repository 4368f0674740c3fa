"""The registry's own Kafka principal on the secured cluster.

Apicurio keeps every schema in KafkaSQL: a journal topic it creates, writes each change to and
replays at every start through a consumer group of its own. On the secured cluster it logs in as
``User:registry``, a plain SCRAM user with only the ACLs ``topics ensure --acls`` declares for it
(its prefixed topics and groups; ``provision/acls.py``), not as the super user. The registry here
is the stack's own (``scripts/stack registry-up`` in the cluster's stack dir, on ports of its own,
with basic auth as in the secured stack), so what is proven is what ``make up
KAFKA_SECURITY=sasl_ssl`` runs.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cluster_stack import REPO, Cluster, cluster_environment
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from kafka_ingest.provision.acls import REGISTRY_PRINCIPAL, bindings, registry_grants

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1500)]

SCHEMA = {
    "type": "record",
    "name": "Probe",
    "namespace": "cluster.test",
    "fields": [{"name": "id", "type": "string"}],
}


@dataclass
class SecuredRegistry:
    env: dict[str, str]

    @property
    def stack_dir(self) -> Path:
        return Path(self.env["STACK_DIR"])

    @property
    def url(self) -> str:
        return self.env["SCHEMA_REGISTRY_URL"]

    @property
    def journal(self) -> str:
        return f"{self.env['SCHEMA_REGISTRY_TOPIC_PREFIX']}.journal"

    def stack(self, command: str) -> None:
        done = subprocess.run(
            [str(REPO / "scripts/stack"), command], env=self.env, capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, f"scripts/stack {command}:\n{done.stdout}\n{done.stderr[-3000:]}"

    def call(self, user: str, method: str, path: str, body: Any = None) -> Any:
        password = (Path(self.env["REGISTRY_SECRETS"]) / f"{user}.password").read_text().strip()
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Content-Type": "application/vnd.schemaregistry.v1+json",
                "Authorization": f"Basic {token}",
            },
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")

    def kafka_login(self) -> str:
        """The user name the running registry's KafkaSQL client logs in with (read from its
        environment; only the name is kept, never the password)."""
        pid = int((self.stack_dir / "run" / "schema-registry.pid").read_text())
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        found = re.search(rb'ScramLoginModule required username="([^"]+)"', environ)
        return found.group(1).decode() if found else ""


def journal_end(cluster: Cluster, topic: str) -> int:
    """How many records the journal holds (its partitions' high watermarks), read as admin."""
    consumer = Consumer({**cluster.config("admin"), "group.id": "unused", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in partitions
        )
    finally:
        consumer.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def secured_registry(cluster: Cluster) -> Iterator[SecuredRegistry]:
    env = cluster_environment(
        {"SCHEMA_REGISTRY_PORT": str(_free_port()), "SCHEMA_REGISTRY_MANAGEMENT_PORT": str(_free_port())}
    )
    registry = SecuredRegistry(env)
    assert env["SCHEMA_REGISTRY_AUTH"] == "basic", "the secured mode's registry has basic auth"
    registry.stack("registry-up")
    try:
        yield registry
    finally:
        registry.stack("registry-down")


def test_the_registry_principal_has_only_its_declared_acls(
    cluster: Cluster, secured_registry: SecuredRegistry
) -> None:
    prefix = secured_registry.env["SCHEMA_REGISTRY_TOPIC_PREFIX"]
    admin = cluster.admin()  # kept: a client collected before its future resolves destroys it
    found = admin.describe_acls(
        AclBindingFilter(
            ResourceType.ANY,
            None,  # type: ignore[arg-type]  # any name
            ResourcePatternType.ANY,
            REGISTRY_PRINCIPAL,
            None,  # type: ignore[arg-type]  # any host
            AclOperation.ANY,
            AclPermissionType.ANY,
        ),
        request_timeout=30,
    ).result(timeout=30)

    assert set(found) == set(bindings(registry_grants(prefix)))
    assert secured_registry.kafka_login() == "registry"


def test_schemas_registered_through_the_registry_principal_survive_its_restart(
    cluster: Cluster, secured_registry: SecuredRegistry
) -> None:
    """Registering writes the journal (WRITE), the registry reads its own change back (its
    group, READ) before it answers; a restart replays the whole journal in a new group."""
    journal_before = journal_end(cluster, secured_registry.journal)
    # A subject of this run's own: the same schema under a subject registered by an earlier run on
    # the same stack would get its existing id back, with nothing written to the journal.
    subject = f"cluster-probe-{uuid.uuid4().hex[:12]}-value"

    registered = secured_registry.call(
        "developer", "POST", f"/subjects/{subject}/versions", {"schema": json.dumps(SCHEMA)}
    )
    journal_after = journal_end(cluster, secured_registry.journal)
    secured_registry.stack("registry-down")
    secured_registry.stack("registry-up")
    looked_up = secured_registry.call("reader", "GET", f"/schemas/ids/{registered['id']}")
    latest = secured_registry.call("reader", "GET", f"/subjects/{subject}/versions/latest")

    assert journal_after > journal_before, "the registration went through the Kafka journal"
    assert json.loads(looked_up["schema"])["name"] == "Probe"
    assert latest["id"] == registered["id"]
    assert secured_registry.kafka_login() == "registry"
