"""The backfill benchmark's pure parts: its data set, the process sampler's parsing, the timing and
"where the time goes" arithmetic, the ratio lines and the report's section splice."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from bench import backfill, datagen, report, run  # noqa: E402


def test_part_bounds_are_contiguous_and_cover_every_row() -> None:
    assert datagen.part_bounds(200_000, 3) == [(0, 66_667), (66_667, 133_334), (133_334, 200_000)]
    assert datagen.part_bounds(9, 3) == [(0, 3), (3, 6), (6, 9)]
    assert datagen.part_bounds(2, 3) == [(0, 1), (1, 2), (2, 2)]
    with pytest.raises(ValueError, match="parts=0"):
        datagen.part_bounds(10, 0)


def test_day_dates_are_consecutive_across_a_month_end() -> None:
    assert datagen.day_dates("2026-01-30", 3) == ["2026-01-30", "2026-01-31", "2026-02-01"]
    assert len(datagen.day_dates(datagen.DATE, 10)) == 10


def test_ensure_days_writes_parts_with_distinct_order_numbers_and_reuses_them(tmp_path: Path) -> None:
    manifest = datagen.ensure_days(tmp_path, 2, 3_000, 3, dup_ratio=0.01)
    assert manifest.dates == ["2026-01-01", "2026-01-02"]
    assert Path(manifest.extracts_root).is_absolute()
    assert manifest.rows == 6_000
    numbers: list[str] = []
    for day in manifest.dates:
        files = manifest.files[day]
        assert [Path(f).name for f in files] == ["part-0001.csv", "part-0002.csv", "part-0003.csv"]
        assert (Path(files[0]).parent / "_SUCCESS").exists()
        assert Path(files[0]).parent == Path(manifest.extracts_root) / "orders" / f"dt={day}"
        day_numbers = [
            n
            for f in files
            for n in pacsv.read_csv(
                f, convert_options=pacsv.ConvertOptions(column_types={"order_number": pa.string()})
            )
            .column("order_number")
            .to_pylist()
        ]
        assert len(day_numbers) == 3_000
        numbers += day_numbers
        # every row is either published or dead-lettered; some duplicates exist within the day
        assert manifest.published_by_day[day] + manifest.dlq_by_day[day] == 3_000
        assert len(set(day_numbers)) < len(day_numbers)
    # the days do not share order numbers (a duplicate only ever repeats its own day's)
    first, second = (set(numbers[:3_000]), set(numbers[3_000:]))
    assert not {n.upper() for n in first} & {n.upper() for n in second}
    assert manifest.published == sum(manifest.published_by_day.values())
    stamp = Path(manifest.files["2026-01-01"][0]).stat().st_mtime_ns
    again = datagen.ensure_days(tmp_path, 2, 3_000, 3, dup_ratio=0.01)
    assert again == manifest
    assert Path(manifest.files["2026-01-01"][0]).stat().st_mtime_ns == stamp


def test_task_instance_id_from_the_task_runner_title() -> None:
    ti = "0195f3a2-7c1e-7d40-9a55-3c2b1a0f9e81"
    assert backfill.task_instance_id(f"airflow worker -- {ti}".encode() + b"\x00\x00  ") == ti
    assert backfill.task_instance_id(b"airflow worker -- LocalExecutor <idle>\x00") is None
    assert backfill.task_instance_id(b"/usr/bin/python3\x00-m\x00bench.variants\x00") is None


def test_vm_hwm_kib() -> None:
    status = "Name:\tpython\nVmPeak:\t 900000 kB\nVmHWM:\t  512000 kB\nVmRSS:\t 400000 kB\n"
    assert backfill.vm_hwm_kib(status) == 512_000
    assert backfill.vm_hwm_kib("Name:\tkthreadd\n") is None


def test_stat_cpu_seconds_counts_own_and_reaped_children() -> None:
    stat = "4846 (airflow sched) S 1 4846 4846 0 -1 4194560 1 2 3 4 150 50 300 100 20 0 9 0"
    assert backfill.stat_cpu_seconds(stat, 100) == (1, 6.0)


def test_backfill_seconds_run_to_the_last_end() -> None:
    started = backfill.parse_time("2026-12-07T03:00:00Z")
    assert started is not None
    runs = [{"end_date": "2026-12-07T03:01:00+00:00"}, {"end_date": "2026-12-07T03:02:30.5Z"}]
    assert backfill.backfill_seconds(started, runs) == pytest.approx(150.5)
    with pytest.raises(ValueError, match="has not ended"):
        backfill.backfill_seconds(started, [*runs, {"end_date": None}])


def test_where_time_goes_per_task() -> None:
    def ti(task: str, scheduled: str, queued: str, start: str, duration: float) -> dict[str, object]:
        day = "2026-12-07T03:00:"
        return {
            "task_id": task,
            "scheduled_when": day + scheduled + "Z",
            "queued_when": day + queued + "Z",
            "start_date": day + start + "Z",
            "duration": duration,
        }

    found = backfill.where_time_goes(
        [
            ti("publish", "00", "01", "05", 10.0),
            ti("publish", "00", "03", "04", 20.0),
            ti("report", "10", "10", "12", 2),
        ]
    )
    assert found["publish"] == {
        "count": 2,
        "median_run_s": 15.0,
        "total_run_s": 30.0,
        "median_scheduled_to_queued_s": 2.0,
        "median_queued_to_start_s": 2.5,
    }
    assert found["report"]["count"] == 1


def _slot(variant: str, seconds: float | None) -> dict[str, object]:
    return {"variant": variant, "seconds": seconds}


def test_ratio_lines_name_both_executors() -> None:
    results = [_slot("pipeline-days", 20.0), _slot("backfill-local", 50.0), _slot("backfill-celery", None)]
    assert run.backfill_ratio_lines(results) == [
        "ratio backfill-local/pipeline: 2.50",
        "ratio backfill-celery/pipeline: n/a",
    ]


def test_report_section_carries_the_ratio_lines_and_splices_in_place() -> None:
    machine = {
        "date": "2026-12-07 03:00 UTC",
        "commit": "abc",
        "load_before": (1, 1, 1),
        "load_after": (2, 2, 2),
    }
    days = [
        {"variant": "pipeline-days", "seconds": 20.0, "rows_per_s": 100_000, "rss_mb": 700, "reps": 1,
         "void": "", "runs": [{"seconds": 20.0, "load1": 1.0}]},
        {"variant": "backfill-local", "seconds": 26.0, "rows_per_s": 76_923, "rss_mb": 650, "reps": 1,
         "void": "", "runs": [{"seconds": 26.0, "load1": 1.5, "publish_rss_mb_max": 650.0,
                               "publish_rss_mb_median": 600.0, "publish_tasks": 30,
                               "publish_tasks_sampled": 30}]},
    ]  # fmt: skip
    section = "\n".join(report.backfill_section(machine, {"days": 10}, days))
    assert "ratio backfill-local/pipeline: 1.30" in section.splitlines()
    assert "ratio backfill-celery/pipeline: n/a" in section.splitlines()
    assert "650 max / 600 median (30 of 30 tasks)" in section
    doc = f"# Benchmarks\n\nmain table\n\n{report.BACKFILL_BEGIN}\nold\n{report.BACKFILL_END}\n\ntail\n"
    spliced = report.splice(doc, section)
    assert "old" not in spliced
    assert "main table" in spliced
    assert spliced.endswith("\n\ntail\n")
    assert spliced.count(report.BACKFILL_BEGIN) == 1
    appended = report.splice("# Benchmarks\n", section)
    assert appended.startswith("# Benchmarks\n\n" + report.BACKFILL_BEGIN)
