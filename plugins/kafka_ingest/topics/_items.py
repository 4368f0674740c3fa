"""Order line items: parse the ``items`` JSON column and judge every item, column-wise.

An item is valid when ``product_id`` is a non-blank JSON string, ``quantity`` an integer
(JSON number or string of ASCII digits) from 1 to 2**31-1 (Avro ``int``), and ``unit_price`` a
money value >= 0 (see :mod:`._rules`; ``-0.00`` is not >= 0 there) that fits ``decimal(12,2)``.
A row's items are valid when its text is a JSON array with at least one element and every element
is a valid item. Unknown keys in an item are ignored (an upstream column added later must not
send every order to the DLQ); a key given twice is invalid (which one would be meant?).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kafka_ingest.topics._nested import parse_json_lists
from kafka_ingest.topics._rules import INT32_MAX, absent, cents_to_decimal_array, parse_int, parse_money

#: Larger than any decimal(12,2) in cents: products are capped here so int64 sums cannot overflow.
_CAP_CENTS = 10**13
ITEM_TYPE = pa.struct(
    [("product_id", pa.string()), ("quantity", pa.int32()), ("unit_price", pa.decimal128(12, 2))]
)


@dataclass(frozen=True)
class Items:
    """Per row: ``valid`` items (false where absent), their ``total_cents`` and the Avro-ready lists."""

    valid: np.ndarray
    total_cents: np.ndarray
    lists: pa.ListArray


def parse_items(values: pa.Array) -> Items:
    """Parse and judge a batch's ``items`` column (absent rows are not valid, but not judged)."""
    # quantity is judged as an integer: a JSON integer there is read as one, not quoted first
    parsed = parse_json_lists(
        values, ("product_id",), ("quantity", "unit_price"), integer_fields=("quantity",)
    )
    lengths = pc.fill_null(pc.list_value_length(parsed.lists), 0).to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = pc.list_flatten(parsed.lists)
    product_id = pc.struct_field(flat, "product_id")
    quantity, quantity_ok = parse_int(pc.struct_field(flat, "quantity"), max_digits=10)
    price = parse_money(pc.struct_field(flat, "unit_price"))
    item_ok = (
        np.asarray(flat.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        & ~absent(product_id)
        & quantity_ok
        & (quantity >= 1)
        & (quantity <= INT32_MAX)
        & price.ok
        & ~price.negative
    )
    bad_items = _sum_per_row((~item_ok).astype(np.int64), offsets)
    listed = parsed.lists.is_valid().to_numpy(zero_copy_only=False)
    valid = ~parsed.invalid & listed & (lengths >= 1) & (bad_items == 0)
    cost = np.where(item_ok, _capped_product(quantity, price.cents), 0)
    lists = _avro_lists(offsets, product_id, np.where(item_ok, quantity, 0), price.cents, item_ok)
    return Items(valid, np.minimum(_sum_per_row(cost, offsets), _CAP_CENTS), lists)


def _capped_product(quantity: np.ndarray, cents: np.ndarray) -> np.ndarray:
    """quantity x unit price in cents, capped at :data:`_CAP_CENTS` (beyond it no total can match)."""
    too_big = quantity.astype(np.float64) * cents.astype(np.float64) >= _CAP_CENTS
    with np.errstate(over="ignore"):
        return np.where(too_big, _CAP_CENTS, quantity * cents)


def _sum_per_row(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum flattened ``values`` per row, given the rows' ``offsets`` into them (empty rows -> 0)."""
    sums = np.zeros(len(offsets) - 1, dtype=np.int64)
    nonempty = offsets[1:] > offsets[:-1]
    if values.size:
        sums[nonempty] = np.add.reduceat(values, offsets[:-1][nonempty])
    return sums


def _avro_lists(
    offsets: np.ndarray, product_id: pa.Array, quantity: np.ndarray, cents: np.ndarray, ok: np.ndarray
) -> pa.ListArray:
    """The items as Arrow lists shaped like the Avro ``OrderItem`` (only meaningful for valid rows)."""
    items = pa.StructArray.from_arrays(
        [
            pc.cast(product_id, pa.string()),
            pa.array(quantity.astype(np.int32)),
            cents_to_decimal_array(cents, ok),
        ],
        fields=list(ITEM_TYPE),
    )
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), items)
