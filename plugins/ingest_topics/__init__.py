"""The team's topics, one module each (its spec and operator), outside the core package.

``python -m kafka_ingest scaffold`` writes a topic's module here, next to its schema, DAG, sample
day and tests (docs/adding-a-topic.md). ``plugins/`` is on the path of every Airflow process that
parses or runs DAGs and ships with them; nothing in ``kafka_ingest`` imports this package, so
adding a topic never changes the core.
"""
