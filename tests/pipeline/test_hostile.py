"""The hostile-input catalogue (docs/testing.md lists it): bad data, params, checkpoints, runtime
input, remotes, disks and kills, each against the real stages in one scratch clone.

Every table case breaks one thing in the clone, runs one command and asserts its exit code, the
one line it prints (the file or param, and the fix), that it failed within `seconds` (before any
long compute: no mmengine Runner log line), that no traceback was printed, and, once the input is
restored, that every pre-existing output (and the dataset) is bit for bit what it was. The clone is
made once for the module: `dvc pull` (data, checkpoints and the committed model and deployed
models) and `dvc repro prepare`, ~1 min; each case then costs one process start.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.helpers import REPO, copy_repo, free_ports, kill_when, sh, tree_md5, venv_env

pytestmark = pytest.mark.slow

DVC = [sys.executable, "-m", "dvc"]
SAMPLE = Path("data/kitti-sample")
TRAIN = SAMPLE / "training"
FRAME = "000000"  # the val split's first frame (line 1 of ImageSets/val.txt, 12 lines)
NAN_FRAME = "000003"  # another val frame
MODEL = Path("deploy/onnxruntime-fp32")
# What no failed command may change (the dataset included: commands only read it).
# work/check.json is not watched: DVC removes a stage's outputs before it runs the command, and the
# next `dvc repro` writes the marker again (the same bytes: nothing after it reruns).
WATCHED = ("data", "reports", "models", "work/prepared", "deploy", "metrics", "checkpoints")
DVC_FAILED = 255  # dvc's exit status when a stage or a remote fails
# A Runner that started logs through mmengine: a case that prints this got past the checks.
RUNNER_STARTED = "- mmengine - INFO - "
LINES: list[str] = []  # every case's line, written to $MMLOOP_CATALOGUE_LINES when set


def watched(clone: Path) -> dict[str, str]:
    hashes: dict[str, str] = {}
    for name in WATCHED:
        path = clone / name
        if path.is_file():
            hashes[name] = tree_md5(path.parent)[path.name]
        elif path.is_dir():
            hashes.update({f"{name}/{key}": value for key, value in tree_md5(path).items()})
    return hashes


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    clone = tmp_path_factory.mktemp("hostile") / "mmloop"
    copy_repo(clone)
    sh([*DVC, "pull"], clone)  # data, checkpoints, the committed model and deployed models
    (clone / "work" / "train").mkdir(parents=True, exist_ok=True)  # train's (empty) persist output
    sh([*DVC, "repro", "prepare"], clone)
    yield clone
    if os.environ.get("MMLOOP_CATALOGUE_LINES"):
        Path(os.environ["MMLOOP_CATALOGUE_LINES"]).write_text("".join(line + "\n" for line in LINES))


class Edits:
    """Changes to the clone's files, each undone by `restore()` (bytes and presence as before)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.saved: dict[Path, bytes | None] = {}

    def _save(self, name: str | Path) -> Path:
        path = self.root / name
        if path not in self.saved:
            self.saved[path] = path.read_bytes() if path.is_file() else None
        return path

    def write(self, name: str | Path, data: bytes) -> None:
        path = self._save(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def text(self, name: str | Path, change: Callable[[str], str]) -> None:
        self.write(name, change((self.root / name).read_text()).encode())

    def delete(self, name: str | Path) -> None:
        self._save(name).unlink()

    def cloud(self, name: str | Path, change: Callable[[np.ndarray], None]) -> None:
        points = np.fromfile(self.root / name, np.float32).reshape(-1, 4)
        change(points)
        self.write(name, points.tobytes())

    def params(self, **changes: object) -> None:
        """`data__root='x'` sets data.root in params.yaml."""
        params = yaml.safe_load((self.root / "params.yaml").read_text())
        for dotted, value in changes.items():
            section, key = dotted.split("__")
            params[section][key] = value
        self.write("params.yaml", yaml.safe_dump(params, sort_keys=False).encode())

    def restore(self) -> None:
        for path, data in self.saved.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)
        self.saved.clear()


@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[Edits], None]
    command: tuple[str, ...]  # ("stage", name) | ("dvc", ...) | ("runtime", ...)
    code: int
    line: str  # a regex one printed line must match
    seconds: float = 30.0
    extra: Callable[[Path, str], None] | None = field(default=None)  # more assertions: (clone, output)


def stage(name: str) -> tuple[str, ...]:
    return ("stage", name)


def predict(*args: str) -> tuple[str, ...]:
    return ("runtime", "predict", *args, "--model", str(MODEL), "--threads", "1")


def argv(command: tuple[str, ...], out: Path) -> list[str]:
    kind, *rest = command
    if kind == "stage":
        return [sys.executable, "-m", f"stages.{rest[0]}"]
    if kind == "dvc":
        return [*DVC, *rest]
    return [sys.executable, "-m", "mmloop_runtime", *rest, "--out", str(out)]


def cell(points: np.ndarray, rows: slice, column: int, value: float) -> None:
    points[rows, column] = value


def evil_checkpoint(marker: str) -> bytes:
    """A .pth whose pickle runs `touch <marker>` when loaded without the weights-only unpickler."""
    import io

    import torch

    class Payload:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {marker}",))

    buffer = io.BytesIO()
    torch.save({"state_dict": {}, "meta": {"note": Payload()}}, buffer)
    return buffer.getvalue()


def edited_checkpoint(clone: Path, change: Callable[[dict], None]) -> bytes:
    import io

    import torch

    checkpoint = torch.load(clone / "checkpoints" / "pointpillars_small-sample.pth", weights_only=True)
    change(checkpoint)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


def pickle_marker(clone: Path) -> Path:
    return clone.parent / "pickle-ran"


LOAD_FROM = "checkpoints/pointpillars_small-sample.pth"
NON_UTF8 = b"Car 0.00 0 -1.56 \xff\xfe\x00garbage\n"
VALIDATE_FAILS = r"^mmloop validate: error: "
RUNTIME_FAILS = r"^mmloop_runtime: error: "


def checkpoint_cases() -> list[Case]:
    def swap(edits: Edits, make: Callable[[Path], bytes]) -> None:
        edits.write(LOAD_FROM, make(edits.root))

    def not_run(clone: Path, output: str) -> None:
        assert not pickle_marker(clone).exists(), "the checkpoint's pickle ran"

    def drop_key(checkpoint: dict) -> None:
        checkpoint["state_dict"] = {f"other.{k}": v for k, v in checkpoint["state_dict"].items()}

    def reshape(checkpoint: dict) -> None:
        key = next(k for k in checkpoint["state_dict"] if k.endswith("conv_cls.weight"))
        checkpoint["state_dict"][key] = checkpoint["state_dict"][key][:2]

    def other_classes(checkpoint: dict) -> None:
        checkpoint["meta"]["dataset_meta"]["classes"] = ["Car"]

    where = re.escape(f"{LOAD_FROM} (model.load_from): ")
    return [
        Case(
            "checkpoint-truncated",
            lambda e: swap(e, lambda root: (root / LOAD_FROM).read_bytes()[:50_000]),
            stage("train"),
            1,
            where + r"not a readable checkpoint \(not the zip archive torch\.save writes\); truncated, or not a \.pth",
            60,
        ),
        Case(
            "checkpoint-not-torch",
            lambda e: swap(e, lambda root: b"<html>404 Not Found</html>\n" * 40),
            stage("train"),
            1,
            where + r"not a readable checkpoint \(not the zip archive torch\.save writes\).*fetch it again",
            60,
        ),
        Case(
            "checkpoint-pickle-payload",
            lambda e: swap(e, lambda root: evil_checkpoint(str(pickle_marker(root)))),
            stage("train"),
            1,
            where + r"refused, its pickle calls posix\.system, which a weights-only load never runs",
            60,
            not_run,
        ),
        Case(
            "checkpoint-other-classes",
            lambda e: swap(e, lambda root: edited_checkpoint(root, other_classes)),
            stage("train"),
            1,
            where + r"trained for classes \['Car'\], model\.classes is \['Pedestrian', 'Cyclist', 'Car'\]; set",
            90,
        ),
        Case(
            "checkpoint-other-model",
            lambda e: swap(e, lambda root: edited_checkpoint(root, drop_key)),
            stage("train"),
            1,
            where + r"has no weight '.*' \(\+\d+ more of \d+\) of model\.config's model",
            90,
        ),
        Case(
            "checkpoint-wrong-shape",
            lambda e: swap(e, lambda root: edited_checkpoint(root, reshape)),
            stage("train"),
            1,
            where + r"'.*conv_cls\.weight' is \(2, .*\), the model needs \(\d+, .*\)",
            90,
        ),
        Case(
            "model-truncated",
            lambda e: e.write("models/model.pth", (e.root / "models/model.pth").read_bytes()[:10_000]),
            stage("evaluate"),
            1,
            r"models/model\.pth \(paths\.model\): not a readable checkpoint .*fetch it again",
            60,
        ),
        Case(
            "model-pickle-payload",
            lambda e: e.write("models/model.pth", evil_checkpoint(str(pickle_marker(e.root)))),
            stage("export"),
            1,
            r"models/model\.pth \(paths\.model\): refused, its pickle calls posix\.system",
            60,
            not_run,
        ),
    ]


def data_cases() -> list[Case]:
    velodyne = TRAIN / "velodyne" / f"{FRAME}.bin"
    label = TRAIN / "label_2" / f"{FRAME}.txt"
    calib = TRAIN / "calib" / f"{FRAME}.txt"
    split = SAMPLE / "ImageSets" / "val.txt"
    v = VALIDATE_FAILS
    return [
        Case(
            "cloud-nan-xyz",
            lambda e: e.cloud(velodyne, lambda p: cell(p, slice(100, 150), 0, np.nan)),
            stage("validate"),
            1,
            v + re.escape(f"{velodyne}: 50 point(s) with NaN or infinite fields (first: point 100)") + r".*non-finite",
        ),
        Case(
            "cloud-nan-intensity",  # the case: NaN intensity on 50 points of a val frame
            lambda e: e.cloud(TRAIN / "velodyne" / f"{NAN_FRAME}.bin", lambda p: cell(p, slice(0, 50), 3, np.nan)),
            stage("validate"),
            1,
            v + rf".*{NAN_FRAME}\.bin: 50 point\(s\) with NaN or infinite fields.*\[non-finite-points: drop points",
        ),
        Case(
            "prepare-nan-points",  # prepare run on its own (not behind validate) copies nothing
            lambda e: e.cloud(TRAIN / "velodyne" / f"{NAN_FRAME}.bin", lambda p: cell(p, slice(0, 50), 3, np.nan)),
            stage("prepare"),
            1,
            rf"^mmloop prepare: error: .*{NAN_FRAME}\.bin: 50 point\(s\) with NaN or infinite fields .*"
            r"`dvc repro validate` lists every frame at fault$",
        ),
        Case(
            "cloud-inf",
            lambda e: e.cloud(velodyne, lambda p: cell(p, slice(7, 8), 2, -np.inf)),
            stage("validate"),
            1,
            v + re.escape(f"{velodyne}: 1 point(s) with NaN or infinite fields (first: point 7)"),
        ),
        Case(
            "cloud-truncated",
            lambda e: e.write(velodyne, (e.root / velodyne).read_bytes()[:-3]),
            stage("validate"),
            1,
            v + re.escape(f"{velodyne}: ") + r"\d+ bytes is not a whole number of 4-float points.*\[corrupt-cloud",
        ),
        Case(
            "cloud-empty",
            lambda e: e.write(velodyne, b""),
            stage("validate"),
            1,
            v + re.escape(f"{velodyne}: an empty cloud (0 bytes)"),
        ),
        Case(
            "cloud-missing",
            lambda e: e.delete(velodyne),
            stage("validate"),
            1,
            v + re.escape(f"{split}:1: frame {FRAME} has no {velodyne}") + r".*\[missing-frame",
        ),
        Case(
            "label-not-utf8",
            lambda e: e.write(label, NON_UTF8),
            stage("validate"),
            1,
            v + re.escape(f"{label}:1: not UTF-8 text (byte 0xff at offset 17)") + r".*\[undecodable-text",
        ),
        Case(
            "label-14-fields",
            lambda e: e.text(label, lambda t: t.replace(" -1.54\n", "\n", 1)),
            stage("validate"),
            1,
            v + re.escape(f"{label}:1: expected 15 fields (16 with score), got 14") + r".*\[bad-label",
        ),
        Case(
            "label-unknown-class",
            lambda e: e.text(label, lambda t: "Bus" + t[3:]),
            stage("validate"),
            1,
            v + re.escape(f"{label}:1: unknown class 'Bus'"),
        ),
        Case(
            "label-nan",
            lambda e: e.text(label, lambda t: t.replace(" 23.36 ", " nan ", 1)),
            stage("validate"),
            1,
            v + re.escape(f"{label}:1: a field is NaN or infinite"),
        ),
        Case(
            "label-negative-size",
            lambda e: e.text(label, lambda t: t.replace(" 1.48 1.69 3.75 ", " 1.48 -1.69 3.75 ", 1)),
            stage("validate"),
            1,
            v + re.escape(f"{label}:1: dimensions (h, w, l) must be positive"),
        ),
        Case(
            "label-blank-line",
            lambda e: e.text(label, lambda t: "\n" + t),
            stage("validate"),
            1,
            v + re.escape(f"{label}:1: blank line (mmdet3d's label reader fails on it); delete it"),
        ),
        Case(
            "label-dontcare-first",
            lambda e: e.text(label, lambda t: "DontCare -1 -1 -10 1 1 2 2 -1 -1 -1 -1000 -1000 -1000 -10\n" + t),
            stage("validate"),
            1,
            v + re.escape(f"{label}:2: Car line after a DontCare line") + r".*\[dontcare-order",
        ),
        Case(
            "label-missing",
            lambda e: e.delete(label),
            stage("validate"),
            1,
            v + re.escape(f"{label}: frame {FRAME} has no label_2 file") + r".*\[missing-file",
        ),
        Case(
            "calib-not-utf8",
            lambda e: e.write(calib, (e.root / calib).read_bytes().replace(b"P2: 7", b"P2: \xe97", 1)),
            stage("validate"),
            1,
            v + re.escape(f"{calib}:3: not UTF-8 text (byte 0xe9") + r".*\[undecodable-text",
        ),
        Case(
            "calib-missing-key",
            lambda e: e.text(calib, lambda t: "\n".join(x for x in t.splitlines() if not x.startswith("Tr_velo"))),
            stage("validate"),
            1,
            v + re.escape(f"{calib}: no 'Tr_velo_to_cam:' line") + r".*\[bad-calib",
        ),
        Case(
            "calib-not-a-number",
            lambda e: e.text(calib, lambda t: t.replace("R0_rect: 9", "R0_rect: x9", 1)),
            stage("validate"),
            1,
            v + re.escape(f"{calib}:5: 'R0_rect:' has a value that is not a number"),
        ),
        Case(
            "calib-order",
            lambda e: e.text(calib, lambda t: "\n".join([t.splitlines()[1], t.splitlines()[0], *t.splitlines()[2:]])),
            stage("validate"),
            1,
            v + re.escape(f"{calib}:1: expected P0 on line 1, found 'P1'"),
        ),
        Case(
            "split-not-utf8",
            lambda e: e.write(split, (e.root / split).read_bytes() + b"\x80\x81\n"),
            stage("validate"),
            1,
            v + re.escape(f"{split}:13: not UTF-8 text (byte 0x80") + r".*\[undecodable-text",
        ),
        Case(
            "split-missing",
            lambda e: e.delete(split),
            stage("validate"),
            1,
            v + re.escape(f"{split}: split file not found") + r".*\[missing-split",
        ),
        Case(
            "split-empty",
            lambda e: e.write(split, b"\n"),
            stage("validate"),
            1,
            v + re.escape(f"{split}: split lists no frames"),
        ),
        Case(
            "split-bad-id",
            lambda e: e.text(split, lambda t: "12\n" + t),
            stage("validate"),
            1,
            v + re.escape(f"{split}:1: frame id '12' is not a 6-digit number"),
        ),
        Case(
            "split-duplicate",
            lambda e: e.text(split, lambda t: t + f"{FRAME}\n"),
            stage("validate"),
            1,
            v + re.escape(f"{split}:13: frame {FRAME} is listed twice"),
        ),
        Case(
            "split-overlap",
            lambda e: e.text(SAMPLE / "ImageSets" / "train.txt", lambda t: t + f"{FRAME}\n"),
            stage("validate"),
            1,
            v + re.escape(f"{split}:1: frame {FRAME} is also in split 'train'"),
        ),
        Case(
            "image-missing",
            lambda e: e.delete(TRAIN / "image_2" / f"{FRAME}.png"),
            stage("validate"),
            1,
            v + re.escape(f"{TRAIN}/image_2/{FRAME}.png: frame {FRAME} has no image_2 file"),
        ),
    ]


def params_cases() -> list[Case]:
    def broken_yaml(edits: Edits) -> None:
        edits.text("params.yaml", lambda t: t.replace("  format: kitti\n", "  format: kitti: x\n", 1))

    lines = (REPO / "params.yaml").read_text().splitlines()
    line = 1 + lines.index("  format: kitti")
    return [
        Case(
            "params-yaml-syntax",
            broken_yaml,
            stage("validate"),
            1,
            rf"^mmloop validate: error: params\.yaml:{line}:\d+: YAML syntax error \(mapping values are not allowed here\); fix",
        ),
        Case(
            "params-yaml-syntax-dvc",  # DVC reads params.yaml before any stage: its message, with the line
            broken_yaml,
            ("dvc", "repro", "check"),
            DVC_FAILED,
            r"^ERROR: unable to read: 'params\.yaml', YAML file structure is corrupted: mapping values",
        ),
        Case(
            "params-not-utf8",
            lambda e: e.write("params.yaml", (e.root / "params.yaml").read_bytes() + b"# \xff\n"),
            stage("check"),
            1,
            r"^mmloop check: error: params\.yaml: not UTF-8 text \(byte at offset \d+\); restore it from git",
        ),
        Case(
            "params-section-missing",
            lambda e: e.text("params.yaml", lambda t: t.replace("\ndata:\n", "\ndata_:\n", 1)),
            stage("validate"),
            1,
            r"^mmloop validate: error: params\.yaml: no 'data' section; restore it from git",
        ),
        Case(
            "data-root-missing-dvc",  # the case: DVC's [Errno 2] before, check's line now
            lambda e: e.params(data__root="data/kitti-x"),
            ("dvc", "repro"),
            DVC_FAILED,
            r"^mmloop check: error: data/kitti-x: dataset folder not found; run `dvc pull` or set data\.root",
        ),
        Case(
            "data-root-missing",
            lambda e: e.params(data__root="data/kitti-x"),
            stage("validate"),
            1,
            r"^mmloop validate: error: data/kitti-x: dataset folder not found; run `dvc pull` or set data\.root",
        ),
        Case(
            "data-format-unknown-dvc",
            lambda e: e.params(data__format="kiti"),
            ("dvc", "repro", "prepare"),
            DVC_FAILED,
            r"^mmloop check: error: params\.yaml: data\.format is 'kiti'; use one of kitti",
        ),
        Case(
            "model-config-missing-dvc",
            lambda e: e.params(model__config="configs/models/nope.py"),
            ("dvc", "repro", "prepare"),
            DVC_FAILED,
            r"^mmloop check: error: params\.yaml: model\.config 'configs/models/nope\.py' not found; use one of",
        ),
        Case(
            "load-from-missing-dvc",
            lambda e: e.params(model__load_from="checkpoints/nope.pth"),
            ("dvc", "repro", "prepare"),
            DVC_FAILED,
            r"^mmloop check: error: params\.yaml: model\.load_from 'checkpoints/nope\.pth' not found; run `dvc pull",
        ),
        Case(
            "epochs-negative",
            lambda e: e.params(train__epochs=-1),
            stage("train"),
            1,
            r"^mmloop train: error: params\.yaml: train\.epochs is -1; it must be a whole number >= 0",
            60,
        ),
        Case(
            "classes-unknown",
            lambda e: e.params(model__classes=["Car", "Bus"]),
            stage("train"),
            1,
            r"^mmloop train: error: params\.yaml: model\.classes has 'Bus', which .* has no anchors for",
            60,
        ),
    ]


def nan_cloud(edits: Edits) -> None:
    edits.cloud(TRAIN / "velodyne" / f"{NAN_FRAME}.bin", lambda p: cell(p, slice(0, 50), 3, np.nan))


def nan_points_dropped(clone: Path, output: str) -> None:
    """The runtime's JSON counts the dropped points, and its boxes are those of the cloud without
    them: no NaN reached the network."""
    out = clone.parent / "runtime-out"
    report = json.loads((out / f"{NAN_FRAME}.json").read_text())
    assert report["non_finite_points_dropped"] == 50
    points = np.fromfile(clone / TRAIN / "velodyne" / f"{NAN_FRAME}.bin", np.float32).reshape(-1, 4)
    from mmloop_runtime.detector import Detector

    boxes, scores, _ = Detector(clone / MODEL, threads=1).predict(points[np.isfinite(points).all(axis=1)])
    assert [d["score"] for d in report["detections"]] == [round(float(s), 5) for s in scores]
    assert len(boxes) == len(report["detections"]) > 0


def runtime_cases() -> list[Case]:
    cloud = str(TRAIN / "velodyne" / f"{FRAME}.bin")
    manifest = MODEL / "manifest.json"
    return [
        Case(
            "runtime-nan-points",  # the case: exit 0 and other boxes before, a warning now
            nan_cloud,
            predict(str(TRAIN / "velodyne" / f"{NAN_FRAME}.bin"), "--format", "json"),
            0,
            r"^mmloop_runtime: warning: dropped 50 point\(s\) with NaN or infinite fields in 1 of 1 frame\(s\) before "
            rf"voxelizing \(first: {NAN_FRAME}, 50 points; counts per frame in the JSON's non_finite_points_dropped\)",
            extra=nan_points_dropped,
        ),
        Case(
            "runtime-cloud-truncated",
            lambda e: e.write(cloud, (e.root / cloud).read_bytes()[:-5]),
            predict(cloud),
            2,
            RUNTIME_FAILS + re.escape(f"{cloud}: ") + r"\d+ bytes is not a whole number of 4-float points",
        ),
        Case(
            "runtime-manifest-not-json",
            lambda e: e.write(manifest, b'{"format": "mmloop-runtime/1", '),
            predict(cloud),
            2,
            RUNTIME_FAILS + re.escape(f"{manifest}: not valid JSON (") + r".*\); rerun `dvc repro export`",
        ),
        Case(
            "runtime-manifest-not-utf8",
            lambda e: e.write(manifest, b"\xff\xfe{}"),
            predict(cloud),
            2,
            RUNTIME_FAILS + re.escape(f"{manifest}: not UTF-8 text (byte at offset 0)"),
        ),
        Case(
            "runtime-manifest-fields",
            lambda e: e.text(manifest, lambda t: t.replace('"voxelizer"', '"voxeliser"', 1)),
            predict(cloud),
            2,
            RUNTIME_FAILS + re.escape(f"{manifest}: malformed manifest (KeyError: 'voxelizer')"),
        ),
        Case(
            "runtime-model-missing",
            lambda e: None,
            ("runtime", "predict", cloud, "--model", "deploy/nope"),
            2,
            RUNTIME_FAILS + r"deploy/nope: not a folder; pass a deployed model folder",
        ),
        Case(
            "runtime-calib-not-utf8",
            lambda e: e.write(TRAIN / "calib" / f"{FRAME}.txt", b"P2: \xff\n"),
            predict(cloud, "--format", "kitti"),
            2,
            RUNTIME_FAILS + re.escape(f"{TRAIN}/calib/{FRAME}.txt:1: not UTF-8 text (byte 0xff at offset 4)"),
        ),
        Case(
            "runtime-label-not-utf8",
            lambda e: e.write(TRAIN / "label_2" / f"{FRAME}.txt", NON_UTF8),
            predict(cloud, "--render"),
            2,
            RUNTIME_FAILS + re.escape(f"{TRAIN}/label_2/{FRAME}.txt:1: not UTF-8 text (byte 0xff at offset 17)"),
        ),
    ]


CASES = [*data_cases(), *params_cases(), *checkpoint_cases(), *runtime_cases()]


def run_case(clone: Path, command: list[str], limit: float, **popen: object) -> tuple[int, str, float]:
    start = time.monotonic()
    result = subprocess.run(
        command, cwd=clone, env=venv_env(), capture_output=True, text=True, timeout=limit + 120, **popen
    )
    return result.returncode, result.stdout + result.stderr, time.monotonic() - start


def matching_line(pattern: str, output: str) -> str:
    found = [line for line in output.splitlines() if re.search(pattern, line)]
    assert found, f"no line matches {pattern!r}:\n{output[-3000:]}"
    return found[0]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_catalogue(clone: Path, case: Case) -> None:
    before = watched(clone)
    out = clone.parent / "runtime-out"
    edits = Edits(clone)
    try:
        case.setup(edits)
        code, output, seconds = run_case(clone, argv(case.command, out), case.seconds)
        line = matching_line(case.line, output)
        LINES.append(f"{case.id}: {line}")
        assert code == case.code, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        assert RUNNER_STARTED not in output, "the Runner started before the check"
        assert seconds < case.seconds, f"{seconds:.0f} s"
        if case.extra:
            case.extra(clone, output)
    finally:
        edits.restore()
        pickle_marker(clone).unlink(missing_ok=True)
    assert watched(clone) == before


# -- the disk ---------------------------------------------------------------------------------


def can_mount() -> bool:
    probe = Path("/tmp") / f"mmloop-mount-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True)
        if mounted.returncode == 0:
            subprocess.run(["umount", str(probe)], check=True)
        return mounted.returncode == 0
    finally:
        probe.rmdir()


MOUNT = can_mount()


def file_size_limit(limit: int) -> Callable[[], None]:
    """A preexec_fn: files the stage writes stop at `limit` bytes (EFBIG, SIGXFSZ ignored), the
    unprivileged stand-in for a full disk where tmpfs cannot be mounted."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.fixture
def mounted(clone: Path) -> Iterator[Callable[..., None]]:
    mounts: list[Path] = []

    def mount(target: Path, *options: str, source: str = "tmpfs") -> None:
        kind = ["-t", "tmpfs"] if source == "tmpfs" else []
        subprocess.run(["mount", *kind, "-o", ",".join(options), source, str(target)], check=True)
        if "remount" not in options:  # a remount changes a mount, it adds none
            mounts.append(target)

    yield mount
    for target in reversed(mounts):
        subprocess.run(["umount", str(target)], check=True)


def test_disk_full_while_validate_writes_its_report(clone: Path, mounted: Callable[..., None]) -> None:
    """No space left for reports/data.json: one line naming it, the old report kept."""
    before = watched(clone)
    reports = clone / "reports"
    popen: dict[str, object] = {}
    if MOUNT:  # a real full disk: a tmpfs over reports/ holding the old files and nothing more
        saved = {p.name: p.read_bytes() for p in reports.iterdir()}
        mounted(reports, "size=16k")
        for name, data in saved.items():
            (reports / name).write_bytes(data)
        with (reports / "filler").open("wb", buffering=0) as handle, pytest.raises(OSError):
            while True:
                handle.write(b"\0" * 1024)
    else:
        popen["preexec_fn"] = file_size_limit(64)
    code, output, seconds = run_case(clone, [sys.executable, "-m", "stages.validate"], 30, **popen)
    line = matching_line(
        r"^mmloop validate: error: reports/data\.json: cannot write it \((No space left on device|File too large)\); "
        r"(no space left on that disk|the file grew past the size limit).*; the previous output is kept$",
        output,
    )
    LINES.append(f"disk-full: {line}")
    assert code == 1 and "Traceback" not in output and seconds < 30
    assert sorted(p.name for p in reports.iterdir() if p.name != "filler") == ["data.json", "prepare.json"]
    if MOUNT:
        (reports / "filler").unlink()
        assert {p.name: p.read_bytes() for p in reports.iterdir()} == saved
    assert watched(clone) == before


def test_read_only_output_folder(clone: Path, mounted: Callable[..., None]) -> None:
    """prepare into a read-only work/: one line naming work/prepared, the old one kept."""
    before = watched(clone)
    work = clone / "work"
    if MOUNT:
        mounted(work, "bind", source=str(work))
        mounted(work, "remount", "bind", "ro", source=str(work))
    else:
        work.chmod(0o555)
    try:
        code, output, seconds = run_case(clone, [sys.executable, "-m", "stages.prepare"], 60)
    finally:
        if not MOUNT:
            work.chmod(0o755)
    line = matching_line(
        r"^mmloop prepare: error: work/prepared: cannot write it \((Read-only file system|Permission denied)\); "
        r".*point params\.yaml paths\.\* elsewhere; the previous output is kept$",
        output,
    )
    LINES.append(f"read-only-output: {line}")
    assert code == 1 and "Traceback" not in output and seconds < 60
    assert watched(clone) == before


# -- the remote -------------------------------------------------------------------------------


def remote_env() -> dict[str, str]:
    env = {k: v for k, v in venv_env().items() if not k.startswith("AWS_")}
    empty = Path("/tmp") / "mmloop-tests-empty-aws-config"
    empty.touch()
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = str(empty)
    env["AWS_MAX_ATTEMPTS"] = "1"  # botocore's retries of a refused connection cost 10 s, and say nothing new
    return env


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from tests.pipeline.s3_server import start_s3_server

    yield from start_s3_server(tmp_path_factory.mktemp("seaweedfs-hostile"))


def add_remote(clone: Path, name: str, endpoint: str, key: str, secret: str) -> None:
    sh([*DVC, "remote", "add", "--local", "-f", name, f"s3://mmloop-team/{name}"], clone)
    sh([*DVC, "remote", "modify", "--local", name, "endpointurl", endpoint], clone)
    sh([*DVC, "remote", "modify", "--local", name, "access_key_id", key], clone)
    sh([*DVC, "remote", "modify", "--local", name, "secret_access_key", secret], clone)


@pytest.mark.parametrize("fault", ["remote-down", "remote-wrong-key"])
def test_remote_fault(clone: Path, s3: object, fault: str) -> None:
    """`dvc push` to a remote that is down or refuses our key: DVC's one error line, the cache kept."""
    if fault == "remote-down":
        add_remote(clone, "down", f"http://127.0.0.1:{free_ports(1)[0]}", s3.access_key, s3.secret_key)
        expected = r"^ERROR: .*Could not connect to the endpoint URL"
    else:
        add_remote(clone, "wrongkey", s3.endpoint, s3.access_key, "not-the-secret")
        expected = r"^ERROR: .*(SignatureDoesNotMatch|Forbidden|AccessDenied|InvalidAccessKeyId)"
    name = "down" if fault == "remote-down" else "wrongkey"
    cache = tree_md5(clone / ".dvc" / "cache")
    before = watched(clone)
    try:
        start = time.monotonic()
        result = subprocess.run(
            [*DVC, "push", "-r", name, "checkpoints.dvc"],
            cwd=clone,
            env=remote_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        seconds = time.monotonic() - start
    finally:
        sh([*DVC, "remote", "remove", "--local", name], clone)
    output = result.stdout + result.stderr
    line = matching_line(expected, output)
    LINES.append(f"{fault}: {line}")
    assert result.returncode == DVC_FAILED and seconds < 120
    assert tree_md5(clone / ".dvc" / "cache") == cache
    assert watched(clone) == before


# -- kills under dvc repro --------------------------------------------------------------------


def started(stage_name: str) -> Callable[[Path, str], bool]:
    return lambda clone, log: f"Running stage '{stage_name}'" in log


@pytest.mark.parametrize(
    "stage_name, ready",
    [
        ("check", started("check")),  # while the stage starts (dvc has removed its output)
        ("validate", started("validate")),
        # mid-conversion: the info file is written, the reduced clouds and the GT database are not
        ("prepare", lambda clone, log: any((clone / "work").glob(".prepared.building-*/kitti_infos_train.pkl"))),
    ],
    ids=["kill-check", "kill-validate", "kill-prepare"],
)
def test_kill_under_dvc_repro(clone: Path, stage_name: str, ready: Callable[[Path, str], bool]) -> None:
    """`kill -9` of `dvc repro -f <stage>` (dvc and the stage): the next `dvc repro` gives back the
    same outputs as an uninterrupted run and leaves no half-built folder or file."""
    before = watched(clone)
    log = clone.parent / f"kill-{stage_name}.log"
    kill_when([*DVC, "repro", "-f", "--single-item", stage_name], clone, log, lambda: ready(clone, log.read_text()))
    start = time.monotonic()
    out = sh([*DVC, "repro", "prepare"], clone)
    LINES.append(f"kill-{stage_name}: then `dvc repro prepare`: {time.monotonic() - start:.0f} s, same outputs")
    assert watched(clone) == before, out
    assert not list((clone / "work").glob(".prepared.building-*"))
    assert not list((clone / "reports").glob(".*.tmp-*"))
    assert "Data and pipelines are up to date." in sh([*DVC, "status", "prepare"], clone)
