"""Fixtures of the fault tests: a private broker and registry, each behind a fault proxy.

Nothing here touches the shared stack (127.0.0.1:9092/8081/8125-8126), which other engineers'
tests use at the same time: :mod:`stack` starts a broker and a registry of this session's own on
free ports, and they are stopped (and their data deleted) when the session ends. The suite has a
target of its own, ``make test-faults``, which CI runs after ``make test``; run in one pytest with
other suites, it goes last (see :func:`pytest_collection_modifyitems`).
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

from helpers import DIRECT_BOOTSTRAP_ENV, fork_context, stop_fork_server
from ingest_helpers import Endpoints
from stack import FaultStack, PrivateKafka, PrivateRegistry, StackUnavailable, artifacts, java_for

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fault tests last when collected with other suites: they start JVMs of their own."""
    items.sort(key=lambda item: HERE in Path(str(item.path)).parents)


@pytest.fixture(scope="session")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    workdir = tmp_path_factory.mktemp("fault-stack")
    try:
        classpath, jar = artifacts()
        kafka = PrivateKafka(workdir, java_for(17, "KAFKA_JAVA"), classpath)
        registry = PrivateRegistry(workdir, java_for(21, "REGISTRY_JAVA"), jar)
    except StackUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true" or os.environ.get("KAFKA_INGEST_REQUIRE_STACK") == "1":
            pytest.fail(f"fault tests cannot start their private stack: {exc}", pytrace=False)
        pytest.skip(f"fault tests need the stack's artifacts: {exc}")
    try:
        registry.start()
        kafka.setup()
        kafka.start()
        kafka.wait_ready()
        # Topics are provisioned on the direct listener, never through a proxy a test is faulting.
        os.environ[DIRECT_BOOTSTRAP_ENV] = kafka.bootstrap
        registry.wait_ready()
        registry.proxy.start()
        yield FaultStack(kafka, registry)
    finally:
        stop_fork_server()
        kafka.shutdown()
        registry.stop()
        registry.proxy.stop()


@pytest.fixture(autouse=True)
def _integration_needs_stack(request: pytest.FixtureRequest) -> None:
    """Replaces the shared-stack check of ``tests/conftest.py``: these tests bring their own."""


@pytest.fixture
def stack(fault_stack: FaultStack) -> Iterator[FaultStack]:
    """The private stack, healthy again after the test whatever the test broke."""
    fault_stack.healthy()
    yield fault_stack
    gc.collect()  # a failed attempt's exception keeps its producers alive, reconnecting, until collected
    fault_stack.healthy()


@pytest.fixture
def endpoints(stack: FaultStack, unique_name: Callable[[str], str]) -> Endpoints:
    """Direct endpoints and a checkpoint topic of the test's own."""
    return Endpoints(stack.kafka.bootstrap, stack.registry.url, unique_name("checkpoints"))


@pytest.fixture
def proxied(stack: FaultStack, endpoints: Endpoints) -> Endpoints:
    """The same, with the broker reached only through the Kafka fault proxy."""
    return Endpoints(stack.kafka.proxied_bootstrap, endpoints.registry_url, endpoints.checkpoint_topic)


@pytest.fixture(scope="session")
def children(fault_stack: FaultStack) -> Any:
    """The fork server's context (see ``helpers.Child``)."""
    return fork_context()


@pytest.fixture
def topic(unique_name: Callable[[str], str]) -> str:
    return unique_name("orders")


@pytest.fixture
def later() -> Iterator[Callable[[float, Callable[[], Any]], None]]:
    """``later(seconds, action)``: run ``action`` in a thread after a delay; joined at teardown."""
    threads: list[threading.Thread] = []
    errors: list[BaseException] = []

    def schedule(delay_s: float, action: Callable[[], Any]) -> None:
        def run() -> None:
            try:
                threading.Event().wait(delay_s)
                action()
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)

    yield schedule
    for thread in threads:
        thread.join(120)
    assert not errors, errors


os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
