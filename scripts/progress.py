"""Run a long, quiet command and show it is alive: elapsed time every N seconds, with the latest
build step (ninja's `[k/N]`) when the command prints one; its whole output only if it fails.

    python scripts/progress.py --label "mmcv build" -- pip install -v ... mmcv==2.1.0

mmcv 2.1.0 has no wheel on PyPI, so `make setup` builds it from source: 10+ minutes on 2 cores
that `pip --quiet` would spend in silence.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import threading
import time

STEP = re.compile(r"\[(\d+)/(\d+)\]")


def minutes(seconds: float) -> str:
    return f"{int(seconds) // 60} min {int(seconds) % 60:02d} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", required=True, help="what the command does, for the progress lines")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between progress lines")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    start = time.monotonic()
    tail: collections.deque[str] = collections.deque(maxlen=60)
    step: list[str] = []
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            tail.append(line.rstrip())
            found = STEP.search(line)
            if found:
                step[:] = [f"compiled {found.group(1)}/{found.group(2)}"]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while reader.is_alive():
        reader.join(args.every)
        if reader.is_alive():
            detail = f", {step[0]}" if step else ""
            print(f"  {args.label}: {minutes(time.monotonic() - start)}{detail}", flush=True)
    code = process.wait()
    if code:
        print("\n".join(tail), file=sys.stderr)
        print(
            f"  {args.label}: failed after {minutes(time.monotonic() - start)} (exit {code}); its last lines are above",
            file=sys.stderr,
        )
    else:
        print(f"  {args.label}: done in {minutes(time.monotonic() - start)}", flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
