# shellcheck shell=bash
# Redis (Debian's redis-server), the Celery broker when EXECUTOR=celery: 127.0.0.1:$REDIS_PORT,
# a password made once per stack, its dump under $STACK_DIR/redis. Sourced by scripts/stack.

REDIS_DIR="$STACK_DIR/redis"

fetch_redis() { apt_need redis-server /usr/bin/redis-server redis; }

redis_ready() {
  [[ -f $SECRETS/redis.pw ]] || return 1
  [[ "$(REDISCLI_AUTH="$(<"$SECRETS/redis.pw")" timeout 3 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}

start_redis() {
  local pid
  if pid="$(pid_of redis)"; then say "redis: already running (pid $pid)"; return; fi
  port_free redis "$REDIS_PORT" REDIS_PORT
  mkdir -p "$REDIS_DIR"
  # The password goes in a config file of mode 600, not on the command line (ps shows that).
  (umask 077 && cat >"$REDIS_DIR/redis.conf" <<EOF
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
requirepass $(secret redis.pw)
dir $REDIS_DIR
daemonize no
save 60 1000
appendonly no
EOF
  )
  say "redis: starting redis-server on 127.0.0.1:$REDIS_PORT (Celery broker)"
  launch redis /usr/bin/redis-server "$REDIS_DIR/redis.conf"
}
