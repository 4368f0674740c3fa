"""Which files an operator publishes: a file, a day folder, a glob, a list, or an fsspec URL."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from kafka_ingest.read import file_name, resolve_extract_files

DAY_FILES = ("part-0002.csv", "part-0001.jsonl.gz", "part-0003.parquet", "part-0010.csv.gz")
NOT_PARTS = ("_SUCCESS", ".part-0004.csv.crc", "_part-0005.csv", "README.txt")


@pytest.fixture
def day(tmp_path: Path) -> Path:
    folder = tmp_path / "orders" / "dt=2026-01-15"
    folder.mkdir(parents=True)
    for name in DAY_FILES + NOT_PARTS:
        (folder / name).write_bytes(b"x")
    return folder


@pytest.fixture
def memory_day() -> Iterator[str]:
    fs = fsspec.filesystem("memory")
    root = f"/extracts-{uuid.uuid4().hex[:8]}"
    for name in DAY_FILES + NOT_PARTS:
        fs.pipe(f"{root}/orders/dt=2026-01-15/{name}", b"x")
    yield f"memory://{root.lstrip('/')}/orders/dt=2026-01-15"
    fs.rm(root, recursive=True)


def names(files: list[str]) -> list[str]:
    return [file_name(f) for f in files]


def test_a_file_resolves_to_itself(day: Path) -> None:
    assert resolve_extract_files(str(day / "part-0002.csv")) == [str(day / "part-0002.csv")]


def test_a_folder_resolves_to_its_part_files_sorted_by_name(day: Path) -> None:
    assert names(resolve_extract_files(str(day))) == [
        "part-0001.jsonl.gz",
        "part-0002.csv",
        "part-0003.parquet",
        "part-0010.csv.gz",
    ]


def test_a_folders_files_keep_the_folders_path(day: Path) -> None:
    assert resolve_extract_files(str(day))[0] == str(day / "part-0001.jsonl.gz")


def test_a_glob_resolves_to_its_matches_sorted_by_name(day: Path) -> None:
    assert names(resolve_extract_files(str(day / "part-*.csv*"))) == ["part-0002.csv", "part-0010.csv.gz"]


def test_a_glob_never_returns_folders(day: Path) -> None:
    (day / "part-0099.csv").mkdir()
    assert "part-0099.csv" not in names(resolve_extract_files(str(day / "part-*")))


def test_a_glob_without_matches_resolves_to_nothing(day: Path) -> None:
    assert resolve_extract_files(str(day / "part-*.avro")) == []


def test_a_list_is_expanded_and_sorted_by_file_name(day: Path, tmp_path: Path) -> None:
    other = tmp_path / "late" / "part-0000.csv"
    other.parent.mkdir()
    other.write_bytes(b"x")
    resolved = resolve_extract_files(
        [str(day / "part-0003.parquet"), str(other), str(day / "part-0001.jsonl.gz")]
    )
    assert resolved == [str(other), str(day / "part-0001.jsonl.gz"), str(day / "part-0003.parquet")]


def test_a_list_may_mix_folders_globs_and_files(day: Path, tmp_path: Path) -> None:
    other_day = tmp_path / "orders" / "dt=2026-01-16"
    other_day.mkdir()
    (other_day / "part-0000.csv").write_bytes(b"x")
    resolved = resolve_extract_files(
        [str(day / "part-*.parquet"), str(other_day), str(day / "part-0002.csv")]
    )
    assert resolved == [
        str(other_day / "part-0000.csv"),
        str(day / "part-0002.csv"),
        str(day / "part-0003.parquet"),
    ]


def test_nothing_resolves_to_nothing() -> None:
    assert resolve_extract_files(None) == []
    assert resolve_extract_files([]) == []


def test_a_path_object_folder_resolves_to_path_objects(day: Path) -> None:
    resolved = resolve_extract_files(day)
    assert resolved == [
        day / "part-0001.jsonl.gz",
        day / "part-0002.csv",
        day / "part-0003.parquet",
        day / "part-0010.csv.gz",
    ]


def test_a_memory_url_folder_resolves_to_urls_of_its_part_files(memory_day: str) -> None:
    assert resolve_extract_files(memory_day) == [
        f"{memory_day}/part-0001.jsonl.gz",
        f"{memory_day}/part-0002.csv",
        f"{memory_day}/part-0003.parquet",
        f"{memory_day}/part-0010.csv.gz",
    ]


def test_a_memory_url_file_resolves_to_itself(memory_day: str) -> None:
    assert resolve_extract_files(f"{memory_day}/part-0002.csv") == [f"{memory_day}/part-0002.csv"]


def test_a_memory_url_glob_resolves_to_urls(memory_day: str) -> None:
    resolved = resolve_extract_files(f"{memory_day}/part-*.csv")
    assert names(resolved) == ["part-0002.csv"]
    assert resolved[0].startswith("memory://")
    with fsspec.open(resolved[0], "rb") as stream:
        assert stream.read() == b"x"


def test_a_missing_file_is_an_error_naming_it(day: Path) -> None:
    missing = str(day / "part-0042.csv")
    with pytest.raises(FileNotFoundError, match=r"part-0042\.csv"):
        resolve_extract_files(missing)


def test_a_missing_memory_url_is_an_error_naming_it(memory_day: str) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(f"{memory_day}/part-0042.csv")):
        resolve_extract_files(f"{memory_day}/part-0042.csv")


def test_a_missing_path_object_is_an_error_naming_it(day: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"part-0042\.csv"):
        resolve_extract_files(day / "part-0042.csv")
