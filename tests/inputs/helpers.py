"""Hostile extracts, written by the tests into their own folders, and where each record must land.

A :class:`PartFile` is built record by record: every record is given as the exact bytes upstream
would have written and what EXTRACTS.md (and the README's decisions) say must become of it, a
:class:`Lands`. :func:`assert_landings` then checks the real topics, read ``read_committed`` with
the integration helpers, against those expectations: each published record in full, each DLQ
record's stage and rule, and that nothing else was published or dead-lettered.

Run as a script (``python helpers.py '<json>'``), this module runs one ingestion job in a fresh
process and prints its summary (or error) and the process's peak RSS, for the memory-bound tests.
"""

from __future__ import annotations

import csv
import gzip
import io
import ipaddress
import json
import os
import random
import re
import resource
import subprocess
import sys
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "integration")]

from ingest_helpers import (  # noqa: E402  (needs the path above)
    DATE,
    Endpoints,
    Record,
    Row,
    by_source,
    decode_values,
    expected_order,
    expected_payment,
    read_topic,
    run_job,
    with_topic,
)

from kafka_ingest.specs import TopicSpec  # noqa: E402
from kafka_ingest.testing.samples import ORDER_COLUMNS, PAYMENT_COLUMNS, order_row, payment_row  # noqa: E402
from kafka_ingest.topics.orders import ORDERS  # noqa: E402
from kafka_ingest.topics.payments import PAYMENTS  # noqa: E402

SPECS = {"orders": ORDERS, "payments": PAYMENTS}
COLUMNS = {"orders": ORDER_COLUMNS, "payments": PAYMENT_COLUMNS}
#: The broker's (and librdkafka's) limit on one record, and the DLQ envelope's documented bound.
BROKER_MAX_BYTES = 1_000_000
DLQ_ENVELOPE_MAX_BYTES = 256 * 1024


# --------------------------------------------------------------------------- expectations


@dataclass(frozen=True)
class Lands:
    """Where one record must land: on the topic (``stage`` None) or on the DLQ at ``stage``, where
    ``what`` is the failed rule (validate) or the error type (read, serialize, produce)."""

    case: str
    stage: str | None = None
    what: str = ""
    #: the source row as upstream meant it, for comparing a published record field by field
    row: Row | None = None

    @property
    def published(self) -> bool:
        return self.stage is None


def published(case: str, row: Row | None = None) -> Lands:
    return Lands(case, row=row)


def dlq(case: str, stage: str, what: str) -> Lands:
    return Lands(case, stage, what)


@dataclass
class PartFile:
    """One part file in the making: its bytes, and the landing of each record by row number."""

    name: str
    chunks: list[bytes] = field(default_factory=list)
    expected: dict[int, Lands] = field(default_factory=dict)
    #: row -> where its bytes start in the file
    offsets: dict[int, int] = field(default_factory=dict)
    rows: int = 0
    size: int = 0

    def add(self, data: bytes, *landings: Lands) -> None:
        """Bytes holding ``len(landings)`` records (none: bytes that are not a record)."""
        for landing in landings:
            self.rows += 1
            self.expected[self.rows] = landing
            self.offsets[self.rows] = self.size
        self.chunks.append(data)
        self.size += len(data)

    def data(self) -> bytes:
        return b"".join(self.chunks)


class Rows:
    """Valid rows of a dataset with keys no other case uses (``<prefix>-<case number>``)."""

    def __init__(self, dataset: str, prefix: str) -> None:
        self.dataset, self.prefix = dataset, prefix
        self._rng = random.Random(f"hostile/{dataset}/{prefix}")
        self._index = 0

    def __call__(self, **changes: Any) -> Row:
        self._index += 1
        make = order_row if self.dataset == "orders" else payment_row
        row = make(self._index, self._rng, prefix=self.prefix)
        row.update(changes)
        return row


def csv_record(columns: Sequence[str], row: Mapping[str, Any], *, line_end: str = "\r\n") -> bytes:
    """One CSV record as upstream writes it: RFC 4180 quoting, lists as JSON text (not escaped to
    ASCII, so a field's length in characters is what it looks like)."""
    out = io.StringIO()
    values = [_text(row[c]) for c in columns]
    csv.writer(out, lineterminator=line_end).writerow(values)
    return out.getvalue().encode("utf-8", "surrogateescape")


def _text(value: Any) -> str:
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def jsonl_record(row: Mapping[str, Any]) -> bytes:
    return (json.dumps(row, ensure_ascii=False) + "\n").encode()


def header(columns: Sequence[str], *, line_end: str = "\r\n") -> bytes:
    return (",".join(columns) + line_end).encode()


def write_day(root: Path, dataset: str, parts: Iterable[PartFile], *, gzip_suffix: bool = True) -> list[str]:
    """Land the part files (``.gz`` names gzip-compressed) and ``_SUCCESS``; the files' paths."""
    folder = root / dataset / f"dt={DATE}"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for part in parts:
        data = part.data()
        if gzip_suffix and part.name.endswith(".gz") and data:
            data = gzip.compress(data)
        (folder / part.name).write_bytes(data)
        files.append(str(folder / part.name))
    (folder / "_SUCCESS").touch()
    return files


# --------------------------------------------------------------------------- reading the outcome


@dataclass
class Outcome:
    """A published day read back: records and envelopes by (file name, row)."""

    spec: TopicSpec
    summary: dict[str, Any]
    published: dict[tuple[str, int], Record]
    dlq: dict[tuple[str, int], Record]
    values: dict[tuple[str, int], dict[str, Any]]

    def envelope(self, where: tuple[str, int]) -> dict[str, Any]:
        return dict(json.loads(self.dlq[where].value))


def read_outcome(endpoints: Endpoints, spec: TopicSpec, summary: dict[str, Any]) -> Outcome:
    records = read_topic(endpoints.bootstrap, spec.topic)
    decoded = decode_values(endpoints.registry_url, spec.topic, records)
    published = by_source(records)
    values = {(r.file_name, r.row): v for r, v in zip(records, decoded, strict=True)}
    return Outcome(
        spec, summary, published, by_source(read_topic(endpoints.bootstrap, spec.dlq_topic)), values
    )


def publish(endpoints: Endpoints, dataset: str, topic: str, files: Sequence[str], **settings: Any) -> Outcome:
    """Publish ``files`` in-process, as the operator would, and read both topics back."""
    spec = with_topic(SPECS[dataset], topic)
    return read_outcome(endpoints, spec, run_job(endpoints, spec, files, **settings))


def expectations(parts: Iterable[PartFile]) -> dict[tuple[str, int], Lands]:
    return {(part.name, row): lands for part in parts for row, lands in part.expected.items()}


def landing_error(outcome: Outcome, where: tuple[str, int], lands: Lands) -> str | None:
    """How the record at ``where`` did not land as ``lands`` says, or None if it did."""
    label = f"{where[0]} row {where[1]} ({lands.case})"
    expected_record = expected_order if outcome.spec.dataset == "orders" else expected_payment
    if lands.published:
        if where not in outcome.published:
            return f"{label}: not published{_dlq_reason(outcome, where)}"
        if lands.row is not None and outcome.values[where] != expected_record(lands.row):
            return f"{label}: published as {outcome.values[where]!r}, not {expected_record(lands.row)!r}"
        return None
    if where in outcome.published:
        return f"{label}: published, expected DLQ {lands.stage}/{lands.what}"
    if where not in outcome.dlq:
        return f"{label}: neither published nor in the DLQ"
    envelope = outcome.envelope(where)
    found = envelope["failed_rules"] if lands.stage == "validate" else [envelope["error_type"]]
    if envelope["stage"] != lands.stage or lands.what not in found:
        return f"{label}: DLQ {envelope['stage']}/{found}, expected {lands.stage}/{lands.what}"
    return None


def unexpected_records(outcome: Outcome, expected: Mapping[tuple[str, int], Lands]) -> list[str]:
    """Records on either topic that no written record accounts for."""
    extra = [
        f"{w}: published, but no such record was written"
        for w in sorted(set(outcome.published) - set(expected))
    ]
    return extra + [
        f"{w}: in the DLQ ({outcome.envelope(w)['error_type']}), but no such record was written"
        for w in sorted(set(outcome.dlq) - set(expected))
    ]


def _dlq_reason(outcome: Outcome, where: tuple[str, int]) -> str:
    if where not in outcome.dlq:
        return ""
    envelope = outcome.envelope(where)
    return f" (DLQ {envelope['stage']}: {envelope['error_message'][:200]})"


# --------------------------------------------------------------------------- card numbers, secrets


def leak_pattern(secret: str) -> re.Pattern[str]:
    """Finds ``secret`` in text; a card number also with any separators (up to 3 non-digits)
    between its digits, in any layout, and inside a longer run of digits."""
    if not secret.replace(" ", "").replace("-", "").isdigit():
        return re.compile(re.escape(secret))
    digits = re.sub(r"[^0-9]", "", secret)
    return re.compile(r"[^0-9]{0,3}".join(digits))


def leaks(text: str, secrets: Iterable[str]) -> list[str]:
    """The secrets found in ``text`` (with some context), none if it is clean."""
    found = []
    for secret in secrets:
        for match in leak_pattern(secret).finditer(text):
            start, end = max(0, match.start() - 40), match.end() + 40
            found.append(f"{secret!r} in …{text[start:end]!r}…")
    return found


# --------------------------------------------------------------------------- a job in a child process


def run_in_child(
    endpoints: Endpoints, dataset: str, topic: str, files: Sequence[str], **settings: Any
) -> dict[str, Any]:
    """Run one job in a fresh Python process: ``{"summary" | "error", "maxrss_mib"}``.

    A fresh process makes ``ru_maxrss`` the peak of this job alone (imports included).
    """
    args = {
        "bootstrap": endpoints.bootstrap,
        "registry_url": endpoints.registry_url,
        "checkpoint_topic": endpoints.checkpoint_topic,
        "dataset": dataset,
        "topic": topic,
        "files": list(files),
        "settings": settings,
    }
    done = subprocess.run(
        [sys.executable, __file__, json.dumps(args)], capture_output=True, text=True, timeout=300
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise AssertionError(f"child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["stderr"] = done.stderr
    return result


def _child(args: dict[str, Any]) -> dict[str, Any]:
    endpoints = Endpoints(args["bootstrap"], args["registry_url"], args["checkpoint_topic"])
    spec = with_topic(SPECS[args["dataset"]], args["topic"])
    result: dict[str, Any] = {}
    try:
        result["summary"] = run_job(endpoints, spec, args["files"], **args["settings"])
    except Exception as exc:
        traceback.print_exc()
        result["error"] = {"type": type(exc).__name__, "message": str(exc)}
    result["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))


# --------------------------------------------------------------------------- Airflow (dag.test)


def register_dag(dag: Any) -> None:
    """Serialize ``dag`` into the metadata DB, as the dag-processor would; dag.test() needs it."""
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )


def delete_dag(dag_id: str) -> None:
    from airflow.api.common.delete_dag import delete_dag as delete

    delete(dag_id, keep_records_in_log=False)


def run_xcoms(run: Any) -> list[Any]:
    """Every XCom value the run's task instances pushed (the publish summaries, the report)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id)).all()
        return [XComModel.deserialize_value(row) for row in rows]


def run_rendered_fields(run: Any) -> list[Any]:
    """The rendered template fields stored for each task instance of the run."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Fields
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(Fields).where(Fields.dag_id == run.dag_id, Fields.run_id == run.run_id)
        ).all()
        return [row.rendered_fields for row in rows]


def task_log_files(dag_id: str) -> list[Path]:
    """Task log files Airflow wrote for ``dag_id`` under ``[logging] base_log_folder``."""
    from airflow.configuration import conf

    folder = Path(conf.get("logging", "base_log_folder"))
    return sorted(p for p in folder.glob(f"dag_id={dag_id}/**/*") if p.is_file())


# --------------------------------------------------------------------------- listening sockets


@dataclass(frozen=True)
class Socket:
    protocol: str
    address: str
    port: int
    pid: int
    command: str


def stack_pids(run_dir: Path) -> dict[int, str]:
    """The pids of the stack's services (``<run dir>/*.pid``) and of all their descendants."""
    roots = {int(p.read_text().strip()): p.stem for p in run_dir.glob("*.pid") if p.read_text().strip()}
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    pids = dict(roots)
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in pids and pid not in pids:
                pids[pid] = pids[parent]
                changed = True
    return pids


def bound_sockets(pids: Mapping[int, str]) -> list[Socket]:
    """TCP sockets listening and UDP sockets bound to a chosen port by ``pids``, from /proc.

    A UDP socket on an ephemeral port is a sender's (the StatsD client in every Airflow process):
    the kernel binds it to the wildcard address when it first sends, and no service is behind it.
    """
    ephemeral_low, ephemeral_high = map(
        int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    )
    owner: dict[str, int] = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                owner[target[8:-1]] = pid
    found = []
    for protocol in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/net/{protocol}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if inode not in owner or (protocol.startswith("tcp") and state != "0A"):
                continue
            address, port = local.split(":")
            raw = bytes.fromhex(address)
            ordered = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            text = str(ipaddress.ip_address(ordered))
            pid, number = owner[inode], int(port, 16)
            if protocol.startswith("udp") and ephemeral_low <= number <= ephemeral_high:
                continue
            found.append(Socket(protocol, text, number, pid, pids[pid]))
    return found


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))
