"""A dry run of IngestionJob: real readers, validation and Avro encoding; no producer, no broker.

The sample days come from ``testing.samples.write_day``, whose manifest says from the contract's
rules (not from the validator's code) which rows must be published and which must reach the DLQ.
"""

from __future__ import annotations

import gc
import json
import random
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

from kafka_ingest.batches import RunInfo
from kafka_ingest.encode.avro import AvroEncoder
from kafka_ingest.pipeline.job import IngestionJob
from kafka_ingest.pipeline.settings import JobSettings
from kafka_ingest.pipeline.summary import FileSummary, summarize
from kafka_ingest.registry import load_schema
from kafka_ingest.runtime.allocation import GC_YOUNG_THRESHOLD
from kafka_ingest.runtime.metrics import NullSink, TopicMetrics
from kafka_ingest.specs import TopicSpec
from kafka_ingest.testing.samples import DayManifest, order_row, write_day, write_rows
from kafka_ingest.topics.orders import ORDERS
from kafka_ingest.topics.payments import PAYMENTS
from kafka_ingest.validate.validator import BatchRuleError

DATE = "2026-01-15"
FORMATS = ("csv", "jsonl.gz", "parquet")
ROWS_PER_FILE = 60
RUN = RunInfo(dag_id="ingest_orders", run_id="manual__dry", task_id="publish", try_number=1)


def job(spec: TopicSpec, *, batch_size: int = 25) -> IngestionJob:
    return IngestionJob(
        spec,
        JobSettings(extract_date=DATE, validate_only=True, batch_size=batch_size),
        encoder=AvroEncoder(load_schema(spec.schema_path), 1),
        producer_factory=None,
        checkpoints=None,
        metrics=TopicMetrics(spec.topic, NullSink()),
        run=RUN,
    )


@dataclass(frozen=True)
class DryRun:
    spec: TopicSpec
    manifest: DayManifest
    summaries: list[FileSummary]


@pytest.fixture(scope="module", params=[ORDERS, PAYMENTS], ids=lambda spec: spec.dataset)
def dry_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> DryRun:
    """One sample day per dataset (a part file per format), run once and shared by the tests."""
    spec: TopicSpec = request.param
    root = tmp_path_factory.mktemp(spec.dataset)
    manifest = write_day(
        root,
        spec.dataset,
        DATE,
        rows=ROWS_PER_FILE * len(FORMATS),
        formats=FORMATS,
        bad_ratio=0.15,
        duplicates=4,
    )
    return DryRun(spec, manifest, job(spec).run(manifest.files))


def test_every_file_of_the_day_is_summarized_in_name_order(dry_run: DryRun) -> None:
    assert [Path(s.file).name for s in dry_run.summaries] == [
        "part-0001.csv",
        "part-0002.jsonl.gz",
        "part-0003.parquet",
    ]


def test_every_file_reconciles(dry_run: DryRun) -> None:
    for summary in dry_run.summaries:
        assert summary.rows_read == ROWS_PER_FILE
        assert summary.rows_read == summary.published + summary.dlq + summary.skipped


def test_each_files_dlq_count_matches_the_manifest(dry_run: DryRun) -> None:
    expected = Counter(name for name, _row in dry_run.manifest.rejected)
    assert {Path(s.file).name: s.dlq for s in dry_run.summaries} == {
        Path(f).name: expected[Path(f).name] for f in dry_run.manifest.files
    }


def test_the_days_published_and_dlq_totals_match_the_manifest(dry_run: DryRun) -> None:
    assert sum(s.published for s in dry_run.summaries) == len(dry_run.manifest.published)
    assert sum(s.dlq for s in dry_run.summaries) == len(dry_run.manifest.rejected)


def test_the_sample_exercises_duplicates_and_rule_failures(dry_run: DryRun) -> None:
    reasons = set(dry_run.manifest.rejected.values())
    assert "key_unique_in_day" in reasons
    assert len(reasons) >= 4


def test_sample_rows_are_rejected_at_validation(dry_run: DryRun) -> None:
    for summary in dry_run.summaries:
        assert summary.dlq_by_stage == ({"validate": summary.dlq} if summary.dlq else {})


def test_a_dry_run_skips_nothing_and_marks_its_files(dry_run: DryRun) -> None:
    assert {(s.status, s.skipped) for s in dry_run.summaries} == {("validated only", 0)}


def test_a_dry_run_names_each_files_checkpoint_and_fingerprint(dry_run: DryRun) -> None:
    first = dry_run.summaries[0]
    assert first.checkpoint == f"{dry_run.spec.topic}/{dry_run.spec.dataset}/{DATE}/part-0001.csv"
    assert first.fingerprint.startswith("sha256:")


def test_summarize_totals_the_files_for_xcom(dry_run: DryRun) -> None:
    summary = summarize(dry_run.summaries, topic=dry_run.spec.topic, schema_id=1, validate_only=True)
    assert {k: v for k, v in summary.items() if k != "per_file"} == {
        "topic": dry_run.spec.topic,
        "schema_id": 1,
        "validate_only": True,
        "files": 3,
        "rows_read": 3 * ROWS_PER_FILE,
        "published": len(dry_run.manifest.published),
        "dlq": len(dry_run.manifest.rejected),
        "skipped": 0,
        "batches": sum(s.batches for s in dry_run.summaries),
    }


def test_summarize_lists_each_file_and_is_json_able(dry_run: DryRun) -> None:
    summary = summarize(dry_run.summaries, topic=dry_run.spec.topic, schema_id=1, validate_only=True)
    assert summary["per_file"] == [asdict(s) for s in dry_run.summaries]
    assert json.loads(json.dumps(summary)) == summary


# -- files the sample generator does not make ---------------------------------------------------


def test_rows_that_cannot_be_read_are_counted_as_dlq_at_the_read_stage(tmp_path: Path) -> None:
    extract = tmp_path / "part-0001.csv"
    write_rows(extract, [order_row(i, random.Random(i)) for i in range(1, 4)])
    lines = extract.read_text().splitlines()
    extract.write_text("\n".join([*lines[:2], "ORD-X,too,few", *lines[2:]]) + "\n")
    (summary,) = job(ORDERS).run([str(extract)])
    assert (summary.rows_read, summary.published, summary.dlq) == (4, 3, 1)
    assert summary.dlq_by_stage == {"read": 1}


def test_a_file_with_a_header_only_reconciles_at_zero(tmp_path: Path) -> None:
    extract = tmp_path / "part-0001.csv"
    extract.write_text(",".join(ORDERS.columns) + "\n")
    (summary,) = job(ORDERS).run([str(extract)])
    assert (summary.rows_read, summary.published, summary.dlq, summary.batches) == (0, 0, 0, 0)


# -- the stages beside the publishing thread --------------------------------------------------


def orders_extract(tmp_path: Path, count: int) -> tuple[Path, list[dict[str, Any]]]:
    """One CSV part file of ``count`` valid orders (row i drawn from seed i), and its rows."""
    extract = tmp_path / "part-0001.csv"
    rows = [order_row(i, random.Random(i)) for i in range(1, count + 1)]
    write_rows(extract, rows)
    return extract, rows


def handed_to_commit(ingest: IngestionJob, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every prepared batch the job hands to ``_commit``, in order (then committed as usual)."""
    handed: list[Any] = []
    commit = ingest._commit

    def committing(prepared: Any, *args: Any) -> Any:
        handed.append(prepared)
        return commit(prepared, *args)

    monkeypatch.setattr(ingest, "_commit", committing)
    return handed


def last_rows(handed: list[Any]) -> list[int]:
    """The last source row of each batch handed to ``_commit``."""
    return [max(r.row for r in prepared.records) for prepared in handed]


def test_batches_are_parsed_and_judged_on_their_own_threads_and_published_in_file_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extract, _ = orders_extract(tmp_path, 60)
    ingest = job(ORDERS, batch_size=10)
    seen: list[tuple[str, str, int]] = []
    parse, judge, commit = ingest.stages.parse, ingest.stages.judge, ingest._commit

    def parsing(batch: Any, resume_after: int) -> Any:
        seen.append(("parse", threading.current_thread().name, batch.last_row))
        return parse(batch, resume_after)

    def judging(parsed: Any, *args: Any) -> Any:
        seen.append(("judge", threading.current_thread().name, int(parsed.rows[-1])))
        return judge(parsed, *args)

    def committing(prepared: Any, *args: Any) -> Any:
        seen.append(("commit", threading.current_thread().name, max(r.row for r in prepared.records)))
        return commit(prepared, *args)

    monkeypatch.setattr(ingest.stages, "parse", parsing)
    monkeypatch.setattr(ingest.stages, "judge", judging)
    monkeypatch.setattr(ingest, "_commit", committing)
    (summary,) = ingest.run([str(extract)])
    assert summary.published == 60
    for stage, thread in (("parse", "parse-ahead"), ("judge", "judge-ahead"), ("commit", "MainThread")):
        assert {name for s, name, _ in seen if s == stage} == {thread}
        assert [row for s, _, row in seen if s == stage] == [10, 20, 30, 40, 50, 60]


@pytest.mark.parametrize(
    ("stage", "failing", "published"),
    [("parse", 20, [10]), ("parse", 30, [10, 20]), ("judge", 30, [10, 20])],
    ids=["parse-second-of-a-group", "parse-first-of-a-group", "judge"],
)
def test_a_failing_batch_surfaces_after_the_batches_before_it_and_stops_every_stage_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str, failing: int, published: list[int]
) -> None:
    extract, _ = orders_extract(tmp_path, 60)
    ingest = job(ORDERS, batch_size=10)
    original = getattr(ingest.stages, stage)

    def failing_stage(item: Any, *args: Any) -> Any:
        last = item.last_row if stage == "parse" else int(item.rows[-1])
        if last == failing:
            raise RuntimeError(f"batch {failing} cannot be handled")
        return original(item, *args)

    monkeypatch.setattr(ingest.stages, stage, failing_stage)
    handed = handed_to_commit(ingest, monkeypatch)
    with pytest.raises(RuntimeError, match=f"batch {failing} cannot"):
        ingest.run([str(extract)])
    assert last_rows(handed) == published
    stages = {"parse-ahead", "judge-ahead", "csv-blocks"}
    assert not [t.name for t in threading.enumerate() if t.name in stages]


def test_a_batch_rule_failing_in_the_second_batch_of_a_gx_run_lets_the_first_be_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extract, rows = orders_extract(tmp_path, 60)
    ingest = job(ORDERS, batch_size=10)
    validator = ingest.stages.validator
    alone, together = validator.validate_rows_that_can_fail, validator.validate_together
    poisoned = rows[39]["order_number"]  # row 40: the second batch of the second GX run

    def judging_alone(frame: Any) -> Any:
        if poisoned in set(frame["order_number"]):
            raise BatchRuleError("orders", ["no_poison"])
        return alone(frame)

    def judging_together(frames: list[Any]) -> Any:
        if any(poisoned in set(frame["order_number"]) for frame in frames):
            raise BatchRuleError("orders", ["no_poison"])
        return together(frames)

    monkeypatch.setattr(validator, "validate_rows_that_can_fail", judging_alone)
    monkeypatch.setattr(validator, "validate_together", judging_together)
    handed = handed_to_commit(ingest, monkeypatch)
    with pytest.raises(BatchRuleError, match="no_poison"):
        ingest.run([str(extract)])
    assert last_rows(handed) == [10, 20, 30]


def test_a_row_the_encoder_refuses_goes_to_the_dlq_and_the_others_keep_their_key_row_and_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extract, rows = orders_extract(tmp_path, 10)
    ingest = job(ORDERS, batch_size=10)
    refused = rows[3]["order_number"]  # row 4
    encode = ingest.stages.encoder.encode_table

    def refusing(table: Any) -> Any:
        values, errors = encode(table)
        position = table.column("order_number").to_pylist().index(refused)
        values[position] = None
        return values, [*errors, (position, "AvroEncodeError", "scripted refusal")]

    monkeypatch.setattr(ingest.stages.encoder, "encode_table", refusing)
    handed_over = handed_to_commit(ingest, monkeypatch)
    (summary,) = ingest.run([str(extract)])
    assert (summary.published, summary.dlq, summary.dlq_by_stage) == (9, 1, {"serialize": 1})
    (prepared,) = handed_over
    assert [(r.row, r.stage, r.error_type) for r in prepared.rejected] == [
        (4, "serialize", "AvroEncodeError")
    ]
    records = list(prepared.records)
    assert [r.row for r in records] == [1, 2, 3, 5, 6, 7, 8, 9, 10]
    for record in records:
        headers = dict(record.headers)
        assert record.key == rows[record.row - 1]["order_number"].encode()
        assert headers["source.row"] == str(record.row).encode()
        assert headers["correlation_id"].endswith(f"-{record.row}".encode())
        assert headers["event_type"] == b"OrderCreated"


# -- the day's duplicate rule across files -----------------------------------------------------


def test_batches_are_committed_with_the_process_tuned_for_ingestion_and_it_is_restored_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extract, _ = orders_extract(tmp_path, 30)
    ingest = job(ORDERS, batch_size=10)
    young_thresholds: list[int] = []
    commit = ingest._commit

    def committing(prepared: Any, *args: Any) -> Any:
        young_thresholds.append(gc.get_threshold()[0])
        return commit(prepared, *args)

    monkeypatch.setattr(ingest, "_commit", committing)
    before = gc.get_threshold()
    ingest.run([str(extract)])
    assert young_thresholds == [max(before[0], GC_YOUNG_THRESHOLD)] * 3
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@pytest.fixture
def day_with_a_cross_file_duplicate(tmp_path: Path) -> list[str]:
    """ORD-00000002 first appears in part-0001.csv and again in part-0002.jsonl."""
    rng = random.Random(3)
    rows = [order_row(i, rng) for i in range(1, 6)]
    repeat = {**order_row(9, rng), "order_number": rows[1]["order_number"]}
    first, second = tmp_path / "part-0001.csv", tmp_path / "part-0002.jsonl"
    write_rows(first, rows[:3])
    write_rows(second, [rows[3], repeat, rows[4]])
    return [str(first), str(second)]


def test_a_key_repeated_in_a_later_file_goes_to_the_dlq(day_with_a_cross_file_duplicate: list[str]) -> None:
    first, second = job(ORDERS).run(day_with_a_cross_file_duplicate)
    assert (first.published, first.dlq) == (3, 0)
    assert (second.published, second.dlq, second.dlq_by_stage) == (2, 1, {"validate": 1})


def test_the_first_file_by_name_wins_whatever_order_files_are_given_in(
    day_with_a_cross_file_duplicate: list[str],
) -> None:
    summaries = job(ORDERS).run(list(reversed(day_with_a_cross_file_duplicate)))
    assert [(Path(s.file).name, s.dlq) for s in summaries] == [("part-0001.csv", 0), ("part-0002.jsonl", 1)]


def test_a_run_of_one_file_sees_the_earlier_files_of_the_day(
    day_with_a_cross_file_duplicate: list[str],
) -> None:
    (second,) = job(ORDERS).run(
        day_with_a_cross_file_duplicate[1:], day_files=day_with_a_cross_file_duplicate
    )
    assert (second.published, second.dlq) == (2, 1)


def test_a_later_file_of_the_day_does_not_reject_an_earlier_files_first_occurrence(
    day_with_a_cross_file_duplicate: list[str],
) -> None:
    (first,) = job(ORDERS).run(day_with_a_cross_file_duplicate[:1], day_files=day_with_a_cross_file_duplicate)
    assert (first.published, first.dlq) == (3, 0)
