"""Shared test fixtures: the local stack's settings, and what happens when the stack is absent.

The settings come from ``scripts/stack-env.sh`` (sourced here when the caller has not already),
so a bare ``pytest`` sees the same ports, Airflow home and connections as ``make test``.

Integration tests (``@pytest.mark.integration``) skip when the stack is unreachable, unless
``CI=true`` or ``KAFKA_INGEST_REQUIRE_STACK=1`` (``make test`` sets it): then they fail, so
nothing is silently skipped.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from stack_airflow import AirflowServer

REPO = Path(__file__).resolve().parent.parent
_SHELL_VARIABLES = {"_", "PWD", "OLDPWD", "SHLVL"}


def _load_stack_env() -> None:
    if os.environ.get("KAFKA_INGEST_STACK_ENV"):
        return
    script = f'. "{REPO}/scripts/stack-env.sh" && env -0'
    out = subprocess.run(["bash", "-c", script], check=True, capture_output=True).stdout
    for entry in out.decode().split("\0"):
        name, sep, value = entry.partition("=")
        if sep and name not in _SHELL_VARIABLES and os.environ.get(name) != value:
            os.environ[name] = value


_load_stack_env()


@dataclass(frozen=True)
class Stack:
    """Where the local stack's services listen (see scripts/stack-env.sh)."""

    kafka_bootstrap: str
    schema_registry_url: str
    statsd_host: str
    statsd_port: int
    statsd_admin_port: int
    airflow_api_port: int

    @classmethod
    def from_env(cls) -> Stack:
        env = os.environ
        return cls(
            kafka_bootstrap=env["KAFKA_BOOTSTRAP"],
            schema_registry_url=env["SCHEMA_REGISTRY_URL"],
            statsd_host=env["STATSD_HOST"],
            statsd_port=int(env["STATSD_PORT"]),
            statsd_admin_port=int(env["STATSD_ADMIN_PORT"]),
            airflow_api_port=int(env["AIRFLOW_API_PORT"]),
        )

    def endpoints(self) -> dict[str, tuple[str, int]]:
        kafka_host, kafka_port = self.kafka_bootstrap.split(",")[0].rsplit(":", 1)
        registry = re.match(r"https?://([^:/]+):(\d+)", self.schema_registry_url)
        assert registry, f"SCHEMA_REGISTRY_URL has no host:port: {self.schema_registry_url}"
        return {
            "kafka": (kafka_host, int(kafka_port)),
            "schema registry": (registry[1], int(registry[2])),
            "statsd admin": (self.statsd_host, self.statsd_admin_port),
        }


def stack_required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("KAFKA_INGEST_REQUIRE_STACK") == "1"


def _unreachable(stack: Stack) -> list[str]:
    down = []
    for name, (host, port) in stack.endpoints().items():
        try:
            socket.create_connection((host, port), timeout=2).close()
        except OSError as exc:
            down.append(f"{name} at {host}:{port} ({exc.strerror or exc})")
    return down


@pytest.fixture(scope="session")
def stack() -> Stack:
    """The stack's settings; skips (or fails, when the stack is required) if it is not up."""
    settings = Stack.from_env()
    down = _unreachable(settings)
    if down:
        message = f"local stack not reachable: {', '.join(down)}; start it with `make up`"
        if stack_required():
            pytest.fail(
                message + " (required because CI=true or KAFKA_INGEST_REQUIRE_STACK=1)", pytrace=False
            )
        pytest.skip(message)
    return settings


@pytest.fixture(autouse=True)
def _integration_needs_stack(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("integration"):
        request.getfixturevalue("stack")


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: Stack) -> str:
    return stack.kafka_bootstrap


@pytest.fixture(scope="session")
def schema_registry_url(stack: Stack) -> str:
    return stack.schema_registry_url


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Makes names no other test (or earlier run) uses: ``unique_name("orders")`` ->
    ``it-orders-test_x-1a2b3c4d``. Valid as a Kafka topic, transactional id or subject."""
    test = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:40]

    def make(prefix: str = "t") -> str:
        return f"it-{prefix}-{test}-{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def unique_topic(unique_name: Callable[[str], str]) -> Callable[[str], str]:
    return unique_name


@pytest.fixture(scope="session")
def airflow_server(stack: Stack) -> AirflowServer:
    """The stack's running Airflow (``make up``: api-server, scheduler, dag-processor, triggerer on
    PostgreSQL); fails (or skips, when the stack is not required) if it is not healthy."""
    server = AirflowServer.from_env()
    deadline = time.monotonic() + 120
    while not server.healthy():
        if time.monotonic() > deadline:
            message = f"Airflow at {server.url} is not healthy (make up; make status shows its parts)"
            if stack_required():
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        time.sleep(2)
    return server
