"""``make bench-cluster``: the pipeline on the 1M-row CSV day against one broker, the 3-broker
cluster and the secured (SASL_SSL) 3-broker cluster, in one run: ``ratio cluster/single`` and
``ratio sasl_ssl/plaintext``.

Each measurement is ``bench/variants.py pipeline`` in a fresh process (as in ``make bench``), the
three targets interleaved rep by rep so that a load change on the shared machine hits all three
alike. A run counts only if its reconciled summary published what the generator's manifest says.
The clusters come from the stack (``make bench-cluster`` starts both): ``--cluster`` a plaintext
cluster's bootstrap (``.stack-plain``, ``KAFKA_BROKERS=3``), ``--secured-stack-dir`` the stack dir
of ``make cluster-up`` (its connections are read from scripts/stack-env.sh in that mode, passwords
from its secrets).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import datagen  # noqa: E402

DATA = REPO / "bench" / "data"
OUT = REPO / "bench" / "out"


def secured_configs(stack_dir: str, base_port: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(ingest, admin) librdkafka settings of the secured cluster, mapped as the hook maps them."""
    from kafka_ingest.provision.security import with_credentials

    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KAFKA_BOOTSTRAP", "KAFKA_SECRETS", "AIRFLOW_CONN_KAFKA"))
    }
    mode = {
        "KAFKA_BROKERS": "3",
        "KAFKA_SECURITY": "sasl_ssl",
        "STACK_DIR": stack_dir,
        "KAFKA_CLUSTER_BASE_PORT": base_port,
    }
    out = subprocess.run(
        ["bash", "-c", f'. "{REPO}/scripts/stack-env.sh" && env -0'],
        env={**keep, **mode},
        check=True,
        capture_output=True,
    ).stdout.decode()
    env = dict(e.partition("=")[::2] for e in out.split("\0") if "=" in e)
    configs = []
    for name in ("AIRFLOW_CONN_KAFKA_DEFAULT", "AIRFLOW_CONN_KAFKA_ADMIN"):
        conn = json.loads(env[name])
        configs.append(with_credentials(conn["extra"], conn["login"], conn["password"]))
    return configs[0], configs[1]


def measure(task: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.variants", json.dumps(task)],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"seconds"')]
    if done.returncode != 0 or not lines:
        return {"error": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-3:]}"}
    return dict(json.loads(lines[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--cluster", required=True, help="bootstrap of the plaintext 3-broker cluster")
    parser.add_argument("--secured-stack-dir", default=str(REPO / ".stack-cluster"))
    parser.add_argument("--secured-base-port", default=os.environ.get("KAFKA_TEST_CLUSTER_BASE_PORT", "9292"))
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = datagen.ensure_day(DATA, args.rows, ("csv",))
    ingest, admin = secured_configs(args.secured_stack_dir, args.secured_base_port)
    targets = {
        "single": {},
        "cluster": {"BENCH_KAFKA_CONFIG": json.dumps({"bootstrap.servers": args.cluster})},
        "sasl_ssl": {"BENCH_KAFKA_CONFIG": json.dumps(ingest), "BENCH_ADMIN_CONFIG": json.dumps(admin)},
    }
    seconds: dict[str, list[float]] = {name: [] for name in targets}
    for rep in range(args.reps):
        for name, env in targets.items():
            task = {
                "variant": "pipeline",
                "format": "csv",
                "rows": args.rows,
                "file": manifest.files["csv"],
                "batch_size": 0,
                "log": str(OUT / f"cluster-{name}.log"),
            }
            run = measure(task, env)
            ok = "error" not in run and run["published"] == manifest.published and run["dlq"] == manifest.dlq
            line = (
                f"{args.rows / run['seconds']:>9,.0f} rows/s {run['seconds']:6.1f}s "
                f"cpu {run['cpu_seconds']:5.1f}s"
                if ok
                else f"VOID {run}"
            )
            print(
                f"bench-cluster: {name:<8} rep {rep + 1}/{args.reps}: {line} load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            if ok:
                seconds[name].append(run["seconds"])
    median = {name: statistics.median(s) for name, s in seconds.items() if s}
    for name, value in median.items():
        print(f"bench-cluster: {name:<8} median {args.rows / value:,.0f} rows/s ({value:.1f}s)")
    if {"single", "cluster"} <= set(median):
        print(f"ratio cluster/single: {median['single'] / median['cluster']:.2f} (throughput)")
    if {"cluster", "sasl_ssl"} <= set(median):
        print(
            f"ratio sasl_ssl/plaintext: {median['cluster'] / median['sasl_ssl']:.2f} "
            "(throughput, both 3 brokers)"
        )


if __name__ == "__main__":
    main()
