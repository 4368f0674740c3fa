"""Timestamps: the positional reader gives what pandas' ISO 8601 parser gives, value for value.

``parse_timestamps`` decides most well-formed values with integer arithmetic and hands the others
to pandas. Its reference is the version that gave every well-formed value to pandas
(:func:`pandas_only`, at microsecond resolution, years 1-9999): the same ``millis``, ``ok`` and
``has_offset`` for any text, including impossible dates and times, offsets beyond 23:59, years
outside pandas' nanosecond range, fractions of every length, and text that is not a timestamp.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kafka_ingest.topics._rules import _LOCAL_TIME, _OFFSET, _mask, full_match, parse_timestamps


def pandas_only(values: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``parse_timestamps`` before the positional reader: pandas parsed every well-formed value."""
    well_formed = full_match(values, f"{_LOCAL_TIME}(?:{_OFFSET})?")
    text = pc.if_else(pa.array(well_formed), values, None).to_pandas()
    text = text.str.replace(r"(\.\d{6})\d+", r"\1", regex=True)  # milliseconds are kept anyway
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    micros = parsed.to_numpy(dtype="datetime64[us]").view("int64")
    in_years_1_to_9999 = (micros >= -62_135_596_800_000_000) & (micros < 253_402_300_800_000_000)
    ok = well_formed & parsed.notna().to_numpy() & in_years_1_to_9999
    millis = np.where(ok, micros // 1_000, 0)
    has_offset = ok & _mask(pc.match_substring_regex(values, f"(?:{_OFFSET})$"))
    return millis, ok, has_offset


def two_digits(usual: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    return st.one_of(usual, st.integers(0, 99)).map(lambda n: f"{n:02d}")


years = st.one_of(
    st.sampled_from([1677, 1678, 1969, 1970, 2000, 2024, 2100, 2261, 2262]),
    st.integers(1600, 2400),
    st.integers(0, 9999),
).map(lambda n: f"{n:04d}")
fractions = st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=9).map(lambda f: f".{f}"))
offset_minutes = two_digits(st.sampled_from([0, 30, 45, 59, 60]))
offsets = st.one_of(
    st.sampled_from(["", "Z"]),
    st.builds(
        lambda sign, hh, mm: f"{sign}{hh}:{mm}",
        st.sampled_from("+-"),
        two_digits(st.integers(0, 24)),
        offset_minutes,
    ),
)
timestamps = st.builds(
    lambda y, mo, d, h, mi, s, f, o: f"{y}-{mo}-{d}T{h}:{mi}:{s}{f}{o}",
    years,
    two_digits(st.integers(1, 12)),
    two_digits(st.integers(1, 31)),
    two_digits(st.integers(0, 24)),
    two_digits(st.integers(0, 60)),
    two_digits(st.integers(0, 60)),
    fractions,
    offsets,
)
values = st.lists(st.one_of(timestamps, timestamps, timestamps, st.none(), st.text(max_size=30)), max_size=40)


@settings(max_examples=600, deadline=None)
@given(values=values, large=st.booleans())
@example(
    values=[
        "1677-09-21T00:12:43.145224193Z",  # pandas' first instant
        "1677-09-21T00:12:43.145224192Z",  # one nanosecond before it
        "2262-04-11T23:47:16.854775807Z",  # pandas' last instant
        "2262-04-11T23:47:16.854775808Z",
        "1678-01-01T00:00:00+23:59",
        "2261-12-31T23:59:59.999999999-23:59",
        "1969-12-31T23:59:59.9995Z",
        "2024-02-29T12:00:00-05:00",
        "2100-02-29T00:00:00Z",
        "2000-02-29T00:00:00Z",
        "2026-01-15T24:00:00Z",
        "2026-01-15T09:30:00+24:00",
        "2026-01-15T09:30:00+05:60",
        "2026-01-15T09:30:00",
        "2026-13-01T00:00:00Z",
        "2026-00-10T00:00:00Z",
        "0000-01-01T00:00:00Z",
    ],
    large=True,
)
def test_the_positional_reader_agrees_with_pandas(values: list[str | None], large: bool) -> None:
    array = pa.array(values, type=pa.large_string() if large else pa.string())
    got = parse_timestamps(array)
    millis, ok, has_offset = pandas_only(array)
    assert got.ok.tolist() == ok.tolist()
    assert got.millis.tolist() == millis.tolist()
    assert got.has_offset.tolist() == has_offset.tolist()


@pytest.mark.parametrize(
    "neighbour", [None, "1678-01-01T00:00:00.0000000Z", "2026-01-15T09:30:00.123456789+01:00"]
)
def test_an_instant_outside_pandas_nanosecond_range_is_read_the_same_whatever_its_neighbours(
    neighbour: str | None,
) -> None:
    """A finer fraction elsewhere in the batch once made pandas read 1677 as NaT, or a lone 1677
    value overflow into 2261: the answer must depend on the value alone."""
    got = parse_timestamps(pa.array(["1677-01-01T00:00:00Z", "2262-06-01T00:00:00Z", neighbour]))
    assert got.ok[:2].tolist() == [True, True]
    assert got.millis[:2].tolist() == [-9_246_096_000_000, 9_227_692_800_000]


@pytest.mark.parametrize(
    "text", ["0000-12-31T23:59:59Z", "0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"]
)
def test_an_instant_outside_years_1_to_9999_is_invalid(text: str) -> None:
    """Consumers' datetime types (Python's, Java's LocalDateTime) hold years 1 to 9999 only."""
    assert parse_timestamps(pa.array([text])).ok.tolist() == [False]


@pytest.mark.parametrize("offset", [0, 3, 17])
def test_a_sliced_or_chunked_column_is_read_from_its_own_values(offset: int) -> None:
    """Arrow arrays can start inside their buffers (slices) or come in chunks."""
    text = [f"2026-01-{day:02d}T0{day % 10}:30:00.{day}Z" for day in range(1, 29)]
    sliced = pa.array(text, type=pa.large_string()).slice(offset)
    chunked = pa.chunked_array([pa.array(text[offset:10]), pa.array(text[10:])]) if offset < 10 else None
    for column in filter(None, [sliced, chunked]):
        got = parse_timestamps(column)
        expected, _, _ = pandas_only(pa.array(column.to_pylist(), type=pa.large_string()))
        assert got.ok.all()
        assert got.millis.tolist() == expected.tolist()
