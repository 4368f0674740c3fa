"""Deterministic sample extracts with known bad rows, for the demo, the tests and the benchmark.

``write_day`` lands one dataset day in EXTRACTS.md's layout (part files in the chosen formats, then
``_SUCCESS``) and returns a :class:`DayManifest`: which keys should be published and which rows
should reach the DLQ with which rule. Tests assert against the manifest, which is written from
the contract's rules, not from the validator's code.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

ORDER_COLUMNS = (
    "order_number",
    "user_id",
    "status",
    "items",
    "total_price",
    "currency",
    "created_at",
    "coupon_code",
)
PAYMENT_COLUMNS = (
    "payment_number",
    "order_number",
    "amount",
    "currency",
    "method",
    "status",
    "card_number",
    "paid_at",
)
#: Luhn-valid test card numbers (public test PANs), in the separators the contract allows.
TEST_CARDS = ("4111111111111111", "5500-0000-0000-0004", "3400 0000 0000 009", "6011000000000004")

Row = dict[str, Any]


@dataclass
class DayManifest:
    """What a correct run publishes from the day: keys in order, and the DLQ'd rows' rules."""

    dataset: str
    date: str
    files: list[str] = field(default_factory=list)
    published: list[str] = field(default_factory=list)
    #: (file name, row number) -> the rule (or read error) that must reject it
    rejected: dict[tuple[str, int], str] = field(default_factory=dict)
    rows: int = 0


def order_row(index: int, rng: random.Random, prefix: str = "ORD") -> Row:
    items: list[dict[str, Any]] = [
        {
            "product_id": f"P-{rng.randrange(1000):04d}",
            "quantity": rng.randint(1, 5),
            "unit_price": f"{rng.randrange(100, 100_000) / 100:.2f}",
        }
        for _ in range(rng.randint(1, 3))
    ]
    total = sum(Decimal(i["unit_price"]) * i["quantity"] for i in items)
    created = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(86_400 * 30))
    return {
        "order_number": f"{prefix}-{index:08d}",
        "user_id": f"user-{rng.randrange(10_000)}",
        "status": rng.choice(("CREATED", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED")),
        "items": items,
        "total_price": f"{total:.2f}",
        "currency": rng.choice(("KRW", "USD", "EUR", "JPY")),
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "coupon_code": rng.choice(("", "", "WELCOME10", "봄세일")),
    }


def payment_row(index: int, rng: random.Random, prefix: str = "PAY") -> Row:
    method = rng.choice(("CARD", "CARD", "BANK_TRANSFER", "VIRTUAL_ACCOUNT", "MOBILE", "POINTS"))
    paid = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(86_400 * 30))
    return {
        "payment_number": f"{prefix}-{index:08d}",
        "order_number": f"ORD-{rng.randrange(10**8):08d}",
        "amount": f"{rng.randrange(1, 10**7) / 100:.2f}",
        "currency": rng.choice(("KRW", "USD", "EUR", "JPY")),
        "method": method,
        "status": rng.choice(("APPROVED", "DECLINED", "CANCELLED", "REFUNDED")),
        "card_number": rng.choice(TEST_CARDS) if method == "CARD" else "",
        "paid_at": paid.isoformat().replace("+00:00", "+09:00"),
    }


#: One way to break a valid row per contract rule: rule name -> mutation.
ORDER_DEFECTS: dict[str, Callable[[Row], None]] = {
    "order_number_format": lambda r: r.update(order_number="-" + r["order_number"].lower()),
    "user_id_required": lambda r: r.update(user_id=""),
    "status_allowed": lambda r: r.update(status="created"),
    "items_valid": lambda r: r.update(items=[{**r["items"][0], "quantity": 0}], total_price="0.00"),
    "total_price_format": lambda r: r.update(total_price="12.345"),
    "total_matches_items": lambda r: r.update(total_price=f"{Decimal(r['total_price']) + 1:.2f}"),
    "currency_allowed": lambda r: r.update(currency="GBP"),
    "created_at_with_offset": lambda r: r.update(created_at=r["created_at"].rstrip("Z")),
}
PAYMENT_DEFECTS: dict[str, Callable[[Row], None]] = {
    "payment_number_format": lambda r: r.update(payment_number="PAY_" + r["payment_number"]),
    "amount_positive": lambda r: r.update(amount="0.00"),
    "currency_allowed": lambda r: r.update(currency="usd"),
    "method_allowed": lambda r: r.update(method="CASH", card_number=""),
    "status_allowed": lambda r: r.update(status="PENDING"),
    "card_number_only_for_card": lambda r: r.update(method="POINTS", card_number="4111111111111111"),
    "card_number_luhn": lambda r: r.update(method="CARD", card_number="4111111111111112"),
    "paid_at_with_offset": lambda r: r.update(paid_at="2026-02-30T10:00:00Z"),
}

DATASETS: dict[str, tuple[Callable[[int, random.Random], Row], dict[str, Callable[[Row], None]], str]] = {
    "orders": (order_row, ORDER_DEFECTS, "order_number"),
    "payments": (payment_row, PAYMENT_DEFECTS, "payment_number"),
}


def write_day(
    root: str | Path,
    dataset: str,
    date: str,
    *,
    rows: int,
    formats: Sequence[str] = ("csv",),
    bad_ratio: float = 0.02,
    duplicates: int = 1,
    seed: int = 7,
    success: bool = True,
) -> DayManifest:
    """Write ``rows`` rows of ``dataset`` split over one part file per format; see the module doc."""
    make_row, defects, key = DATASETS[dataset]
    rng = random.Random(f"{seed}/{dataset}/{date}")
    folder = Path(root) / dataset / f"dt={date}"
    folder.mkdir(parents=True, exist_ok=True)
    manifest = DayManifest(dataset, date, rows=rows)
    rules = sorted(defects)
    per_file = _split(rows, len(formats))
    index = 0
    seen: list[str] = []
    for part, (fmt, count) in enumerate(zip(formats, per_file, strict=True), start=1):
        name = f"part-{part:04d}.{fmt}"
        file_rows = []
        for row_number in range(1, count + 1):
            index += 1
            row = make_row(index, rng)
            if seen and duplicates and rng.random() < duplicates / max(rows, 1):
                row[key] = rng.choice(seen)
                manifest.rejected[(name, row_number)] = "key_unique_in_day"
            elif rng.random() < bad_ratio:
                rule = rules[index % len(rules)]
                defects[rule](row)
                manifest.rejected[(name, row_number)] = rule
            else:
                manifest.published.append(row[key])
            seen.append(row[key])
            file_rows.append(row)
        write_rows(folder / name, file_rows)
        manifest.files.append(str(folder / name))
    if success:
        (folder / "_SUCCESS").touch()
    return manifest


def write_rows(path: Path, rows: list[Row]) -> None:
    """One part file in the format its name says (.csv, .jsonl, .parquet, optionally .gz)."""
    name = path.name.removesuffix(".gz")
    if name.endswith(".parquet"):
        pq.write_table(_arrow_table(rows), path)
        return
    payload = _csv_text(rows) if name.endswith(".csv") else _jsonl_text(rows)
    data = payload.encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)


def _csv_text(rows: list[Row]) -> str:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()})
    return out.getvalue()


def _jsonl_text(rows: list[Row]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _arrow_table(rows: list[Row]) -> pa.Table:
    columns = list(rows[0]) if rows else []
    data = {c: [r[c] for r in rows] for c in columns}
    if "items" in data:
        data["items"] = [[{**i, "unit_price": Decimal(i["unit_price"])} for i in v] for v in data["items"]]
    return pa.table(data)


def _split(total: int, parts: int) -> Iterator[int]:
    base, extra = divmod(total, parts)
    return iter([base + (1 if i < extra else 0) for i in range(parts)])
