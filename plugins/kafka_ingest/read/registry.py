"""Suffix -> format: the one table that says which reader reads a file.

Adding a format is a module in ``read/formats/`` and one line in :data:`FORMATS`
(docs/adding-a-format.md); :func:`read_extract`, the part-file listing and the pipeline need no
change.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from kafka_ingest.batches import ReadBatch
from kafka_ingest.read.batching import FIELD_SIZE_LIMIT, Limits, ReadSpec
from kafka_ingest.read.files import ExtractPath, file_name, open_binary, read_errors
from kafka_ingest.read.formats.base import Format
from kafka_ingest.read.formats.csv_fast import read_csv_fast
from kafka_ingest.read.formats.jsonl import read_jsonl
from kafka_ingest.read.formats.parquet import read_parquet
from kafka_ingest.read.text import decompressed
from kafka_ingest.specs import ReaderOptions

#: Every format, in the order suffixes are tried. Spark writes JSON Lines as ``part-*.json``.
FORMATS: tuple[Format, ...] = (
    Format("csv", (".csv",), read_csv_fast),
    Format("jsonl", (".jsonl", ".ndjson", ".json"), read_jsonl),
    Format("parquet", (".parquet",), read_parquet, compressible=False),
)


def format_of(path: ExtractPath) -> Format:
    """The format a file's name says, ``.gz`` included for the compressible ones."""
    name = file_name(path).lower()
    stem = name.removesuffix(".gz")
    for fmt in FORMATS:
        if (stem if fmt.compressible else name).endswith(fmt.suffixes):
            return fmt
    raise ValueError(f"{path}: not an extract file ({_known_suffixes()})")


def detect_format(path: ExtractPath) -> str:
    """``csv``, ``jsonl`` or ``parquet`` (any registered name) from the file name."""
    return format_of(path).name


def is_extract_name(name: str) -> bool:
    try:
        format_of(name)
    except ValueError:
        return False
    return True


def read_extract(
    path: ExtractPath,
    *,
    columns: Sequence[str],
    optional_columns: Sequence[str] = (),
    json_columns: Sequence[str] = (),
    batch_rows: int = 50_000,
    batch_bytes: int = 64 << 20,
    options: ReaderOptions | None = None,
    field_size_limit: int = FIELD_SIZE_LIMIT,
    arrow_csv: bool = True,
) -> Iterator[ReadBatch]:
    """Stream one extract file as bounded batches (``kafka_ingest.read`` states the contract).

    ``arrow_csv=False`` reads with each format's reference path only (the tests compare them).
    ``json_columns`` need no special casing: every format hands nested values on as JSON text.
    """
    if batch_rows < 1 or batch_bytes < 1 or field_size_limit < 1:
        raise ValueError("batch_rows, batch_bytes and field_size_limit must be positive")
    fmt = format_of(path)
    spec = ReadSpec(str(path), columns, optional_columns, options or ReaderOptions(), fast_path=arrow_csv)
    limits = Limits(batch_rows, batch_bytes, field_size_limit)
    with read_errors(spec.file), open_binary(path) as raw:
        if not fmt.compressible:
            yield from fmt.read(raw, spec, limits)
            return
        with decompressed(raw, file_name(path).lower().endswith(".gz")) as binary:
            yield from fmt.read(binary, spec, limits)


def _known_suffixes() -> str:
    compressible = [s for f in FORMATS if f.compressible for s in f.suffixes]
    plain = [s for f in FORMATS if not f.compressible for s in f.suffixes]
    return f"{', '.join(compressible)} [.gz] or {', '.join(plain)}"
