"""Shared test fixtures: the local stack's settings, and what happens when the stack is absent.

The settings come from ``scripts/stack-env.sh`` (sourced here when the caller has not already),
so a bare ``pytest`` sees the same ports, Airflow home and connections as ``make test``.

Integration tests (``@pytest.mark.integration``) skip when the stack is unreachable, unless
``CI=true`` or ``KAFKA_INGEST_REQUIRE_STACK=1`` (``make test`` sets it): then they fail, so
nothing is silently skipped.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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


@dataclass(frozen=True)
class AirflowServer:
    url: str
    username: str
    password: str

    def token(self) -> str:
        body = json.dumps({"username": self.username, "password": self.password}).encode()
        request = urllib.request.Request(
            f"{self.url}/auth/token", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
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
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path} -> {exc.code}: {exc.read().decode()[:2000]}") from exc


@pytest.fixture(scope="session")
def airflow_standalone(stack: Stack) -> Iterator[AirflowServer]:
    """A running ``airflow standalone`` (api-server, scheduler, dag-processor, triggerer) for
    tests that need a scheduler; stopped with SIGINT, which is what stops its children."""
    stack_dir = Path(os.environ["STACK_DIR"])
    with run_airflow_standalone(
        dict(os.environ),
        log_path=stack_dir / "logs" / "airflow-standalone.log",
        pid_file=stack_dir / "run" / "airflow-standalone.pid",
    ) as server:
        yield server


@pytest.fixture(scope="session")
def start_isolated_airflow(stack: Stack) -> Callable[..., AbstractContextManager[AirflowServer]]:
    """``with start_isolated_airflow(home, VAR="value") as server:`` runs an ``airflow standalone``
    of the test's own (see :func:`isolated_airflow_env`) with extra environment variables, which
    the DAG files, the Variables (``AIRFLOW_VAR_*``) and the tasks all see."""

    def start(home: Path, **extra_env: str) -> AbstractContextManager[AirflowServer]:
        return run_airflow_standalone(
            isolated_airflow_env(home, **extra_env), log_path=home / "standalone.log"
        )

    return start


def isolated_airflow_env(home: Path, **extra: str) -> dict[str, str]:
    """The stack's environment with an Airflow of its own: home and SQLite DB under ``home`` and
    free ports, so a test's standalone shares no state (runs, paused flags) with anyone else's."""
    api, worker_logs, triggerer_logs = (_free_port() for _ in range(3))
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW_API_PORT": str(api),
        "AIRFLOW__API__PORT": str(api),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_logs),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(triggerer_logs),
        **extra,
    }


def _loopback_airflow(home: Path, venv_bin: Path) -> Path:
    """An ``airflow`` first on standalone's PATH that starts the scheduler and triggerer without
    their log servers: Airflow 3.3 binds those to every interface with no setting to change it,
    and on one machine the api-server reads task logs from the files anyway. Everything the tests
    start then listens on 127.0.0.1 only."""
    folder = home / "loopback-bin"
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / "airflow"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case "$1" in scheduler|triggerer) exec "{venv_bin}/airflow" "$@" --skip-serve-logs ;; esac\n'
        f'exec "{venv_bin}/airflow" "$@"\n'
    )
    wrapper.chmod(0o755)
    return folder


@contextmanager
def run_airflow_standalone(
    env: dict[str, str], *, log_path: Path, pid_file: Path | None = None
) -> Iterator[AirflowServer]:
    """Runs ``airflow standalone`` with ``env`` (its AIRFLOW_HOME and AIRFLOW__API__PORT) until the
    block ends, then stops it with SIGINT."""
    home = Path(env["AIRFLOW_HOME"])
    url = f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}"
    log = log_path.open("w")
    restore_sigint = (  # a process started in the background ignores SIGINT
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    venv_bin = Path(sys.executable).parent  # standalone starts its components as `airflow ...`
    loopback_bin = _loopback_airflow(home, venv_bin)
    process = subprocess.Popen(
        [sys.executable, "-c", restore_sigint, str(venv_bin / "airflow"), "standalone"],
        env={**env, "PATH": f"{loopback_bin}{os.pathsep}{venv_bin}{os.pathsep}{env['PATH']}"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if pid_file is not None:
        pid_file.write_text(str(process.pid))
    try:
        # Generous on a loaded machine: the api-server alone took over 2 minutes with load ~30.
        deadline = time.monotonic() + float(os.environ.get("KAFKA_INGEST_AIRFLOW_START_TIMEOUT", "300"))
        while not _answers(f"{url}/api/v2/monitor/health"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"airflow standalone did not come up; see {log.name}", pytrace=False)
            time.sleep(1)
        passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        username, password = next(iter(passwords.items()))
        yield AirflowServer(url=url, username=username, password=password)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)
        log.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False
