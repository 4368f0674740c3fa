"""What a replay says it did: counts, and one line per envelope it looked at.

The same counts go into the audit record, the operator's XCom and its log. The per-envelope list
names DLQ positions, keys, files and rows, never row values (a row may hold a card number).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kafka_ingest.replay.envelopes import OTHER_TOPIC, UNREADABLE
from kafka_ingest.replay.judge import ALREADY_PUBLISHED, NEEDS_CORRECTION, PUBLISHED, STILL_FAILING

#: Outcome -> the count it adds to.
COUNTED = {
    PUBLISHED: "published",
    STILL_FAILING: "still_failing",
    ALREADY_PUBLISHED: "skipped_already_published",
    NEEDS_CORRECTION: "needs_correction",
    UNREADABLE: "skipped_unreadable",
    OTHER_TOPIC: "skipped_other_topic",
}
COUNT_NAMES = ("selected", *COUNTED.values())
#: Envelope lines kept in XCom; the log has them all.
MAX_LISTED = 1_000


@dataclass
class ReplayReport:
    replay_id: str
    topic: str
    dry_run: bool
    who: str
    started_at: str
    selection: dict[str, Any]
    source: dict[str, Any]
    status: str = "complete"
    finished_at: str = ""
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: str, *, selected: bool, **line: Any) -> None:
        """One envelope's line; ``selected`` is False for DLQ records that could not be read."""
        self.envelopes.append({**line, "outcome": outcome})
        counts = {**dict.fromkeys(COUNT_NAMES, 0), **self.counts}
        counts["selected"] += int(selected)
        counts[COUNTED[outcome]] += 1
        self.counts = counts

    def summary(self) -> str:
        c = {**dict.fromkeys(COUNT_NAMES, 0), **self.counts}
        verb = "would be published (dry run: nothing was)" if self.dry_run else "published"
        text = (
            f"Replay {self.replay_id} of {self.topic}.dlq ({self.status}): "
            f"{c['selected']} envelope(s) selected, "
            f"{c['published']} {verb}, {c['still_failing']} still failing, {c['skipped_already_published']} "
            f"skipped as already published, {c['needs_correction']} need a correction"
        )
        skipped = c["skipped_unreadable"] + c["skipped_other_topic"]
        if skipped:
            text += f"; {skipped} DLQ record(s) skipped as unreadable or of another topic"
        if not c["selected"]:
            text += ". The selection matched no envelope: nothing to replay"
        return text + "."

    def as_dict(self) -> dict[str, Any]:
        return {
            "replay_id": self.replay_id,
            "topic": self.topic,
            "dry_run": self.dry_run,
            "status": self.status,
            "who": self.who,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "selection": self.selection,
            "source": self.source,
            "counts": {**dict.fromkeys(COUNT_NAMES, 0), **self.counts},
            "summary": self.summary(),
            "envelopes": self.envelopes[:MAX_LISTED],
            "envelopes_listed": min(len(self.envelopes), MAX_LISTED),
        }

    def audit_record(self, *, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        record = self.as_dict()
        for name in ("envelopes", "envelopes_listed", "dry_run"):
            record.pop(name)
        return {
            **record,
            "dlq_topic": f"{self.topic}.dlq",
            "dag_id": dag_id,
            "run_id": run_id,
            "task_id": task_id,
        }
