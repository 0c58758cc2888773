"""A team S3 remote for real: dvc push/pull against a live S3 server (SeaweedFS on loopback).

Scratch clones are made like test_pipeline.py makes them. The rule under test: every cached output
is pushable; the derived, local outputs (work/prepared, work/train) are `cache: false`, so DVC
never caches, pushes or pulls them and `dvc repro` rebuilds them. The remote is configured the way a team
would: `dvc remote add -d team s3://<bucket>/mmloop` plus `endpointurl`, with the credentials only
in .dvc/config.local (`dvc remote modify --local`) or in AWS_* environment variables.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.helpers import GIT_IDENTITY, REPO, copy_repo, tree_md5
from tests.pipeline.s3_server import S3Server, StallingProxy, s3_server, start_s3_server  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow

DVC = [sys.executable, "-m", "dvc"]
PREFIX = "mmloop"
# The data stages (validate + prepare, ~15 s on the sample). `train`/`evaluate` would add minutes
# of CPU training per clone; the run-cache hand-off below is the same for any stage.
TARGET = "prepare"
# What `dvc repro prepare` runs on a fresh clone (validate's committed report is up to date), and
# validate, which the run-cache test forces.
TARGET_STAGES = ("validate", "prepare")
# The stage whose cached outputs (models/model.pth, models/model.py) a teammate pulls instead of
# training: with train.epochs 0 the pretrained weights become the model, in seconds.
MODEL_STAGE = "train"
# Every scratch clone made here, for the secret-leak check at the end.
CLONES: list[Path] = []


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without the caller's AWS settings (tests must not use a real account), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(GIT_IDENTITY)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    # No ~/.aws files either: an empty config (botocore refuses a missing one once it is named).
    empty = Path(tempfile.gettempdir()) / "mmloop-tests-empty-aws-config"
    empty.touch()
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = str(empty)
    env.update(extra)
    return env


def run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, (
            f"{' '.join(map(str, args))} failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def dvc(clone: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    result = run([*DVC, *args], clone, env=env, check=check)
    return result.stdout + result.stderr


def dvc_fails(clone: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = run([*DVC, *args], clone, env=env, check=False)
    out = result.stdout + result.stderr
    assert result.returncode != 0, f"dvc {' '.join(args)} should have failed:\n{out[-4000:]}"
    return out


#: Prints {stage: [[path, cached], ...]} for the dvc.yaml stages of the repo in argv[1], as DVC
#: resolves them (dvc.yaml's paths are ${paths.*} templates and the deploy stages a matrix).
PIPELINE_OUTS = """
import json, sys
from dvc.repo import Repo
from dvc.stage import PipelineStage
with Repo(sys.argv[1]) as repo:
    stages = [stage for stage in repo.index.stages if isinstance(stage, PipelineStage)]
    print(json.dumps({stage.addressing: [[out.def_path, out.use_cache] for out in stage.outs] for stage in stages}))
"""


def pipeline_outs(clone: Path) -> dict[str, list[tuple[str, bool]]]:
    """Stage name -> its outputs (outs, metrics, plots) as (resolved path, cached)."""
    result = run([sys.executable, "-c", PIPELINE_OUTS, str(clone)], clone)
    return {stage: [(path, cached) for path, cached in outs] for stage, outs in json.loads(result.stdout).items()}


def cached_stage_outs(clone: Path) -> list[str]:
    """Paths of the cached stage outputs (DVC, never git, carries them; every one is pushable)."""
    return [path for outs in pipeline_outs(clone).values() for path, cached in outs if cached]


def uncached_stage_outs(clone: Path, stage: str) -> list[str]:
    """Paths of a stage's `cache: false` outputs: in git (metrics, plots) or derived and local."""
    return [path for path, cached in pipeline_outs(clone)[stage] if not cached]


def make_origin(root: Path) -> Path:
    """The team's git repo: copy_repo's snapshot of the working tree, minus stage outputs.

    copy_repo copies untracked, not-ignored files too; a pipeline output lying in the working tree
    (say a freshly trained models/model.pth) must not be committed, as in a real repo.
    """
    root.mkdir(parents=True)
    copy_repo(root)
    outs = cached_stage_outs(root)
    run(["git", "rm", "-r", "-q", "--cached", "--ignore-unmatch", *outs], root)
    for out in outs:
        path = root / out
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    run(["git", "commit", "-q", "--allow-empty", "-m", "no stage outputs in git"], root)
    return root


def fresh_clone(source: Path, root: Path, edit=None) -> Path:
    """`git clone` of `source`: committed files only, no DVC cache."""
    run(["git", "clone", "-q", str(source), str(root)], source.parent)
    if edit:
        edit(root)
        run(["git", "commit", "-qam", "scratch edit"], root)
    CLONES.append(root)
    return root


def add_team_remote(
    clone: Path,
    server: S3Server,
    prefix: str = PREFIX,
    name: str = "team",
    local_credentials: bool = True,
    level: str = "--project",
    endpoint: str | None = None,
) -> None:
    """What a team member types: the remote in .dvc/config, the keys only in .dvc/config.local."""
    default = ["-d"] if name == "team" else []
    dvc(clone, "remote", "add", level, *default, name, f"s3://{server.bucket}/{prefix}")
    dvc(clone, "remote", "modify", level, name, "endpointurl", endpoint or server.endpoint)
    if local_credentials:
        dvc(clone, "remote", "modify", "--local", name, "access_key_id", server.access_key)
        dvc(clone, "remote", "modify", "--local", name, "secret_access_key", server.secret_key)


def env_credentials(server: S3Server) -> dict[str, str]:
    """The other way to hand DVC the keys: AWS_* variables, nothing written to disk."""
    return clean_env(AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY=server.secret_key)


def cache_objects(clone: Path) -> set[str]:
    """Object paths in the local cache (files/md5/xx/yyy), i.e. the keys a complete push creates."""
    cache = clone / ".dvc" / "cache"
    return {p.relative_to(cache).as_posix() for p in (cache / "files" / "md5").rglob("*") if p.is_file()}


def remote_objects(server: S3Server, prefix: str) -> set[str]:
    return {key[len(prefix) + 1 :] for key in server.keys(prefix + "/")}


def artifact_dirs(clone: Path) -> list[str]:
    """The outputs of the top-level .dvc files (data/, checkpoints/)."""
    outs = []
    for dvcfile in sorted(p for p in clone.glob("*.dvc") if p.is_file()):
        outs += [out["path"] for out in yaml.safe_load(dvcfile.read_text())["outs"]]
    return outs


def locked_objects(clone: Path, stage: str, paths: list[str]) -> set[str]:
    """Cache keys (files/md5/xx/yyy, a folder's .dir listing) of `paths` as the stage's dvc.lock entry has them."""
    lock = yaml.safe_load((clone / "dvc.lock").read_text())["stages"][stage]
    return {f"files/md5/{out['md5'][:2]}/{out['md5'][2:]}" for out in lock.get("outs", []) if out["path"] in paths}


def snapshot(clone: Path, paths: list[str]) -> dict[str, dict[str, str] | str]:
    """md5 of every file under each path (a file is its own one-entry tree)."""
    result = {}
    for rel in paths:
        path = clone / rel
        result[rel] = tree_md5(path) if path.is_dir() else tree_md5(path.parent).get(path.name, "missing")
    return result


def uncached_objects(clone: Path) -> set[str]:
    """Cache keys of the `cache: false` outputs of the stages the tests run (validate's and
    prepare's reports, prepare's work/prepared listing).

    The run cache copies a run-cached stage's metrics into the local cache (StageCache.save), but
    `dvc push` never sends them: they are in git, or derived and local.
    """
    return set().union(*(locked_objects(clone, stage, uncached_stage_outs(clone, stage)) for stage in TARGET_STAGES))


def run_entry_commands(clone: Path) -> set[str]:
    """The commands of the run-cache entries in the local cache (.dvc/cache/runs/xx/<key>/<value>)."""
    runs = clone / ".dvc" / "cache" / "runs"
    return {yaml.safe_load(entry.read_text())["cmd"] for entry in runs.rglob("*") if entry.is_file()}


def resolved(clone: Path, path: str) -> str:
    """A dvc.yaml path with its ${paths.*} template filled in from the clone's params.yaml."""
    table = yaml.safe_load((clone / "params.yaml").read_text())["paths"]
    return re.sub(r"\$\{paths\.(\w+)\}", lambda match: table[match.group(1)], path)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(s3_server: S3Server) -> S3Server:  # noqa: F811
    return s3_server


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("remote-s3")


@pytest.fixture(scope="module")
def origin(work: Path) -> Path:
    return make_origin(work / "origin")


@pytest.fixture(scope="module")
def producer(work: Path, origin: Path, server: S3Server) -> Path:
    """The machine that has the data: it pulls the artifacts from the in-repo demo remote."""
    clone = fresh_clone(origin, work / "producer")
    dvc(clone, "pull", "-r", "demo", "data.dvc", "checkpoints.dvc")
    add_team_remote(clone, server)
    return clone


@pytest.fixture(scope="module")
def model_v1(producer: Path) -> Path:
    """The producer trains (train.epochs 0: the pretrained weights become the model, seconds, not
    minutes), commits the results and pushes: every cached output is pushable, no dvc.yaml edit."""
    params = yaml.safe_load((producer / "params.yaml").read_text())
    params["train"]["epochs"] = 0
    (producer / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert f"Running stage '{MODEL_STAGE}'" in dvc(producer, "repro", MODEL_STAGE)
    run(["git", "add", "-A"], producer)
    run(["git", "commit", "-qm", "model v1"], producer)
    dvc(producer, "push")
    return producer


@pytest.fixture(scope="module")
def consumer(work: Path, origin: Path, server: S3Server) -> Path:
    """A teammate's fresh clone: remote configured, credentials only in the environment."""
    clone = fresh_clone(origin, work / "consumer")
    add_team_remote(clone, server, local_credentials=False)
    return clone


# -- tests ------------------------------------------------------------------------------------


def test_producer_pushes_everything_pushable(producer: Path, server: S3Server) -> None:
    assert server.keys(PREFIX + "/") == []
    out = dvc(producer, "push")  # the default remote is team: everything pushable in the workspace
    assert "files pushed" in out
    local = cache_objects(producer)
    assert len(local) > 100  # the sample's files, its .dir manifest and the checkpoints
    assert remote_objects(server, PREFIX) == local
    assert "Cache and remote 'team' are in sync" in dvc(producer, "status", "-c", "data.dvc", "checkpoints.dvc")
    # The committed config names the remote; only the ignored config.local holds the secret.
    assert "endpointurl = " + server.endpoint in (producer / ".dvc" / "config").read_text()
    assert server.secret_key not in (producer / ".dvc" / "config").read_text()
    assert server.secret_key in (producer / ".dvc" / "config.local").read_text()
    run(["git", "check-ignore", "-q", ".dvc/config.local"], producer)


def test_fresh_clone_pulls_everything_back_bit_for_bit(producer: Path, consumer: Path, server: S3Server) -> None:
    assert not (consumer / ".dvc" / "cache").exists()
    env = env_credentials(server)
    # models/ and deploy/ are in the committed dvc.lock, but only a machine that ran the pipeline has
    # them to push: --allow-missing skips them. work/prepared and work/train are `cache: false`:
    # `dvc pull` never looks for them.
    out = dvc(consumer, "pull", "--allow-missing", env=env)
    assert "files fetched" in out
    dirs = artifact_dirs(producer)
    assert dirs == ["checkpoints", "data"]
    assert snapshot(consumer, dirs) == snapshot(producer, dirs)
    assert cache_objects(consumer) == cache_objects(producer)
    assert not (consumer / "work" / "prepared").exists() and not (consumer / "work" / "train").exists()
    status = dvc(consumer, "status", "-c", "data.dvc", "checkpoints.dvc", env=env)
    assert "Cache and remote 'team' are in sync" in status, status


def test_run_cache_moves_but_uncached_outputs_are_rebuilt(producer: Path, consumer: Path, server: S3Server) -> None:
    """`push --run-cache` sends the run entries (runs/...), never a `cache: false` output. DVC keeps
    no run entry for a stage with a `cache: false` output (prepare's work/prepared): a teammate
    rebuilds it, to the same reports. validate (a metric only) gets one."""
    dvc(producer, "repro", "--force", "validate")  # a run entry, for its committed report
    out = dvc(producer, "repro", TARGET)
    assert "Running stage 'prepare'" in out
    assert "work/prepared" in uncached_stage_outs(producer, "prepare")
    assert run_entry_commands(producer) == {"python -m stages.validate"}  # none for prepare
    dvc(producer, "push", "--run-cache")
    runs = server.keys(f"{PREFIX}/runs/")
    assert runs, "dvc push --run-cache put no run entries on the remote"
    assert {key[len(PREFIX) + 1 :] for key in runs} == {
        path.relative_to(producer / ".dvc" / "cache").as_posix()
        for path in (producer / ".dvc" / "cache" / "runs").rglob("*")
        if path.is_file()
    }
    uncached = uncached_objects(producer)
    prepared = locked_objects(producer, "prepare", ["work/prepared"])  # its .dir listing
    assert prepared <= uncached and not prepared & cache_objects(producer)  # never cached, by anything
    assert uncached & cache_objects(producer)  # the run cache's copy of validate's report
    assert not remote_objects(server, PREFIX) & uncached  # pushed: never
    assert not (remote_objects(server, PREFIX) >= cache_objects(producer))

    env = env_credentials(server)
    dvc(consumer, "pull", "--run-cache", "--allow-missing", env=env)
    assert tree_md5(consumer / ".dvc" / "cache" / "runs") == tree_md5(producer / ".dvc" / "cache" / "runs")
    out = dvc(consumer, "repro", TARGET, env=env)
    # No run entry for prepare, and its output is on no remote: it runs again, to the same result.
    assert "Running stage 'prepare'" in out, out
    assert snapshot(consumer, ["reports"]) == snapshot(producer, ["reports"])
    assert "Data and pipelines are up to date." in dvc(consumer, "status", TARGET, env=env)


def test_repro_pull_restores_the_model_without_training(model_v1: Path, work: Path, server: S3Server) -> None:
    """Every cached output is pushable: a teammate's `dvc repro --pull train` pulls the model and
    trains nothing. The `cache: false` outputs were never pushed: nothing of them is pulled."""
    producer = model_v1
    models = [path for path, cached in pipeline_outs(producer)[MODEL_STAGE] if cached]
    assert models == ["models/model.pth", "models/model.py"]
    assert "work/train" in uncached_stage_outs(producer, MODEL_STAGE)
    assert locked_objects(producer, MODEL_STAGE, models) <= remote_objects(server, PREFIX)
    assert not locked_objects(producer, MODEL_STAGE, ["work/train"]) & remote_objects(server, PREFIX)
    assert "Cache and remote 'team' are in sync" in dvc(producer, "status", "-c", MODEL_STAGE)

    teammate = fresh_clone(producer, work / "teammate")
    # The remote came with git (.dvc/config); the keys come from the environment.
    assert f"s3://{server.bucket}/{PREFIX}" in (teammate / ".dvc" / "config").read_text()
    assert not (teammate / ".dvc" / "config.local").exists()
    env = env_credentials(server)
    out = dvc(teammate, "repro", "--pull", MODEL_STAGE, env=env)
    assert "Running stage" not in out, out
    assert f"Pulling data for stage: '{MODEL_STAGE}'" in out, out
    # train's outputs and its data and checkpoint dependencies, bit for bit.
    assert snapshot(teammate, [*models, "data", "checkpoints"]) == snapshot(producer, [*models, "data", "checkpoints"])
    assert not (teammate / "work" / "prepared").exists() and not (teammate / "work" / "train").exists()
    status = dvc(teammate, "status", MODEL_STAGE, env=env)
    assert not any(model in status for model in models), status  # the model is as dvc.lock says
    assert "Cache and remote 'team' are in sync" in dvc(teammate, "status", "-c", MODEL_STAGE, env=env)


def test_wrong_secret_fails_clearly_and_keeps_the_cache(producer: Path, server: S3Server) -> None:
    cache_before = tree_md5(producer / ".dvc" / "cache")
    dvc(producer, "remote", "modify", "--local", "team", "secret_access_key", "not-the-secret")
    try:
        out = dvc_fails(producer, "push")
        assert "Forbidden" in out and "403" in out, out
        data_before = tree_md5(producer / "data")
        shutil.rmtree(producer / "data")
        out = dvc_fails(producer, "pull", "data.dvc")
        assert "failed to connect to s3" in out and "Forbidden" in out, out
        assert "failed to pull data from the cloud" in out, out
        # The same through the environment, with nothing in config.local.
        dvc(producer, "remote", "modify", "--local", "--unset", "team", "secret_access_key")
        dvc(producer, "remote", "modify", "--local", "--unset", "team", "access_key_id")
        bad_env = clean_env(AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY="not-the-secret")
        assert "Forbidden" in dvc_fails(producer, "push", env=bad_env)
        assert tree_md5(producer / ".dvc" / "cache") == cache_before
    finally:
        dvc(producer, "remote", "modify", "--local", "team", "access_key_id", server.access_key)
        dvc(producer, "remote", "modify", "--local", "team", "secret_access_key", server.secret_key)
    dvc(producer, "checkout", "data.dvc")
    assert tree_md5(producer / "data") == data_before
    assert "Cache and remote 'team' are in sync" in dvc(producer, "status", "-c", "data.dvc")


def test_stopped_server_fails_clearly_and_keeps_the_cache(producer: Path, work: Path) -> None:
    """A second server that dies: push and pull fail with 'Could not connect', the cache is kept."""
    servers = start_s3_server(work / "doomed-server")
    doomed = next(servers)
    try:
        add_team_remote(producer, doomed, name="doomed", level="--local")
        dvc(producer, "push", "-r", "doomed", "data.dvc")
        doomed.stop()
        assert not doomed.running
        cache_before = tree_md5(producer / ".dvc" / "cache")
        out = dvc_fails(producer, "push", "-r", "doomed", "checkpoints.dvc")
        assert "Could not connect to the endpoint URL" in out, out
        (producer / "data" / "kitti-sample" / "ImageSets" / "val.txt").unlink()
        out = dvc_fails(producer, "pull", "-r", "doomed", "data.dvc")
        assert "failed to connect to s3" in out and "Could not connect to the endpoint URL" in out, out
        assert tree_md5(producer / ".dvc" / "cache") == cache_before
    finally:
        servers.close()  # runs start_s3_server's finally: stop() again (a no-op if already stopped)
        dvc(producer, "remote", "remove", "--local", "doomed")
    dvc(producer, "checkout", "data.dvc")
    assert "Data and pipelines are up to date." in dvc(producer, "status", "data.dvc")


def test_interrupted_push_resumes(work: Path, server: S3Server) -> None:
    prefix = "interrupted"
    clone = fresh_clone(work / "origin", work / "interrupted")
    dvc(clone, "pull", "-r", "demo", "data.dvc", "checkpoints.dvc")
    expected = cache_objects(clone)
    cache = clone / ".dvc" / "cache"
    # Half the bytes get through, then the connection hangs: the kill lands mid-push on any machine.
    proxy = StallingProxy(server.port, budget=sum((cache / key).stat().st_size for key in expected) // 2)
    add_team_remote(clone, server, prefix=prefix, endpoint=proxy.endpoint)
    push = subprocess.Popen(
        [*DVC, "push", "--jobs", "1"],
        cwd=clone,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert proxy.stalled.wait(timeout=120), "dvc push never reached the proxy's byte budget"
    finally:
        try:
            os.killpg(push.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        push.wait(timeout=30)
        proxy.close()
    dvc(clone, "remote", "modify", "team", "endpointurl", server.endpoint)
    partial = remote_objects(server, prefix)
    assert push.returncode == -signal.SIGKILL, "dvc push finished before it could be interrupted"
    assert 0 < len(partial) < len(expected), f"{len(partial)} of {len(expected)} objects after the kill"
    assert partial <= expected
    assert "Cache and remote 'team' are in sync" not in dvc(clone, "status", "-c")

    out = dvc(clone, "push")
    assert "files pushed" in out
    assert remote_objects(server, prefix) == expected
    assert "Cache and remote 'team' are in sync" in dvc(clone, "status", "-c", "data.dvc", "checkpoints.dvc")
    # And a teammate with an empty cache gets the same bytes from the resumed remote.
    other = fresh_clone(work / "origin", work / "after-resume")
    add_team_remote(other, server, prefix=prefix, local_credentials=False)
    dvc(other, "pull", "data.dvc", "checkpoints.dvc", env=env_credentials(server))
    dirs = artifact_dirs(clone)
    assert snapshot(other, dirs) == snapshot(clone, dirs)


def test_device_team_gets_the_registered_model_without_the_history(
    model_v1: Path, work: Path, server: S3Server
) -> None:
    """The `artifacts:` registry in dvc.yaml: `dvc artifacts get` fetches the trained model from
    the team remote, with no clone of the repo and no pipeline run on the device side."""
    producer = model_v1
    # A version in the registry is a GTO tag on the commit that produced it.
    run(["git", "tag", "-a", "pointpillars-small-sample@v1.0.0", "-m", "first model"], producer)
    dvc(producer, "push", MODEL_STAGE)
    registry = yaml.safe_load((producer / "dvc.yaml").read_text())["artifacts"]
    assert registry["pointpillars-small-sample"]["type"] == "model"
    assert resolved(producer, registry["pointpillars-small-sample"]["path"]) in cached_stage_outs(producer)

    device = work / "device"
    device.mkdir()
    out = dvc(
        device,
        "artifacts",
        "get",
        str(producer),
        "pointpillars-small-sample",
        "-o",
        "model.pth",
        env=env_credentials(server),
    )
    assert "Downloaded" in out or (device / "model.pth").is_file(), out
    assert (device / "model.pth").read_bytes() == (producer / "models" / "model.pth").read_bytes()
    assert not (device / ".git").exists() and not (device / ".dvc").exists()


def test_secret_is_in_no_tracked_file(server: S3Server) -> None:
    """After all of the above, the secret is only ever in ignored .dvc/config.local files."""
    assert CLONES, "run with the other tests of this module"
    secret = server.secret_key.encode()

    def tracked(root: Path, *extra: str) -> list[Path]:
        listing = run(["git", "ls-files", "-z", "--cached", *extra], root).stdout.split("\0")
        return [root / name for name in listing if name and (root / name).is_file()]

    leaks = [path for path in tracked(REPO, "--others", "--exclude-standard") if secret in path.read_bytes()]
    for clone in CLONES:
        leaks += [path for path in tracked(clone, "--others", "--exclude-standard") if secret in path.read_bytes()]
        local = clone / ".dvc" / "config.local"
        if local.exists() and secret in local.read_bytes():
            run(["git", "check-ignore", "-q", ".dvc/config.local"], clone)  # exit 0: ignored
    assert not leaks, f"the S3 secret leaked into: {leaks}"
    # The check can see a secret when there is one (the producer's ignored config.local has it).
    assert any(
        secret in (c / ".dvc" / "config.local").read_bytes() for c in CLONES if (c / ".dvc" / "config.local").exists()
    )
