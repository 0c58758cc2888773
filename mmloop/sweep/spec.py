"""What a sweep is (sweep.json) and where its pieces live in the sweep folder.

    <sweep dir>/sweep.json           baseline sha, git remote URL, stage targets, the points
    <sweep dir>/job.sh, job.json     the Slurm job script and the id of the job last submitted
    <sweep dir>/logs/point-<i>.log   each point's log (sbatch --output)
    <sweep dir>/points/<i>/repo      the point's clone (removed once its experiment is pushed)
    <sweep dir>/points/<i>/status.json   what the task did: exit code, failing step, log path

Every path in sweep.json is absolute: tasks run on other machines, in other folders."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mmloop.core.stage import write_json
from mmloop.sweep.grid import Point


@dataclass(frozen=True)
class Sweep:
    baseline: str  # the commit every point runs (HEAD when submitted, on the git remote)
    git_remote: str  # its name in the submitting repository
    git_url: str  # what the points clone and push their experiments to
    targets: tuple[str, ...]  # stages for `dvc exp run` (empty: the whole pipeline)
    points: tuple[Point, ...]
    cache_dir: str | None = None  # a DVC cache shared by the points, or None: each clone its own
    id: str = field(init=False)

    def __post_init__(self) -> None:
        # The baseline and the grid, not the options that only say how to run it: the same sweep
        # submitted again finds its folder (logs, statuses) and the same experiment names.
        grid = hashlib.md5(json.dumps([point.name for point in self.points]).encode()).hexdigest()
        object.__setattr__(self, "id", f"{self.baseline[:8]}-{grid[:8]}")

    def point(self, index: int) -> Point:
        for point in self.points:
            if point.index == index:
                return point
        raise KeyError(f"no point {index} in sweep {self.id} (points 0..{len(self.points) - 1})")

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["points"] = [asdict(point) for point in self.points]
        return payload

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> Sweep:
        points = tuple(Point(p["index"], p["name"], tuple(p["overrides"])) for p in payload["points"])
        return cls(
            baseline=payload["baseline"],
            git_remote=payload["git_remote"],
            git_url=payload["git_url"],
            targets=tuple(payload["targets"]),
            points=points,
            cache_dir=payload.get("cache_dir"),
        )


@dataclass(frozen=True)
class SweepFolder:
    root: Path

    @property
    def spec(self) -> Path:
        return self.root / "sweep.json"

    @property
    def job_script(self) -> Path:
        return self.root / "job.sh"

    @property
    def job_record(self) -> Path:
        return self.root / "job.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, index: int) -> Path:
        return self.logs / f"point-{index}.log"

    def clone(self, index: int) -> Path:
        return self.root / "points" / str(index) / "repo"

    def status_file(self, index: int) -> Path:
        return self.root / "points" / str(index) / "status.json"

    def write(self, sweep: Sweep) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        write_json(self.spec, sweep.to_json())

    def read(self) -> Sweep:
        return Sweep.from_json(json.loads(self.spec.read_text()))

    def status(self, index: int) -> dict[str, Any] | None:
        """The point's status.json, or None when its task has not finished (or was killed)."""
        try:
            return json.loads(self.status_file(index).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def forget(self, indices: list[int]) -> None:
        """Drop the statuses of points about to run, so a stale one is never read as their result."""
        for index in indices:
            self.status_file(index).unlink(missing_ok=True)
