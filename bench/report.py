"""``docs/benchmarks.md`` and ``docs/benchmarks.png`` from ``bench/out/results.json``.

``python -m bench.report`` rewrites both from the last run's results.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
PNG = REPO / "docs" / "benchmarks.png"
ORDER = (
    "pipeline",
    "pipeline-dag",
    "pipeline-dag-lineage",
    "limit-fastavro",
    "limit-bytes",
    "peer",
    "peer-defaults",
)
KEY = ("csv", 1_000_000)


DAYS_VARIANTS = ("pipeline-days", "backfill-local", "backfill-celery")
BACKFILL_BEGIN = "<!-- backfill:begin -->"
BACKFILL_END = "<!-- backfill:end -->"


def write(payload: dict[str, Any]) -> None:
    """The whole report; a run of the backfill variants alone (``make bench-backfill``) rewrites
    only the backfill section of the existing ``docs/benchmarks.md``, keeping the rest."""
    results = [r for r in payload["results"] if r["variant"] not in DAYS_VARIANTS]
    days = [r for r in payload["results"] if r["variant"] in DAYS_VARIANTS]
    section = backfill_section(payload["machine"], payload.get("backfill_data", {}), days) if days else []
    if not results and DOC.exists():
        DOC.write_text(splice(DOC.read_text(), "\n".join(section)))
        print(f"report: the backfill section of {DOC.relative_to(REPO)}")
        return
    text = markdown(payload["machine"], payload["data"], results)
    DOC.write_text(text + ("\n" + "\n".join(section) if section else ""))
    plot(results)
    print(f"report: {DOC.relative_to(REPO)} and {PNG.relative_to(REPO)}")


def splice(doc: str, section: str) -> str:
    """``doc`` with its backfill section (between the markers) replaced, or ``section`` appended."""
    begin, end = doc.find(BACKFILL_BEGIN), doc.find(BACKFILL_END)
    if begin == -1 or end == -1:
        return doc.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    return doc[:begin] + section.rstrip("\n") + doc[end + len(BACKFILL_END) :]


def backfill_ratio(days: list[dict[str, Any]], variant: str) -> float | None:
    found = {r["variant"]: r for r in days}
    base, other = found.get("pipeline-days"), found.get(variant)
    if not base or not other or not base.get("seconds") or not other.get("seconds"):
        return None
    return float(other["seconds"]) / float(base["seconds"])


def backfill_section(machine: dict[str, Any], data: dict[str, Any], days: list[dict[str, Any]]) -> list[str]:
    """Wall times, the ratios over ``pipeline-days``, the publish tasks' peak RSS, where the time goes."""
    rows = []
    for r in sorted(days, key=lambda r: DAYS_VARIANTS.index(r["variant"])):
        loads = [x.get("load1", 0) for x in r["runs"]]
        load = f"{statistics.median(loads):.1f}" if loads else "?"
        if r["void"] or not r["seconds"]:
            rows.append(f"| {r['variant']} | VOID: {r['void'] or 'no measurement'} |" + " |" * 8)
            continue
        ratio = backfill_ratio(days, r["variant"])
        each = ", ".join(f"{x['seconds']:.1f}" for x in r["runs"] if "seconds" in x)
        if r["variant"] == "pipeline-days":
            rss = f"{r['rss_mb']:,.0f} (the process)"
        else:
            sampled = [x for x in r["runs"] if x.get("publish_rss_mb_max")]
            rss = (
                f"{max(x['publish_rss_mb_max'] for x in sampled):,.0f} max / "
                f"{statistics.median(x['publish_rss_mb_median'] for x in sampled):,.0f} median "
                f"({sum(x['publish_tasks_sampled'] for x in sampled)} of "
                f"{sum(x['publish_tasks'] for x in sampled)} tasks)"
                if sampled
                else "not sampled"
            )
        cpu = _cpu(r)
        base_cpu = next((_cpu(x) for x in days if x["variant"] == "pipeline-days" and x["seconds"]), 0.0)
        cpu_ratio = f"{cpu / base_cpu:.2f}" if base_cpu and cpu else "n/a"
        rows.append(
            f"| {r['variant']} | {r['seconds']:.1f} | {each} | {r['rows_per_s']:,.0f} "
            f"| {f'{ratio:.2f}' if ratio else '1.00'} | {cpu:.1f} | {cpu_ratio} | {rss} "
            f"| {r['reps']} | {load} |"
        )
    ratios = [
        f"ratio {v}/pipeline: {f'{x:.2f}' if (x := backfill_ratio(days, v)) else 'n/a'}"
        for v in DAYS_VARIANTS[1:]
    ]
    size = (
        f"{data.get('days', '?')} days x {data.get('rows_per_day', 0):,} order rows, "
        f"{data.get('parts', '?')} CSV part files a day ({data.get('input_bytes', 0) / 1e6:,.0f} MB); "
        f"a correct run publishes {data.get('published', 0):,} and dead-letters {data.get('dlq', 0):,}"
    )
    lines = [
        BACKFILL_BEGIN,
        "## Backfill: the scheduler's overhead",
        "",
        f"Run {machine['date']} at commit {machine.get('commit', '?')}; load average (1/5/15 min) before "
        f"{_load(machine['load_before'])}, after {_load(machine['load_after'])}; data: {size}.",
        "",
        "wall s = median of the repetitions (each listed); / pipeline-days = wall time over the "
        "pipeline's on the same rows; CPU s = CPU seconds (median) of the pipeline's process, and for a "
        "backfill of all the stack's Airflow processes and their children (scheduler, executor workers, "
        "task processes, api-server, dag-processor, triggerer) from its creation to its end: less "
        "sensitive to the load of this shared machine than wall time; load = 1-minute load average "
        "when each repetition started (2 cores: above 2 means waiting for a CPU).",
        "",
        "| variant | wall s | each | rows/s | / pipeline-days | CPU s | CPU / pipeline-days "
        "| peak RSS MB (publish task) | reps | load |",
        "|---|---:|---|---:|---:|---:|---:|---|---:|---:|",
        *rows,
        "",
        *ratios,
        "",
        *_where_time_goes(days),
        *BACKFILL_METHOD,
        BACKFILL_END,
    ]
    return lines


def _where_time_goes(days: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in days:
        for n, run in enumerate(x for x in r["runs"] if x.get("where_time_goes")):
            lines += [
                f"Where the time goes, {r['variant']} (repetition {n + 1}: {run['runs']} runs, "
                f"max active runs {run['max_active_runs']}, "
                f"publish tasks on {', '.join(run['publish_hosts'])}, "
                f"{run['tries']} retries):",
                "",
                "| task | instances | median running s | total running s | median scheduled→queued s "
                "| median queued→started s |",
                "|---|---:|---:|---:|---:|---:|",
            ]
            for task, w in run["where_time_goes"].items():
                lines.append(
                    f"| {task} | {w['count']:.0f} | {w['median_run_s']:.1f} | {w['total_run_s']:.1f} "
                    f"| {w['median_scheduled_to_queued_s']:.1f} | {w['median_queued_to_start_s']:.1f} |"
                )
            lines.append("")
    return lines


BACKFILL_METHOD = [
    "### Method (backfill)",
    "",
    "- **Data**: `datagen.ensure_days`: 10 days (2026-01-01..10) x 200,000 order rows, each day its own",
    "  table (own seed and order numbers, ~1 % bad rows, 0.05 % duplicates, some across its part files)",
    "  split into 3 contiguous CSV part files plus `_SUCCESS`, in `bench/data/` (gitignored, reused).",
    "- `pipeline-days`: one warm process (imports before the clock, as in `pipeline`), the days one after",
    "  the other: per day `build_job` + `IngestionJob.run` over its 3 files, as the product publishes",
    "  them. Median of 3 repetitions. The denominator of both ratios.",
    "- `backfill-local` / `backfill-celery`: a DAG built by `build_ingest_dag` over `OrdersToKafkaOperator`",
    "  (the `ingest_orders` shape: sensor, part-file listing, one mapped `publish` task per file,",
    "  report) with its own `dag_id` and topic, pointed at the benchmark's extracts root, written into",
    "  the stack's `test-dags` bundle and unpaused; an `end_date` after the last day keeps the",
    "  scheduler from also starting today's scheduled run. The backfill is created as a user does,",
    "  `POST /api/v2/backfills` (From 2026-01-01 To 2026-01-10, Missing Runs, Max Active Runs",
    "  `BENCH_BACKFILL_MAX_ACTIVE_RUNS`, 10 by default: every day may start at once and the executor's",
    "  4 slots, not the backfill, bound the concurrency). Wall time: from just before that request to",
    "  the `end_date` of the last of its 10 runs (the metadata DB's clock, the same machine). One",
    "  repetition each: every repetition is a new DAG and topic.",
    "- **Both executors in one run**: `bench/run.py` switches the running stack with `scripts/stack up`",
    "  and `EXECUTOR=local|celery` (the Airflow processes restart; Kafka, the registry and PostgreSQL",
    "  keep running; the switch is not timed) and puts back the executor it found. `make bench`",
    "  measures everything, `make bench-backfill` only these three and rewrites only this section.",
    "  LocalExecutor: `[core] parallelism` 4. Celery: 2 workers x concurrency 2 = 4 slots, Redis broker.",
    "- **Checked** like the other variants: all 10 runs must end `success`, and a read_committed",
    "  consumer must count exactly the manifest's published rows on the topic and its dead-lettered",
    "  rows on the DLQ; otherwise the measurement is VOID and `make bench` fails.",
    "- **Peak RSS of a `publish` task**: while the backfill runs, `bench/backfill.py` scans `/proc` every",
    "  0.2 s for Airflow's task processes (the task runner titles itself `airflow worker -- <task",
    "  instance id>`, on both executors) and keeps each one's `VmHWM` (the kernel's high-water mark of",
    "  its resident set; it counts pages shared with the worker it was forked from). Matched by id to",
    "  the `publish` task instances from the REST API; the table gives the largest and the median, and",
    "  how many of the 30 were sampled (a task shorter than one interval could be missed).",
    "- **Where the time goes**: per task, from the REST API's task instances: running time (task",
    "  start-up included), scheduled → queued (waiting for the scheduler and for a free executor slot:",
    "  with 10 days at once and 4 slots, mostly the slot) and queued → started (the executor and the",
    "  task process's start). Findings and tuning: [performance.md](performance.md), section",
    '  "The backfill benchmark".',
    "",
]


def _find(results: list[dict[str, Any]], variant: str, fmt: str, rows: int) -> dict[str, Any] | None:
    for r in results:
        if (r["variant"], r["format"], r["rows"]) == (variant, fmt, rows) and r["rows_per_s"]:
            return r
    return None


def _ratio(r: dict[str, Any], other: dict[str, Any] | None) -> str:
    if other is None or not r["rows_per_s"]:
        return "n/a"
    return f"{r['rows_per_s'] / other['rows_per_s']:.2f}"


def markdown(machine: dict[str, Any], data: dict[str, Any], results: list[dict[str, Any]]) -> str:
    rows = []
    for r in sorted(
        results, key=lambda r: (ORDER.index(r["variant"]), r["format"] != "csv", r["format"], r["rows"])
    ):
        size = r["rows"]
        if r["void"]:
            void = f"| {r['variant']} | {r['format']} | {size:,} | VOID: {r['void']} "
            rows.append(void + "| " * 9 + "|")
            continue
        fast = _find(results, "limit-fastavro", "csv", size)
        raw = _find(results, "limit-bytes", "csv", size)
        peer = _find(results, "peer", "csv", size)
        mb_s = r["input_bytes"] / 1e6 / r["seconds"]
        cpu = statistics.median(x.get("cpu_seconds", 0) for x in r["runs"])
        load = statistics.median(x.get("load1", 0) for x in r["runs"])
        rows.append(
            f"| {r['variant']} | {r['format']} | {size:,} | {r['rows_per_s']:,.0f} | {r['seconds']:.1f} "
            f"| {cpu:.1f} "
            f"| {_ratio(r, fast)} | {_ratio(r, raw)} | {_ratio(r, peer)} | {r['rss_mb']:,.0f} | {mb_s:.1f} "
            f"| {r['reps']} | {load:.1f} |"
        )
    pipeline = _find(results, "pipeline", *KEY)
    fast, raw, peer = (_find(results, v, *KEY) for v in ("limit-fastavro", "limit-bytes", "peer"))
    dag = _find(results, "pipeline-dag", *KEY)
    small, big = _find(results, "pipeline", "csv", 500_000), _find(results, "pipeline", "csv", 5_000_000)
    load = machine["load_before"], machine["load_after"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`bench/run.py`, then `bench/report.py`) from one run; numbers are",
        "from that run only. Method, variants and caveats are below the table; what was optimised and",
        "why is in [performance.md](performance.md).",
        "",
        "## Machine",
        "",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores; RAM {machine['ram_gib']} GiB; "
        f"kernel {machine['kernel']}",
        f"- Load average (1/5/15 min) before the run: {_load(load[0])}; after: {_load(load[1])}.",
        "  The machine is shared with other engineers' test runs: the load column of each repetition is in",
        "  `bench/out/results.json`, and wall-clock numbers move with it (CPU seconds much less).",
        f"- Services on the same machine: Apache Kafka {machine['kafka']} (single KRaft node), "
        f"Apicurio Registry {machine['apicurio']}.",
        f"- Versions: {versions}.",
        f"- Run: {machine['date']} at commit {machine.get('commit', '?')}, whole `bench/run.py` wall time "
        f"{machine['bench_wall_seconds'] / 60:.1f} min.",
        "",
        "## Results",
        "",
        "rows/s = extract rows / wall seconds of the timed region (median of the repetitions); CPU s =",
        "CPU seconds of the measuring process in that region (median); ratios are rows/s over the same",
        "size's `limit-fastavro`, `limit-bytes` and tuned `peer` (CSV); RSS = peak resident set of the",
        "measuring process (max over repetitions); MB/s = extract file MB / wall second; load = median",
        "1-minute load average when each repetition started (2 cores: above 2 means waiting for a CPU).",
        "",
        "| variant | format | rows | rows/s | wall s | CPU s | / limit-fastavro | / limit-bytes | / peer "
        "| peak RSS MB | MB/s | reps | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "![rows/s by variant and size](benchmarks.png)",
        "",
        *_data_section(data),
        *METHOD,
        "## Headline numbers (1M-row CSV)",
        "",
    ]
    if small and big:
        lines.append(
            f"- Pipeline peak RSS, 5M rows / 500k rows: {big['rss_mb']:,.0f} / {small['rss_mb']:,.0f} MB = "
            f"{big['rss_mb'] / small['rss_mb']:.2f}."
        )
    if dag and pipeline:
        lines.append(
            f"- `dag.test()` overhead: {dag['seconds']:.1f} s for the DAG vs {pipeline['seconds']:.1f} s "
            f"for the job alone = {dag['seconds'] - pipeline['seconds']:.1f} s."
        )
    lineage = _find(results, "pipeline-dag-lineage", *KEY)
    if dag and lineage:
        lines.append(
            f"- OpenLineage on vs off (1M rows through the DAG): {lineage['seconds']:.1f} s vs "
            f"{dag['seconds']:.1f} s = {100 * (lineage['seconds'] / dag['seconds'] - 1):+.1f} % "
            "(target: within 3 %)."
        )
    if pipeline and fast and raw and peer:
        cpu = {name: _cpu(r) for name, r in (("p", pipeline), ("f", fast), ("b", raw), ("x", peer))}
        lines.append(
            "- The same comparisons on CPU seconds of the timed region (less sensitive to the load of "
            f"this shared machine): pipeline/limit-bytes {cpu['b'] / cpu['p']:.2f}, pipeline/limit-fastavro "
            f"{cpu['f'] / cpu['p']:.2f}, pipeline/peer {cpu['x'] / cpu['p']:.2f}."
        )
    lines += [
        "",
        f"ratio pipeline/limit-bytes: {_ratio(pipeline, raw) if pipeline else 'n/a'}",
        f"ratio pipeline/limit-fastavro: {_ratio(pipeline, fast) if pipeline else 'n/a'}",
        f"ratio pipeline/peer: {_ratio(pipeline, peer) if pipeline else 'n/a'}",
        "",
    ]
    return "\n".join(lines)


def _cpu(result: dict[str, Any]) -> float:
    return float(statistics.median(run.get("cpu_seconds", 0) for run in result["runs"]))


def _load(values: Any) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def _data_section(data: dict[str, Any]) -> list[str]:
    lines = ["## Data", ""]
    for size, m in sorted(data.items(), key=lambda kv: int(kv[0])):
        sizes = ", ".join(f"{fmt} {b / 1e6:,.0f} MB" for fmt, b in sorted(m["sizes"].items()))
        lines.append(
            f"- {int(size):,} rows ({sizes}): {m['bad']:,} rows breaking one rule each, {m['duplicates']:,} "
            f"duplicate order numbers; a correct run publishes {m['published']:,} and dead-letters "
            f"{m['bad'] + m['duplicates']:,}; the peer's rules pass {m['peer_published']:,}."
        )
    lines.append("")
    return lines


METHOD = [
    "## Method",
    "",
    "- **Data**: `bench/datagen.py` builds the orders extract with numpy and Arrow compute (5M CSV rows in",
    "  well under a minute), ~1 % of rows breaking one rule each (order number format, missing user,",
    "  status, currency, total ≠ sum of items, timestamp without offset, an item with quantity 0, round",
    "  robin) and 0.05 % repeating an earlier order number. It is kept in `bench/data/` (gitignored) and",
    "  reused while the parameters match. The formats of one size hold the same rows.",
    "- **Each measurement runs in a fresh process** (`bench/variants.py`): libraries (GX, pandas, Airflow)",
    "  are imported and inputs prepared before the clock starts; the clock covers what a run does.",
    "  Peak RSS is the process's VmHWM, which includes the imports (~300 MB with GX).",
    "- **Checked**: after each repetition a consumer counts the topic (read_committed for the transactional",
    "  variants, plain for the peer) and the DLQ topic; a count that differs from the generator's",
    "  manifest voids the measurement, loudly (it is shown as VOID and `make bench` fails). Topics are",
    "  unique per repetition and deleted after counting.",
    "- `pipeline`: `build_job` + `IngestionJob.run` on one file: registry pre-check, real transactional",
    "  producer (`publisher.producer_config`), validation with GX, column-wise Avro, DLQ records,",
    "  checkpoints in every transaction, the duplicate rule. Batch size: the product's default.",
    "- `pipeline-dag`: the orders DAG built with `build_ingest_dag` over a unique-topic subclass of",
    "  `OrdersToKafkaOperator`, the `extracts_root` Variable pointing at the 1M CSV day, run once with",
    "  `dag.test()` (sensor, file listing, one mapped publish task, report) after registering it in the",
    "  metadata DB (registration is not timed). Overhead = its wall time minus `pipeline`'s.",
    "  OpenLineage is off (`AIRFLOW__OPENLINEAGE__DISABLED`). `pipeline-dag-lineage`: the same with",
    "  OpenLineage on (the provider's `file` transport); its target is within 3 % of `pipeline-dag`.",
    "- `limit-fastavro`: the valid rows parsed into Avro-ready dicts before the clock, then fastavro",
    "  (`encode.avro.AvroEncoder`) record by record and `produce()` with the same producer settings",
    "  and batch size, one transaction per batch; key and value only (no headers, no DLQ, no checkpoint).",
    "- `limit-bytes`: the same, with the values encoded before the clock: the produce-only ceiling.",
    "- `peer`: what a user would assemble: a `ProduceToTopicOperator`",
    "  (apache-airflow-providers-apache-kafka) run through `execute()` (it reads nothing from the",
    "  context) whose `producer_function` reads the",
    "  whole CSV with pandas (`dtype=str`), validates the whole frame with GX Core (ephemeral context,",
    "  COMPLETE result format) and yields (key, value) for the rows no expectation flagged, the value",
    "  from confluent-kafka's `AvroSerializer` with a real registry client. Expectations: not null on",
    "  the seven required columns, regex on order_number, total_price and created_at (offset",
    "  required), in_set on status and currency, `items` starting with `[{`. Left out, as a user would",
    "  struggle with them in plain GX: the items' JSON and per-item rules, total = sum(quantity x",
    "  unit_price), and the day's first-occurrence-wins duplicate rule; the peer therefore publishes",
    "  more rows than the pipeline (the manifest's count for it). Tuned: `synchronous=False` and a no-op",
    "  `delivery_callback`. `peer-defaults`: the provider's defaults (`synchronous=True`, flush after",
    "  every message, and a callback that logs a line per message; logging at INFO to a file), run at",
    "  100k rows only, once: at ~2k rows/s larger sizes would take most of the benchmark's time.",
    "- **Repetitions and sizes**: 3 repetitions everywhere except `peer-defaults`",
    "  (1). The pipeline runs at every size and format; the ceilings and the tuned peer at 100k,",
    "  500k and 1M CSV rows only (5M pre-parsed dicts for `limit-fastavro` would take several GB, and a",
    "  5M peer repetition ~5 minutes: the whole benchmark would pass 30 minutes on this machine).",
    "",
]


def plot(results: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    csv = [r for r in results if r["format"] == "csv" and r["rows_per_s"]]
    sizes = sorted({r["rows"] for r in csv})
    variants = [v for v in ORDER if any(r["variant"] == v for r in csv)]
    fig, ax = plt.subplots(figsize=(10, 5.5))
    width = 0.8 / max(1, len(variants))
    for i, variant in enumerate(variants):
        xs, ys = [], []
        for j, size in enumerate(sizes):
            r = _find(csv, variant, "csv", size)
            if r:
                xs.append(j + (i - (len(variants) - 1) / 2) * width)
                ys.append(r["rows_per_s"])
        bars = ax.bar(xs, ys, width, label=variant)
        ax.bar_label(bars, labels=[f"{y / 1000:.0f}k" for y in ys], fontsize=7, padding=2)
    others = [r for r in results if r["format"] != "csv" and r["rows_per_s"] and r["rows"] in sizes]
    for r in others:
        x = sizes.index(r["rows"]) - 0.5
        ax.plot([x], [r["rows_per_s"]], marker="o" if r["format"] == "parquet" else "s", color="black")
        label = f"pipeline {r['format']} {r['rows_per_s'] / 1000:.0f}k"
        ax.annotate(
            label, (x, r["rows_per_s"]), fontsize=7, xytext=(-4, 0), textcoords="offset points", ha="right"
        )
    ax.set_xticks(range(len(sizes)), [f"{s:,}" for s in sizes])
    ax.set_xlabel("extract rows (CSV unless marked)")
    ax.set_ylabel("rows/s (median)")
    ax.set_yscale("log")
    ax.set_title("Orders extract → Kafka: rows/s by variant and size")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(PNG, dpi=110)


if __name__ == "__main__":
    write(json.loads((REPO / "bench" / "out" / "results.json").read_text()))
