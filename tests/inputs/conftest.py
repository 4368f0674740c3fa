"""Fixtures of the hostile-input tests: the stack's endpoints, a checkpoint topic and topic names
of the module's own, and the integration helpers (``ingest_helpers``) on the import path."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "integration")]

from ingest_helpers import Endpoints  # noqa: E402  (needs the path above)


def _module_name(request: pytest.FixtureRequest) -> str:
    return str(request.module.__name__).rsplit(".", 1)[-1].replace("_", "-")


@pytest.fixture(scope="module")
def endpoints(kafka_bootstrap: str, schema_registry_url: str, request: pytest.FixtureRequest) -> Endpoints:
    """The stack, with a checkpoint topic of the module's own."""
    checkpoints = f"it-checkpoints-{_module_name(request)}-{uuid.uuid4().hex[:8]}"
    return Endpoints(kafka_bootstrap, schema_registry_url, checkpoints)


@pytest.fixture(scope="module")
def module_topic(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Topic names no other module or run uses (the DLQ is ``<name>.dlq``)."""
    module = _module_name(request)

    def make(prefix: str) -> str:
        return f"it-{prefix}-{module}-{uuid.uuid4().hex[:8]}"

    return make
