# shellcheck shell=bash
# PostgreSQL 15 (Debian's package), Airflow's metadata DB: a cluster of the stack's own under
# $STACK_DIR/postgres, on 127.0.0.1:$POSTGRES_PORT, no Unix socket. Sourced by scripts/stack.
#
# initdb and postgres refuse to run as root (the sessions and CI are root), so both run as the
# unprivileged $POSTGRES_OS_USER (Debian's package creates `postgres`) through setpriv, which
# execs: the pid file then holds the postgres server itself. Passwords are made once per stack
# in $SECRETS (mode 700) and never leave the stack dir.

PG_BIN="/usr/lib/postgresql/$POSTGRES_VERSION/bin"
PG_DIR="$STACK_DIR/postgres"
PG_DATA="$PG_DIR/data"

fetch_postgres() {
  apt_need "postgresql-$POSTGRES_VERSION" "$PG_BIN/postgres" postgres
  id -u "$POSTGRES_OS_USER" >/dev/null 2>&1 ||
    die "postgres: no OS user '$POSTGRES_OS_USER' to run PostgreSQL as (Debian's postgresql-$POSTGRES_VERSION creates 'postgres'; or set POSTGRES_OS_USER)"
}

as_postgres() { setpriv --reuid="$POSTGRES_OS_USER" --regid="$POSTGRES_OS_USER" --init-groups -- "$@"; }

pg_psql() {
  PGPASSWORD="$(<"$SECRETS/postgres-superuser.pw")" PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$POSTGRES_PORT" -U postgres -d postgres "$@"
}

postgres_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$POSTGRES_PORT" -t 2; }

init_postgres() {
  [[ -f $PG_DATA/PG_VERSION ]] && return 0
  mkdir -p "$PG_DIR"
  chown "$POSTGRES_OS_USER:" "$PG_DIR"
  chmod 700 "$PG_DIR"
  as_postgres test -w "$PG_DIR" ||
    die "postgres: user '$POSTGRES_OS_USER' cannot reach $PG_DIR (a parent directory is not searchable by it); chmod o+x the parents or set STACK_DIR elsewhere"
  secret postgres-superuser.pw >/dev/null
  # initdb reads the superuser password from a file its user can read: a copy, removed at once.
  local pwfile="$PG_DIR/.initdb-pw"
  install -m 600 -o "$POSTGRES_OS_USER" "$SECRETS/postgres-superuser.pw" "$pwfile"
  say "postgres: initdb $PG_DATA (as $POSTGRES_OS_USER)"
  as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
    --auth-host=scram-sha-256 --auth-local=peer >"$LOGS/postgres-initdb.log" 2>&1 || {
    rm -f "$pwfile"
    rm -rf "$PG_DATA"
    die "postgres: initdb failed; see $LOGS/postgres-initdb.log"
  }
  rm -f "$pwfile"
}

start_postgres() {
  local pid
  if pid="$(pid_of postgres)"; then say "postgres: already running (pid $pid)"; return; fi
  port_free postgres "$POSTGRES_PORT" POSTGRES_PORT
  init_postgres
  say "postgres: starting PostgreSQL $POSTGRES_VERSION on 127.0.0.1:$POSTGRES_PORT (data $PG_DATA)"
  # synchronous_commit=off: a development stack trades the last few ms of commits on an OS crash
  # for scheduler latency on a busy 2-core machine; fsync stays on, so the cluster never corrupts.
  launch postgres setpriv --reuid="$POSTGRES_OS_USER" --regid="$POSTGRES_OS_USER" --init-groups -- \
    "$PG_BIN/postgres" -D "$PG_DATA" -c listen_addresses=127.0.0.1 -c "port=$POSTGRES_PORT" \
    -c unix_socket_directories= -c max_connections=200 -c synchronous_commit=off \
    -c logging_collector=off -c log_min_messages=warning -c log_lock_waits=on
}

# The airflow role and database, once per cluster (idempotent).
provision_postgres() {
  local stamp="$PG_DIR/.provisioned" pw
  [[ -f $stamp && $stamp -nt $PG_DATA/PG_VERSION ]] && return 0
  pw="$(secret airflow-db.pw)"
  say "postgres: creating role and database '$POSTGRES_DB'"
  pg_psql -v "pw=$pw" -v "db=$POSTGRES_DB" >>"$LOGS/postgres-provision.log" 2>&1 <<'SQL' ||
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'db', :'pw')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'db') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'db', :'pw') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'db')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
    die "postgres: creating role/database '$POSTGRES_DB' failed; see $LOGS/postgres-provision.log"
  touch "$stamp"
}

# SIGINT is PostgreSQL's "fast" shutdown: it ends client sessions and stops (SIGTERM would wait
# for every client to disconnect).
stop_postgres() { stop postgres INT; }
