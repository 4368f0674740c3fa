"""The local stack's running Airflow, as tests drive it: its REST API, and DAGs of a test's own.

``make up`` runs the api-server, scheduler, dag-processor and triggerer (and with
``EXECUTOR=celery`` two Celery workers) on PostgreSQL. A test that needs a scheduler uses that
Airflow instead of starting one: it writes a DAG file of its own (a unique ``dag_id``, topic and
extracts root, built by the production ``build_ingest_dag``) into the stack's ``test-dags``
bundle, which the dag-processor rescans every few seconds, and removes it (and the DAG's runs)
at the end. No state is shared with other tests or with ``make demo``. The brokers never create
topics (#22), so the DAG's topics are provisioned first, as ``topics ensure`` would.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kafka_ingest.operators import datasets
from kafka_ingest.publish.checkpoints import DEFAULT_CHECKPOINT_TOPIC
from kafka_ingest.testing.provision import provision_topics

#: How long the dag-processor may take to register a new DAG file (bundle refresh 5 s + a parse
#: of a few seconds; far longer on a busy 2-core machine).
REGISTER_TIMEOUT_S = 180


@dataclass(frozen=True)
class AirflowServer:
    url: str
    username: str
    #: Kept out of repr: a failing test's traceback shows the fixture's values.
    password: str = field(repr=False)

    @classmethod
    def from_env(cls) -> AirflowServer:
        """The stack's api-server and its admin login (the password made once per stack)."""
        user = os.environ.get("AIRFLOW_ADMIN_USER", "admin")
        passwords = Path(os.environ["AIRFLOW_HOME"], "simple_auth_manager_passwords.json.generated")
        return cls(
            url=f"http://127.0.0.1:{os.environ['AIRFLOW_API_PORT']}",
            username=user,
            password=json.loads(passwords.read_text())[user],
        )

    def token(self) -> str:
        body = json.dumps({"username": self.username, "password": self.password}).encode()
        request = urllib.request.Request(
            f"{self.url}/auth/token", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return str(json.load(response)["access_token"])

    def api(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> Any:
        """One REST call (``/api/v2/...``) with a bearer token; the decoded JSON answer."""
        request = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token or self.token()}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path} -> {exc.code}: {exc.read().decode()[:2000]}") from exc

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as response:
                health = json.load(response)
        except OSError:
            return False
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all(health.get(part, {}).get("status") == "healthy" for part in parts)


#: The dag-processor's safe mode reads only files that mention both "airflow" and "dag".
DAG_TEMPLATE = '''"""An airflow DAG written by a test ({test}); removed when it ends."""
from datetime import timedelta

from kafka_ingest.dag_factory import build_ingest_dag
from kafka_ingest.operators.datasets import {operator}

dag = build_ingest_dag(
    {operator},
    dag_id={dag_id!r},
    topic={topic!r},
    extracts_root={extracts_root!r},
    sensor_timeout=timedelta(minutes=2),
    poke_interval=timedelta(seconds=10),
)
'''


@dataclass(frozen=True)
class StackDag:
    """A test's own ingestion DAG on the running Airflow."""

    server: AirflowServer
    dag_id: str
    topic: str
    extracts_root: Path

    def set_paused(self, paused: bool) -> None:
        self.server.api("PATCH", f"/api/v2/dags/{self.dag_id}", {"is_paused": paused})
        assert self.server.api("GET", f"/api/v2/dags/{self.dag_id}")["is_paused"] is paused

    def backfill(self, days: tuple[str, ...], *, reprocess_behavior: str, conf: dict[str, Any]) -> int:
        """Creates a backfill of ``days`` (first to last, inclusive); its id."""
        body = {
            "dag_id": self.dag_id,
            "from_date": f"{days[0]}T00:00:00Z",
            "to_date": f"{days[-1]}T00:00:00Z",
            "max_active_runs": 3,
            "reprocess_behavior": reprocess_behavior,
            "dag_run_conf": conf,
        }
        return int(self.server.api("POST", "/api/v2/backfills", body)["id"])

    def wait_backfill(self, backfill_id: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.server.api("GET", f"/api/v2/backfills/{backfill_id}")["completed_at"] is None:
            if time.monotonic() > deadline:
                states = self.states()
                raise AssertionError(f"backfill {backfill_id} not complete after {timeout_s}s: {states}")
            time.sleep(3)

    def runs(self, days: tuple[str, ...]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.server.api(
            "GET",
            f"/api/v2/dags/{self.dag_id}/dagRuns?logical_date_gte={days[0]}T00:00:00Z"
            f"&logical_date_lte={days[-1]}T00:00:00Z&order_by=logical_date",
        )["dag_runs"]
        return found

    def states(self) -> list[tuple[str, str, str]]:
        runs = self.server.api("GET", f"/api/v2/dags/{self.dag_id}/dagRuns?order_by=logical_date")["dag_runs"]
        return [(run["logical_date"], run["run_type"], run["state"]) for run in runs]

    def task_instances(self, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{self.dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances?limit=1000"
        found: list[dict[str, Any]] = self.server.api("GET", path)["task_instances"]
        return found

    def tries(self, run_id: str, task_id: str, map_index: int) -> list[dict[str, Any]]:
        """Every try of one task instance (the earlier ones and the latest)."""
        path = (
            f"/api/v2/dags/{self.dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
            f"/{map_index}/tries"
        )
        found: list[dict[str, Any]] = self.server.api("GET", path)["task_instances"]
        return found

    def report(self, run_id: str) -> dict[str, Any]:
        """The run's ``report`` XCom (the day's totals)."""
        path = (
            f"/api/v2/dags/{self.dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/report"
            "/xcomEntries/return_value?deserialize=true&stringify=false"
        )
        return dict(self.server.api("GET", path)["value"])


@contextmanager
def stack_dag(
    server: AirflowServer, test_name: str, extracts_root: Path, *, operator: str = "OrdersToKafkaOperator"
) -> Iterator[StackDag]:
    """A DAG of the test's own in the stack's ``test-dags`` bundle, registered and unpaused-ready
    (new DAGs start paused); removed with its runs afterwards. Its data and DLQ topics (the
    operator's spec's topic + ``.it-<suffix>``) are created first."""
    suffix = uuid.uuid4().hex[:8]
    dag_id = f"it_{suffix}"
    spec = getattr(datasets, operator).spec
    dag = StackDag(server, dag_id, f"{spec.topic}.it-{suffix}", extracts_root)
    provision_topics(
        os.environ["KAFKA_BOOTSTRAP"], spec, checkpoint_topic=DEFAULT_CHECKPOINT_TOPIC, suffix=f".it-{suffix}"
    )
    source = DAG_TEMPLATE.format(
        test=test_name, operator=operator, dag_id=dag_id, topic=dag.topic, extracts_root=str(extracts_root)
    )
    with dag_file(server, dag_id, source):
        yield dag


@contextmanager
def dag_file(server: AirflowServer, dag_id: str, source: str) -> Iterator[None]:
    """``source`` as a DAG file in the stack's ``test-dags`` bundle, registered; removed with the
    DAG's runs afterwards."""
    path = Path(os.environ["AIRFLOW_TEST_DAGS"]) / f"{dag_id}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    try:
        wait_registered(server, dag_id)
        yield
    finally:
        path.unlink(missing_ok=True)
        remove_dag(server, dag_id)


def remove_dag(server: AirflowServer, dag_id: str) -> None:
    """Pauses the DAG and deletes it with its runs; a DAG with tasks still running cannot be
    deleted (409), so it is retried for a while, then left (paused, its file gone)."""
    try:
        server.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": True})
    except AssertionError:
        return  # never registered: nothing to clean
    for _ in range(20):
        try:
            server.api("DELETE", f"/api/v2/dags/{dag_id}")
            return
        except AssertionError as exc:
            if "-> 409" not in str(exc):
                return
        time.sleep(3)


def wait_registered(server: AirflowServer, dag_id: str, timeout_s: float = REGISTER_TIMEOUT_S) -> None:
    token = server.token()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            server.api("GET", f"/api/v2/dags/{dag_id}", token=token)
            return
        except AssertionError as exc:
            if "-> 404" not in str(exc):
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"{dag_id} not registered after {timeout_s}s; see the dag-processor log")
        time.sleep(2)
