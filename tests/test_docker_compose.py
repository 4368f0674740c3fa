"""docker-compose.yml keeps the promises the local stack makes (no Docker engine here to run it):
the same services, connection ids, variables and metrics settings, ports on 127.0.0.1 only."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return dict(compose["services"])


def published(service: dict[str, Any]) -> list[str]:
    return [str(port) for port in service.get("ports", [])]


def test_it_defines_kafka_registry_statsd_postgres_and_the_airflow_components(
    services: dict[str, Any],
) -> None:
    assert {"kafka", "schema-registry", "statsd", "postgres", *AIRFLOW_SERVICES} <= set(services)
    for name, command in AIRFLOW_SERVICES.items():
        assert services[name]["command"] == command


def test_every_published_port_is_bound_to_localhost(services: dict[str, Any]) -> None:
    ports = [port for service in services.values() for port in published(service)]
    assert ports
    assert [port for port in ports if not port.startswith("127.0.0.1:")] == []


@pytest.mark.parametrize(
    ("service", "port"),
    [
        ("kafka", "127.0.0.1:9092:9092"),
        ("schema-registry", "127.0.0.1:8081:8081"),
        ("statsd", "127.0.0.1:8125:8125/udp"),
        ("statsd", "127.0.0.1:8126:8126"),
        ("airflow-apiserver", "127.0.0.1:8080:8080"),
    ],
)
def test_it_publishes_the_local_stack_default_ports(
    services: dict[str, Any], service: str, port: str
) -> None:
    assert port in published(services[service])


@pytest.mark.parametrize("name", sorted(AIRFLOW_SERVICES))
def test_airflow_mounts_dags_plugins_and_schemas_where_its_config_points(
    services: dict[str, Any], name: str
) -> None:
    env = services[name]["environment"]
    mounts = dict(volume.split(":")[:2] for volume in services[name]["volumes"])

    assert mounts["./dags"] == env["AIRFLOW__CORE__DAGS_FOLDER"]
    assert mounts["./plugins"] == env["AIRFLOW__CORE__PLUGINS_FOLDER"]
    assert "./schemas" in mounts
    assert env["AIRFLOW_VAR_EXTRACTS_ROOT"].startswith(mounts["./samples"])


def test_every_mounted_file_exists(services: dict[str, Any]) -> None:
    """Docker would mount a missing file as an empty directory (missing directories are fine)."""
    files = [
        volume.split(":")[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if volume.startswith("./") and Path(volume.split(":")[0]).suffix
    ]
    assert files
    assert [path for path in files if not (REPO / path).is_file()] == []


def test_airflow_uses_postgres_through_psycopg3_and_the_local_executor_by_default(
    services: dict[str, Any],
) -> None:
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://")
    assert "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"


CELERY_SERVICES = {"redis", "airflow-worker-1", "airflow-worker-2"}


def test_redis_and_two_celery_workers_run_only_under_the_celery_profile(services: dict[str, Any]) -> None:
    assert set(services) >= CELERY_SERVICES
    assert {name: services[name].get("profiles") for name in CELERY_SERVICES} == {
        name: ["celery"] for name in CELERY_SERVICES
    }
    defaults = {name for name, service in services.items() if "profiles" not in service}
    assert {"postgres", *AIRFLOW_SERVICES} <= defaults


def test_the_celery_workers_have_distinct_names_and_a_concurrency_of_two(services: dict[str, Any]) -> None:
    commands = [services[f"airflow-worker-{n}"]["command"].split() for n in (1, 2)]
    names = [command[command.index("--celery-hostname") + 1] for command in commands]
    assert all(command[:2] == ["celery", "worker"] for command in commands)
    assert len(set(names)) == 2
    assert [command[command.index("--concurrency") + 1] for command in commands] == ["2", "2"]


def test_celery_uses_redis_as_broker_and_postgres_as_result_backend(services: dict[str, Any]) -> None:
    env = services["airflow-worker-1"]["environment"]
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert "@redis:6379/" in env["AIRFLOW__CELERY__BROKER_URL"]
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert set(services["airflow-worker-1"]["depends_on"]) >= {"postgres", "redis"}


def test_every_airflow_process_shares_one_jwt_secret_and_execution_api_url(services: dict[str, Any]) -> None:
    airflow = [name for name in services if name.startswith("airflow-")]
    shared = {
        (
            services[name]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"],
            services[name]["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"],
        )
        for name in airflow
    }
    assert len(airflow) >= 7
    assert len(shared) == 1


def test_airflow_has_the_same_connections_variables_and_metrics_settings_as_the_local_stack(
    services: dict[str, Any],
) -> None:
    local = set(
        re.findall(
            r"^export ((?:AIRFLOW_CONN|AIRFLOW_VAR|AIRFLOW__METRICS)_\w+)=",
            (REPO / "scripts/stack-env.sh").read_text(),
            re.MULTILINE,
        )
    )
    env = services["airflow-scheduler"]["environment"]

    assert local - set(env) == set()
    assert env["AIRFLOW__METRICS__STATSD_HOST"] == "statsd"


def compose_defaults(text: str) -> str:
    """``${VAR:-default}`` as Compose expands it when VAR is unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)


def test_connections_point_at_the_compose_kafka_and_registry(services: dict[str, Any]) -> None:
    env = services["airflow-scheduler"]["environment"]
    kafka = json.loads(compose_defaults(env["AIRFLOW_CONN_KAFKA_DEFAULT"]))
    registry = json.loads(env["AIRFLOW_CONN_SCHEMA_REGISTRY_DEFAULT"])

    assert kafka["conn_type"] == "kafka"
    assert kafka["extra"]["bootstrap.servers"].startswith("kafka:")
    assert registry == {"conn_type": "schema_registry", "host": "http://schema-registry:8081"}


def test_kafka_is_a_single_kraft_node_that_serves_transactions(services: dict[str, Any]) -> None:
    env = services["kafka"]["environment"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


def test_schema_registry_defaults_to_backward_compatibility(services: dict[str, Any]) -> None:
    assert (
        services["schema-registry"]["environment"]["SCHEMA_REGISTRY_SCHEMA_COMPATIBILITY_LEVEL"] == "BACKWARD"
    )


def test_kafka_keeps_its_log_dir_on_a_named_volume(services: dict[str, Any]) -> None:
    """Records and schemas survive `docker compose down` (a container's own files do not)."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    log_dir = services["kafka"]["environment"]["KAFKA_LOG_DIRS"]
    mounts = dict(volume.split(":")[:2] for volume in services["kafka"]["volumes"])

    assert log_dir in mounts.values()
    assert next(name for name, target in mounts.items() if target == log_dir) in compose["volumes"]


def test_schema_registry_keeps_its_schemas_in_that_kafka(services: dict[str, Any]) -> None:
    """Schemas in a topic of the same cluster: kept or dropped together with the records."""
    env = services["schema-registry"]["environment"]
    assert env["SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS"].split(":")[0] == "kafka"
    assert env["SCHEMA_REGISTRY_KAFKASTORE_TOPIC"] == "_schemas"
    assert services["schema-registry"]["depends_on"]["kafka"]["condition"] == "service_healthy"


CLUSTER = ("kafka-1", "kafka-2", "kafka-3")


def test_the_cluster_profile_has_three_combined_nodes_with_rf_3_and_min_isr_2(
    services: dict[str, Any],
) -> None:
    envs = [services[name]["environment"] for name in CLUSTER]
    assert [services[name]["profiles"] for name in CLUSTER] == [["cluster"]] * 3
    assert [env["KAFKA_NODE_ID"] for env in envs] == ["1", "2", "3"]
    for env in envs:
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert (env["KAFKA_DEFAULT_REPLICATION_FACTOR"], env["KAFKA_MIN_INSYNC_REPLICAS"]) == ("3", "2")
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert "-Xmx512m" in env["KAFKA_HEAP_OPTS"]


def test_the_cluster_nodes_publish_the_local_stacks_cluster_ports(services: dict[str, Any]) -> None:
    assert [published(services[name]) for name in CLUSTER] == [
        ["127.0.0.1:9192:9192"],
        ["127.0.0.1:9194:9194"],
        ["127.0.0.1:9196:9196"],
    ]


def test_topics_are_provisioned_by_the_project_command(services: dict[str, Any]) -> None:
    assert services["kafka-topics"]["command"] == ["python", "-m", "kafka_ingest", "topics", "ensure"]


def test_the_processes_tasks_are_forked_from_preload_the_tasks_modules(services: dict[str, Any]) -> None:
    scheduler = services["airflow-scheduler"]["environment"]
    assert scheduler["AIRFLOW__SCHEDULER__MP_START_METHOD"] == "forkserver"
    assert scheduler["AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD"] == "kafka_ingest.worker_preload"
    assert "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS" not in scheduler  # the scheduler stays lean
    workers = [services[f"airflow-worker-{n}"]["environment"] for n in (1, 2)]
    assert {env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] for env in workers} == {
        "kafka_ingest.worker_preload.CELERY_CONFIG"
    }
    broker = scheduler["AIRFLOW__CELERY__BROKER_URL"]
    assert all(env["AIRFLOW__CELERY__BROKER_URL"] == broker for env in workers)  # the rest is kept
