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
registry_auth_exports() {
  [[ $SCHEMA_REGISTRY_AUTH == basic ]] || return 0
  local entry user role
  mkdir -p "$REGISTRY_SECRETS" && chmod 700 "$REGISTRY_SECRETS"
  export APICURIO_AUTH_ENABLED=true QUARKUS_HTTP_AUTH_BASIC=true
  export QUARKUS_SECURITY_USERS_EMBEDDED_ENABLED=true QUARKUS_SECURITY_USERS_EMBEDDED_PLAIN_TEXT=true
  export APICURIO_AUTH_ROLE_BASED_AUTHORIZATION=true APICURIO_AUTHN_BASIC_CLIENT_CREDENTIALS_ENABLED=false
  for entry in "${REGISTRY_USERS[@]}"; do
    user=${entry%%:*} role=${entry#*:}
    [[ -s $REGISTRY_SECRETS/$user.password ]] || (umask 077 && openssl rand -hex 24 >"$REGISTRY_SECRETS/$user.password")
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
