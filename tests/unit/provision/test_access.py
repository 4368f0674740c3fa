"""Refused credentials are permanent and name the connection (the cluster cases: tests/cluster)."""

from __future__ import annotations

import pytest

from kafka_ingest.errors import PermanentError
from kafka_ingest.operators.extract_to_kafka import registry_access
from kafka_ingest.provision.access import AccessDenied, check_kafka_access
from kafka_ingest.registry import RegistryAuthError


def test_a_plaintext_connection_is_not_probed() -> None:
    """Nothing listens on port 1: a probe would fail; a plaintext connection is never probed."""
    check_kafka_access({"bootstrap.servers": "127.0.0.1:1"}, "kafka_default", timeout_s=0.1)


def test_access_denied_is_permanent() -> None:
    assert issubclass(AccessDenied, PermanentError)


def test_a_registry_auth_error_names_the_connection() -> None:
    denied = pytest.raises(AccessDenied, match=r"Schema registry connection 'sr_prod': .*subject 's-value'")
    with denied, registry_access("sr_prod"):
        raise RegistryAuthError("Schema registry at http://r (subject 's-value') refused the request: 401")


def test_other_registry_errors_pass_through_unchanged() -> None:
    with pytest.raises(ValueError, match="other"), registry_access("sr_prod"):
        raise ValueError("other")
