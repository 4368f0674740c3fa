"""Replaying a topic's DLQ: fix the cause, then send the rows on exactly once, with an audit trail.

The modules, in the order a replay uses them (docs/dlq-replay.md is the on-call walkthrough):

* :mod:`.envelopes`: a DLQ record as a typed envelope (or why it cannot be replayed);
* :mod:`.selection`: which envelopes a replay takes (dates, stage, rules, error type, file, keys);
* :mod:`.corrections`: the corrections file (CSV or JSON Lines keyed by the topic's key);
* :mod:`.candidates`: the row each selected envelope replays, or why it needs a correction;
* :mod:`.judge`: the topic's current rules, the day's duplicate rule and the Avro encoding;
* :mod:`.published`: the day's keys already on the topic;
* :mod:`.kafka_io`: bounded read_committed reads;
* :mod:`.checkpoint`, :mod:`.audit`, :mod:`.report`: what a replay remembers, leaves and says;
* :mod:`.job`: the transaction loop; :mod:`.wiring`: a job from connections' settings.

Nothing here imports Airflow or a topic: the operator (``operators/replay_dlq.py``), the DAG
(``replay_dag.py``) and ``python -m kafka_ingest replay`` (``replay_cli.py``) are the Airflow
edge and the tools above it, as the import contract in pyproject.toml requires.
"""
