"""``python -m kafka_ingest <command>``: the project's developer commands.

- ``scaffold``: add a topic outside the core package (docs/adding-a-topic.md).
- ``replay``: replay a selection of a topic's DLQ (docs/dlq-replay.md).
- ``topics ensure``: create the specs' topics, report drift, write ACLs (docs/security.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kafka_ingest import replay_cli, scaffold, topics_command


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kafka_ingest", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    scaffold.add_command(commands)
    replay_cli.add_command(commands)
    topics_command.add_command(commands)
    args = parser.parse_args(argv)
    return int(args.run(args))


# Airflow's plugin loader executes every .py file under plugins/ as a module named after the file,
# so this file also runs as "__main__" there: only ``python -m kafka_ingest`` may start the command.
if __name__ == "__main__" and __spec__ is not None and __spec__.name == "kafka_ingest.__main__":
    sys.exit(main())
