# shellcheck shell=bash
# The local stack's configuration, in one place. Source it: `. scripts/stack-env.sh`.
# Every variable keeps a value the caller already exported; only unset ones get defaults.
# No `set -euo pipefail` here: this file runs inside the caller's shell.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO
export STACK_DIR="${STACK_DIR:-$REPO/.stack}"
export KAFKA_INGEST_CACHE="${KAFKA_INGEST_CACHE:-$HOME/.cache/kafka-ingest}"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$KAFKA_INGEST_CACHE/pip}"

# Versions of the services (artifacts come from Maven Central and npm).
export KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
export APICURIO_VERSION="${APICURIO_VERSION:-3.3.3}"
export STATSD_VERSION="${STATSD_VERSION:-0.9.0}"
# Prometheus tools, built from the Go module proxy by scripts/monitoring-tools (monitoring/).
export STATSD_EXPORTER_VERSION="${STATSD_EXPORTER_VERSION:-v0.31.0}"
export PROMTOOL_VERSION="${PROMTOOL_VERSION:-v0.316.0}"
export PROMETHEUS_TOOLS="${PROMETHEUS_TOOLS:-$KAFKA_INGEST_CACHE/go/bin}"

# Ports (all services listen on 127.0.0.1 only).
export KAFKA_PORT="${KAFKA_PORT:-9092}"
export KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
export SCHEMA_REGISTRY_PORT="${SCHEMA_REGISTRY_PORT:-8081}"
export SCHEMA_REGISTRY_MANAGEMENT_PORT="${SCHEMA_REGISTRY_MANAGEMENT_PORT:-9000}"
export STATSD_PORT="${STATSD_PORT:-8125}"
export STATSD_ADMIN_PORT="${STATSD_ADMIN_PORT:-8126}"
export AIRFLOW_API_PORT="${AIRFLOW_API_PORT:-8080}"
export AIRFLOW_WORKER_LOG_PORT="${AIRFLOW_WORKER_LOG_PORT:-8793}"
export AIRFLOW_TRIGGERER_LOG_PORT="${AIRFLOW_TRIGGERER_LOG_PORT:-8794}"

# Kafka's shape (docs/stack.md, docs/security.md): KAFKA_BROKERS=1 (one node on KAFKA_PORT) or 3
# (nodes on KAFKA_CLUSTER_BASE_PORT, +2, +4; each controller on its port + 1); KAFKA_SECURITY=
# plaintext or sasl_ssl (TLS with the stack's own CA, SCRAM-SHA-512 users, ACLs).
export KAFKA_BROKERS="${KAFKA_BROKERS:-1}"
export KAFKA_SECURITY="${KAFKA_SECURITY:-plaintext}"
export KAFKA_CLUSTER_BASE_PORT="${KAFKA_CLUSTER_BASE_PORT:-9192}"
export KAFKA_SECRETS="${KAFKA_SECRETS:-$STACK_DIR/kafka-secrets}"

# Derived endpoints. Every variable is exported as `export NAME=...` on one line: a private stack
# (tests/integration/test_registry_restart.py) finds the names to move or drop by that pattern.
_bootstrap="127.0.0.1:$KAFKA_PORT"
if ((KAFKA_BROKERS > 1)); then
  _bootstrap=""
  for ((_i = 0; _i < KAFKA_BROKERS; _i++)); do
    _bootstrap+="${_bootstrap:+,}127.0.0.1:$((KAFKA_CLUSTER_BASE_PORT + 2 * _i))"
  done
  unset _i
fi
export KAFKA_BOOTSTRAP="${KAFKA_BOOTSTRAP:-$_bootstrap}"
unset _bootstrap
export SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://127.0.0.1:$SCHEMA_REGISTRY_PORT/apis/ccompat/v7}"
export SCHEMA_REGISTRY_COMPATIBILITY="${SCHEMA_REGISTRY_COMPATIBILITY:-BACKWARD}"
# The registry keeps its schemas on the stack's Kafka (Apicurio KafkaSQL storage), in the topics
# <prefix>.journal (every change, kept forever), <prefix>.snapshots and <prefix>.events.
export SCHEMA_REGISTRY_TOPIC_PREFIX="${SCHEMA_REGISTRY_TOPIC_PREFIX:-_registry}"
export STATSD_HOST="${STATSD_HOST:-127.0.0.1}"

# Airflow as deployed: PostgreSQL metadata DB (Debian's postgresql-$POSTGRES_VERSION, a cluster of
# the stack's own), api-server + scheduler + dag-processor + triggerer as separate processes, and
# with EXECUTOR=celery a Redis broker and two Celery workers. Secrets (DB URL, JWT secret, ...) are
# not here: scripts/stack writes them into $AIRFLOW_HOME/airflow.cfg (see docs/deploy.md).
export POSTGRES_VERSION="${POSTGRES_VERSION:-15}"
export POSTGRES_PORT="${POSTGRES_PORT:-5433}"
export POSTGRES_OS_USER="${POSTGRES_OS_USER:-postgres}"
export POSTGRES_DB="${POSTGRES_DB:-airflow}"
export REDIS_PORT="${REDIS_PORT:-6380}"
# EXECUTOR=local|celery chooses the executor at `make up`; later commands follow the running stack's.
if [[ -z ${EXECUTOR:-} && -f $STACK_DIR/run/executor ]]; then EXECUTOR="$(<"$STACK_DIR/run/executor")"; fi
export EXECUTOR="${EXECUTOR:-local}"
if [[ $EXECUTOR == celery ]]; then export AIRFLOW__CORE__EXECUTOR=CeleryExecutor; else export AIRFLOW__CORE__EXECUTOR=LocalExecutor; fi
export AIRFLOW_HOME="${AIRFLOW_HOME:-$STACK_DIR/airflow}"
export AIRFLOW_ADMIN_USER="${AIRFLOW_ADMIN_USER:-admin}"
export AIRFLOW_READY_TIMEOUT="${AIRFLOW_READY_TIMEOUT:-420}"
export AIRFLOW_API_WORKERS="${AIRFLOW_API_WORKERS:-2}"
export AIRFLOW_WORKER_CONCURRENCY="${AIRFLOW_WORKER_CONCURRENCY:-2}"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-$AIRFLOW_ADMIN_USER:admin}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$REPO/dags}"
export AIRFLOW__CORE__PLUGINS_FOLDER="${AIRFLOW__CORE__PLUGINS_FOLDER:-$REPO/plugins}"
export AIRFLOW__CORE__LOAD_EXAMPLES="${AIRFLOW__CORE__LOAD_EXAMPLES:-False}"
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
# Task instances name their worker (the Celery worker, or the scheduler's LocalExecutor).
export AIRFLOW__CORE__HOSTNAME_CALLABLE="${AIRFLOW__CORE__HOSTNAME_CALLABLE:-kafka_ingest.worker_hostname.worker_hostname}"
export AIRFLOW__CELERY__WORKER_CONCURRENCY="${AIRFLOW__CELERY__WORKER_CONCURRENCY:-$AIRFLOW_WORKER_CONCURRENCY}"
# A task whose worker died is failed (and retried) after this many seconds without a heartbeat
# (Airflow's default is 300; docs/reliability.md).
export AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="${AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT:-60}"
# How long a task's supervisor waits for each execution API answer (Airflow's default, 5 s, is
# too short for a busy 2-core machine: the try then dies before it starts).
export AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT="${AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT:-60}"
# Parsing a DAG file imports Airflow, pandas and GX: seconds on an idle machine, more than Airflow's
# 30 s defaults on a loaded 2-core one (then the file "fails to import" and its tasks die).
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="${AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT:-180}"
export AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT="${AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT:-240}"
# Task start-up: every task instance runs in a process forked from a long-lived worker, and would
# import the DAG file's modules (pandas, pyarrow) and a publish task's (Great Expectations,
# confluent-kafka) again: ~1-4 s of CPU per task. The processes tasks are forked from import them
# once (plugins/kafka_ingest/worker_preload.py): the LocalExecutor's workers come from a forkserver
# that preloads it, and the Celery workers read their (default) Celery config from it before they
# fork their pool. On by default: it halves the CPU of a 10-day backfill (docs/performance.md,
# the backfill benchmark). Set both to "" to turn it off.
export AIRFLOW__SCHEDULER__MP_START_METHOD="${AIRFLOW__SCHEDULER__MP_START_METHOD-forkserver}"
export AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD="${AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD-kafka_ingest.worker_preload}"
export AIRFLOW_WORKER_CELERY_CONFIG="${AIRFLOW_WORKER_CELERY_CONFIG-kafka_ingest.worker_preload.CELERY_CONFIG}"
# Tests write DAG files of their own into this second bundle (rescanned every 5 s).
export AIRFLOW_TEST_DAGS="${AIRFLOW_TEST_DAGS:-$STACK_DIR/test-dags}"
_bundle='{"classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "name": '
_bundles="[$_bundle\"dags-folder\", \"kwargs\": {}}, $_bundle\"test-dags\", \"kwargs\": {\"path\": \"$AIRFLOW_TEST_DAGS\", \"refresh_interval\": 5}}]"
export AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST="${AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST:-$_bundles}"
unset _bundle _bundles
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-$AIRFLOW_API_PORT}"
export AIRFLOW__API__BASE_URL="${AIRFLOW__API__BASE_URL:-http://127.0.0.1:$AIRFLOW_API_PORT}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://127.0.0.1:$AIRFLOW__API__PORT/execution/}"
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="${AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT:-$AIRFLOW_WORKER_LOG_PORT}"
export AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT="${AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT:-$AIRFLOW_TRIGGERER_LOG_PORT}"
# OpenLineage: every task's events go over http to a receiver on loopback OPENLINEAGE_PORT
# (docs/observability.md). Nothing listens there unless a test does
# (tests/observability/test_scheduler_observability.py); without retries (the client's default
# retries with backoff took ~10 s per event) a refused event costs a millisecond on loopback and a
# warning in the log. A deployment points this at Marquez or its own backend, with retries.
export OPENLINEAGE_PORT="${OPENLINEAGE_PORT:-5055}"
_ol_transport='{"type": "http", "url": "http://127.0.0.1:'"$OPENLINEAGE_PORT"'", "endpoint": "api/v1/lineage", "timeout": 5, "retry": {"total": 0}}'
export AIRFLOW__OPENLINEAGE__TRANSPORT="${AIRFLOW__OPENLINEAGE__TRANSPORT:-$_ol_transport}"
unset _ol_transport
export AIRFLOW__OPENLINEAGE__NAMESPACE="${AIRFLOW__OPENLINEAGE__NAMESPACE:-kafka-ingest}"
export AIRFLOW__METRICS__STATSD_ON="${AIRFLOW__METRICS__STATSD_ON:-True}"
export AIRFLOW__METRICS__STATSD_HOST="${AIRFLOW__METRICS__STATSD_HOST:-$STATSD_HOST}"
export AIRFLOW__METRICS__STATSD_PORT="${AIRFLOW__METRICS__STATSD_PORT:-$STATSD_PORT}"
export AIRFLOW__METRICS__STATSD_PREFIX="${AIRFLOW__METRICS__STATSD_PREFIX:-airflow}"

# Connections and variables read by the DAGs (same ids in docker-compose.yml).
# Secured, the password goes in the connection's password field (read from the stack's generated
# secrets; hooks/kafka.py maps it to sasl.password), the rest in its extra; `kafka_admin` (used by
# `topics ensure` to create topics and write ACLs) logs in as the super user.
_kafka_extra='"bootstrap.servers":"'"$KAFKA_BOOTSTRAP"'"'
_kafka_conn='{"conn_type":"kafka","extra":{'"$_kafka_extra"'}}'
if [[ $KAFKA_SECURITY == sasl_ssl ]]; then
  _kafka_extra+=',"security.protocol":"SASL_SSL","sasl.mechanism":"SCRAM-SHA-512","ssl.ca.location":"'"$KAFKA_SECRETS/ca.pem"'"'
  _kafka_user() {
    printf '{"conn_type":"kafka","login":"%s","password":"%s","extra":{%s}}' \
      "$1" "$(cat "$KAFKA_SECRETS/$1.password" 2>/dev/null)" "$_kafka_extra"
  }
  _kafka_conn="$(_kafka_user ingest)"
  export AIRFLOW_CONN_KAFKA_ADMIN="${AIRFLOW_CONN_KAFKA_ADMIN:-$(_kafka_user admin)}"
  export AIRFLOW_CONN_KAFKA_CONSUMER="${AIRFLOW_CONN_KAFKA_CONSUMER:-$(_kafka_user consumer)}"
  # The DLQ replay reads what the ingest principal may only write: its own principal (dags/replay_dlq.py).
  export AIRFLOW_CONN_KAFKA_REPLAY="${AIRFLOW_CONN_KAFKA_REPLAY:-$(_kafka_user replay)}"
  export KAFKA_INGEST_REPLAY_CONN_ID="${KAFKA_INGEST_REPLAY_CONN_ID:-kafka_replay}"
  unset -f _kafka_user
fi
# Registry auth (scripts/stack.d/registry-auth.sh): basic in the secured mode; the stack's default
# connection is the developer (may register); production connections use the read-only `reader`.
export SCHEMA_REGISTRY_AUTH="${SCHEMA_REGISTRY_AUTH:-$([[ $KAFKA_SECURITY == sasl_ssl ]] && echo basic || echo none)}"
export REGISTRY_SECRETS="${REGISTRY_SECRETS:-$STACK_DIR/registry-secrets}"
_registry_conn='{"conn_type":"schema_registry","host":"'"$SCHEMA_REGISTRY_URL"'"}'
if [[ $SCHEMA_REGISTRY_AUTH == basic ]]; then
  _registry_conn="$(printf '{"conn_type":"schema_registry","host":"%s","login":"developer","password":"%s"}' \
    "$SCHEMA_REGISTRY_URL" "$(cat "$REGISTRY_SECRETS/developer.password" 2>/dev/null)")"
fi
export AIRFLOW_CONN_KAFKA_DEFAULT="${AIRFLOW_CONN_KAFKA_DEFAULT:-$_kafka_conn}"
export AIRFLOW_CONN_SCHEMA_REGISTRY_DEFAULT="${AIRFLOW_CONN_SCHEMA_REGISTRY_DEFAULT:-$_registry_conn}"
unset _kafka_conn _kafka_extra _registry_conn
export AIRFLOW_VAR_EXTRACTS_ROOT="${AIRFLOW_VAR_EXTRACTS_ROOT:-$REPO/samples/extracts}"

# Marks the environment as loaded (tests/conftest.py sources this file when it is absent).
export KAFKA_INGEST_STACK_ENV="$REPO"
