#!/usr/bin/env python3
"""Rewrite imports of the flat kafka_ingest modules to the layered package (docs/architecture.md).

For branches started before the restructuring of 6 Dec: ``scripts/port-imports.py FILE...``
rewrites ``from kafka_ingest.<old> import a, b`` (names may go to different modules) and
``from kafka_ingest import <old>`` in place, and prints the files it changed. Review the result;
code that reaches into private names or patches module attributes may need more.
"""

from __future__ import annotations

import re
import sys

MOVES: dict[str, str | dict[str, str]] = {
    "readers": "read",
    "sources": "read",
    "csv_blocks": "read.formats.csv_blocks",
    "prefetch": "runtime.prefetch",
    "metrics": "runtime.metrics",
    "allocation": "runtime.allocation",
    "validation": "validate.validator",
    "gx_runs": "validate.gx_adapter",
    "dedup": "validate.dedup",
    "columnar": "encode.columnar",
    "encoding": "encode.table",
    "serde": {"AvroEncoder": "encode.avro", "records_from_table": "encode.avro", "*": "registry"},
    "checkpoints": "publish.checkpoints",
    "pan": "publish.masking",
    "schema_guard": "pipeline.schema_guard",
    "dlq": {
        "RunInfo": "batches",
        "SourceInfo": "batches",
        "dlq_headers": "publish.headers",
        "*": "publish.dlq",
    },
    "publisher": {
        "producer_config": "publish.config",
        "PRODUCER_DEFAULTS": "publish.config",
        "PRODUCER_REQUIRED": "publish.config",
        "OutgoingMessage": "publish.records",
        "RecordColumns": "publish.records",
        "BatchToPublish": "publish.records",
        "BatchResult": "publish.records",
        "*": "publish.transactions",
    },
    "wiring": "pipeline.wiring",
    # h22 (issue #22) was built on the flat layout: its topology modules went to provision/.
    "provisioning": "provision.topics",
    "acls": "provision.acls",
    "access": "provision.access",
    "kafka_security": "provision.security",
    "pipeline": {
        "transactional_id_for": "publish.checkpoints",
        "JobSettings": "pipeline.settings",
        "ProducerFactory": "pipeline.settings",
        "FileSummary": "pipeline.summary",
        "summarize": "pipeline.summary",
        "ReconciliationError": "pipeline.summary",
        "ExtractChangedError": "pipeline.resume",
        "JUDGED_TOGETHER": "pipeline.stages",
        "build_job": "pipeline.wiring",
        **{module: "pipeline" for module in ("job", "resume", "settings", "stages", "summary", "wiring")},
        **{module: "pipeline" for module in ("budget", "duplicates", "schema_guard")},
        "*": "pipeline.job",
    },
}

_FROM = re.compile(
    r"^(?P<indent>[ \t]*)from kafka_ingest\.(?P<old>[a-z_]+) import (?P<names>\([^)]*\)|[^\n]+)", re.M
)
_MODULE = re.compile(r"^(?P<indent>[ \t]*)from kafka_ingest import (?P<name>[a-z_]+)$", re.M)


def _target(old: str, name: str) -> str:
    move = MOVES[old]
    return move if isinstance(move, str) else move.get(name, move["*"])


def _from(match: re.Match[str]) -> str:
    old = match["old"]
    if old not in MOVES:
        return match[0]
    names = [n.strip() for n in match["names"].strip("()").replace("\n", " ").split(",") if n.strip()]
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(_target(old, name.split(" as ")[0].strip()), []).append(name)
    lines = (f"{match['indent']}from kafka_ingest.{mod} import {', '.join(ns)}" for mod, ns in groups.items())
    return "\n".join(lines)


def _module(match: re.Match[str]) -> str:
    move = MOVES.get(match["name"])
    if not isinstance(move, str):
        return match[0]
    package, module = f"kafka_ingest.{move}".rsplit(".", 1)
    alias = "" if module == match["name"] else f" as {match['name']}"
    return f"{match['indent']}from {package} import {module}{alias}"


def main(paths: list[str]) -> int:
    for path in paths:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        ported = _MODULE.sub(_module, _FROM.sub(_from, text))
        if ported != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(ported)
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
