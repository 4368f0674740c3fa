"""The Kafka side of a Connection: the librdkafka settings every client of a run is built from.

Built on the apache-kafka provider's ``KafkaBaseHook``, so the same ``kafka_default`` connection
(librdkafka settings in its extra: ``bootstrap.servers``, SASL, TLS, ...) serves this product and
the provider's own operators. The provider resolves the connection (allow-listed callbacks, managed
OAuth token callbacks) and hands the result to ``_get_client``, the factory method its own hooks
override; this hook's "client" is those settings, because the pipeline builds one transactional
producer per file and its checkpoint clients itself (``pipeline/wiring.py``). How the settings,
our defaults and what exactly-once requires are merged is
:func:`kafka_ingest.publish.config.producer_config`.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.apache.kafka.hooks.base import KafkaBaseHook

from kafka_ingest.provision.security import with_credentials


class TransactionalProducerHook(KafkaBaseHook):
    """Reads the librdkafka settings of an Airflow Kafka connection.

    :param kafka_config_id: the connection id, ``kafka_default`` unless told otherwise.
    """

    hook_name = "Apache Kafka (transactional producer)"

    def __init__(self, kafka_config_id: str = KafkaBaseHook.default_conn_name) -> None:
        super().__init__(kafka_config_id=kafka_config_id)

    def client_config(self) -> dict[str, Any]:
        """The connection's librdkafka settings (bootstrap servers, security), callbacks resolved;
        for SASL, the connection's login and password as ``sasl.username``/``sasl.password``."""
        connection = self.get_connection(self.kafka_config_id)
        return with_credentials(self.get_conn, connection.login, connection.password)

    def _get_client(self, config: dict[str, Any]) -> dict[str, Any]:
        return dict(config)
