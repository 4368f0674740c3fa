"""Fixtures of the cluster tests: the secured 3-broker cluster (:mod:`cluster_stack`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

import pytest
from cluster_stack import NODES, Cluster, cluster_environment


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    found = Cluster(cluster_environment())
    down = [node for node in NODES if found.pid(node) is None]
    if down:
        pytest.fail(
            f"the secured cluster is not up ({', '.join(down)} down): run `make cluster-up`", pytrace=False
        )
    return found


@pytest.fixture
def healthy(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster with all nodes up and in sync before and after the test."""
    if any(cluster.pid(node) is None for node in NODES):
        cluster.up()
    yield cluster
    if any(cluster.pid(node) is None for node in NODES):
        cluster.up()


@pytest.fixture
def names(request: pytest.FixtureRequest) -> Callable[[str], str]:
    test = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:40]
    return lambda prefix: f"cl-{prefix}-{test}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def _integration_needs_stack(request: pytest.FixtureRequest) -> None:
    """The registry of the main stack is checked by each test that uses it (schema_registry_url)."""
