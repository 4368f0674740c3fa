"""The DAG's ``report`` task: the day's totals, the run report, the day's gauges and the Asset event.

It adds the mapped ``publish`` summaries up into one XCom, writes the run report (Markdown and
HTML, ``run_report.py``) under the logs folder, logs the Markdown, links the HTML page from the
task (the "Run report" extra link) and sends the gauges the alerts read
(``last_day_published``, ``day_dlq_ratio``, ``dlq_budget``). A report or metrics problem is logged
and never fails the task: the day is published either way.

The Asset event says "this day is on the topic", so a dry run must not send it: the task then
pushes its totals and ends skipped. A day without part files (``publish`` skipped, no summaries)
reports zeros and does update the Asset: the day is complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator, BaseOperatorLink, Context
from airflow.sdk.exceptions import AirflowSkipException

from kafka_ingest.run_report import SUMMARY_FIELDS, day_report, logs_folder, report_url, write_report


class RunReportLink(BaseOperatorLink):
    """Links the task to its run's HTML report (``run_report.report_url``)."""

    name = "Run report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return report_url(logs_folder(), ti_key.dag_id, ti_key.run_id)


class DayReportOperator(BaseOperator):
    """Adds a day's ``publish`` summaries up and reports them (see the module docstring).

    :param summaries: the mapped ``publish`` task's output (an XComArg).
    :param topic: the topic the day was published to.
    :param max_dlq_ratio: the run's error budget, sent as the ``dlq_budget`` gauge. Templated.
    """

    template_fields: Sequence[str] = ("summaries", "max_dlq_ratio")
    operator_extra_links = (RunReportLink(),)
    ui_color = "#f4f1e8"

    def __init__(self, *, summaries: Any, topic: str, max_dlq_ratio: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.summaries = summaries
        self.topic = topic
        self.max_dlq_ratio = max_dlq_ratio

    def execute(self, context: Context) -> dict[str, Any]:
        # One request for every mapped summary (iterating asks once per item, then once too many).
        rows = list(self.summaries[:]) if self.summaries else []
        report = day_report(rows, self.topic)
        self.log.info(
            "%s: %d files, %d rows read, %d published, %d to DLQ, %d skipped (already published)%s.",
            self.topic,
            *(report[name] for name in SUMMARY_FIELDS),
            " — dry run, nothing was published" if report["dry_run"] else "",
        )
        self._write_report(report, context)
        if report["dry_run"]:
            context["ti"].xcom_push(key="return_value", value=report)
            raise AirflowSkipException("Dry run: nothing was published, so the topic's Asset is not updated.")
        self._send_day_gauges(report, str(context["ds"]))
        for outlet in context["outlets"]:
            context["outlet_events"][outlet].extra = {
                "date": str(context["ds"]),
                **{name: report[name] for name in SUMMARY_FIELDS},
            }
        return report

    def _write_report(self, report: dict[str, Any], context: Context) -> None:
        ti = context["ti"]
        try:
            path, markdown = write_report(report, logs_folder(), ti.dag_id, ti.run_id, str(context["ds"]))
        except Exception as exc:  # the day is published whatever happens to its report
            self.log.warning("The run report could not be written (%s: %s).", type(exc).__name__, exc)
            return
        self.log.info("Run report: %s\n%s", path, markdown)

    def _send_day_gauges(self, report: dict[str, Any], ds: str) -> None:
        from kafka_ingest.metrics import TopicMetrics, airflow_stats_sink

        try:
            metrics = TopicMetrics(self.topic, airflow_stats_sink())
            day = datetime.fromisoformat(ds).replace(tzinfo=UTC)
            metrics.gauge("last_day_published", day.timestamp())
            metrics.gauge(
                "day_dlq_ratio", report["dlq"] / report["rows_read"] if report["rows_read"] else 0.0
            )
            if self.max_dlq_ratio not in (None, "", "None"):
                metrics.gauge("dlq_budget", float(self.max_dlq_ratio))
        except Exception as exc:  # TopicMetrics swallows sink errors; this covers odd input
            self.log.warning("Day gauges not sent (%s: %s).", type(exc).__name__, exc)
