"""What the cluster must hold before a run: topics as declared, ACLs, and who may use them.

Brokers never create topics (``auto.create.topics.enable=false``): ``topics.py`` plans each spec's
data, DLQ and checkpoint topics from their declared :mod:`kafka_ingest.topic_settings`, creates the
missing ones, reports drift, and gives a run the one check it makes before anything else
(``require_topics``, :class:`~kafka_ingest.provision.topics.MissingTopicError`). ``acls.py``
derives the ingest and consumer principals' least-privilege ACLs from the same plans;
``access.py`` checks, before a run produces, that its principal may do what it needs and turns a
refused login or a missing ACL into a permanent error naming the connection; ``security.py`` puts
a connection's login and password where librdkafka reads them and redacts them from messages.

A layer below the stages, so ``publish/checkpoints.py`` and ``pipeline/wiring.py`` may call
``require_topics``; ``python -m kafka_ingest topics ensure`` (``topics_command.py``, on the edge)
drives it. docs/security.md says why each grant exists.
"""
