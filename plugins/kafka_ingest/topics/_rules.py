"""Column policies shared by topic specs: absence, codes, money, integers, timestamps, cards.

Every function here works on a whole column at once (Arrow compute with RE2 regexes, numpy), because
``prepare`` runs on batches of tens of thousands of rows and must not dominate a run. Each returns
numpy arrays that are never null, so the boolean columns built from them can be checked by Great
Expectations without its "nulls are skipped" rule hiding a failure.

Interpretation decisions (EXTRACTS.md leaves these open; they apply to every topic using them):

- Absent: null, ``""`` and whitespace-only text all mean "no value" (a blank in a fixed-width or
  hand-edited extract carries no data). Free text where the contract says "any Unicode text"
  (``coupon_code``) is the exception: only null and ``""`` are absent there, anything else is kept.
- Whitespace around a value is never trimmed: `` CREATED`` or ``"12.50 "`` is invalid, because a
  silent trim would publish something the source did not say.
- Codes (``order_number``, ``payment_number``): ``[A-Z0-9][A-Z0-9-]{0,63}``, ASCII only, exact case.
- Money: ``-?[0-9]+(\\.[0-9]{1,2})?``; at most 2 decimal places (``12.345`` is invalid, never
  rounded), no exponent, no ``NaN``/``Infinity``, no ``+``, no thousands separators, no leading or
  trailing dot; leading zeros are harmless. At most 10 integer digits so it fits Avro
  ``decimal(12,2)``. A minus sign makes the value negative even on zero: ``-0.00`` fails ">= 0" and
  "> 0" rules, since a sign on a zero amount points at an upstream sign bug.
- Integers: ASCII digits only (no sign, no ``.0``, no exponent), leading zeros harmless.
- Timestamps: ``YYYY-MM-DDTHH:MM:SS[.f{1,9}]`` followed by ``Z`` or ``±HH:MM`` (the RFC 3339 profile
  of ISO 8601: seconds required, ``T`` required, no ``+HHMM``/``+HH``, no week or ordinal dates).
  The date must exist (``2026-02-30`` is invalid), leap seconds and ``24:00`` are invalid, and
  the instant must fall within 1677-09-22..2262-04-11 (pandas' nanosecond range); an offset
  hour above 23 is invalid. Fractional seconds are truncated (floored, also before 1970) to
  milliseconds, the precision of Avro ``timestamp-millis``.
- Card numbers: 12-19 ASCII digits, with at most one space or dash between two digits (not at the
  ends), Luhn-valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kafka_ingest.specs import Rule

CODE_PATTERN = r"[A-Z0-9][A-Z0-9-]{0,63}"
CARD_PATTERN = r"[0-9](?:[ -]?[0-9]){11,18}"
MONEY_MAX_INTEGER_DIGITS = 10  # decimal(12, 2)
INT32_MAX = 2**31 - 1

_MONEY = r"^(?P<sign>-?)(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]{1,2}))?$"
_LOCAL_TIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
_OFFSET = r"Z|[+-][0-9]{2}:[0-9]{2}"
_CARD_WIDTH = 19


def checked(name: str) -> Rule:
    """A rule ``prepare`` decides: true in its never-null boolean column ``_<name>`` means it passes.

    The contract's rules are full-match patterns, strict parsing and cross-field checks that no
    stock GX expectation says exactly (``match_regex`` searches and its anchors differ between
    regex engines; ``in_set`` and ``not_be_null`` each cover half of "required and one of"), and
    one GX expectation per rule keeps GX's fixed cost per batch down. GX still identifies every
    failing row under the rule's name.
    """
    return Rule(name, "expect_column_values_to_be_in_set", {"column": f"_{name}", "value_set": [True]})


def text_column(frame: pd.DataFrame, column: str) -> pa.Array:
    """The column as one Arrow ``large_string`` array; a column the frame lacks reads as all null."""
    if column not in frame.columns:
        return pa.nulls(len(frame), pa.large_string())
    values = pa.array(frame[column].array, type=pa.large_string(), from_pandas=True)
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def absent(values: pa.Array, *, blank_is_absent: bool = True) -> np.ndarray:
    """Rows without a value: null, ``""`` and (by default) whitespace-only text."""
    empty = pc.equal(values, "")
    if blank_is_absent:
        empty = pc.or_(empty, pc.utf8_is_space(values))
    return _mask(pc.or_kleene(pc.is_null(values), empty))


def present(values: pa.Array, *, blank_is_absent: bool = True) -> np.ndarray:
    """Rows with a value (the complement of :func:`absent`)."""
    return ~absent(values, blank_is_absent=blank_is_absent)


def one_of(values: pa.Array, allowed: tuple[str, ...]) -> np.ndarray:
    """Whether each value is exactly one of ``allowed`` (null -> False; case and spaces count)."""
    return _mask(pc.is_in(values, value_set=pa.array(allowed, type=values.type)))


def full_match(values: pa.Array, pattern: str) -> np.ndarray:
    """Whether each value matches ``pattern`` as a whole (RE2; null -> False)."""
    return _mask(pc.match_substring_regex(values, f"^(?:{pattern})$"))


@dataclass(frozen=True)
class Money:
    """Parsed money: ``cents`` is meaningful where ``ok``; ``negative`` is true when a minus was given."""

    cents: np.ndarray
    ok: np.ndarray
    negative: np.ndarray


def parse_money(values: pa.Array) -> Money:
    """Parse decimal text exactly into integer cents (see the module docstring for the grammar)."""
    parts = pc.extract_regex(values, _MONEY)
    whole = pc.struct_field(parts, "int")
    frac = pc.utf8_rpad(pc.struct_field(parts, "frac"), 2, "0")
    units, fits = _parse_digits(whole, MONEY_MAX_INTEGER_DIGITS)
    ok = _mask(parts.is_valid()) & fits
    cents = units * 100 + _to_int(pc.if_else(pa.array(ok), frac, "0"))
    negative = ok & _mask(pc.equal(pc.struct_field(parts, "sign"), "-"))
    return Money(np.where(negative, -cents, cents), ok, negative)


def parse_int(values: pa.Array, max_digits: int = 18) -> tuple[np.ndarray, np.ndarray]:
    """Parse unsigned decimal integer text; returns ``(value, ok)`` (value 0 where not ok)."""
    matched = full_match(values, "[0-9]+")
    number, fits = _parse_digits(pc.if_else(pa.array(matched), values, "0"), max_digits)
    ok = matched & fits
    return np.where(ok, number, 0), ok


@dataclass(frozen=True)
class Timestamps:
    """Parsed timestamps: ``millis`` (UTC epoch ms) where ``ok``; ``has_offset`` where ``ok``."""

    millis: np.ndarray
    ok: np.ndarray
    has_offset: np.ndarray


def parse_timestamps(values: pa.Array) -> Timestamps:
    """Parse ISO 8601 timestamps strictly; a missing offset is parsed (as UTC) but flagged.

    Well-formed text is read by position with integer arithmetic (:func:`_read_iso_fields`), and
    a value that is plainly a real instant well inside pandas' range is decided there; every other
    well-formed value (an impossible date or time, an offset hour above 23, a year near the range's
    ends) goes to pandas' ISO 8601 parser, which is the reference for all of them. pandas alone
    cost ~8 ms of the GIL per 50k values; the arithmetic is a few numpy passes that release it.
    """
    well_formed = full_match(values, f"{_LOCAL_TIME}(?:{_OFFSET})?")
    fields = _read_iso_fields(values, well_formed)
    millis, ok = fields.millis, fields.plain.copy()
    unusual = well_formed & ~fields.plain
    if unusual.any():
        millis[unusual], ok[unusual] = _pandas_millis(pc.filter(values, pa.array(unusual)).to_pandas())
    return Timestamps(np.where(ok, millis, 0), ok, ok & fields.has_offset)


def _pandas_millis(text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Epoch milliseconds (floored, also before 1970) and validity of ISO 8601 text, by pandas.

    pandas infers the resolution from the finest fraction among the values it is given, and a
    nanosecond result cannot hold years outside 1677-2262: the same text would then be valid or not,
    or even read as another instant, depending on its neighbours. Fractions are cut to microseconds
    first (milliseconds are kept anyway), so every value is read at microsecond resolution or
    coarser, whose range holds every four-digit year.
    """
    text = text.str.replace(r"(\.\d{6})\d+", r"\1", regex=True)
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    millis = parsed.to_numpy(dtype="datetime64[us]").view("int64") // 1_000
    return millis, parsed.notna().to_numpy() & (millis >= _FIRST_MILLI) & (millis <= _LAST_MILLI)


#: The instants a consumer's datetime type can hold (Python's, Java's LocalDateTime): years 1-9999
#: in UTC. An offset can carry a four-digit local time outside them (year 0 or 10000).
_FIRST_MILLI = -62_135_596_800_000  # 0001-01-01T00:00:00Z
_LAST_MILLI = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


@dataclass(frozen=True)
class _IsoFields:
    """What :func:`_read_iso_fields` decided: ``millis`` where ``plain``, and which text has an offset."""

    millis: np.ndarray
    plain: np.ndarray
    has_offset: np.ndarray


def _calendar_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lookup tables for :func:`_read_iso_fields`, indexed by a 4-digit year or a 2-digit month:
    days from 1970-01-01 to each year's 1 January, whether a year is plain (see
    :data:`_PLAIN_YEARS`) and leap, and per (leap, month) the days before the month and in it
    (0 for months 0 and 13-99, so no day fits them)."""
    years = np.arange(10_000)
    leap = (years % 4 == 0) & ((years % 100 != 0) | (years % 400 == 0))
    epoch = date(1970, 1, 1).toordinal()
    year_start = np.array([date(max(int(y), 1), 1, 1).toordinal() - epoch for y in years], dtype=np.int64)
    plain = (years >= _PLAIN_YEARS[0]) & (years <= _PLAIN_YEARS[1])
    month_days = np.zeros((2, 100), dtype=np.int64)
    month_days[0, 1:13] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    month_days[1, 1:13] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    days_before = np.zeros((2, 100), dtype=np.int64)
    days_before[:, 1:14] = np.cumsum(np.hstack([np.zeros((2, 1), np.int64), month_days[:, 1:13]]), axis=1)
    return year_start, plain, leap.astype(np.int64), np.stack([days_before, month_days])


#: Whole years that pandas' nanosecond range (1677-09-21 .. 2262-04-11) holds with any offset.
_PLAIN_YEARS = (1678, 2261)
_YEAR_START, _PLAIN_YEAR, _LEAP_YEAR, _MONTHS = _calendar_tables()
#: Where the digits of ``YYYY-MM-DDTHH:MM:SS`` are.
_DIGIT_AT = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])


def _read_iso_fields(values: pa.Array, well_formed: np.ndarray) -> _IsoFields:
    """UTC epoch milliseconds of the well-formed values that are plainly real instants.

    ``plain`` is true where the date exists, the time is at most 23:59:59, an offset is at most
    23:59 and the year is inside :data:`_PLAIN_YEARS`; only there is ``millis`` meaningful.
    ``has_offset`` is true for well-formed text ending in ``Z`` or ``±HH:MM``. Dates are counted
    in the proleptic Gregorian calendar, as pandas does.
    """
    n = len(values)
    millis, plain, has_offset = np.zeros(n, np.int64), np.zeros(n, bool), np.zeros(n, bool)
    rows = np.flatnonzero(well_formed)
    if rows.size == 0:
        return _IsoFields(millis, plain, has_offset)
    # Well-formed text is ASCII and starts with the same 19 characters: cut to them, they lie
    # back to back in one buffer, one row of a (rows, 19) matrix each.
    text = _large_text(pc.filter(values, pa.array(well_formed)))
    head = _large_text(pc.utf8_slice_codeunits(text, 0, 19))
    start = np.frombuffer(head.buffers()[1], dtype=np.int64)[head.offset]
    chars = np.frombuffer(head.buffers()[2], dtype=np.uint8)[start : start + 19 * len(rows)]
    digits = chars.reshape(-1, 19).T[_DIGIT_AT].astype(np.int64) - ord("0")  # one row per digit
    tens = digits[0::2] * 10 + digits[1::2]  # 7 two-digit numbers: century, year of it, month, ...
    year = tens[0] * 100 + tens[1]
    month, day, hour, minute, second = tens[2:]
    # The tail after them: ".f{1,9}", then "Z", "±HH:MM" or nothing.
    bounds = np.frombuffer(text.buffers()[1], dtype=np.int64)[text.offset : text.offset + len(rows) + 1]
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8)
    first, end = bounds[:-1], bounds[1:]
    zulu = data[end - 1] == ord("Z")
    sign = data[end - 6]  # a digit, ':' or 'T' unless a numeric offset starts there
    numeric = (sign == ord("+")) | (sign == ord("-"))
    offset_digits = (data[(end - 6) + np.array([[1], [2], [4], [5]])] - ord("0")).astype(np.int64)
    offset_hour = np.where(numeric, offset_digits[0] * 10 + offset_digits[1], 0)
    offset_minute = np.where(numeric, offset_digits[2] * 10 + offset_digits[3], 0)
    fraction_digits = end - first - 20 - np.where(zulu, 1, np.where(numeric, 6, 0))
    fraction_ms = np.zeros(len(rows), np.int64)
    for place, scale in enumerate((100, 10, 1)):  # truncated to milliseconds
        digit = data[np.minimum(first + 20 + place, len(data) - 1)].astype(np.int64) - ord("0")
        fraction_ms += np.where(fraction_digits > place, digit * scale, 0)
    leap = _LEAP_YEAR[year]
    fits = (
        _PLAIN_YEAR[year]
        & (day >= 1)
        & (day <= _MONTHS[1, leap, month])
        & (hour <= 23)
        & (minute <= 59)
        & (second <= 59)
        & (offset_hour <= 23)
        & (offset_minute <= 59)
    )
    days = _YEAR_START[year] + _MONTHS[0, leap, month] + day - 1
    east = np.where(sign == ord("-"), -1, 1) * (offset_hour * 3600 + offset_minute * 60)
    seconds = days * 86_400 + hour * 3600 + minute * 60 + second - east
    millis[rows] = np.where(fits, seconds * 1000 + fraction_ms, 0)
    plain[rows] = fits
    has_offset[rows] = zulu | numeric
    return _IsoFields(millis, plain, has_offset)


def _large_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``values`` as one ``large_string`` array (offsets as int64, one data buffer)."""
    text = pc.cast(values, pa.large_string())
    return text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text


def luhn_card_numbers(values: pa.Array) -> np.ndarray:
    """Whether each value is a well-formed (:data:`CARD_PATTERN`), Luhn-valid card number."""
    well_formed = full_match(values, CARD_PATTERN)
    digits = pc.if_else(pa.array(well_formed), card_digits(values), "0")
    matrix = _digit_matrix(pc.utf8_lpad(digits, _CARD_WIDTH, "0"), _CARD_WIDTH).astype(np.int64)
    doubled = matrix[:, _CARD_WIDTH - 2 :: -2] * 2
    total = matrix[:, _CARD_WIDTH - 1 :: -2].sum(axis=1) + (doubled - 9 * (doubled > 9)).sum(axis=1)
    return well_formed & (total % 10 == 0)


def card_digits(values: pa.Array) -> pa.Array:
    """The digits of each card number, separators removed. Sensitive: never put it in a frame."""
    return pc.replace_substring_regex(values, "[ -]", "")


def card_last4(values: pa.Array, valid: np.ndarray) -> pa.Array:
    """The last four digits of each valid card number (null elsewhere): all an event may carry."""
    last4 = pc.utf8_slice_codeunits(card_digits(values), -4)
    return pc.if_else(pa.array(valid), last4, None)


def cents_to_decimal_array(cents: np.ndarray, valid: np.ndarray) -> pa.Array:
    """Integer cents as Arrow ``decimal128(12, 2)`` (null where not ``valid``), without Python loops.

    ``to_pylist`` then yields ``Decimal`` values with exactly two places, as Avro's decimal needs.
    """
    unscaled = np.empty((len(cents), 2), dtype=np.int64)
    unscaled[:, 0] = cents
    unscaled[:, 1] = np.where(cents < 0, -1, 0)  # two's-complement sign extension to 128 bits
    validity = pa.array(valid).buffers()[1] if not valid.all() else None
    return pa.Array.from_buffers(
        pa.decimal128(12, 2), len(cents), [validity, pa.py_buffer(unscaled.tobytes())]
    )


def millis_to_timestamp_array(millis: np.ndarray, valid: np.ndarray) -> pa.Array:
    """Epoch milliseconds as Arrow ``timestamp[ms, UTC]`` (null where not ``valid``)."""
    return pa.array(millis, type=pa.timestamp("ms", tz="UTC"), mask=~valid)


def arrow_series(values: pa.Array, frame: pd.DataFrame) -> pd.Series:
    """A typed Arrow array as a column of ``frame`` (kept Arrow-typed, no conversion)."""
    return pd.Series(pd.arrays.ArrowExtensionArray(values), index=frame.index)


def _parse_digits(digits: pa.Array, max_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """Digit strings -> int64, with ``fits`` false for more than ``max_digits`` significant digits."""
    significant = pc.utf8_ltrim(digits, "0")
    fits = _mask(pc.less_equal(pc.utf8_length(significant), max_digits))
    safe = pc.if_else(pc.and_(pa.array(fits), pc.not_equal(significant, "")), significant, "0")
    return _to_int(safe), fits


def _to_int(digits: pa.Array) -> np.ndarray:
    return pc.cast(pc.fill_null(digits, "0"), pa.int64()).to_numpy(zero_copy_only=False)


def _digit_matrix(fixed_width: pa.Array, width: int) -> np.ndarray:
    """ASCII digit strings, all ``width`` long, as an ``(n, width)`` array of digit values."""
    fixed_width = _large_text(fixed_width)
    offsets = np.frombuffer(fixed_width.buffers()[1], dtype=np.int64)
    start = offsets[fixed_width.offset]
    data = np.frombuffer(fixed_width.buffers()[2] or b"", dtype=np.uint8)
    body = data[start : start + width * len(fixed_width)]
    return body.reshape(len(fixed_width), width) - ord("0")


def _mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow result as a numpy bool array, null counted as false."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)
