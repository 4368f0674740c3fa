"""The Kafka connection's credentials: the password lives in the connection's password field.

An Airflow Kafka connection keeps librdkafka settings in its extra (``security.protocol``,
``sasl.mechanism``, ``ssl.ca.location``, ...), which is shown in the UI and often committed as
JSON. So for SASL the secret goes in the connection's *password* field (masked by Airflow, and
kept in a secrets backend where there is one), the user name in *login*, and this module puts them
where librdkafka looks for them. Values already in the extra win (a deliberate override).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def with_credentials(config: Mapping[str, Any], login: str | None, password: str | None) -> dict[str, Any]:
    """``config`` with ``sasl.username``/``sasl.password`` from the connection's login/password
    when its security protocol uses SASL (PLAIN or SCRAM; OAUTHBEARER has no password)."""
    settings = dict(config)
    protocol = str(settings.get("security.protocol", "")).upper()
    mechanism = str(settings.get("sasl.mechanism", settings.get("sasl.mechanisms", ""))).upper()
    if not protocol.startswith("SASL") or mechanism == "OAUTHBEARER":
        return settings
    if login and "sasl.username" not in settings:
        settings["sasl.username"] = login
    if password and "sasl.password" not in settings:
        settings["sasl.password"] = password
    return settings


def redacted(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` fit for a log line or an error message: secrets replaced by ``***``."""
    secret = ("password", "secret", "sasl.oauthbearer.client.secret", "ssl.key.pem", "jaas")
    return {k: ("***" if any(word in k for word in secret) else v) for k, v in config.items()}
