"""The Kafka side of a Connection: a transactional, idempotent producer per unit of work.

Built on the apache-kafka provider's ``KafkaBaseHook``, so the same ``kafka_default`` connection
(librdkafka settings in its extra: ``bootstrap.servers``, SASL, TLS, ...) serves this product and
the provider's own operators. How the connection's settings, our defaults and what exactly-once
requires are merged is :func:`kafka_ingest.publisher.producer_config`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from airflow.providers.apache.kafka.hooks.base import KafkaBaseHook
from confluent_kafka import Producer

from kafka_ingest.kafka_security import with_credentials
from kafka_ingest.publisher import producer_config


class TransactionalProducerHook(KafkaBaseHook):
    """Creates transactional producers from an Airflow Kafka connection.

    :param kafka_config_id: the connection id, ``kafka_default`` unless told otherwise.
    """

    hook_name = "Apache Kafka (transactional producer)"

    def __init__(self, kafka_config_id: str = KafkaBaseHook.default_conn_name) -> None:
        super().__init__(kafka_config_id=kafka_config_id)

    def client_config(self) -> dict[str, Any]:
        """The connection's librdkafka settings (bootstrap servers, security), callbacks resolved;
        for SASL, the connection's login and password as ``sasl.username``/``sasl.password``."""
        connection = self.get_connection(self.kafka_config_id)
        return with_credentials(self._build_config(), connection.login, connection.password)

    def create_producer(
        self,
        transactional_id: str,
        *,
        overrides: Mapping[str, Any] | None = None,
        stats_cb: Callable[[str], None] | None = None,
        error_cb: Callable[[Any], None] | None = None,
    ) -> Producer:
        """A new producer; the caller runs ``init_transactions`` (which fences older attempts)."""
        config = producer_config(self.client_config(), transactional_id, overrides)
        if stats_cb is not None:
            config["stats_cb"] = stats_cb
        if error_cb is not None:
            config["error_cb"] = error_cb
        return self._get_client(config)

    def _get_client(self, config: dict[str, Any]) -> Producer:
        return Producer(config)
