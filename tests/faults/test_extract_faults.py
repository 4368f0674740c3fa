"""The extract changes, shrinks or disappears under a run, or the task's temp disk is full.

* Changed between a partial publish and the retry: the retry fails at once
  (``ExtractChangedError`` -> ``AirflowFailException``) naming the file and both fingerprints,
  publishes nothing; ``reprocess=True`` then publishes the new version in full.
* Truncated or deleted while it is read: the attempt fails naming the file, nothing read after
  the change is committed, and once the file is back the retry resumes after the last committed
  batch.
* The temp folder's disk is full: simulated with a tiny ``tmpfs`` mounted as the task's
  ``TMPDIR`` (these tests need root for ``mount``; they skip where it is not allowed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from helpers import (
    Attempt,
    Child,
    after_commits,
    assert_checkpoints_complete,
    assert_exactly_once,
    assert_nothing_published,
    assert_reconciles,
    attempt_recording_temp_dirs,
    attempt_with_crash_points,
    by_source,
    execute_operator,
    run_attempt,
    set_connections,
    timed,
)
from ingest_helpers import DATE, EXPECTED_RECORD, Endpoints, decode_values, read_topic, source_rows

from kafka_ingest.pipeline.resume import ExtractChangedError
from kafka_ingest.read import ExtractReadError
from kafka_ingest.testing.samples import DayManifest, write_day

pytestmark = [pytest.mark.integration, pytest.mark.faults]

ROWS, BATCH = 2000, 200


@pytest.fixture
def manifest(tmp_path: Path) -> DayManifest:
    return write_day(tmp_path, "orders", DATE, rows=ROWS, formats=("csv",), bad_ratio=0.04, seed=61)


def crash() -> None:
    raise RuntimeError("simulated crash of attempt 1")


# --------------------------------------------------------------------------- changed between attempts


def test_an_extract_changed_after_a_partial_publish_fails_the_retry_and_reprocess_publishes_it_in_full(
    endpoints: Endpoints, topic: str, manifest: DayManifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connections(monkeypatch, endpoints.bootstrap, endpoints.registry_url)
    path = Path(manifest.files[0])
    task = {"extract_path": [str(path)], "topic": topic, "checkpoint_topic": endpoints.checkpoint_topic}
    after_commits(3, crash, monkeypatch)
    first = timed(lambda: execute_operator("attempt-1", **task))[0]
    assert isinstance(first, AirflowException), repr(first)
    before = {(r.partition, r.offset) for r in read_topic(endpoints.bootstrap, topic)}
    old_fingerprint = f"sha256:{_sha256(path)}"
    changed = write_day(tmp_path / "v2", "orders", DATE, rows=ROWS, formats=("csv",), bad_ratio=0.04, seed=62)
    shutil.copyfile(changed.files[0], path)

    second = timed(lambda: execute_operator("attempt-2", try_number=2, **task))[0]

    assert isinstance(second, AirflowFailException), repr(second)
    assert isinstance(second.__cause__, ExtractChangedError)
    message = str(second)
    assert str(path) in message
    assert old_fingerprint in message
    assert f"sha256:{_sha256(path)}" in message
    assert "reprocess=True" in message
    after = {(r.partition, r.offset) for r in read_topic(endpoints.bootstrap, topic)}
    assert after == before, "the retry published something"

    third = execute_operator("attempt-3", try_number=3, reprocess=True, **task)

    assert third["published"] == len(changed.published)
    new = [r for r in read_topic(endpoints.bootstrap, topic) if r.header("run_id") == "attempt-3"]
    assert sorted(r.key.decode() for r in new if r.key) == sorted(changed.published)
    rows = source_rows(path)
    for record, value in zip(new, decode_values(endpoints.registry_url, topic, new), strict=True):
        assert value == EXPECTED_RECORD["orders"](rows[record.row - 1])
    dlq = [r for r in read_topic(endpoints.bootstrap, f"{topic}.dlq") if b'"attempt-3"' in r.value]
    assert set(by_source(dlq)) == set(changed.rejected)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- changed while read


@pytest.mark.parametrize("change", ["truncated", "deleted"])
def test_an_extract_truncated_or_deleted_mid_read_fails_naming_it_and_the_retry_resumes_once_it_is_back(
    endpoints: Endpoints,
    topic: str,
    manifest: DayManifest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
) -> None:
    path = Path(manifest.files[0])
    original = path.read_bytes()

    def change_file() -> None:
        if change == "deleted":
            path.unlink()
        else:  # cut in the middle of a line, near row 1000
            with path.open("r+b") as f:
                f.truncate(len(original) // 2 + 7)

    after_commits(2, change_file, monkeypatch)
    attempt = Attempt(endpoints, topic, (str(path),), "attempt-1")
    first = timed(lambda: run_attempt(attempt))[0]
    monkeypatch.undo()

    assert isinstance(first, ExtractReadError), repr(first)
    assert str(path) in str(first)
    committed = read_topic(endpoints.bootstrap, topic)
    assert max(r.row for r in committed) <= 2 * BATCH, "rows read after the change were committed"
    path.write_bytes(original)  # the file is back

    retry = Attempt(endpoints, topic, (str(path),), "attempt-2", try_number=2)
    summary = run_attempt(retry)

    assert summary["skipped"] == 2 * BATCH
    outcome = assert_exactly_once(endpoints, "orders", topic, manifest)
    assert_reconciles(outcome, summary, "attempt-2", manifest)
    assert_checkpoints_complete(endpoints, "orders", topic, manifest)


# --------------------------------------------------------------------------- the temp disk is full


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """``tiny_tmpfs(bytes)`` mounts a tmpfs of that size (or resizes it) and returns its path."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    mounted = False

    def size(limit: int) -> Path:
        nonlocal mounted
        options = f"size={limit}" if not mounted else f"remount,size={limit}"
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True
        )
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted = True
        return mount

    yield size
    if mounted:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> None:
    """Write until the disk is full, as another task's leftovers would."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def test_a_full_temp_folder_fails_the_task_before_anything_is_published_and_the_retry_finishes(
    endpoints: Endpoints, topic: str, manifest: DayManifest, children: Any, tiny_tmpfs: Callable[[int], Path]
) -> None:
    """The product writes nothing there, but Great Expectations makes (and removes) an empty
    folder per validator, and Python needs a probe file to accept a temp folder at all."""
    temp = tiny_tmpfs(64 * 1024)
    fill(temp)
    environment = {"TMPDIR": str(temp)}

    first = Child(
        children,
        attempt_recording_temp_dirs,
        Attempt(endpoints, topic, tuple(manifest.files), "attempt-1"),
        environment,
    )

    assert first.wait() == 1
    kind, error, message = first.result()  # type: ignore[misc]
    assert (kind, error) == ("error", "FileNotFoundError"), message
    assert f"No usable temporary directory found in ['{temp}']" in message
    assert_nothing_published(endpoints, "orders", topic)

    (temp / "filler").unlink()  # room again
    second = Attempt(endpoints, topic, tuple(manifest.files), "attempt-2", try_number=2)
    retry = Child(children, attempt_recording_temp_dirs, second, environment)
    assert retry.wait() == 0, retry.result()
    summary, temp_dirs = retry.result()[1]  # type: ignore[index]
    assert temp_dirs, "the run made no temp folder: the test would prove nothing"
    assert all(Path(d).parent == temp for d in temp_dirs), temp_dirs
    outcome = assert_exactly_once(endpoints, "orders", topic, manifest)
    assert_reconciles(outcome, summary, "attempt-2", manifest)


def test_an_extract_cached_on_a_full_temp_disk_fails_naming_it_and_the_retry_resumes_with_room(
    endpoints: Endpoints, topic: str, tmp_path: Path, children: Any, tiny_tmpfs: Callable[[int], Path]
) -> None:
    """Remote extracts read through fsspec's ``simplecache::`` are copied to the temp folder
    first; the first file fits, the second does not."""
    manifest = write_day(
        tmp_path, "orders", DATE, rows=ROWS, formats=("csv", "jsonl"), bad_ratio=0.04, seed=63
    )
    sizes = [os.path.getsize(f) for f in manifest.files]
    temp = tiny_tmpfs(sizes[0] + 64 * 1024)
    urls = tuple(f"simplecache::file://{f}" for f in manifest.files)
    first = Attempt(endpoints, topic, urls, "attempt-1")

    child = Child(children, attempt_with_crash_points, first, {}, {"TMPDIR": str(temp)})

    assert child.wait() == 1
    kind, error, message = child.result()  # type: ignore[misc]
    assert (kind, error) == ("error", "ExtractReadError"), message
    assert "part-0002.jsonl" in message
    assert "No space left on device" in message
    published = read_topic(endpoints.bootstrap, topic)
    assert {r.file_name for r in published} <= {"part-0001.csv"}, "a row of the file that did not fit"

    tiny_tmpfs(2 * sum(sizes) + 256 * 1024)  # room again (attempt 1's copies are still there)
    second = Attempt(endpoints, topic, urls, "attempt-2", try_number=2)
    retry = Child(children, attempt_with_crash_points, second, {}, {"TMPDIR": str(temp)})
    assert retry.wait() == 0, retry.result()
    summary = retry.result()[1]  # type: ignore[index]
    assert [f["status"] for f in summary["per_file"]] == ["already published", "published"]
    outcome = assert_exactly_once(endpoints, "orders", topic, manifest)
    assert_reconciles(outcome, summary, "attempt-2", manifest)
