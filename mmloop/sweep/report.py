"""One line per point once its task is over: ok, skipped (already done), or failed (the step, the
exit code, the error line and the log to read)."""

from __future__ import annotations

from dataclasses import dataclass

from mmloop.sweep.grid import Point
from mmloop.sweep.spec import Sweep, SweepFolder


@dataclass(frozen=True)
class Outcome:
    point: Point
    ok: bool
    line: str


def head(point: Point) -> str:
    return f"point {point.index} {point.name} ({point.label()})"


def skipped_line(point: Point, sweep: Sweep) -> str:
    """Why a point is not submitted: its experiment is already on the git remote."""
    return (
        f"{head(point)}: skipped, experiment already on {sweep.git_remote} for baseline {sweep.baseline[:8]} "
        "(same params, same code)"
    )


def done_before(point: Point) -> Outcome:
    return Outcome(point, True, f"{head(point)}: done before, skipped")


def not_run(point: Point) -> Outcome:
    """Neither done nor in the job this run waited for: the next run submits it."""
    return Outcome(point, False, f"{head(point)}: not run yet; run the same command again to submit it")


def finished(point: Point, folder: SweepFolder) -> Outcome:
    """What the point's status.json says; a task killed before writing it (time limit, memory,
    node failure) has none, and its log is where to look."""
    status = folder.status(point.index)
    if status is None:
        return Outcome(
            point,
            False,
            f"{head(point)}: failed: no status.json (killed or never started?); log: {folder.log(point.index)}",
        )
    if status["exit_code"] == 0:
        return Outcome(point, True, f"{head(point)}: ok in {status['seconds']:.0f} s")
    error = f" ({status['error']})" if status.get("error") else ""
    return Outcome(
        point,
        False,
        f"{head(point)}: failed at step '{status['step']}' with exit code {status['exit_code']}{error}; log: {status['log']}",
    )
