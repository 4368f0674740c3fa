"""One module per extract format, each a :class:`~kafka_ingest.read.formats.base.FormatReader`."""
