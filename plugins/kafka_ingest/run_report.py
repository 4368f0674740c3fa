"""The per-run report: a Markdown and an HTML page a person opens instead of reading logs.

The DAG's ``report`` task adds the mapped ``publish`` summaries up (:func:`day_report`) and writes
them here, once per run, under Airflow's logs folder:
``<base_log_folder>/kafka_ingest_reports/dag_id=<dag>/run_id=<run>/report.{md,html}``. The task links
the HTML page (an operator extra link, ``operators/report.py``) and logs the Markdown, so the same
content is in the task log. Per file: rows read, published, DLQ, skipped, seconds and rows/s; the
DLQ by stage and by rule, as bar charts. Only counts and names go in: never a row value.

``KAFKA_INGEST_REPORT_BASE_URL`` turns the link into ``<base>/<path under the logs folder>`` when
the logs folder is served over HTTP; otherwise it is a ``file://`` URL of the artifact.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

SUMMARY_FIELDS = ("files", "rows_read", "published", "dlq", "skipped")
REPORTS_FOLDER = "kafka_ingest_reports"
BASE_URL_ENV = "KAFKA_INGEST_REPORT_BASE_URL"
_BAR_WIDTH = 30


def day_report(summaries: list[dict[str, Any]], topic: str) -> dict[str, Any]:
    """The day's totals over the mapped ``publish`` summaries, with one short entry per file."""
    totals = {name: sum(int(s.get(name, 0)) for s in summaries) for name in SUMMARY_FIELDS}
    per_file = [
        {
            "file": f["file"],
            "status": f["status"],
            **{name: f[name] for name in SUMMARY_FIELDS[1:]},
            "seconds": round(float(f.get("seconds", 0.0)), 3),
            "dlq_by_stage": dict(f.get("dlq_by_stage", {})),
            "dlq_by_rule": dict(f.get("dlq_by_rule", {})),
        }
        for s in summaries
        for f in s.get("per_file", [])
    ]
    return {
        "topic": topic,
        "dry_run": any(bool(s.get("dry_run")) for s in summaries),
        **totals,
        "dlq_by_stage": _added(f["dlq_by_stage"] for f in per_file),
        "dlq_by_rule": _added(f["dlq_by_rule"] for f in per_file),
        "per_file": per_file,
    }


def _added(counts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for mapping in counts:
        for name, count in mapping.items():
            total[name] = total.get(name, 0) + int(count)
    return dict(sorted(total.items(), key=lambda item: (-item[1], item[0])))


def report_path(logs_folder: Path, dag_id: str, run_id: str, suffix: str = "html") -> Path:
    """Where a run's report lives (run ids may hold ``:`` and ``+``; anything odd becomes ``_``)."""
    return (
        logs_folder
        / REPORTS_FOLDER
        / f"dag_id={_safe(dag_id)}"
        / f"run_id={_safe(run_id)}"
        / f"report.{suffix}"
    )


def report_url(logs_folder: Path, dag_id: str, run_id: str) -> str:
    path = report_path(logs_folder, dag_id, run_id)
    base = os.environ.get(BASE_URL_ENV, "").rstrip("/")
    if base:
        return f"{base}/{path.relative_to(logs_folder).as_posix()}"
    return "file://" + quote(str(path.absolute()), safe="/=+-._")


def logs_folder() -> Path:
    """Airflow's ``[logging] base_log_folder`` (where task logs go), read as Airflow reads it."""
    try:
        from airflow.configuration import conf

        return Path(conf.get("logging", "base_log_folder"))
    except Exception:
        return Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "logs"


def write_report(
    report: Mapping[str, Any], folder: Path, dag_id: str, run_id: str, ds: str
) -> tuple[Path, str]:
    """Writes ``report.md`` and ``report.html``; returns the HTML path and the Markdown text."""
    markdown = render_markdown(report, dag_id=dag_id, run_id=run_id, ds=ds)
    html_path = report_path(folder, dag_id, run_id)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.with_suffix(".md").write_text(markdown, encoding="utf-8")
    html_path.write_text(render_html(report, dag_id=dag_id, run_id=run_id, ds=ds), encoding="utf-8")
    return html_path, markdown


def rows_per_second(rows: int, seconds: float) -> float:
    return rows / seconds if seconds > 0 else 0.0


def render_markdown(report: Mapping[str, Any], *, dag_id: str, run_id: str, ds: str) -> str:
    seconds = sum(float(f.get("seconds", 0.0)) for f in report["per_file"])
    lines = [
        f"# {report['topic']} — {ds}" + (" (dry run: nothing was published)" if report["dry_run"] else ""),
        "",
        f"DAG `{dag_id}`, run `{run_id}`.",
        "",
        "| files | rows read | published | DLQ | skipped | DLQ share | rows/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {report['files']} | {report['rows_read']} | {report['published']} | {report['dlq']} | "
        f"{report['skipped']} | {_share(report['dlq'], report['rows_read'])} | "
        f"{rows_per_second(int(report['rows_read']) - int(report['skipped']), seconds):.0f} |",
        "",
        "## Files",
        "",
        "| file | status | rows read | published | DLQ | skipped | seconds | rows/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for f in report["per_file"]:
        rate = _file_rate(f)
        lines.append(
            f"| {PurePosixPath(str(f['file'])).name} | {f['status']} | {f['rows_read']} | {f['published']} | "
            f"{f['dlq']} | {f['skipped']} | {float(f['seconds']):.1f} | {rate:.0f} |"
        )
    for title, counts in (("DLQ by stage", report["dlq_by_stage"]), ("DLQ by rule", report["dlq_by_rule"])):
        lines += ["", f"## {title}", ""]
        lines += _text_bars(counts) if counts else ["none"]
    return "\n".join(lines) + "\n"


def _text_bars(counts: Mapping[str, int]) -> list[str]:
    top = max(counts.values())
    width = max(len(name) for name in counts)
    return (
        ["```"]
        + [
            f"{name:<{width}} {'█' * max(1, round(_BAR_WIDTH * count / top))} {count}"
            for name, count in counts.items()
        ]
        + ["```"]
    )


def render_html(report: Mapping[str, Any], *, dag_id: str, run_id: str, ds: str) -> str:
    e = html.escape
    seconds = sum(float(f.get("seconds", 0.0)) for f in report["per_file"])
    rate = rows_per_second(int(report["rows_read"]) - int(report["skipped"]), seconds)
    files = "".join(
        "<tr>"
        + f"<td>{e(PurePosixPath(str(f['file'])).name)}</td><td>{e(str(f['status']))}</td>"
        + "".join(f"<td class=n>{int(f[k])}</td>" for k in ("rows_read", "published", "dlq", "skipped"))
        + f"<td class=n>{float(f['seconds']):.1f}</td>"
        + f"<td class=n>{_file_rate(f):.0f}</td>"
        + "</tr>"
        for f in report["per_file"]
    )
    dry = " <span class=dry>dry run: nothing was published</span>" if report["dry_run"] else ""
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><title>{e(str(report["topic"]))} {e(ds)}</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}}
td,th{{border-bottom:1px solid #ddd;padding:.25em .75em;text-align:left}} .n{{text-align:right}}
.bar{{background:#d9534f;height:1em;display:inline-block;vertical-align:middle}} .dry{{color:#a60}}
.big td{{font-size:1.3em}}
</style></head><body>
<h1>{e(str(report["topic"]))} — {e(ds)}{dry}</h1>
<p>DAG <code>{e(dag_id)}</code>, run <code>{e(run_id)}</code></p>
<table class=big><tr><th>files</th><th>rows read</th><th>published</th><th>DLQ</th><th>skipped</th>
<th>DLQ share</th><th>rows/s</th></tr>
<tr><td class=n>{int(report["files"])}</td><td class=n>{int(report["rows_read"])}</td>
<td class=n>{int(report["published"])}</td><td class=n>{int(report["dlq"])}</td>
<td class=n>{int(report["skipped"])}</td>
<td class=n>{_share(report["dlq"], report["rows_read"])}</td><td class=n>{rate:.0f}</td></tr></table>
<h2>Files</h2>
<table><tr><th>file</th><th>status</th><th>rows read</th><th>published</th><th>DLQ</th><th>skipped</th>
<th>seconds</th><th>rows/s</th></tr>{files}</table>
<h2>DLQ by stage</h2>{_html_bars(report["dlq_by_stage"])}
<h2>DLQ by rule</h2>{_html_bars(report["dlq_by_rule"])}
</body></html>
"""


def _html_bars(counts: Mapping[str, int]) -> str:
    if not counts:
        return "<p>none</p>"
    top = max(counts.values())
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        f"<td><span class=bar style='width:{max(2, round(300 * count / top))}px'></span></td>"
        f"<td class=n>{count}</td></tr>"
        for name, count in counts.items()
    )
    return f"<table class=bars>{rows}</table>"


def _file_rate(file: Mapping[str, Any]) -> float:
    return rows_per_second(int(file["rows_read"]) - int(file["skipped"]), float(file["seconds"]))


def _share(part: Any, whole: Any) -> str:
    return f"{int(part) / int(whole):.1%}" if int(whole) else "-"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", text)
