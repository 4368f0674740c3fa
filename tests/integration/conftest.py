"""Fixtures of the ingestion integration tests (``test_ingest_*.py``); see ``ingest_helpers``."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from ingest_helpers import Endpoints


@pytest.fixture(scope="module")
def checkpoint_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> str:
    """A checkpoint topic of the test module's own: reading checkpoints never scans other runs'."""
    module = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")
    return f"it-checkpoints-{module}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def endpoints(kafka_bootstrap: str, schema_registry_url: str, checkpoint_topic: str) -> Endpoints:
    return Endpoints(kafka_bootstrap, schema_registry_url, checkpoint_topic)


@pytest.fixture(scope="module")
def module_topic(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Unique topic names for module-scoped fixtures (``unique_name`` is per test)."""
    module = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")

    def make(prefix: str) -> str:
        return f"it-{prefix}-{module}-{uuid.uuid4().hex[:8]}"

    return make
