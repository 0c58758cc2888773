"""What must hold before anything is submitted, each broken one a one-line StageError with its fix:
the points clone the committed code from the git remote and share data through the DVC remote,
so the working tree must be clean, HEAD pushed and the default DVC remote one a clone reaches."""

from __future__ import annotations

from pathlib import Path

from mmloop.core.stage import StageError
from mmloop.sweep.commands import CommandFailed, dvc, git


def repo_root(cwd: Path) -> Path:
    """The top of the git repository around `cwd`, which must also be a DVC repository."""
    try:
        root = Path(git("rev-parse", "--show-toplevel", cwd=cwd).strip())
    except (CommandFailed, FileNotFoundError):
        raise StageError(f"{cwd}: not in a git repository; run the sweep from a clone of the project") from None
    if not (root / ".dvc").is_dir():
        raise StageError(f"{root}: not a DVC repository (no .dvc/); run the sweep from the project's clone")
    return root


def baseline(root: Path) -> str:
    return git("rev-parse", "HEAD", cwd=root).strip()


def clean_tree(root: Path) -> None:
    """The points run HEAD as committed: an edit they would not see must not look like part of it."""
    changed = git("status", "--porcelain", "--untracked-files=no", cwd=root).splitlines()
    if changed:
        names = [line[3:] for line in changed]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise StageError(
            f"uncommitted changes to tracked files ({shown}): the points run the committed code (HEAD); "
            "commit and push first"
        )


def git_url(root: Path, remote: str) -> str:
    """The URL the points clone; a local path becomes absolute (tasks run in other folders)."""
    try:
        url = git("remote", "get-url", remote, cwd=root).strip()
    except CommandFailed:
        remotes = ", ".join(git("remote", cwd=root).split()) or "none"
        raise StageError(
            f"git remote '{remote}' not found (remotes: {remotes}); add it (git remote add {remote} <url>) "
            "or name another with --git-remote"
        ) from None
    local = root / url
    return str(local.resolve()) if "://" not in url and local.exists() else url


def pushed(root: Path, remote: str, sha: str) -> None:
    """HEAD must be on the git remote: the points clone it from there."""
    try:
        git("fetch", "--quiet", remote, cwd=root)
    except CommandFailed as failed:
        raise StageError(f"git fetch {remote} failed ({failed.gist}); check the remote's URL and access") from None
    branches = git("branch", "--remotes", "--contains", sha, "--format=%(refname:short)", cwd=root).split()
    if not any(branch.startswith(f"{remote}/") for branch in branches):
        raise StageError(
            f"HEAD ({sha[:8]}) is not on git remote '{remote}': the points clone it from there; git push first"
        )


def dvc_remote(root: Path) -> str:
    """The default DVC remote as a clone of the repository sees it (so not .dvc/config.local,
    which clones do not get), where a clone elsewhere finds the same storage: a URL, or an absolute
    path outside the repository (a relative one is relative to each clone's own .dvc/)."""
    from dvc.config import Config

    config = Config(dvc_dir=str(root / ".dvc"))
    raw = {level: Config.load_file(path) if Path(path).is_file() else {} for level, path in config.files.items()}
    seen = [raw[level] for level in ("repo", "global", "system")]  # the clones' levels, first wins
    name = next((conf["core"]["remote"] for conf in seen if conf.get("core", {}).get("remote")), None)
    if not name:
        where = (
            " (only in .dvc/config.local, which clones do not get)"
            if raw["local"].get("core", {}).get("remote")
            else ""
        )
        raise StageError(
            f"no default DVC remote{where}: the points pull their inputs from it and push their outputs to it; "
            "add one (dvc remote add -d team <url>, docs/remotes.md), commit .dvc/config and push"
        )
    url = next((conf["remote"][name].get("url", "") for conf in seen if name in conf.get("remote", {})), "")
    if "://" in url:
        return name
    if not url:
        raise StageError(
            f"the default DVC remote '{name}' is defined only in .dvc/config.local, which clones do not get; "
            f"define it in .dvc/config (dvc remote add -d {name} <url>), commit and push"
        )
    if name in raw["repo"].get("remote", {}) and not Path(url).is_absolute():
        path = (root / ".dvc" / url).resolve()
        if path.is_relative_to(root.resolve()):
            raise StageError(
                f"the default DVC remote '{name}' ({path}) is a folder inside the repository: each point's clone "
                "would push into its own copy; add a team remote outside it (dvc remote add -d team <url>, "
                "docs/remotes.md)"
            )
        raise StageError(
            f"the default DVC remote '{name}' is the relative path {url} in .dvc/config: each point's clone would "
            f"find another folder; make it absolute (dvc remote modify {name} url {path}), commit and push"
        )
    return name


def stage_targets(root: Path, targets: list[str]) -> None:
    """Each --stage must name a stage of dvc.yaml (a typo would fail every point on the cluster)."""
    if not targets:
        return
    try:
        names = set(dvc("stage", "list", "--name-only", cwd=root).split())
    except CommandFailed as failed:
        raise StageError(f"dvc stage list failed ({failed.gist}); fix dvc.yaml") from None
    groups = {name.split("@")[0] for name in names}  # deploy@<target>: `deploy` runs them all
    for target in targets:
        if target not in names and target not in groups and ":" not in target:
            raise StageError(
                f"--stage {target}: no such stage in dvc.yaml (stages: {', '.join(sorted(names))}); fix the name"
            )
