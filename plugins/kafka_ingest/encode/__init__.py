"""Avro-shaped Arrow tables -> Confluent-framed values: fastavro as reference, column-wise by default."""
