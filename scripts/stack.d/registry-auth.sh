# shellcheck shell=bash
# Registry auth for the stack's Apicurio, sourced by scripts/stack: with SCHEMA_REGISTRY_AUTH=basic
# (the default in the secured mode, KAFKA_SECURITY=sasl_ssl) HTTP basic auth with embedded users and
# role-based authorization, no Keycloak (the settings measured in FIELD-NOTES, Apicurio 3.3.3):
#   reader    sr-readonly   production runs (auto_register=False): look schemas up, never register
#   developer sr-developer  development runs: may register (the stack's schema_registry_default)
#   admin     sr-admin      rules, deletes
# Passwords are made once under $REGISTRY_SECRETS, never in the repo.

REGISTRY_USERS=(reader:sr-readonly developer:sr-developer admin:sr-admin)

# Exports Apicurio's auth settings into the environment of the registry about to be launched.
# The users' passwords, made once.
make_registry_secrets() {
  [[ $SCHEMA_REGISTRY_AUTH == basic ]] || return 0
  local entry user
  mkdir -p "$REGISTRY_SECRETS" && chmod 700 "$REGISTRY_SECRETS"
  for entry in "${REGISTRY_USERS[@]}"; do
    user=${entry%%:*}
    [[ -s $REGISTRY_SECRETS/$user.password ]] || (umask 077 && openssl rand -hex 24 >"$REGISTRY_SECRETS/$user.password")
  done
}

registry_auth_exports() {
  [[ $SCHEMA_REGISTRY_AUTH == basic ]] || return 0
  local entry user role
  make_registry_secrets
  export APICURIO_AUTH_ENABLED=true QUARKUS_HTTP_AUTH_BASIC=true
  export QUARKUS_SECURITY_USERS_EMBEDDED_ENABLED=true QUARKUS_SECURITY_USERS_EMBEDDED_PLAIN_TEXT=true
  export APICURIO_AUTH_ROLE_BASED_AUTHORIZATION=true APICURIO_AUTHN_BASIC_CLIENT_CREDENTIALS_ENABLED=false
  for entry in "${REGISTRY_USERS[@]}"; do
    user=${entry%%:*} role=${entry#*:}
    export "QUARKUS_SECURITY_USERS_EMBEDDED_USERS_${user^^}=$(<"$REGISTRY_SECRETS/$user.password")"
    export "QUARKUS_SECURITY_USERS_EMBEDDED_ROLES_${user^^}=$role"
  done
}

# curl with the reader's credentials when auth is on (passed on stdin, not on the command line).
registry_curl() {
  if [[ $SCHEMA_REGISTRY_AUTH == basic ]]; then
    printf 'user = "reader:%s"\n' "$(cat "$REGISTRY_SECRETS/reader.password" 2>/dev/null)" | curl -K - "$@"
  else
    curl "$@"
  fi
}

# The KafkaSQL storage's Kafka client on the secured cluster (KAFKA_SECURITY=sasl_ssl): Apicurio's
# own apicurio.kafkasql.security.sasl.* settings only build an OAUTHBEARER JAAS line, so plain
# Kafka client properties go through the `apicurio.kafka.common.` prefix, as environment variables
# (the password never on a command line). It logs in as the `registry` principal, whose ACLs
# `topics ensure --acls` writes (run by `up` before the registry starts): its topics
# `$SCHEMA_REGISTRY_TOPIC_PREFIX.*` and its consumer groups `$SCHEMA_REGISTRY_TOPIC_PREFIX-*`
# (the group prefix is set on the registry's command line, start_registry; docs/security.md).
registry_kafkasql_exports() {
  kafka_secured || return 0
  export APICURIO_KAFKA_COMMON_SECURITY_PROTOCOL=SASL_SSL APICURIO_KAFKA_COMMON_SASL_MECHANISM=SCRAM-SHA-512
  export APICURIO_KAFKA_COMMON_SASL_JAAS_CONFIG="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"registry\" password=\"$(kafka_password registry)\";"
  export APICURIO_KAFKA_COMMON_SSL_TRUSTSTORE_TYPE=PEM "APICURIO_KAFKA_COMMON_SSL_TRUSTSTORE_LOCATION=$KAFKA_SECRETS/ca.pem"
}
