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

# Derived endpoints.
if [[ -z ${KAFKA_BOOTSTRAP:-} ]]; then
  if ((KAFKA_BROKERS > 1)); then
    for ((_i = 0; _i < KAFKA_BROKERS; _i++)); do
      KAFKA_BOOTSTRAP+="${KAFKA_BOOTSTRAP:+,}127.0.0.1:$((KAFKA_CLUSTER_BASE_PORT + 2 * _i))"
    done
    unset _i
  else
    KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
  fi
fi
export KAFKA_BOOTSTRAP
export SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://127.0.0.1:$SCHEMA_REGISTRY_PORT/apis/ccompat/v7}"
export SCHEMA_REGISTRY_COMPATIBILITY="${SCHEMA_REGISTRY_COMPATIBILITY:-BACKWARD}"
# The registry keeps its schemas on the stack's Kafka (Apicurio KafkaSQL storage), in the topics
# <prefix>.journal (every change, kept forever), <prefix>.snapshots and <prefix>.events.
export SCHEMA_REGISTRY_TOPIC_PREFIX="${SCHEMA_REGISTRY_TOPIC_PREFIX:-_registry}"
export STATSD_HOST="${STATSD_HOST:-127.0.0.1}"

# Airflow: SQLite metadata and logs under the stack dir; DAGs and plugins from the repo.
export AIRFLOW_HOME="${AIRFLOW_HOME:-$STACK_DIR/airflow}"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$REPO/dags}"
export AIRFLOW__CORE__PLUGINS_FOLDER="${AIRFLOW__CORE__PLUGINS_FOLDER:-$REPO/plugins}"
export AIRFLOW__CORE__LOAD_EXAMPLES="${AIRFLOW__CORE__LOAD_EXAMPLES:-False}"
export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}"
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-$AIRFLOW_API_PORT}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://127.0.0.1:$AIRFLOW__API__PORT/execution/}"
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="${AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT:-$AIRFLOW_WORKER_LOG_PORT}"
export AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT="${AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT:-$AIRFLOW_TRIGGERER_LOG_PORT}"
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
