"""Fast, vectorised orders extracts for the benchmark (numpy + pyarrow; no Python loop per row).

``testing/samples.py`` builds rows one by one, which is right for tests (a manifest per row) but
takes minutes for millions of rows. This generator builds every column with numpy and Arrow
compute, so 5M CSV rows take well under a minute. One table per (rows, seed) is written in every
format asked for, so the formats of a size carry the same rows.

About 1 % of the rows break one contract rule each (kinds in :data:`DEFECTS`, round robin) and a
few more repeat an earlier valid row's order number (the day's duplicate rule). The manifest says
how many rows a correct run publishes and dead-letters, and how many a peer that only checks
:data:`PEER_CHECKED` rules would publish, so each measurement can be checked on the consumer side.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

DATE = "2026-01-01"
FORMATS = ("csv", "parquet", "jsonl.gz")
STATUSES = np.array(["CREATED", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED"])
CURRENCIES = np.array(["KRW", "USD", "EUR", "JPY"])
#: Mostly none; one with a comma and quotes (RFC 4180 quoting), one in Hangul.
COUPONS = np.array(["", "", "", "WELCOME10", "봄세일", 'SAVE "10", NOW'])
#: Defect kinds (the rule each breaks), assigned round robin to the bad rows.
DEFECTS = (
    "order_number_format",
    "user_id_required",
    "status_allowed",
    "currency_allowed",
    "total_matches_items",
    "created_at_with_offset",
    "items_valid",
)
#: The rules a plain-GX peer can express (regex, in_set, not_null); the others it lets through.
PEER_CHECKED = frozenset(
    {
        "order_number_format",
        "user_id_required",
        "status_allowed",
        "currency_allowed",
        "created_at_with_offset",
    }
)
_EPOCH_2026 = 1_767_225_600  # 2026-01-01T00:00:00Z


@dataclass
class Manifest:
    """What is in one generated day and what a correct run makes of it."""

    rows: int
    seed: int
    bad_ratio: float
    dup_ratio: float
    formats: list[str]
    bad: int = 0
    duplicates: int = 0
    published: int = 0
    peer_published: int = 0
    by_defect: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    generate_seconds: float = 0.0

    @property
    def dlq(self) -> int:
        return self.bad + self.duplicates


def root_for(data_dir: Path, rows: int, seed: int) -> Path:
    """The extracts root of one generated day: ``<data_dir>/orders-<rows>-s<seed>``."""
    return data_dir / f"orders-{rows}-s{seed}"


def day_dir(root: Path) -> Path:
    return root / "orders" / f"dt={DATE}"


def ensure_day(
    data_dir: Path,
    rows: int,
    formats: tuple[str, ...],
    *,
    seed: int = 7,
    bad_ratio: float = 0.01,
    dup_ratio: float = 0.0005,
) -> Manifest:
    """Generate the day unless a previous run left it with the same parameters; returns its manifest.

    Each format lives in its own extracts root (``.../<format>/orders/dt=.../part-0001.<ext>``)
    so that a DAG run over one root sees exactly one file.
    """
    import time

    root = root_for(data_dir, rows, seed)
    manifest_path = root / "manifest.json"
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        same = (old["rows"], old["seed"], old["bad_ratio"], old["dup_ratio"]) == (
            rows,
            seed,
            bad_ratio,
            dup_ratio,
        )
        if (
            same
            and set(formats) <= set(old["files"])
            and all(Path(p).exists() for p in old["files"].values())
        ):
            return Manifest(**old)
    started = time.monotonic()
    table, manifest = build_table(rows, seed=seed, bad_ratio=bad_ratio, dup_ratio=dup_ratio)
    manifest.formats = list(formats)
    for fmt in formats:
        folder = day_dir(root / fmt.split(".")[0])
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-0001.{fmt}"
        write(table, path, fmt)
        (folder / "_SUCCESS").touch()
        manifest.files[fmt] = str(path)
        manifest.sizes[fmt] = path.stat().st_size
    np.save(root / "valid.npy", manifest_valid_mask(table))
    manifest.generate_seconds = round(time.monotonic() - started, 2)
    manifest_path.write_text(json.dumps(asdict(manifest), indent=1))
    return manifest


@dataclass
class DaysManifest:
    """Several consecutive days of part files under one extracts root (the backfill benchmark)."""

    days: int
    rows_per_day: int
    parts: int
    seed: int
    bad_ratio: float
    dup_ratio: float
    extracts_root: str = ""
    dates: list[str] = field(default_factory=list)
    #: Per day: the files (name order) and what a correct run makes of them.
    files: dict[str, list[str]] = field(default_factory=dict)
    published_by_day: dict[str, int] = field(default_factory=dict)
    dlq_by_day: dict[str, int] = field(default_factory=dict)
    input_bytes: int = 0
    generate_seconds: float = 0.0

    @property
    def rows(self) -> int:
        return self.days * self.rows_per_day

    @property
    def published(self) -> int:
        return sum(self.published_by_day.values())

    @property
    def dlq(self) -> int:
        return sum(self.dlq_by_day.values())


def day_dates(first: str, days: int) -> list[str]:
    """``days`` consecutive ISO dates from ``first`` (a backfill's From..To, both inclusive)."""
    from datetime import date, timedelta

    start = date.fromisoformat(first)
    return [str(start + timedelta(days=n)) for n in range(days)]


def part_bounds(rows: int, parts: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` row ranges of ``parts`` part files (the first ones one row
    longer when ``rows`` does not divide), so file-name order is row order: the day's duplicate
    rule (first occurrence wins, across the day's files in name order) decides as in one file."""
    if rows < 0 or parts < 1:
        raise ValueError(f"rows={rows}, parts={parts}")
    size, extra = divmod(rows, parts)
    bounds, start = [], 0
    for n in range(parts):
        stop = start + size + (1 if n < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def days_root_for(data_dir: Path, days: int, rows_per_day: int, parts: int, seed: int) -> Path:
    return data_dir / f"orders-days-{days}x{rows_per_day}-p{parts}-s{seed}"


def ensure_days(
    data_dir: Path,
    days: int,
    rows_per_day: int,
    parts: int,
    *,
    first_date: str = DATE,
    seed: int = 11,
    bad_ratio: float = 0.01,
    dup_ratio: float = 0.0005,
) -> DaysManifest:
    """CSV days ``<root>/csv/orders/dt=<day>/part-000N.csv`` + ``_SUCCESS``, reused when present.

    Each day is its own table (its own seed and order numbers, ~1 % bad rows and a few
    duplicates, some of them across its part files), split into ``parts`` contiguous files.
    """
    import time

    # Absolute: the extracts root is handed to a DAG that Airflow's task processes run elsewhere.
    root = days_root_for(data_dir.resolve(), days, rows_per_day, parts, seed)
    manifest_path = root / "manifest.json"
    params = (days, rows_per_day, parts, seed, bad_ratio, dup_ratio, str(root / "csv"))
    if manifest_path.exists():
        old = DaysManifest(**json.loads(manifest_path.read_text()))
        same = (
            old.days,
            old.rows_per_day,
            old.parts,
            old.seed,
            old.bad_ratio,
            old.dup_ratio,
            old.extracts_root,
        ) == params
        files = [Path(f) for day in old.files.values() for f in day]
        if same and old.dates == day_dates(first_date, days) and all(f.exists() for f in files):
            return old
    started = time.monotonic()
    manifest = DaysManifest(days, rows_per_day, parts, seed, bad_ratio, dup_ratio, str(root / "csv"))
    manifest.dates = day_dates(first_date, days)
    for n, day in enumerate(manifest.dates):
        table, day_manifest = build_table(
            rows_per_day,
            seed=seed * 1000 + n,
            bad_ratio=bad_ratio,
            dup_ratio=dup_ratio,
            first_number=1 + n * rows_per_day,
        )
        folder = root / "csv" / "orders" / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for part, (start, stop) in enumerate(part_bounds(rows_per_day, parts), start=1):
            path = folder / f"part-{part:04d}.csv"
            write(table.slice(start, stop - start), path, "csv")
            manifest.input_bytes += path.stat().st_size
            paths.append(str(path))
        (folder / "_SUCCESS").touch()
        manifest.files[day] = paths
        manifest.published_by_day[day] = day_manifest.published
        manifest.dlq_by_day[day] = day_manifest.dlq
    manifest.generate_seconds = round(time.monotonic() - started, 2)
    manifest_path.write_text(json.dumps(asdict(manifest), indent=1))
    return manifest


def manifest_valid_mask(table: pa.Table) -> np.ndarray:
    return np.asarray(table.column("_valid").to_numpy(zero_copy_only=False), dtype=bool)


def build_table(
    rows: int, *, seed: int, bad_ratio: float, dup_ratio: float, first_number: int = 1
) -> tuple[pa.Table, Manifest]:
    """The day's rows as one Arrow table (items as lists of structs), plus the expected outcome.

    Order numbers run from ``first_number`` (days of a multi-day set do not share them).
    """
    rng = np.random.default_rng(seed)
    index = np.arange(first_number, first_number + rows)
    n_items = rng.integers(1, 4, rows)
    offsets = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(n_items, out=offsets[1:])
    total_items = int(offsets[-1])
    product = rng.integers(0, 1000, total_items)
    quantity = rng.integers(1, 6, total_items)
    price_cents = rng.integers(100, 100_000, total_items)
    row_of_item = np.repeat(np.arange(rows), n_items)
    total_cents = np.bincount(row_of_item, weights=quantity * price_cents, minlength=rows).astype(np.int64)

    order_number = _join("ORD-", _padded(index, 9))
    user_id = _join("user-", _ints(rng.integers(0, 100_000, rows)))
    status = pa.array(STATUSES[rng.integers(0, len(STATUSES), rows)])
    currency = pa.array(CURRENCIES[rng.integers(0, len(CURRENCIES), rows)])
    seconds = _EPOCH_2026 + rng.integers(0, 86_400 * 30, rows)
    created_at = pc.strftime(pa.array(seconds, pa.timestamp("s", "UTC")), format="%Y-%m-%dT%H:%M:%SZ")
    coupon = pa.array(COUPONS[rng.integers(0, len(COUPONS), rows)])

    # Defects: ~bad_ratio of the rows, one rule each, round robin over DEFECTS.
    bad_rows = np.flatnonzero(rng.random(rows) < bad_ratio)
    kinds = np.arange(len(bad_rows)) % len(DEFECTS)
    manifest = Manifest(rows, seed, bad_ratio, dup_ratio, [])
    valid = np.ones(rows, dtype=bool)
    peer_valid = np.ones(rows, dtype=bool)
    order_number, user_id = (
        order_number.to_numpy(zero_copy_only=False),
        user_id.to_numpy(zero_copy_only=False),
    )
    status, currency = status.to_numpy(zero_copy_only=False), currency.to_numpy(zero_copy_only=False)
    created_at = created_at.to_numpy(zero_copy_only=False)
    for k, name in enumerate(DEFECTS):
        at = bad_rows[kinds == k]
        manifest.by_defect[name] = len(at)
        valid[at] = False
        if name in PEER_CHECKED:
            peer_valid[at] = False
        if name == "order_number_format":
            order_number[at] = ["ord-" + s[4:] for s in order_number[at]]
        elif name == "user_id_required":
            user_id[at] = ""
        elif name == "status_allowed":
            status[at] = "created"
        elif name == "currency_allowed":
            currency[at] = "GBP"
        elif name == "total_matches_items":
            total_cents[at] += 100
        elif name == "created_at_with_offset":
            created_at[at] = [s[:-1] for s in created_at[at]]
        elif name == "items_valid":
            quantity[offsets[at]] = 0  # the first item of the row: quantity must be >= 1
            total_cents[at] = np.bincount(row_of_item, weights=quantity * price_cents, minlength=rows).astype(
                np.int64
            )[at]
    # Duplicates: later rows that repeat an earlier valid row's order number (the later one is DLQ'd).
    candidates = np.flatnonzero(valid[rows // 2 :]) + rows // 2
    dup_rows = np.sort(
        rng.choice(candidates, size=min(len(candidates), int(rows * dup_ratio)), replace=False)
    )
    sources = rng.integers(0, np.maximum(dup_rows // 2, 1))
    usable = valid[sources]
    dup_rows, sources = dup_rows[usable], sources[usable]
    order_number[dup_rows] = order_number[sources]
    valid[dup_rows] = False

    manifest.bad = len(bad_rows)
    manifest.duplicates = len(dup_rows)
    manifest.published = int(valid.sum())
    manifest.peer_published = int(peer_valid.sum())
    items = pa.ListArray.from_arrays(
        pa.array(offsets),
        pa.StructArray.from_arrays(
            [
                _join("P-", _padded(product, 4)),
                pa.array(quantity.astype(np.int32)),
                _decimals(price_cents),
            ],
            names=["product_id", "quantity", "unit_price"],
        ),
    )
    table = pa.table(
        {
            "order_number": pa.array(order_number, pa.string()),
            "user_id": pa.array(user_id, pa.string()),
            "status": pa.array(status, pa.string()),
            "items": items,
            "total_price": _money_text(total_cents),
            "currency": pa.array(currency, pa.string()),
            "created_at": pa.array(created_at, pa.string()),
            "coupon_code": coupon,
            "_valid": pa.array(valid),
        }
    )
    return table, manifest


def write(table: pa.Table, path: Path, fmt: str) -> None:
    """One part file; the ``_valid`` column stays out of it."""
    data = table.drop_columns(["_valid"])
    if fmt == "parquet":
        pq.write_table(data, path)
        return
    items_json = _items_json(data.column("items").combine_chunks())
    if fmt == "csv":
        pacsv.write_csv(data.set_column(3, "items", items_json), path)
        return
    assert fmt == "jsonl.gz", fmt
    lines = _jsonl_lines(data, items_json)
    with gzip.open(path, "wb", compresslevel=1) as out:
        for start in range(0, len(lines), 100_000):
            out.write("".join(lines[start : start + 100_000].to_pylist()).encode())


def _items_json(items: pa.ListArray) -> pa.Array:
    """``[{"product_id":"P-0001","quantity":2,"unit_price":"12.50"}, ...]`` per row."""
    flat = items.values
    one = pc.binary_join_element_wise(
        '{"product_id":"',
        flat.field("product_id"),
        '","quantity":',
        pc.cast(flat.field("quantity"), pa.string()),
        ',"unit_price":"',
        pc.cast(flat.field("unit_price"), pa.string()),
        '"}',
        "",
    )
    joined = pc.binary_join(pa.ListArray.from_arrays(items.offsets, one), ",")
    return pc.binary_join_element_wise("[", joined, "]", "")


def _jsonl_lines(data: pa.Table, items_json: pa.Array) -> pa.Array:
    def quoted(name: str) -> pa.Array:
        text = data.column(name).combine_chunks()
        escaped = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
        return pc.binary_join_element_wise('"', escaped, '"', "")

    parts: list[pa.Array | str] = []
    for i, name in enumerate(data.column_names):
        parts.append(("{" if i == 0 else ",") + json.dumps(name) + ":")
        parts.append(items_json if name == "items" else quoted(name))
    return pc.binary_join_element_wise(*parts, "}\n", "")


def _ints(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _padded(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(_ints(values), width, "0")


def _join(prefix: str, values: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(prefix, values, "")


def _money_text(cents: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(_ints(cents // 100), pc.utf8_lpad(_ints(cents % 100), 2, "0"), ".")


def _decimals(cents: np.ndarray) -> pa.Array:
    unscaled = np.zeros((len(cents), 2), dtype=np.int64)
    unscaled[:, 0] = cents
    return pa.Array.from_buffers(pa.decimal128(12, 2), len(cents), [None, pa.py_buffer(unscaled.tobytes())])
