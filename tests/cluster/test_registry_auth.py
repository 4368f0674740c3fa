"""Registry auth: Apicurio 3.3 with HTTP basic auth, embedded users and role-based authorization.

A registry of this module's own (in-memory, the main stack's Apicurio jar) runs with the settings
``scripts/stack`` gives the secured stack's registry (``scripts/stack.d/registry-auth.sh``): a
read-only user for production runs (``auto_register=False``), a developer that may register, an
admin. A 401 or 403 fails the task at once, naming the connection and the subject, never the
password.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException
from cluster_helpers import DATE, Run
from cluster_stack import REPO, Cluster

from kafka_ingest.operators.datasets import OrdersToKafkaOperator
from kafka_ingest.testing.samples import DayManifest, write_day

sys.path.insert(0, str(REPO / "tests" / "faults"))
from proxy import _free_port
from stack import artifacts, java_for

pytestmark = [pytest.mark.cluster]
ROLES = {"reader": "sr-readonly", "developer": "sr-developer", "admin": "sr-admin"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """``(ccompat URL, user -> password)`` of a registry with auth on."""
    workdir = tmp_path_factory.mktemp("registry-auth")
    passwords = {user: secrets.token_hex(12) for user in ROLES}
    port, management = _free_port(), _free_port()
    env = {
        **os.environ,
        "APICURIO_AUTH_ENABLED": "true",
        "QUARKUS_HTTP_AUTH_BASIC": "true",
        "QUARKUS_SECURITY_USERS_EMBEDDED_ENABLED": "true",
        "QUARKUS_SECURITY_USERS_EMBEDDED_PLAIN_TEXT": "true",
        "APICURIO_AUTH_ROLE_BASED_AUTHORIZATION": "true",
        "APICURIO_AUTHN_BASIC_CLIENT_CREDENTIALS_ENABLED": "false",
        **{f"QUARKUS_SECURITY_USERS_EMBEDDED_USERS_{u.upper()}": pw for u, pw in passwords.items()},
        **{f"QUARKUS_SECURITY_USERS_EMBEDDED_ROLES_{u.upper()}": role for u, role in ROLES.items()},
    }
    _, jar = artifacts()
    command = [
        java_for(21, "REGISTRY_JAVA"),
        "-Xmx384m",
        "-XX:+UseSerialGC",
        "-Dquarkus.http.host=127.0.0.1",
        f"-Dquarkus.http.port={port}",
        "-Dquarkus.management.host=127.0.0.1",
        f"-Dquarkus.management.port={management}",
        "-Dapicurio.rules.global.compatibility=BACKWARD",
        "-jar",
        str(jar),
    ]
    log = (workdir / "registry.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not _ready(f"http://127.0.0.1:{management}/health/ready"):
            assert process.poll() is None, (workdir / "registry.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the registry did not start"
            time.sleep(1)
        yield f"http://127.0.0.1:{port}/apis/ccompat/v7", passwords
    finally:
        process.terminate()
        process.wait(60)
        log.close()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def run(cluster: Cluster, registry: tuple[str, dict[str, str]], names: Callable[[str], str]) -> Run:
    return Run.provisioned(cluster, registry[0], names)


@pytest.fixture
def manifest(tmp_path: Path) -> DayManifest:
    return write_day(tmp_path, "orders", DATE, rows=50, formats=("csv",))


def execute(
    run: Run,
    manifest: DayManifest,
    monkeypatch: pytest.MonkeyPatch,
    user: str,
    password: str,
    *,
    auto_register: bool,
) -> dict[str, object]:
    """One try of the operator with the registry connection logging in as ``user``."""
    connection = {
        "conn_type": "schema_registry",
        "host": run.registry_url,
        "login": user,
        "password": password,
    }
    monkeypatch.setenv("AIRFLOW_CONN_REGISTRY_UNDER_TEST", json.dumps(connection))
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", json.dumps(run.cluster.connection("ingest")))
    operator = OrdersToKafkaOperator(
        task_id="publish",
        extract_path=manifest.files,
        extract_date=DATE,
        topic=run.topic,
        checkpoint_topic=run.checkpoint_topic,
        schema_registry_conn_id="registry_under_test",
        auto_register=auto_register,
        max_dlq_ratio=None,
    )
    ti = SimpleNamespace(dag_id="cluster", run_id=f"r-{user}", task_id="publish", map_index=-1, try_number=1)
    return dict(operator.execute({"ti": ti}))  # type: ignore[arg-type]


def test_the_read_only_user_runs_production_style_once_a_developer_registered_the_schema(
    run: Run, manifest: DayManifest, monkeypatch: pytest.MonkeyPatch, registry: tuple[str, dict[str, str]]
) -> None:
    passwords = registry[1]
    registered = execute(run, manifest, monkeypatch, "developer", passwords["developer"], auto_register=True)
    production = execute(run, manifest, monkeypatch, "reader", passwords["reader"], auto_register=False)

    assert registered["published"] == len(manifest.published)
    assert (production["schema_id"], production["published"]) == (registered["schema_id"], 0)


def test_the_read_only_user_may_not_register_and_the_task_fails_at_once_naming_connection_and_subject(
    run: Run,
    manifest: DayManifest,
    monkeypatch: pytest.MonkeyPatch,
    registry: tuple[str, dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    password = registry[1]["reader"]
    with pytest.raises(AirflowFailException) as failure:
        execute(run, manifest, monkeypatch, "reader", password, auto_register=True)

    message = str(failure.value)
    assert "registry_under_test" in message
    assert f"'{run.topic}-value'" in message
    assert "403" in message
    assert password not in message + caplog.text


def test_a_wrong_registry_password_fails_at_once_naming_connection_and_subject(
    run: Run, manifest: DayManifest, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(AirflowFailException) as failure:
        execute(run, manifest, monkeypatch, "developer", "wrong-password-123", auto_register=True)

    message = str(failure.value)
    assert "registry_under_test" in message
    assert f"'{run.topic}-value'" in message
    assert "401" in message
    assert "wrong-password-123" not in message + caplog.text
