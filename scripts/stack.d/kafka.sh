# shellcheck shell=bash
# Kafka in the local stack, sourced by scripts/stack: one KRaft node (the default, `make demo`), or
# a cluster of KAFKA_BROKERS=3 combined broker+controller nodes, in plaintext or, with
# KAFKA_SECURITY=sasl_ssl, with TLS, SCRAM-SHA-512 users and ACLs (docs/security.md).
#
# Each node: its own ports, data directory, log folder and pid file; a node that is not running
# (killed, crashed) is started again by `up` with the data it had. Data directories are per mode
# (SCRAM users are written when the storage is formatted), so switching modes never mixes them.
# Secrets (CA, broker key, passwords) are made once under $KAFKA_SECRETS, never in the repo.

KAFKA_DIR="$STACK_DIR/kafka"
# Heap per node: three nodes, the registry and Airflow share 2 cores and 24 GB.
KAFKA_HEAP="${KAFKA_HEAP:-512m}"
KAFKA_USERS=(admin ingest consumer registry replay)

kafka_cluster() { ((KAFKA_BROKERS > 1)); }
kafka_secured() { [[ $KAFKA_SECURITY == sasl_ssl ]]; }

# Node names as pid files know them: `kafka` (one node) or kafka-1..N.
kafka_nodes() {
  if kafka_cluster; then for ((i = 1; i <= KAFKA_BROKERS; i++)); do echo "kafka-$i"; done; else echo kafka; fi
}
node_id() { [[ $1 == kafka ]] && echo 1 || echo "${1#kafka-}"; }
node_port() { kafka_cluster && echo $((KAFKA_CLUSTER_BASE_PORT + 2 * ($(node_id "$1") - 1))) || echo "$KAFKA_PORT"; }
node_controller_port() { kafka_cluster && echo $(($(node_port "$1") + 1)) || echo "$KAFKA_CONTROLLER_PORT"; }
node_dir() { [[ $1 == kafka ]] && echo "$KAFKA_DIR" || echo "$KAFKA_DIR/$1"; }
node_data() {
  local suffix=""
  kafka_secured && suffix="-sasl_ssl"
  echo "$(node_dir "$1")/data$suffix"
}
node_logs() { [[ $1 == kafka ]] && echo "$LOGS" || echo "$LOGS/$1"; }

kafka_password() { cat "$KAFKA_SECRETS/$1.password"; }

# The CA, one broker key and certificate (SANs 127.0.0.1 and localhost; every node is on loopback),
# and a password per SCRAM user. Made once; `make clean` deletes them with the stack dir.
make_kafka_secrets() {
  kafka_secured || return 0
  [[ -s $KAFKA_SECRETS/broker.pem && -s $KAFKA_SECRETS/ca.pem ]] && return 0
  need openssl "openssl is needed to make the stack's certificates (apt-get install openssl)"
  say "kafka: making a CA, a broker certificate and SCRAM passwords in $KAFKA_SECRETS"
  local s=$KAFKA_SECRETS user
  mkdir -p "$s" && chmod 700 "$s"
  (
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=kafka-ingest local CA" \
      -keyout "$s/ca.key" -out "$s/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$s/broker.key" -out "$s/broker.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >"$s/broker.ext"
    openssl x509 -req -in "$s/broker.csr" -CA "$s/ca.pem" -CAkey "$s/ca.key" -CAcreateserial -days 825 \
      -extfile "$s/broker.ext" -out "$s/broker.crt" 2>/dev/null
    # Kafka's PEM key store: the unencrypted PKCS#8 key, then the chain (KAFKA-12703).
    { openssl pkcs8 -topk8 -nocrypt -in "$s/broker.key"; cat "$s/broker.crt" "$s/ca.pem"; } >"$s/broker.pem"
    for user in "${KAFKA_USERS[@]}"; do
      [[ -s $s/$user.password ]] || openssl rand -hex 24 >"$s/$user.password"
    done
  ) || die "kafka: could not make the certificates in $s"
}

write_node_config() {
  local node=$1 id port cport voters="" n listener protocol
  id="$(node_id "$node")"
  port="$(node_port "$node")"
  cport="$(node_controller_port "$node")"
  for n in $(kafka_nodes); do voters+="${voters:+,}$(node_id "$n")@127.0.0.1:$(node_controller_port "$n")"; done
  local rf=1 min_isr=1
  kafka_cluster && { rf=$((KAFKA_BROKERS < 3 ? KAFKA_BROKERS : 3)); min_isr=$((rf > 1 ? 2 : 1)); }
  if kafka_secured; then listener=SASL_SSL protocol=SASL_SSL; else listener=PLAINTEXT protocol=PLAINTEXT; fi
  mkdir -p "$(node_dir "$node")" "$(node_logs "$node")"
  (
    umask 077
    cat >"$(node_dir "$node")/server.properties" <<EOF
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=$listener://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=$listener://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=$listener
listener.security.protocol.map=CONTROLLER:PLAINTEXT,$listener:$protocol
log.dirs=$(node_data "$node")
num.partitions=3
auto.create.topics.enable=false
default.replication.factor=$rf
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
EOF
    kafka_secured || exit 0
    # Controllers cannot authenticate with SCRAM (KAFKA-15513): the controller listener stays
    # PLAINTEXT on loopback and its anonymous principal is a super user.
    cat >>"$(node_dir "$node")/server.properties" <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(kafka_password admin)";
ssl.keystore.type=PEM
ssl.keystore.location=$KAFKA_SECRETS/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKA_SECRETS/ca.pem
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
EOF
  )
}

kafka_jvm() {
  local java=$1 node=$2
  echo "$java" "-Xms256m" "-Xmx$KAFKA_HEAP" "-XX:+UseG1GC" "-Dlog4j2.configurationFile=$HERE/stack.d/kafka-log4j2.properties" \
    "-Dkafka.logs.dir=$(node_logs "$node")" -cp "$(<"$KAFKA_DIR/classpath-$KAFKA_VERSION")"
}

# Formats every node that has no storage yet with one cluster id (and the SCRAM users).
format_kafka() {
  local java=$1 node cluster_id="" user
  local -a jvm scram=()
  for node in $(kafka_nodes); do
    [[ -f $(node_data "$node")/meta.properties ]] && continue
    read -ra jvm <<<"$(kafka_jvm "$java" "$node")"
    if [[ -z $cluster_id ]]; then
      cluster_id="$(cat "$KAFKA_DIR/cluster-id-$KAFKA_BROKERS-$KAFKA_SECURITY" 2>/dev/null || true)"
      [[ -n $cluster_id ]] || cluster_id="$("${jvm[@]}" kafka.tools.StorageTool random-uuid | tr -d '\n')"
      while [[ $cluster_id == -* ]]; do cluster_id="$("${jvm[@]}" kafka.tools.StorageTool random-uuid | tr -d '\n')"; done
      echo "$cluster_id" >"$KAFKA_DIR/cluster-id-$KAFKA_BROKERS-$KAFKA_SECURITY"
      if kafka_secured; then
        for user in "${KAFKA_USERS[@]}"; do
          scram+=(--add-scram "SCRAM-SHA-512=[name=$user,password=$(kafka_password "$user")]")
        done
      fi
    fi
    say "kafka: formatting KRaft storage of $node in $(node_data "$node")"
    "${jvm[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$(node_dir "$node")/server.properties" \
      "${scram[@]}" >"$LOGS/$node-format.log" 2>&1 || die "kafka: storage format of $node failed; see $LOGS/$node-format.log"
  done
}

# The mode the running nodes were started in; `up` in another mode would reuse their ports.
kafka_mode() { echo "$KAFKA_BROKERS broker(s), $KAFKA_SECURITY"; }
check_kafka_mode() {
  local running="" file
  for file in "$RUN"/kafka.pid "$RUN"/kafka-[0-9]*.pid; do
    [[ -f $file ]] && pid_of "$(basename "$file" .pid)" >/dev/null && running=1
  done
  if [[ -n $running && "$(cat "$RUN/kafka.mode" 2>/dev/null)" != "$(kafka_mode)" ]]; then
    die "kafka is running as $(cat "$RUN/kafka.mode" 2>/dev/null || echo "another mode"), not $(kafka_mode): run \`make down\` first"
  fi
  echo "$(kafka_mode)" >"$RUN/kafka.mode"
}

start_kafka() {
  local java=$1 node pid
  local -a jvm
  check_kafka_mode
  make_kafka_secrets
  for node in $(kafka_nodes); do write_node_config "$node"; done
  format_kafka "$java"
  for node in $(kafka_nodes); do
    if pid="$(pid_of "$node")"; then say "$node: already running (pid $pid)"; continue; fi
    port_free "$node" "$(node_port "$node")" "$(kafka_cluster && echo KAFKA_CLUSTER_BASE_PORT || echo KAFKA_PORT)"
    port_free "$node" "$(node_controller_port "$node")" "$(kafka_cluster && echo KAFKA_CLUSTER_BASE_PORT || echo KAFKA_CONTROLLER_PORT)"
    [[ -f $(node_logs "$node")/kafka-server.log ]] && mv -f "$(node_logs "$node")/kafka-server.log" "$(node_logs "$node")/kafka-server.log.1"
    read -ra jvm <<<"$(kafka_jvm "$java" "$node")"
    say "$node: starting Kafka $KAFKA_VERSION on 127.0.0.1:$(node_port "$node") ($KAFKA_SECURITY, $java)"
    launch "$node" "${jvm[@]}" kafka.Kafka "$(node_dir "$node")/server.properties"
  done
}

node_ready() {
  tcp_open "$(node_port "$1")" && grep -qs "Kafka Server started" "$(node_logs "$1")/kafka-server.log"
}

wait_kafka() {
  local node
  for node in $(kafka_nodes); do
    # shellcheck disable=SC2064
    wait_ready "$node" node_ready "$node"
  done
}

# Every Kafka node this stack dir may have started, whatever the current mode.
stop_kafka() {
  local file
  for file in "$RUN"/kafka.pid "$RUN"/kafka-[0-9]*.pid; do
    [[ -f $file ]] && stop "$(basename "$file" .pid)"
  done
  rm -f "$RUN/kafka.mode"
  return 0
}

status_kafka() {
  local node pid endpoint file
  # Nodes of another mode still running (started with other KAFKA_BROKERS/KAFKA_SECURITY).
  for file in "$RUN"/kafka.pid "$RUN"/kafka-[0-9]*.pid; do
    [[ -f $file ]] || continue
    node="$(basename "$file" .pid)"
    kafka_nodes | grep -qx "$node" && continue
    pid="$(pid_of "$node")" && row "$node" other "running as $(cat "$RUN/kafka.mode" 2>/dev/null || echo "another mode") (pid $pid)"
  done
  for node in $(kafka_nodes); do
    endpoint="127.0.0.1:$(node_port "$node") $KAFKA_SECURITY, controller $(node_controller_port "$node")"
    if pid="$(pid_of "$node")" && node_ready "$node"; then
      row "$node" up "$endpoint (pid $pid)"
    elif pid="$(pid_of "$node")"; then
      row "$node" wait "$endpoint (pid $pid, not answering)"; failed=1
    else
      row "$node" down "$endpoint"; failed=1
    fi
  done
}

# The specs' topics (and, secured, the principals' ACLs), with the admin connection.
ensure_topics() {
  local acls=()
  kafka_secured && acls=(--acls)
  [[ -x $REPO/.venv/bin/python ]] || die "topics: $REPO/.venv/bin/python not found; run make setup"
  # Connections again from stack-env.sh: the passwords did not exist yet when it was first sourced.
  (
    unset AIRFLOW_CONN_KAFKA_DEFAULT AIRFLOW_CONN_KAFKA_ADMIN AIRFLOW_CONN_KAFKA_CONSUMER
    . "$HERE/stack-env.sh"
    exec "$REPO/.venv/bin/python" -m kafka_ingest topics ensure "${acls[@]}"
  ) >"$LOGS/topics-ensure.log" 2>&1 ||
    { cat "$LOGS/topics-ensure.log" >&2; die "topics ensure failed; see $LOGS/topics-ensure.log"; }
  sed 's/^/stack: /' "$LOGS/topics-ensure.log"
}

# `scripts/stack kafka-up|kafka-down`: Kafka alone (the cluster tests run it in a stack dir of its
# own beside the main stack, which keeps the registry, StatsD and Airflow).
cmd_kafka_up() {
  local kafka_java
  kafka_java="$(java_for Kafka 17 KAFKA_JAVA)"
  mkdir -p "$RUN" "$LOGS" "$KAFKA_DIR" "$KAFKA_INGEST_CACHE"
  fetch_kafka
  start_kafka "$kafka_java"
  wait_kafka
  ensure_topics
  say "up: kafka $KAFKA_BOOTSTRAP ($(kafka_mode))"
}
