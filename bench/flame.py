"""Summarise a py-spy ``--format raw`` profile: inclusive and self share per function.

``python -m bench.flame profile.txt [N] [filter]`` prints the top N functions by inclusive time
(a function counted once per sample even when recursive) and by self time.
"""

from __future__ import annotations

import re
import sys
from collections import Counter


def main() -> None:
    path, top = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 30
    pattern = re.compile(sys.argv[3]) if len(sys.argv) > 3 else None
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    with open(path, encoding="utf-8") as lines:
        text = lines.read().splitlines()
    for line in text:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    print(f"{total} samples")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"--- {title}")
        shown = 0
        for frame, n in counter.most_common():
            if pattern and not pattern.search(frame):
                continue
            print(f"{100 * n / total:5.1f}%  {frame}")
            shown += 1
            if shown >= top:
                break


if __name__ == "__main__":
    main()
