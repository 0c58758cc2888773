"""`python -m mmloop.sweep`: a grid of `dvc exp run`s as one Slurm array job (or here, one after
another), skipping points already done, then one line per point and `dvc exp pull` of the results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmloop.core.stage import StageError
from mmloop.sweep import checks, experiments, grid, report
from mmloop.sweep.executors import Executor, LocalExecutor, SlurmExecutor
from mmloop.sweep.spec import Sweep, SweepFolder

EPILOG = """\
examples:
  python -m mmloop.sweep --slurm -S 'train.lr=0.0005,0.001' --stage evaluate
  python -m mmloop.sweep --slurm -S 'train.lr=0.0005,0.001' -S 'train.epochs=5,10' \\
      --sbatch-arg=--partition=gpu --sbatch-arg=--time=02:00:00 --detach
  python -m mmloop.sweep --local -S 'train.lr=range(1,4)' --stage train

Each point runs `dvc exp run --pull` in its own clone of the git remote at HEAD and pushes its
experiment there (`dvc exp push`), its outputs to the default DVC remote. Running the same command
again skips the points whose experiment is on the git remote already. Docs: docs/sweep.md."""


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m mmloop.sweep",
        description="Run a grid of DVC experiments as one Slurm array job, one task per point.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = cli.add_mutually_exclusive_group(required=True)
    where.add_argument("--slurm", action="store_true", help="submit one sbatch array job, a task per point")
    where.add_argument("--local", action="store_true", help="run the points here, one after another (no Slurm)")
    cli.add_argument(
        "-S",
        "--set-param",
        action="append",
        default=[],
        metavar="[FILE:]KEY=VALUES",
        help="as `dvc exp run --queue -S`: comma lists, range(start,stop[,step]), choice(a,b); repeat for a grid",
    )
    cli.add_argument(
        "--stage", action="append", default=[], help="stage to run (dvc exp run's targets; repeatable; default: all)"
    )
    cli.add_argument(
        "--git-remote",
        default="origin",
        metavar="NAME",
        help="git remote the points clone and push to (default: origin)",
    )
    cli.add_argument(
        "--sweep-dir",
        type=Path,
        metavar="DIR",
        help="logs, statuses and clones (default: .sweeps/<sweep id>/ in the repository); with --slurm it must "
        "be on a filesystem the compute nodes share",
    )
    cli.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="a DVC cache the points share (dvc config --local cache.dir in each clone): inputs are fetched "
        "once; with --slurm on a shared filesystem",
    )
    cli.add_argument(
        "--sbatch-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra sbatch option, passed through, e.g. --sbatch-arg=--partition=gpu (write it with '='); repeatable",
    )
    cli.add_argument(
        "--max-running", type=int, metavar="N", help="at most this many points at once (sbatch --array=...%%N)"
    )
    cli.add_argument("--detach", action="store_true", help="submit and return (--slurm); rerun to collect")
    cli.add_argument("--dry-run", action="store_true", help="check, expand and print the points; submit nothing")
    return cli


def say(message: str) -> None:
    print(f"mmloop sweep: {message}", flush=True)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def make_executor(options: argparse.Namespace) -> Executor:
    if options.local:
        if options.detach or options.sbatch_arg or options.max_running:
            raise StageError("--detach, --sbatch-arg and --max-running need --slurm; drop them, or use --slurm")
        return LocalExecutor()
    if options.max_running is not None and options.max_running < 1:
        raise StageError(f"--max-running {options.max_running}: give a whole number >= 1")
    return SlurmExecutor(options.sbatch_arg, options.max_running)


def plan(options: argparse.Namespace, executor: Executor) -> tuple[Path, Sweep, SweepFolder]:
    """Every check, then the sweep and its folder; nothing is submitted yet."""
    root = checks.repo_root(Path.cwd())
    executor.check()
    targets = list(options.stage)
    points = grid.expand(options.set_param, root, targets)
    checks.stage_targets(root, targets)
    checks.clean_tree(root)
    url = checks.git_url(root, options.git_remote)
    baseline = checks.baseline(root)
    checks.pushed(root, options.git_remote, baseline)
    checks.dvc_remote(root)
    cache_dir = str(options.cache_dir.resolve()) if options.cache_dir else None
    sweep = Sweep(baseline, options.git_remote, url, tuple(targets), tuple(points), cache_dir)
    folder = SweepFolder(options.sweep_dir.resolve() if options.sweep_dir else root / ".sweeps" / sweep.id)
    return root, sweep, folder


def run(options: argparse.Namespace) -> int:
    executor = make_executor(options)
    root, sweep, folder = plan(options, executor)
    points = plural(len(sweep.points), "point")
    say(f"sweep {sweep.id}: {points} at {sweep.baseline[:8]}, {executor.name}; folder {folder.root}")
    folder.write(sweep)
    done = experiments.on_remote(root, sweep.git_remote, sweep.baseline)
    active = executor.running(folder)
    if active:  # a rerun while the job runs (after --detach, or an interrupted wait): wait for it
        job, ran = active
        say(f"job {job} of this sweep is still queued or running (points {ran}): not submitting again")
        if options.detach or options.dry_run:
            say(f"run the same command again once it is over (squeue --jobs={job}) to collect the results")
            return 0
        executor.wait(job)
        return collect(root, sweep, folder, ran, done)
    ran = [point.index for point in sweep.points if point.name not in done]
    for point in sweep.points:
        if point.name in done:
            say(report.skipped_line(point, sweep))
    if options.dry_run:
        for index in ran:
            say(f"{report.head(sweep.point(index))}: would run")
        if ran:
            say(f"dry run, nothing submitted; it would run: {executor.describe(folder, sweep, ran)}")
        return 0
    if not ran:
        say(f"all {points} are done on {sweep.git_remote}: nothing to submit")
        return collect(root, sweep, folder, ran, done)
    folder.forget(ran)
    job = executor.submit(folder, sweep, ran)
    if job is not None:
        say(f"submitted job {job}: {plural(len(ran), 'array task')}, logs in {folder.logs}")
        if options.detach:
            say(f"run the same command again once the job is over (squeue --jobs={job}) to collect the results")
            return 0
        executor.wait(job)
    return collect(root, sweep, folder, ran, done)


def collect(root: Path, sweep: Sweep, folder: SweepFolder, ran: list[int], done: set[str]) -> int:
    """One line per point, `dvc exp pull` of those that have an experiment, and the verdict."""
    outcomes = []
    for point in sweep.points:
        if point.index in ran:
            outcomes.append(report.finished(point, folder))
        elif point.name in done:
            outcomes.append(report.done_before(point))
        else:
            outcomes.append(report.not_run(point))
    for outcome in outcomes:
        say(outcome.line)
    names = [outcome.point.name for outcome in outcomes if outcome.ok]
    if names:
        experiments.pull(root, sweep.git_remote, names)
        say(
            f"{len(names)} of {plural(len(sweep.points), 'point')} have an experiment here: compare them with `dvc exp show`"
        )
    failed = [outcome.point for outcome in outcomes if not outcome.ok]
    if failed:
        which = ", ".join(str(point.index) for point in failed)
        raise StageError(
            f"{len(failed)} of {plural(len(sweep.points), 'point')} failed (point {which}): read the logs named above, "
            "fix, and run the same command again (the points done are skipped)"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    options = parser().parse_args(argv)
    try:
        return run(options)
    except StageError as error:
        print(f"mmloop sweep: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mmloop sweep: interrupted; a submitted job keeps running: run the same command again to collect it")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
