"""The demo remote (demo-remote/, a folder git carries) holds what a bare `dvc pull` needs, and
stays small: at most 40 MB in the checkout, and main's trained and deployed models at most 16 MB
of git history (git stores each file zlib-compressed, so that is what one model change adds: two
loops now, the LiDAR one's 2.6 MB model and the camera one's 3.9 MB, each with its export and
int8 model; 13.6 MB when the camera loop came)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest

from tests.helpers import REPO

REMOTE = REPO / "demo-remote" / "files" / "md5"
MB = 1_000_000


def remote_object(md5: str) -> Path:
    return REMOTE / md5[:2] / md5[2:]


@pytest.fixture(scope="module")
def cached_outs() -> list[tuple[str, str, str]]:
    """(stage or .dvc file, path, md5) of every output DVC caches, as main's dvc.yaml, dvc.lock and
    .dvc files resolve them (cache: false outputs, such as work/prepared and the metrics, are in
    git or rebuilt, and a pull never asks for them)."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        return [
            (out.stage.addressing, out.def_path, out.hash_info.value)
            for out in repo.index.outs
            if out.use_cache and out.hash_info
        ]


def object_files(md5: str) -> list[Path]:
    """The remote's objects of one output: the file, or a folder's .dir listing and its files."""
    listing = remote_object(md5)
    if not md5.endswith(".dir") or not listing.is_file():
        return [listing]
    return [listing, *(remote_object(entry["md5"]) for entry in json.loads(listing.read_text()))]


def test_every_cached_output_is_in_the_demo_remote(cached_outs: list[tuple[str, str, str]]) -> None:
    """What makes a bare `dvc pull` exit 0 on a fresh clone (tests/pipeline pulls for real)."""
    assert {path for _, path, _ in cached_outs} >= {"data", "checkpoints", "models/model.pth", "deploy/onnx"}
    for owner, path, md5 in cached_outs:
        missing = [obj for obj in object_files(md5) if not obj.is_file()]
        assert not missing, f"{owner}: {path} is not in demo-remote/ ({missing[0].name}); run `make publish-demo`"


def test_demo_remote_is_at_most_40_mb() -> None:
    size = sum(path.stat().st_size for path in REMOTE.rglob("*") if path.is_file())
    assert size <= 40 * MB, f"demo-remote/ holds {size / MB:.1f} MB; `make publish-demo` drops unreferenced objects"


def test_a_model_change_adds_at_most_16_mb_to_git_history(cached_outs: list[tuple[str, str, str]]) -> None:
    models = {obj for owner, _, md5 in cached_outs if not owner.endswith(".dvc") for obj in object_files(md5)}
    compressed = sum(len(zlib.compress(path.read_bytes())) for path in models)
    assert models and compressed <= 16 * MB, f"main's models take {compressed / MB:.1f} MB in git"
