"""The public toolkit for a topic's rules: ``from kafka_ingest import rules``.

Topics outside this package (``plugins/ingest_topics/``, see docs/adding-a-topic.md) build their
``prepare`` from these names instead of importing a private module, so the core can reorganise
its internals without breaking them. Everything here works on whole columns (see
:mod:`kafka_ingest.topics._rules` for the interpretation decisions: what counts as absent, the
money and timestamp grammars, card numbers).

- :func:`checked` declares a row rule decided by ``prepare`` in the boolean column ``_<name>``.
- :func:`text_column` reads a column as Arrow text; :func:`present`, :func:`absent`,
  :func:`one_of` and :func:`full_match` (with :data:`CODE_PATTERN` for keys) return numpy masks.
- :func:`parse_money`, :func:`parse_int` and :func:`parse_timestamps` parse strictly;
  :func:`cents_to_decimal_array` and :func:`millis_to_timestamp_array` turn the results into the
  Arrow types Avro ``decimal(12,2)`` and ``timestamp-millis`` need, :func:`arrow_series` keeps
  them as columns of the frame.
- :func:`luhn_card_numbers`, :func:`card_last4` and :func:`mask_card_number` handle card numbers.
- :class:`Rule` declares any other GX expectation by name and keyword arguments.
"""

from __future__ import annotations

from kafka_ingest.publish.masking import mask_card_number
from kafka_ingest.specs import Rule
from kafka_ingest.topics._rules import (
    CARD_PATTERN,
    CODE_PATTERN,
    Money,
    Timestamps,
    absent,
    arrow_series,
    card_last4,
    cents_to_decimal_array,
    checked,
    full_match,
    luhn_card_numbers,
    millis_to_timestamp_array,
    one_of,
    parse_int,
    parse_money,
    parse_timestamps,
    present,
    text_column,
)

__all__ = [
    "CARD_PATTERN",
    "CODE_PATTERN",
    "Money",
    "Rule",
    "Timestamps",
    "absent",
    "arrow_series",
    "card_last4",
    "cents_to_decimal_array",
    "checked",
    "full_match",
    "luhn_card_numbers",
    "mask_card_number",
    "millis_to_timestamp_array",
    "one_of",
    "parse_int",
    "parse_money",
    "parse_timestamps",
    "present",
    "text_column",
]
