"""``make bench``: generate the orders extracts, measure every variant, check, report.

Every measurement runs in a fresh process (``bench/variants.py``) so its peak RSS is its own;
afterwards this process counts the records that reached the topics (read_committed for the
transactional variants, plain for the peer) and voids the measurement, loudly, when the count is
not what the generator's manifest says. Results go to ``bench/out/results.json``; the report
(``docs/benchmarks.md`` and ``docs/benchmarks.png``) is written from them by ``bench/report.py``.

The backfill benchmark (``pipeline-days``, ``backfill-local``, ``backfill-celery``; ``make
bench-backfill`` runs only these) puts :data:`BACKFILL_DAYS` days of part files through the pipeline
directly and through the stack's running scheduler on each executor (``bench/backfill.py``), switching
the stack's executor as it goes and putting back the one it found.

Options: ``--quick`` (small sizes only, one repetition: a smoke test of the harness),
``--only VARIANT[,VARIANT]``, ``--reps N``, ``--no-report``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import backfill, datagen  # noqa: E402
from bench.counting import count_records, delete_topics  # noqa: E402

DATA = REPO / "bench" / "data"
OUT = REPO / "bench" / "out"
SIZES = (100_000, 500_000, 1_000_000, 5_000_000)
KEY_SIZE = 1_000_000
#: The backfill benchmark's data: days x rows a day, each day in this many part files.
BACKFILL_DAYS, BACKFILL_ROWS_PER_DAY, BACKFILL_PARTS = 10, 200_000, 3
QUICK_DAYS, QUICK_ROWS_PER_DAY = 3, 20_000
BACKFILL_ROWS = BACKFILL_DAYS * BACKFILL_ROWS_PER_DAY
#: Variants over the multi-day set (not the single-day sizes), and those that go through the
#: stack's scheduler rather than a child process of their own.
DAYS_VARIANTS = ("pipeline-days", "backfill-local", "backfill-celery")
BACKFILL_VARIANTS = ("backfill-local", "backfill-celery")

#: (variant, format, rows, repetitions). The ceilings and the peer stop at 1M rows and the slow
#: peer-defaults runs once at 100k, to keep `make bench` near 20 minutes (see docs/benchmarks.md).
PLAN: list[tuple[str, str, int, int]] = [
    *(("pipeline", "csv", n, 3) for n in SIZES),
    ("pipeline", "parquet", KEY_SIZE, 3),
    ("pipeline", "jsonl.gz", KEY_SIZE, 3),
    ("pipeline-dag", "csv", KEY_SIZE, 3),
    ("pipeline-dag-lineage", "csv", KEY_SIZE, 3),
    *(("limit-fastavro", "csv", n, 3) for n in SIZES[:3]),
    *(("limit-bytes", "csv", n, 3) for n in SIZES[:3]),
    *(("peer", "csv", n, 3) for n in SIZES[:3]),
    ("peer-defaults", "csv", SIZES[0], 1),
    ("pipeline-days", "csv", BACKFILL_ROWS, 3),
    ("backfill-local", "csv", BACKFILL_ROWS, 1),
    ("backfill-celery", "csv", BACKFILL_ROWS, 1),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--reps", type=int, default=0)
    parser.add_argument(
        "--batch-size", type=int, default=0, help="pipeline and limits (default: the product's)"
    )
    parser.add_argument("--sizes", default="", help="comma-separated row counts to keep")
    parser.add_argument("--formats", default="", help="comma-separated formats to keep")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    plan = PLAN
    days, rows_per_day = BACKFILL_DAYS, BACKFILL_ROWS_PER_DAY
    if args.quick:
        days, rows_per_day = QUICK_DAYS, QUICK_ROWS_PER_DAY
        plan = [
            (v, f, days * rows_per_day if v in DAYS_VARIANTS else 100_000, 1)
            for v, f, n, _ in PLAN
            if n == KEY_SIZE or v in ("peer-defaults", *DAYS_VARIANTS)
        ]
    if args.sizes:
        plan = [p for p in plan if str(p[2]) in args.sizes.split(",") or p[0] in DAYS_VARIANTS]
    if args.formats:
        plan = [p for p in plan if p[1] in args.formats.split(",")]
    if args.only:
        plan = [p for p in plan if p[0] in args.only.split(",")]
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    machine = describe_machine()
    manifests = prepare_data([p for p in plan if p[0] not in DAYS_VARIANTS])
    days_set = prepare_days(days, rows_per_day) if any(p[0] in DAYS_VARIANTS for p in plan) else None
    children = [p for p in plan if p[0] not in BACKFILL_VARIANTS]
    results = measure_all(children, manifests, args.reps, args.batch_size, days_set)
    if days_set is not None:
        results += measure_backfills([p for p in plan if p[0] in BACKFILL_VARIANTS], days_set, args.reps)
    machine["load_after"] = os.getloadavg()
    machine["bench_wall_seconds"] = round(time.monotonic() - started, 1)
    payload: dict[str, Any] = {
        "machine": machine,
        "data": {n: vars(m) for n, m in manifests.items()},
        "results": results,
    }
    if days_set is not None:
        payload["backfill_data"] = {**asdict(days_set), "published": days_set.published, "dlq": days_set.dlq}
        for line in backfill_ratio_lines(results):
            print(f"bench: {line}", flush=True)
    (OUT / "results.json").write_text(json.dumps(payload, indent=1))
    print(f"bench: {len(results)} measurements in {machine['bench_wall_seconds']:.0f}s", OUT / "results.json")
    voided = [r for r in results if r["void"]]
    if not args.no_report:
        from bench import report

        report.write(payload)
    if voided:
        print(
            f"bench: {len(voided)} measurement(s) VOID: " + "; ".join(r["void"] for r in voided),
            file=sys.stderr,
        )
        sys.exit(1)


def prepare_data(plan: list[tuple[str, str, int, int]]) -> dict[int, datagen.Manifest]:
    manifests = {}
    for rows in sorted({p[2] for p in plan}):
        formats = tuple(sorted({p[1] for p in plan if p[2] == rows} | {"csv"}))
        started = time.monotonic()
        manifests[rows] = datagen.ensure_day(DATA, rows, formats)
        print(f"bench: data {rows:>9,} rows {formats} ready in {time.monotonic() - started:.1f}s", flush=True)
    return manifests


def prepare_days(days: int, rows_per_day: int) -> datagen.DaysManifest:
    started = time.monotonic()
    manifest = datagen.ensure_days(DATA, days, rows_per_day, BACKFILL_PARTS)
    print(
        f"bench: data {days} days x {rows_per_day:,} rows in {BACKFILL_PARTS} parts ready in "
        f"{time.monotonic() - started:.1f}s",
        flush=True,
    )
    return manifest


def backfill_ratio(results: list[dict[str, Any]], variant: str) -> float | None:
    """Wall seconds of ``variant`` over ``pipeline-days``' (the same rows, no scheduler)."""
    found = {r["variant"]: r for r in results if r["variant"] in DAYS_VARIANTS}
    base, other = found.get("pipeline-days"), found.get(variant)
    if not base or not other or not base.get("seconds") or not other.get("seconds"):
        return None
    return float(other["seconds"]) / float(base["seconds"])


def backfill_ratio_lines(results: list[dict[str, Any]]) -> list[str]:
    """``ratio backfill-local/pipeline: X`` and the Celery one (``n/a`` when not measured)."""
    lines = []
    for variant in BACKFILL_VARIANTS:
        ratio = backfill_ratio(results, variant)
        lines.append(f"ratio {variant}/pipeline: {ratio:.2f}" if ratio else f"ratio {variant}/pipeline: n/a")
    return lines


def measure_backfills(
    plan: list[tuple[str, str, int, int]], days_set: datagen.DaysManifest, reps_override: int = 0
) -> list[dict[str, Any]]:
    """Each backfill variant on its executor (the stack is switched), checked like the others;
    the executor the stack ran before is put back afterwards."""
    slots = []
    before = backfill.current_executor()
    try:
        for variant, fmt, rows, planned in plan:
            slot = _days_slot(variant, fmt, days_set)
            reps = reps_override or planned
            for rep in range(reps):
                load = os.getloadavg()[0]
                try:
                    run = backfill.measure(variant, days_set.dates, days_set.extracts_root, OUT)
                except Exception as exc:  # a stuck or failed backfill voids the measurement, loudly
                    run = {"error": f"{type(exc).__name__}: {exc}"}
                problem = run.get("error") or check(variant, run, days_set)
                run["load1"] = load
                slot["runs"].append(run)
                print(
                    f"bench: {variant:<15} {days_set.days} days {rows:>9,} rep {rep + 1}/{reps}: "
                    + (f"VOID {problem}" if problem else f"{rows / run['seconds']:>9,.0f} rows/s ")
                    + f"{run.get('seconds', 0):7.1f}s cpu {run.get('cpu_seconds', 0):5.1f}s "
                    + f"publish rss {run.get('publish_rss_mb_max') or 0:6.0f} MB "
                    + f"load {load:.1f}",
                    flush=True,
                )
                if problem:
                    slot["void"] = f"{variant} {days_set.days} days: {problem}"
                    break
            _summarize(slot)
            slots.append(slot)
    finally:
        if before:
            try:
                backfill.ensure_executor(before, OUT / f"stack-{before}.log")
            except RuntimeError as exc:  # the measurements stand; the stack needs a `make up`
                print(f"bench: could not put the stack back on {before}: {exc}", file=sys.stderr)
    return slots


def _days_slot(variant: str, fmt: str, days_set: datagen.DaysManifest) -> dict[str, Any]:
    return {
        "variant": variant,
        "format": fmt,
        "rows": days_set.rows,
        "days": days_set.days,
        "parts": days_set.parts,
        "input_bytes": days_set.input_bytes,
        "runs": [],
        "void": "",
        "task": {
            "variant": variant,
            "format": fmt,
            "rows": days_set.rows,
            "days": days_set.files,
            "log": str(OUT / f"{variant}-{days_set.days}days.log"),
        },
    }


def _summarize(slot: dict[str, Any]) -> None:
    good = [r for r in slot["runs"] if "seconds" in r]
    seconds = statistics.median(r["seconds"] for r in good) if good and not slot["void"] else None
    slot.update(
        reps=len(slot["runs"]),
        seconds=seconds,
        rows_per_s=slot["rows"] / seconds if seconds else None,
        rss_mb=max((r.get("rss_mb") or r.get("publish_rss_mb_max") or 0 for r in slot["runs"]), default=0),
    )
    slot.pop("task", None)


def measure_all(
    plan: list[tuple[str, str, int, int]],
    manifests: dict[int, datagen.Manifest],
    reps: int,
    batch_size: int,
    days_set: datagen.DaysManifest | None = None,
) -> list[dict[str, Any]]:
    """Every repetition in a fresh process; median rows/s, max peak RSS per (variant, format, rows).

    Processes overlap only outside the clock: the next one is started (imports, inputs) while this
    process counts the previous run's records, and it starts its clock when told to, after that.
    """
    slots = [
        _days_slot(variant, fmt, days_set)
        if variant in DAYS_VARIANTS and days_set is not None
        else _slot(variant, fmt, rows, manifests[rows], batch_size)
        for variant, fmt, rows, _ in plan
    ]
    runs = [
        (slot, rep, reps or n) for slot, (*_, n) in zip(slots, plan, strict=True) for rep in range(reps or n)
    ]
    child = _Child(runs[0][0]["task"]) if runs else None
    for i, (slot, rep, total) in enumerate(runs):
        assert child is not None
        if slot["void"]:
            child.kill()
        else:
            child.wait_ready()
            load = os.getloadavg()[0]
            run = child.go()
        child = _Child(runs[i + 1][0]["task"]) if i + 1 < len(runs) else None
        if slot["void"]:
            continue
        variant, fmt, rows = slot["variant"], slot["format"], slot["rows"]
        expected = days_set if variant in DAYS_VARIANTS and days_set is not None else manifests[rows]
        problem = run.get("error") or check(variant, run, expected)
        run["load1"] = load
        slot["runs"].append(run)
        print(
            f"bench: {variant:<14} {fmt:<8} {rows:>9,} rep {rep + 1}/{total}: "
            + (f"VOID {problem}" if problem else f"{rows / run['seconds']:>9,.0f} rows/s ")
            + f"{run.get('seconds', 0):7.1f}s cpu {run.get('cpu_seconds', 0):5.1f}s "
            + f"rss {run.get('rss_mb', 0):6.0f} MB load {load:.1f}",
            flush=True,
        )
        if problem:
            slot["void"] = f"{variant} {fmt} {rows}: {problem}"
    for slot in slots:
        _summarize(slot)
    return slots


def _slot(variant: str, fmt: str, rows: int, manifest: datagen.Manifest, batch_size: int) -> dict[str, Any]:
    root = datagen.root_for(DATA, rows, manifest.seed)
    task = {
        "variant": variant,
        "format": fmt,
        "rows": rows,
        "file": manifest.files[fmt],
        "extracts_root": str(root / fmt.split(".")[0]),
        "valid_mask": str(root / "valid.npy"),
        # The pipeline runs with the product's default unless told otherwise; the ceilings use it.
        "batch_size": batch_size or (0 if variant == "pipeline" else _product_batch_size()),
        "log": str(OUT / f"{variant}-{fmt}-{rows}.log"),
    }
    return {
        "variant": variant,
        "format": fmt,
        "rows": rows,
        "input_bytes": manifest.sizes[fmt],
        "runs": [],
        "void": "",
        "task": task,
    }


class _Child:
    """One measurement process: prepares, says ``ready``, starts its clock on ``go``."""

    def __init__(self, task: dict[str, Any]) -> None:
        self._stderr = open(task["log"] + ".stderr", "a")  # noqa: SIM115 (closed in go/kill)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.variants", json.dumps(task)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, "BENCH_HANDSHAKE": "1"},
        )
        self._seen: list[str] = []

    def wait_ready(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip() == "ready":
                return
            self._seen.append(line)

    def go(self) -> dict[str, Any]:
        try:
            out, _ = self.process.communicate("go\n")
        finally:
            self._stderr.close()
        lines = [line for line in [*self._seen, *out.splitlines()] if line.startswith('{"seconds"')]
        if self.process.returncode != 0 or not lines:
            tail = Path(self._stderr.name).read_text().strip().splitlines()[-5:]
            return {"error": f"exit {self.process.returncode}: {' | '.join(tail)}"}
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self._stderr.close()


def _product_batch_size() -> int:
    from kafka_ingest.pipeline.settings import JobSettings

    return JobSettings(extract_date="").batch_size


def check(variant: str, run: dict[str, Any], manifest: datagen.Manifest | datagen.DaysManifest) -> str:
    """Count what a consumer sees; a wrong count voids the measurement. Topics are deleted after."""
    transactional = not variant.startswith("peer")
    expected = manifest.published if transactional else getattr(manifest, "peer_published", 0)
    topics = [run["topic"]] + ([run["dlq_topic"]] if "dlq_topic" in run else [])
    try:
        if run.get("state", "success") != "success":
            return f"DAG run ended {run['state']}"
        if run.get("lineage_events") == 0:
            return "lineage was meant to be on and no OpenLineage event was written"
        if "published" in run and run["published"] != expected:
            return f"the run reports {run['published']} published, the manifest says {expected}"
        seen = count_records(run["topic"], read_committed=transactional)
        run["counted"] = seen
        if seen != expected:
            return f"consumer counted {seen} records on {run['topic']}, expected {expected}"
        if "dlq_topic" in run:
            dlq = count_records(run["dlq_topic"], read_committed=True)
            run["counted_dlq"] = dlq
            if dlq != manifest.dlq:
                return f"consumer counted {dlq} DLQ records, expected {manifest.dlq}"
        return ""
    finally:
        delete_topics(topics)


def describe_machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    versions = {}
    for name in (
        "confluent_kafka",
        "fastavro",
        "great_expectations",
        "pandas",
        "numpy",
        "pyarrow",
        "airflow",
    ):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", "?")
        except ImportError:
            versions[name] = "absent"
    import confluent_kafka

    versions["librdkafka"] = confluent_kafka.libversion()[0]
    versions["python"] = platform.python_version()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "load_before": os.getloadavg(),
        "versions": versions,
        "kafka": os.environ.get("KAFKA_VERSION", "?"),
        "apicurio": os.environ.get("APICURIO_VERSION", "?"),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip(),
    }


if __name__ == "__main__":
    main()
