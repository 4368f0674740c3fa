"""The per-run report (kafka_ingest/run_report.py): what a person opening it sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kafka_ingest.run_report import day_report, render_html, report_path, report_url, write_report

SUMMARIES: list[dict[str, Any]] = [
    {
        "files": 1,
        "rows_read": 100,
        "published": 90,
        "dlq": 10,
        "skipped": 0,
        "dry_run": False,
        "per_file": [
            {
                "file": "/x/orders/dt=2026-01-05/part-1.csv",
                "status": "published",
                "rows_read": 100,
                "published": 90,
                "dlq": 10,
                "skipped": 0,
                "seconds": 2.0,
                "dlq_by_stage": {"validate": 8, "read": 2},
                "dlq_by_rule": {"status_allowed": 6, "total_matches_items": 2},
            }
        ],
    },
    {
        "files": 1,
        "rows_read": 50,
        "published": 0,
        "dlq": 0,
        "skipped": 50,
        "dry_run": False,
        "per_file": [
            {
                "file": "/x/orders/dt=2026-01-05/part-2.jsonl",
                "status": "already published",
                "rows_read": 50,
                "published": 0,
                "dlq": 0,
                "skipped": 50,
                "dlq_by_stage": {},
            }
        ],
    },
]


def test_day_report_adds_files_up_and_dlq_by_stage_and_rule() -> None:
    report = day_report(SUMMARIES, "t")

    assert (report["files"], report["rows_read"], report["published"], report["dlq"], report["skipped"]) == (
        2,
        150,
        90,
        10,
        50,
    )
    assert report["dlq_by_stage"] == {"validate": 8, "read": 2}
    assert report["dlq_by_rule"] == {"status_allowed": 6, "total_matches_items": 2}
    assert [f["seconds"] for f in report["per_file"]] == [2.0, 0.0]


def test_report_files_hold_per_file_counts_rows_per_second_and_bar_charts(tmp_path: Path) -> None:
    report = day_report(SUMMARIES, "shopping.order.created")

    path, markdown = write_report(
        report, tmp_path, "ingest_orders", "scheduled__2026-01-05T00:00:00+00:00", "2026-01-05"
    )

    assert path == report_path(tmp_path, "ingest_orders", "scheduled__2026-01-05T00:00:00+00:00")
    assert path.read_text().startswith("<!doctype html>")
    assert path.with_suffix(".md").read_text() == markdown
    assert "| part-1.csv | published | 100 | 90 | 10 | 0 | 2.0 | 50 |" in markdown
    assert "| part-2.jsonl | already published | 50 | 0 | 0 | 50 | 0.0 | 0 |" in markdown
    bars = {line.split()[0]: line for line in markdown.splitlines() if "█" in line}
    assert bars["status_allowed"].count("█") == 30
    assert bars["total_matches_items"].count("█") == 10
    assert "part-1.csv" in path.read_text()
    assert "class=bar" in path.read_text()


def test_html_escapes_names() -> None:
    report = day_report(SUMMARIES, "<script>")

    assert "<script>" not in render_html(report, dag_id="d", run_id="r", ds="2026-01-05")


def test_dry_run_is_said_in_the_title(tmp_path: Path) -> None:
    report = {**day_report(SUMMARIES, "t"), "dry_run": True}

    _, markdown = write_report(report, tmp_path, "d", "r", "2026-01-05")

    assert "dry run: nothing was published" in markdown.splitlines()[0]


def test_link_is_a_file_url_or_under_the_configured_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAFKA_INGEST_REPORT_BASE_URL", raising=False)
    assert report_url(tmp_path, "d", "r:1").startswith(
        f"file://{tmp_path}/kafka_ingest_reports/dag_id=d/run_id=r_1/"
    )

    monkeypatch.setenv("KAFKA_INGEST_REPORT_BASE_URL", "https://logs.example/airflow/")
    assert (
        report_url(tmp_path, "d", "r")
        == "https://logs.example/airflow/kafka_ingest_reports/dag_id=d/run_id=r/report.html"
    )
