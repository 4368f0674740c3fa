# shellcheck shell=bash
# Airflow as it is deployed: api-server (UI + REST + execution API), scheduler, dag-processor and
# triggerer, each its own process, on the PostgreSQL metadata DB; with EXECUTOR=celery also two
# Celery workers on the Redis broker. Sourced by scripts/stack.
#
# Secrets (DB and Redis passwords, JWT secret, API secret key, Fernet key, the admin password) are
# made once per stack under $SECRETS and written into $AIRFLOW_HOME/airflow.cfg (mode 600): every
# component reads the same file, so they share one jwt_secret, and nothing secret is in the
# environment, on a command line or in the repo.

AIRFLOW_BIN="$REPO/.venv/bin/airflow"
AIRFLOW_PASSWORDS="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
AIRFLOW_CORE=(airflow-api-server airflow-scheduler airflow-dag-processor airflow-triggerer)
AIRFLOW_WORKERS=(airflow-worker-1 airflow-worker-2)

airflow_components() {
  echo "${AIRFLOW_CORE[@]}"
  [[ $EXECUTOR == celery ]] && echo "${AIRFLOW_WORKERS[@]}"
  return 0
}

write_airflow_cfg() {
  mkdir -p "$AIRFLOW_HOME" "$AIRFLOW_TEST_DAGS"
  local db="postgresql+psycopg://$POSTGRES_DB:$(secret airflow-db.pw)@127.0.0.1:$POSTGRES_PORT/$POSTGRES_DB"
  (umask 077 && cat >"$AIRFLOW_HOME/airflow.cfg.tmp" <<EOF
# Written by scripts/stack on every \`up\` from the secrets in $SECRETS; do not edit.
# Everything that is not secret is in scripts/stack-env.sh (environment variables win over this file).
[database]
sql_alchemy_conn = $db

[core]
fernet_key = $(secret fernet.key)

[api]
secret_key = $(secret api-secret.key)

[api_auth]
jwt_secret = $(secret jwt.secret)

[celery]
broker_url = redis://:$(secret redis.pw)@127.0.0.1:$REDIS_PORT/0
result_backend = db+$db
EOF
  ) && mv -f "$AIRFLOW_HOME/airflow.cfg.tmp" "$AIRFLOW_HOME/airflow.cfg"
  if [[ ! -s $AIRFLOW_PASSWORDS ]]; then
    (umask 077 && printf '{"%s": "%s"}\n' "$AIRFLOW_ADMIN_USER" "$(secret airflow-admin.pw)" >"$AIRFLOW_PASSWORDS")
  fi
}

airflow_admin_password() { "$REPO/.venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$AIRFLOW_PASSWORDS" "$AIRFLOW_ADMIN_USER"; }

migrate_airflow() {
  local stamp="$AIRFLOW_HOME/.migrated"
  if [[ -f $stamp && $stamp -nt $REPO/requirements.txt && $stamp -nt $PG_DIR/.provisioned ]]; then
    return 0
  fi
  [[ -x $AIRFLOW_BIN ]] || die "airflow: $AIRFLOW_BIN not found; run make setup"
  say "airflow: migrating the metadata DB (PostgreSQL, database $POSTGRES_DB)"
  "$AIRFLOW_BIN" db migrate >"$LOGS/airflow-migrate.log" 2>&1 ||
    die "airflow: db migrate failed; see $LOGS/airflow-migrate.log"
  # Registers the bundles and DAGs at once: dag.test() and `dags test` need their rows, which a
  # fresh DB otherwise gets only once the dag-processor has parsed the folder.
  "$AIRFLOW_BIN" dags reserialize >>"$LOGS/airflow-migrate.log" 2>&1 ||
    die "airflow: dags reserialize failed; see $LOGS/airflow-migrate.log"
  touch "$stamp"
}

# The command line of each component. The scheduler, triggerer and workers run without their
# log servers: Airflow binds those to every interface, and on one machine the api-server reads
# task logs from the files under $AIRFLOW_HOME/logs.
airflow_command() {
  case $1 in
    airflow-api-server) echo api-server --host 127.0.0.1 --port "$AIRFLOW_API_PORT" --workers "$AIRFLOW_API_WORKERS" ;;
    airflow-scheduler) echo scheduler --skip-serve-logs ;;
    airflow-dag-processor) echo dag-processor ;;
    airflow-triggerer) echo triggerer --skip-serve-logs ;;
    airflow-worker-*)
      echo celery worker --celery-hostname "worker${1##*-}@%h" --concurrency "$AIRFLOW_WORKER_CONCURRENCY" \
        --skip-serve-logs
      ;;
  esac
}

start_airflow_component() {
  local name=$1 pid
  if pid="$(pid_of "$name")"; then say "$name: already running (pid $pid)"; return; fi
  local args
  read -r -a args <<<"$(airflow_command "$name")"
  say "$name: starting \`airflow ${args[*]}\` (log $LOGS/$name.log)"
  # KAFKA_INGEST_WORKER_NAME makes the hostname on each task instance name its worker. The Celery
  # workers (only they: the scheduler needs none of it) preload the tasks' modules through their
  # Celery config (AIRFLOW_WORKER_CELERY_CONFIG, scripts/stack-env.sh).
  local preload=()
  if [[ $name == airflow-worker-* && -n ${AIRFLOW_WORKER_CELERY_CONFIG:-} ]]; then
    preload=("AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=$AIRFLOW_WORKER_CELERY_CONFIG")
  fi
  KAFKA_INGEST_WORKER_NAME="${name#airflow-}" launch "$name" env "${preload[@]}" "$AIRFLOW_BIN" "${args[@]}"
}

start_airflow() {
  local running
  # $RUN/executor is written once the components are ready: anything running without it (a
  # failed `up`) or with another executor is restarted.
  running="$(cat "$RUN/executor" 2>/dev/null || true)"
  if [[ $running != "$EXECUTOR" ]] && pid_of airflow-scheduler >/dev/null; then
    say "airflow: switching the executor from ${running:-unknown} to $EXECUTOR"
    stop_airflow
  fi
  [[ $EXECUTOR == celery ]] || stop redis
  pid_of airflow-api-server >/dev/null || port_free airflow-api-server "$AIRFLOW_API_PORT" AIRFLOW_API_PORT
  local name
  for name in $(airflow_components); do start_airflow_component "$name"; done
}

airflow_health() { curl -fsS --max-time 5 "http://127.0.0.1:$AIRFLOW_API_PORT/api/v2/monitor/health" 2>/dev/null; }

# The api-server answers and reports the scheduler, triggerer and dag-processor healthy (their
# heartbeats in the DB).
airflow_ready() {
  airflow_health | "$REPO/.venv/bin/python" -c '
import json, sys
h = json.load(sys.stdin)
sys.exit(0 if all(h.get(c, {}).get("status") == "healthy" for c in ("metadatabase", "scheduler", "triggerer", "dag_processor")) else 1)
' 2>/dev/null
}

worker_ready() { grep -Eqs "@[^ ]+ ready\." "$LOGS/$1.log"; }

wait_airflow() {
  local name
  for name in $(airflow_components); do
    case $name in
      airflow-worker-*) TIMEOUT=$((TIMEOUT > AIRFLOW_READY_TIMEOUT ? TIMEOUT : AIRFLOW_READY_TIMEOUT)) wait_ready "$name" worker_ready "$name" ;;
      *) pid_of "$name" >/dev/null || { tail -n 15 "$LOGS/$name.log" >&2; die "$name exited while starting; see $LOGS/$name.log"; } ;;
    esac
  done
  # The api-server alone takes minutes to start on a busy 2-core machine.
  TIMEOUT=$((TIMEOUT > AIRFLOW_READY_TIMEOUT ? TIMEOUT : AIRFLOW_READY_TIMEOUT)) wait_ready airflow-api-server airflow_ready
  echo "$EXECUTOR" >"$RUN/executor"
}

# Restarts one component (the fault tests kill a worker or the scheduler with SIGKILL and bring
# it back this way): stops what is left of it, starts it again and waits until it is ready. A
# worker is ready when Celery logs "ready."; the scheduler once the api-server reports a heartbeat
# of the new process (the killed one's stays "healthy" for scheduler_health_check_threshold).
cmd_restart() {
  local name=${1:-} started components
  components="$(airflow_components | tr '\n' ' ')"
  [[ " $components" == *" $name "* ]] ||
    die "restart: '$name' is not an Airflow component of this stack (one of: ${components% })"
  [[ -f $RUN/executor ]] || die "restart: Airflow is not up (make up first)"
  stop "$name"
  started="$(date -u +%Y-%m-%dT%H:%M:%S)"
  start_airflow_component "$name"
  local TIMEOUT=$((TIMEOUT > AIRFLOW_READY_TIMEOUT ? TIMEOUT : AIRFLOW_READY_TIMEOUT))
  case $name in
    airflow-worker-*) wait_ready "$name" worker_ready "$name" ;;
    airflow-scheduler) wait_ready "$name" scheduler_beats_since "$started" ;;
    *) wait_ready "$name" airflow_ready ;;
  esac
  say "$name: restarted (pid $(pid_of "$name"))"
}

# The scheduler's latest heartbeat (api-server health) is later than $1 (UTC, ISO 8601).
scheduler_beats_since() {
  airflow_health | "$REPO/.venv/bin/python" -c '
import json, sys
beat = (json.load(sys.stdin).get("scheduler") or {}).get("latest_scheduler_heartbeat") or ""
sys.exit(0 if beat[:19] > sys.argv[1] else 1)
' "$1" 2>/dev/null
}

stop_airflow() {
  local name
  for name in "${AIRFLOW_WORKERS[@]}" airflow-scheduler airflow-triggerer airflow-dag-processor airflow-api-server; do
    stop "$name"
  done
  stop airflow-standalone INT # a leftover of older versions of the tests
  rm -f "$RUN/executor"
}

airflow_login_lines() {
  echo "  Airflow UI:  http://127.0.0.1:$AIRFLOW_API_PORT   user: $AIRFLOW_ADMIN_USER   password: $(airflow_admin_password 2>/dev/null || echo '?')"
  echo "               (password kept in $AIRFLOW_PASSWORDS; executor: $AIRFLOW__CORE__EXECUTOR)"
}

airflow_status_rows() {
  local name endpoint
  for name in $(airflow_components); do
    case $name in
      airflow-api-server) endpoint="http://127.0.0.1:$AIRFLOW_API_PORT" ;;
      airflow-worker-*) endpoint="celery worker${name##*-}, concurrency $AIRFLOW_WORKER_CONCURRENCY" ;;
      *) endpoint="$AIRFLOW__CORE__EXECUTOR" ;;
    esac
    if pid="$(pid_of "$name")"; then
      row "$name" up "$endpoint (pid $pid, log $LOGS/$name.log)"
    else
      row "$name" down "$endpoint (log $LOGS/$name.log)"
      failed=1
    fi
  done
}

# Where to look in the UI (make demo ends with this): the URL, the login, the DAGs' runs.
cmd_ui() {
  local dag url="http://127.0.0.1:$AIRFLOW_API_PORT"
  echo "Airflow UI: $url   user: $AIRFLOW_ADMIN_USER   password: printed by \`make status\`, kept in $AIRFLOW_PASSWORDS"
  for dag in "$@"; do echo "  runs of $dag: $url/dags/$dag/runs"; done
}
