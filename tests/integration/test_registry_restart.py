"""Specification for the stack's registry storage: a restart of the whole stack keeps every schema
and id, so every record of a published day still decodes to what it was written as.

The restart is the real one, ``scripts/stack down`` then ``scripts/stack up``, on a private stack
(its own ``STACK_DIR`` and free ports): the session's shared stack keeps serving the other tests.
The private stack borrows the shared one's fetched artifacts and runs with ``STACK_AIRFLOW=0``
(no PostgreSQL, Redis or Airflow: nothing here uses them), so only Kafka, the registry and StatsD
start.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from ingest_helpers import DATE, Endpoints, read_topic, run_job

from kafka_ingest.specs import TopicSpec
from kafka_ingest.testing.samples import DayManifest, write_day
from kafka_ingest.topics.orders import ORDERS
from kafka_ingest.topics.payments import PAYMENTS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
STACK_ENV = REPO / "scripts" / "stack-env.sh"
#: Set by stack-env.sh but not about where the stack runs: the private stack keeps the caller's.
SHARED_SETTINGS = {
    "KAFKA_INGEST_CACHE",
    "PIP_CACHE_DIR",
    "KAFKA_VERSION",
    "APICURIO_VERSION",
    "STATSD_VERSION",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateStack:
    """``scripts/stack`` run with its own STACK_DIR and every ``*_PORT`` of stack-env.sh moved."""

    def __init__(self, stack_dir: Path) -> None:
        self.dir = stack_dir
        exported = set(re.findall(r"^\s*export (\w+)", STACK_ENV.read_text(), re.MULTILINE))
        drop = (exported - SHARED_SETTINGS) | {"KAFKA_INGEST_STACK_ENV"}
        self.env = {name: value for name, value in os.environ.items() if name not in drop}
        self.env["STACK_DIR"] = str(stack_dir)
        self.env["STACK_TIMEOUT"] = "600"  # a busy CI machine, and two JVMs started twice
        self.env["STACK_AIRFLOW"] = "0"  # the data services only; `down` finds nothing else to stop
        self.env.update({name: str(_free_port()) for name in sorted(exported) if name.endswith("_PORT")})
        self.bootstrap = f"127.0.0.1:{self.env['KAFKA_PORT']}"
        self.registry_url = f"http://127.0.0.1:{self.env['SCHEMA_REGISTRY_PORT']}/apis/ccompat/v7"

    def borrow_artifacts(self, shared: Path) -> None:
        """The shared stack's fetched Kafka classpath, Apicurio and StatsD."""
        kafka = self.dir / "kafka"
        kafka.mkdir(parents=True)
        classpath = f"classpath-{self.env['KAFKA_VERSION']}"
        shutil.copy2(shared / "kafka" / classpath, kafka / classpath)
        for name in (f"apicurio-{self.env['APICURIO_VERSION']}", "statsd"):
            (self.dir / name).symlink_to(shared / name)

    def run(self, command: str) -> float:
        """``scripts/stack <command>``; the seconds it took."""
        started = time.monotonic()
        done = subprocess.run(
            [str(REPO / "scripts" / "stack"), command],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"scripts/stack {command} failed:\n{done.stdout}\n{done.stderr}"
        return time.monotonic() - started


@pytest.fixture
def private_stack(tmp_path: Path) -> Iterator[PrivateStack]:
    stack = PrivateStack(tmp_path / "stack")
    stack.borrow_artifacts(Path(os.environ["STACK_DIR"]))
    try:
        yield stack
    finally:
        stack.run("down")


def publish_day(endpoints: Endpoints, spec: TopicSpec, root: Path, dataset: str) -> DayManifest:
    """The day, from two files (``up`` ran ``topics ensure``; ``run_job`` provisions the test's
    checkpoint topic: the brokers never auto-create)."""
    day = write_day(root, dataset, DATE, rows=120, formats=("csv", "jsonl"))
    run_job(endpoints, spec, day.files)
    return day


@pytest.mark.timeout(1500)
def test_every_record_of_a_day_decodes_to_its_own_type_after_the_stack_restarts(
    private_stack: PrivateStack, tmp_path: Path
) -> None:
    private_stack.run("up")
    endpoints = Endpoints(private_stack.bootstrap, private_stack.registry_url, "it-checkpoints-restart")
    days = [(spec, publish_day(endpoints, spec, tmp_path, spec.dataset)) for spec in (ORDERS, PAYMENTS)]
    ids_before = {s.subject: endpoints.registry().get_latest_version(s.subject).schema_id for s, _ in days}

    private_stack.run("down")
    up_s = private_stack.run("up")
    print(f"scripts/stack up after down: {up_s:.1f}s")

    registry = SchemaRegistryClient({"url": private_stack.registry_url, "timeout": 120})  # nothing cached
    decode = AvroDeserializer(registry)
    for spec, day in days:
        records = read_topic(private_stack.bootstrap, spec.topic)
        assert Counter(r.key.decode() for r in records if r.key) == Counter(day.published)
        fields = {f["name"] for f in json.loads(spec.schema_path.read_text())["fields"]}
        for record in records:
            (schema_id,) = struct.unpack(">I", record.value[1:5])
            writer = json.loads(registry.get_schema(schema_id).schema_str or "{}")
            value = decode(record.value, SerializationContext(spec.topic, MessageField.VALUE))
            assert writer["name"] == json.loads(spec.schema_path.read_text())["name"], (spec.topic, schema_id)
            assert isinstance(value, dict)
            assert set(value) == fields
            assert value[spec.key_field] == (record.key or b"").decode()
    assert {s: registry.get_latest_version(s).schema_id for s in ids_before} == ids_before
    # The journal lives in the same log dir as the records: `make clean` deletes them together.
    data = private_stack.dir / "kafka" / "data"
    assert list(data.glob("_registry.journal-*"))
    assert list(data.glob(f"{ORDERS.topic}-*"))
