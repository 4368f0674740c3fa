"""Fixtures of the observability tests: a real statsd_exporter, a loopback OpenLineage receiver,
and a runner for one DAG day in a process of its own (``dag_driver.py``)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
MAPPING = REPO / "monitoring" / "statsd_mapping.yml"
DRIVER = Path(__file__).with_name("dag_driver.py")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prometheus_tool(name: str) -> Path:
    """A tool ``scripts/monitoring-tools`` (``make setup``) built; missing means failed, not skipped."""
    path = Path(os.environ.get("PROMETHEUS_TOOLS", Path.home() / ".cache/kafka-ingest/go/bin")) / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: run `make setup` (scripts/monitoring-tools)", pytrace=False)
    return path


@dataclass
class Exporter:
    statsd_port: int
    url: str

    def scrape(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            return str(response.read().decode())

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        """Every sample of metric ``name``: its labels -> value."""
        found = {}
        for line in self.scrape().splitlines():
            match = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
            if match:
                labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match[1] or ""))
                found[labels] = float(match[2])
        return found


@pytest.fixture(scope="module")
def statsd_exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exporter]:
    """statsd_exporter with the project's mapping, on loopback ports of its own."""
    binary = prometheus_tool("statsd_exporter")
    udp, web = free_port(socket.SOCK_DGRAM), free_port()
    log = (tmp_path_factory.mktemp("exporter") / "statsd_exporter.log").open("w")
    process = subprocess.Popen(
        [
            str(binary),
            f"--statsd.mapping-config={MAPPING}",
            f"--statsd.listen-udp=127.0.0.1:{udp}",
            "--statsd.listen-tcp=",
            f"--web.listen-address=127.0.0.1:{web}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    exporter = Exporter(udp, f"http://127.0.0.1:{web}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                exporter.scrape()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"statsd_exporter did not start; see {log.name}", pytrace=False)
                time.sleep(0.3)
        yield exporter
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@dataclass
class Receiver:
    """A loopback HTTP endpoint that keeps every OpenLineage event POSTed to it."""

    url: str
    events: list[dict[str, Any]] = field(default_factory=list)


def receiver_handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    """A request handler that keeps every JSON body POSTed to it in ``receiver.events``."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.events.append(json.loads(body))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            return None

    return Handler


@pytest.fixture(scope="module")
def lineage_receiver() -> Iterator[Receiver]:
    receiver = Receiver(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), receiver_handler(receiver))
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


@dataclass
class DagRun:
    result: dict[str, Any]
    output: str


def file_transport(path: Path) -> str:
    return json.dumps({"type": "file", "log_file_path": str(path), "append": True})


@pytest.fixture(scope="module")
def run_dag_day() -> Callable[..., DagRun]:
    """``run_dag_day(args, env)``: one day of a DAG through ``dag_driver.py`` with extra env vars."""

    def run(args: dict[str, Any], env: dict[str, str]) -> DagRun:
        completed = subprocess.run(
            [sys.executable, str(DRIVER), json.dumps(args)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        output = completed.stdout + completed.stderr
        lines = [line for line in completed.stdout.splitlines() if line.startswith("DRIVER-RESULT ")]
        assert completed.returncode == 0, f"dag_driver failed:\n{output[-6000:]}"
        assert lines, f"dag_driver printed no result:\n{output[-6000:]}"
        return DagRun(json.loads(lines[-1].removeprefix("DRIVER-RESULT ")), output)

    return run
