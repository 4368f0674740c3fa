"""A private Kafka broker and Schema Registry that the fault tests may kill, stop and cut off.

The shared stack (``scripts/stack``, ports 9092/8081/8125) serves other engineers' tests while
these run, so nothing here touches it: the services below run from the artifacts ``scripts/stack
fetch`` already resolved (Kafka's classpath, Apicurio's ``quarkus-run.jar``), on free ports, with
their own data and log folders, and are stopped at the end of the session.

The broker and its KRaft controller run as two JVMs, as in production: the broker can be killed,
frozen and restarted while the controller keeps the cluster's metadata. (Killing a combined
broker+controller node made Kafka re-elect its partition leaders uncleanly on restart, and a
transaction committed just before the kill could stay unfinished on the checkpoint partition,
blocking read_committed readers: a property of that topology, not of the product.)

The broker has two client listeners:

* ``INTERNAL`` (``bootstrap``): direct, advertised as itself; the broker's own inter-broker
  traffic and the tests' assertions use it, so a proxy fault never blinds the checks;
* ``PROXIED`` (``proxied_bootstrap``): advertised as the :class:`FaultProxy` port, so a client that
  bootstraps there reaches the broker only through the proxy, whichever broker address the
  metadata hands it.
"""

from __future__ import annotations

import base64
import glob
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient
from proxy import FaultProxy, _free_port

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 90.0

#: Broker settings beyond the single-node basics. The broker aborts a transaction whose
#: ``transaction.timeout.ms`` expired at its next cleanup pass (10 s by default); 1 s here keeps
#: the "orphaned transaction" tests short without changing what the client sees.
BROKER_SETTINGS = {
    "num.partitions": "3",
    "auto.create.topics.enable": "false",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
    # The controller declares a killed broker dead after this session timeout (9 s by default). A
    # broker restarted sooner is refused ("Another broker is registered with that broker id") and
    # meanwhile loads its transaction log: when its registration finally fences the old
    # incarnation, every single-replica partition is leaderless for a moment, and a transaction
    # coordinator completing a commit right then skips the markers of the partitions it cannot
    # find a leader for ("likely deleted already"), leaving them hanging (seen here: the
    # checkpoint partition's last commit marker never written, so read_committed readers stopped
    # there). With several replicas a partition keeps a leader; with one, the old incarnation has
    # to be gone before the new one starts, as these short timeouts make sure.
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "1500",
}


def _cluster_id() -> str:
    """A random cluster id as Kafka makes them: URL-safe base64 of 16 bytes, never starting with
    "-" (the format command would read such an id as an option: one id in 64 failed a CI run)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class StackUnavailable(Exception):
    """The artifacts or a JDK the private services need are missing (run ``scripts/stack fetch``)."""


def java_for(minimum: int, variable: str) -> str:
    """A ``java`` of at least ``minimum`` major version, found the way ``scripts/stack`` does."""
    candidates = [os.environ.get(variable, "")]
    if not candidates[0]:
        java_home = os.environ.get("JAVA_HOME")
        candidates = [
            shutil.which("java") or "",
            f"{java_home}/bin/java" if java_home else "",
            *sorted(glob.glob("/usr/lib/jvm/*/bin/java")),
        ]
    for candidate in filter(None, candidates):
        try:
            out = subprocess.run([candidate, "-version"], capture_output=True, text=True, timeout=30).stderr
        except OSError:
            continue
        match = re.search(r'version "(\d+)', out)
        if match and int(match[1]) >= minimum:
            return candidate
    raise StackUnavailable(f"no Java {minimum}+ found (set {variable})")


class _Service:
    """One JVM in its own session, with a log file; kill/stop/start keep the same command."""

    name = "service"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log_path = workdir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.killed_at = 0.0

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.workdir,
            )

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> float:
        """Seconds it took; fails with the log's tail if the service died or never answered."""
        started = time.monotonic()
        while not self.ready():
            if self.process is None or self.process.poll() is not None:
                raise StackUnavailable(f"{self.name} exited while starting:\n{self._tail()}")
            if time.monotonic() - started > timeout_s:
                raise StackUnavailable(f"{self.name} not ready after {timeout_s:.0f}s:\n{self._tail()}")
            time.sleep(0.2)
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL, as a crashed host or an OOM kill would end it."""
        self.killed_at = time.monotonic()
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL after 30 s."""
        self._signal(signal.SIGTERM, wait_s=30)

    def _signal(self, sig: int, wait_s: float = 10) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def _tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"


class PrivateController(_Service):
    """The KRaft controller the private broker registers with (never faulted)."""

    name = "kafka-controller"

    def __init__(self, workdir: Path, jvm: list[str], port: int) -> None:
        super().__init__(workdir)
        self.jvm, self.port = jvm, port
        self.config_path = workdir / "controller.properties"

    def configure(self) -> None:
        settings = {
            "process.roles": "controller",
            "node.id": "2",
            "controller.quorum.voters": f"2@127.0.0.1:{self.port}",
            "listeners": f"CONTROLLER://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.workdir / "controller-data"),
            # the controller is what declares a silent broker dead (see BROKER_SETTINGS)
            "broker.session.timeout.ms": BROKER_SETTINGS["broker.session.timeout.ms"],
            "broker.heartbeat.interval.ms": BROKER_SETTINGS["broker.heartbeat.interval.ms"],
        }
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))

    def command(self) -> list[str]:
        return [
            *self.jvm,
            f"-Dkafka.logs.dir={self.workdir / 'controller-logs'}",
            "kafka.Kafka",
            str(self.config_path),
        ]

    def ready(self) -> bool:
        return self.process is not None and self.process.poll() is None


class PrivateKafka(_Service):
    """One broker, with a direct and a proxied listener, and its own KRaft controller."""

    name = "kafka"

    def __init__(self, workdir: Path, java: str, classpath: str) -> None:
        super().__init__(workdir)
        self.java, self.classpath = java, classpath
        self.port, self.controller_port, self.proxied_listener_port = (_free_port() for _ in range(3))
        self.proxy = FaultProxy(("127.0.0.1", self.proxied_listener_port), kafka=True)
        self.controller = PrivateController(workdir, self._jvm(), self.controller_port)
        self.config_path = workdir / "server.properties"
        self.data_dir = workdir / "data"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def proxied_bootstrap(self) -> str:
        return f"127.0.0.1:{self.proxy.port}"

    def setup(self) -> None:
        settings = {
            "process.roles": "broker",
            "node.id": "1",
            "controller.quorum.voters": f"2@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"INTERNAL://127.0.0.1:{self.port},PROXIED://127.0.0.1:{self.proxied_listener_port}"
            ),
            "advertised.listeners": (
                f"INTERNAL://127.0.0.1:{self.port},PROXIED://127.0.0.1:{self.proxy.port}"
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "INTERNAL",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,PROXIED:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            **BROKER_SETTINGS,
        }
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        self.controller.configure()
        cluster_id = _cluster_id()
        logs = [
            self.workdir / f"format-{config.stem}.log"
            for config in (self.config_path, self.controller.config_path)
        ]
        formats = []
        for config, log in zip((self.config_path, self.controller.config_path), logs, strict=True):
            with log.open("wb") as out:
                command = [
                    *self._jvm(),
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(config),
                ]
                formats.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT))
        failed = [log for process, log in zip(formats, logs, strict=True) if process.wait(120)]
        if failed:
            tails = "\n".join(log.read_text(errors="replace")[-2000:] for log in failed)
            raise StackUnavailable(
                f"kafka: formatting the KRaft storage failed (cluster id {cluster_id}):\n{tails}"
            )
        self.controller.start()
        self.proxy.start()

    def shutdown(self) -> None:
        """The end of the session: broker, controller and proxy."""
        self.stop()
        self.controller.stop()
        self.proxy.stop()

    def command(self) -> list[str]:
        return [*self._jvm(), "kafka.Kafka", str(self.config_path)]

    def ready(self) -> bool:
        try:
            metadata = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=2)
        except Exception:
            return False
        return bool(metadata.brokers)

    def _jvm(self) -> list[str]:
        return [
            self.java,
            "-Xms128m",
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            f"-Dlog4j2.configurationFile={REPO / 'scripts/stack.d/kafka-log4j2.properties'}",
            f"-Dkafka.logs.dir={self.workdir}",
            "-cp",
            self.classpath,
        ]


class PrivateRegistry(_Service):
    """Apicurio Registry (in-memory storage), behind a plain :class:`FaultProxy`."""

    name = "schema-registry"

    def __init__(self, workdir: Path, java: str, jar: Path) -> None:
        super().__init__(workdir)
        self.java, self.jar = java, jar
        self.port, self.management_port = _free_port(), _free_port()
        self.proxy = FaultProxy(("127.0.0.1", self.port))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/apis/ccompat/v7"

    @property
    def proxied_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}/apis/ccompat/v7"

    def command(self) -> list[str]:
        return [
            self.java,
            "-Xmx384m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Dquarkus.http.host=127.0.0.1",
            f"-Dquarkus.http.port={self.port}",
            "-Dquarkus.management.host=127.0.0.1",
            f"-Dquarkus.management.port={self.management_port}",
            "-Dapicurio.rules.global.compatibility=BACKWARD",
            "-jar",
            str(self.jar),
        ]

    def ready(self) -> bool:
        try:
            for url in (f"http://127.0.0.1:{self.management_port}/health/ready", f"{self.url}/config"):
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status != 200:
                        return False
        except OSError:
            return False
        return True


def artifacts() -> tuple[str, Path]:
    """Kafka's resolved classpath and Apicurio's jar, from the shared stack's folder (read only)."""
    stack_dir = Path(os.environ.get("STACK_DIR", REPO / ".stack"))
    classpath_file = stack_dir / "kafka" / f"classpath-{os.environ.get('KAFKA_VERSION', '4.4.0')}"
    jar = stack_dir / f"apicurio-{os.environ.get('APICURIO_VERSION', '3.3.3')}" / "quarkus-run.jar"
    if not classpath_file.is_file() or not jar.is_file():
        raise StackUnavailable(f"{classpath_file} or {jar} is missing: run `scripts/stack fetch`")
    return classpath_file.read_text().strip(), jar


class FaultStack:
    """The private services, and their proxies."""

    def __init__(self, kafka: PrivateKafka, registry: PrivateRegistry) -> None:
        self.kafka, self.registry = kafka, registry

    def restart_kafka(self) -> float:
        """Start the broker again after a kill or stop; seconds until it serves metadata.

        Not before the controller has declared the killed incarnation dead (see BROKER_SETTINGS).
        """
        session_s = int(BROKER_SETTINGS["broker.session.timeout.ms"]) / 1000
        time.sleep(max(0.0, self.kafka.killed_at + session_s + 0.5 - time.monotonic()))
        self.kafka.start()
        return self.kafka.wait_ready()

    def healthy(self) -> None:
        """Undo whatever a test did: broker up, proxies forwarding, registry up."""
        self.kafka.proxy.normal()
        self.registry.proxy.normal()
        if self.kafka.process is None or self.kafka.process.poll() is not None:
            self.restart_kafka()
