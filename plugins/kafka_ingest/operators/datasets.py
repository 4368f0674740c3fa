"""The dataset operators: each is the base operator bound to one topic spec."""

from __future__ import annotations

from kafka_ingest.operators.extract_to_kafka import ExtractToKafkaOperator
from kafka_ingest.topics.orders import ORDERS
from kafka_ingest.topics.payments import PAYMENTS


class OrdersToKafkaOperator(ExtractToKafkaOperator):
    """Publishes order extracts to ``shopping.order.created``."""

    spec = ORDERS


class PaymentsToKafkaOperator(ExtractToKafkaOperator):
    """Publishes payment extracts to ``shopping.payment.processed`` (card numbers never leave)."""

    spec = PAYMENTS
