"""The real loop on a scratch copy of the repo: `dvc pull`, `dvc repro`, status, no-op, re-pull."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml

from mmloop.core.paths import load_paths
from tests.helpers import REPO, copy_repo, pull_artifacts, run_in, sh, tree_md5

pytestmark = pytest.mark.slow

DEPLOY_TARGETS = ("onnxruntime-fp32", "onnxruntime-int8")  # params.yaml deploy.targets
PATHS = load_paths(REPO / "params.yaml")  # the clone's params.yaml is the same file
DVC = [sys.executable, "-m", "dvc"]
# `dvc status dvc.yaml`: the LiDAR loop only; the clone never reproduces pipelines/kitti-camera.


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clone = tmp_path_factory.mktemp("clone") / "mmloop"
    copy_repo(clone)
    pull_artifacts(clone)
    out = sh([sys.executable, "-m", "dvc", "repro"], clone)
    # validate's report is committed (a cache: false metric) and its inputs are unchanged, so DVC
    # skips it; prepare's output is `cache: false` (never cached, pushed or pulled), so a fresh
    # clone builds it, and trains on it.
    assert "Stage 'validate' didn't change, skipping" in out
    assert "Running stage 'prepare'" in out and "Running stage 'train'" in out
    # Training is seeded: on the machine that made the committed dvc.lock it reproduces the model
    # bit for bit, and DVC then skips evaluate (same model, committed metrics); elsewhere it runs.
    assert "Running stage 'evaluate'" in out or "Stage 'evaluate' didn't change, skipping" in out
    # pull_artifacts pulls what `make pull` pulls (data, checkpoints), not the stage outputs the demo
    # remote may also hold: this clone builds and checks the export and the deployed models itself.
    for stage in ("export", *(f"deploy@{target}" for target in DEPLOY_TARGETS)):
        assert f"Running stage '{stage}'" in out
    return clone


def changed_files(clone: Path) -> set[str]:
    return {line[3:] for line in sh(["git", "status", "--porcelain", "--untracked-files=all"], clone).splitlines()}


def locked(clone: Path, stage: str, revision: str | None = None) -> dict:
    text = sh(["git", "show", f"{revision}:dvc.lock"], clone) if revision else (clone / "dvc.lock").read_text()
    return yaml.safe_load(text)["stages"][stage]


def test_repro_writes_declared_outputs(clone: Path) -> None:
    data = json.loads((clone / PATHS.data_report).read_text())
    prepare = json.loads((clone / PATHS.prepare_report).read_text())
    assert data["problems"] == 0 and data["objects"]["Car"] > 0
    assert prepare["splits"]["train"]["frames"] == data["splits"]["train"]
    assert (clone / PATHS.prepared / "kitti_infos_val.pkl").is_file()
    assert not (clone / "data" / "kitti-sample" / "training" / "velodyne_reduced").exists()
    # dvc.lock and the reports are committed: reproducing the data stages on a fresh copy changes
    # nothing. Training on another CPU may round differently, so only the train/evaluate records
    # (their dvc.lock entries and metrics) may differ from the committed run.
    for stage in ("validate", "prepare"):
        assert locked(clone, stage) == locked(clone, stage, "HEAD")
    assert {f for f in changed_files(clone) if f != "dvc.lock" and not f.startswith("metrics/")} == set()


def test_demo_reaches_the_accuracy_target(clone: Path) -> None:
    """The demo fine-tunes the pretrained small PointPillars; the issue's bar is Car 3D AP >= 50."""
    report = json.loads((clone / PATHS.eval).read_text())
    assert report["frames"] == 12
    assert report["Car"]["3d"]["moderate"] >= 50.0, report["Car"]
    assert (clone / PATHS.model).stat().st_size < 10e6
    assert "dvclive" not in {p.name for p in clone.iterdir()}  # curves only where dvc.yaml says


def test_forced_repro_reproduces_the_committed_results(clone: Path) -> None:
    before = changed_files(clone)
    out = sh([sys.executable, "-m", "dvc", "repro", "--force", "prepare"], clone)
    assert "Running stage 'validate'" in out and "Running stage 'prepare'" in out
    assert changed_files(clone) == before  # same reports, same dvc.lock hashes
    for stage in ("validate", "prepare"):
        assert locked(clone, stage) == locked(clone, stage, "HEAD")


def test_status_clean_and_second_repro_is_a_no_op(clone: Path) -> None:
    assert "Data and pipelines are up to date." in sh([*DVC, "status", "dvc.yaml"], clone)
    out = sh([*DVC, "repro"], clone)
    assert "Running stage" not in out
    for stage in ("validate", "prepare", "train", "evaluate", "export", *(f"deploy@{t}" for t in DEPLOY_TARGETS)):
        assert f"Stage '{stage}' didn't change, skipping" in out


def changed_stages(status: str) -> set[str]:
    """The stage names `dvc status` lists (each as `<name>:` at the start of a line)."""
    return {line[:-1] for line in status.splitlines() if line and not line[0].isspace() and line.endswith(":")}


def test_code_deps_are_narrow(clone: Path) -> None:
    """A backend module is a dep of the deploy stages only; the sample generator of no stage."""
    assert "Data and pipelines are up to date." in sh([*DVC, "status", "dvc.yaml"], clone)
    backend = clone / "mmloop" / "deploy" / "backends" / "onnxruntime.py"
    original = backend.read_bytes()
    try:
        backend.write_bytes(original + b"# an edit to the ONNX Runtime backend\n")
        status = sh([*DVC, "status", "dvc.yaml"], clone)
        assert changed_stages(status) == {f"deploy@{target}" for target in DEPLOY_TARGETS}, status
        for stage in ("validate", "prepare", "train", "evaluate", "export"):
            assert f"{stage}:" not in status.splitlines(), status
    finally:
        backend.write_bytes(original)
    assert "Data and pipelines are up to date." in sh([*DVC, "status", "dvc.yaml"], clone)

    generator = clone / "sample_data" / "__init__.py"
    original = generator.read_bytes()
    try:
        generator.write_bytes(original + b"# an edit to the sample generator\n")
        status = sh([*DVC, "status", "dvc.yaml"], clone)
        assert "Data and pipelines are up to date." in status, status
    finally:
        generator.write_bytes(original)
    assert "Data and pipelines are up to date." in sh([*DVC, "status", "dvc.yaml"], clone)


def test_export_writes_a_checked_graph_ready_for_tensorrt(clone: Path) -> None:
    report = json.loads((clone / PATHS.export_report).read_text())
    assert report["opset"] == 13 and report["nodes"] > 50 and report["op_types"]["Conv"] >= 11
    assert [(i["name"], i["dtype"], i["shape"]) for i in report["inputs"]] == [
        ("voxels", "float", ["voxels_num", 32, 4]),
        ("num_points", "int32", ["voxels_num"]),
        ("coors", "int32", ["voxels_num", 4]),
    ]
    assert [o["name"] for o in report["outputs"]] == ["cls_score0", "bbox_pred0", "dir_cls_pred0"]
    readiness = report["tensorrt_readiness"]
    assert readiness["ready"] and readiness["onnx_checker"] is None and not readiness["unsupported_ops"]
    assert {dim["input"] for dim in readiness["dynamic_dims"]} == {"voxels", "num_points", "coors"}
    assert sorted(path.name for path in (clone / PATHS.onnx).iterdir()) == [
        "deploy.py",
        "end2end.onnx",
        "manifest.json",
        "model.py",
    ]
    manifest = json.loads((clone / PATHS.onnx / "manifest.json").read_text())
    assert manifest["class_names"] == ["Pedestrian", "Cyclist", "Car"] and manifest["voxelizer"]["max_voxels"] == 20000
    assert report["runtime_manifest"] == "deploy/onnx/manifest.json"
    # no zero canvas baked in (mmloop/deploy/rewriters.py): the file is its weights and a little graph
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(clone / report["file"])).graph
    weights = sum(numpy_helper.to_array(tensor).nbytes for tensor in graph.initializer)
    assert report["bytes"] == (clone / report["file"]).stat().st_size <= 1.1 * weights


def test_deployed_models_match_pytorch(clone: Path) -> None:
    """The issue's parity bar: fp32 max |d| <= 1e-4 and mAP delta <= 0.1; int8 mAP delta <= 1.0."""
    evaluated = json.loads((clone / PATHS.eval).read_text())
    reports = {t: json.loads((clone / PATHS.deploy_report(t)).read_text()) for t in DEPLOY_TARGETS}
    for target, report in reports.items():
        assert report["frames"] == 12 and report["device"] == "cpu"
        # same model, same KittiMetric, same split as `evaluate`
        assert report["mAP_pytorch"] == evaluated["mAP_3d_moderate"]
        assert not any("latency" in key for key in report)  # in <target>.latency.json, apart
        latency = json.loads((clone / PATHS.latency_report(target)).read_text())
        assert latency["latency_ms"] > 0 and latency["latency_ms_pytorch"] > 0
        assert latency["latency_ratio"] == pytest.approx(
            latency["latency_ms"] / latency["latency_ms_pytorch"], abs=1e-3
        )
        files = sorted(path.name for path in (clone / PATHS.deployed_dir(target)).iterdir())
        assert files == ["deploy.py", "end2end.onnx", "manifest.json", "model.py"]
    fp32, int8 = reports["onnxruntime-fp32"], reports["onnxruntime-int8"]
    assert fp32["max_abs_diff"] <= 1e-4 and abs(fp32["mAP_delta"]) <= 0.1
    assert abs(int8["mAP_delta"]) <= 1.0
    assert int8["calibration_frames"] == 36 and int8["int8_layers"]["Conv"] >= 8
    assert (clone / PATHS.deployed_dir("onnxruntime-int8") / "end2end.onnx").stat().st_size < (
        clone / PATHS.deployed_dir("onnxruntime-fp32") / "end2end.onnx"
    ).stat().st_size


def test_runtime_matches_mmdeploy_on_the_sample(clone: Path) -> None:
    """The issue's bar for the torch-free runtime, checked by each deploy stage on the val split:
    the same boxes after NMS within 1e-3, mAP within 0.1 of mmdeploy's backend model."""
    for target in DEPLOY_TARGETS:
        report = json.loads((clone / PATHS.deploy_report(target)).read_text())
        assert report["runtime_frames_agreeing"] == report["frames"] == 12, report
        assert report["runtime_frames_disagreeing"] == [] and report["runtime_boxes"] > 12
        assert report["runtime_box_max_abs_diff"] <= 1e-3 and abs(report["runtime_mAP_delta"]) <= 0.1
        assert report["runtime_mAP"] == pytest.approx(report["mAP"], abs=0.1)
        latency = json.loads((clone / PATHS.latency_report(target)).read_text())
        steps = latency["runtime_latency_ms"]
        assert set(steps) == {"voxelize", "network", "decode", "total"} and all(ms > 0 for ms in steps.values())
        assert latency["runtime_latency_ratio"] == pytest.approx(steps["total"] / latency["latency_ms"], abs=1e-3)


def test_runtime_matches_mmdeploy_on_real_kitti_frames(clone: Path, kitti_real: Path, tmp_path: Path) -> None:
    """The trained deployed models on the six real KITTI frames: the runtime CLI's JSON against
    mmdeploy's backend model on the same files; label_2 files and BEV pictures written."""
    from mmdeploy.apis.utils import build_task_processor
    from mmdeploy.utils import load_config

    from mmloop.deploy.parity import as_detections, detection_agreement
    from mmloop_runtime import Detections

    clouds = sorted((kitti_real / "training" / "velodyne").glob("*.bin"))
    for target in DEPLOY_TARGETS:
        folder = clone / PATHS.deployed_dir(target)
        out = tmp_path / target
        sh(
            [
                sys.executable,
                "-m",
                "mmloop_runtime",
                "predict",
                "--model",
                str(folder),
                str(kitti_real / "training" / "velodyne"),
                "--out",
                str(out),
                "--render",
            ],
            clone,
        )
        deploy_cfg, model_cfg = load_config(str(folder / "deploy.py"), str(folder / "model.py"))
        processor = build_task_processor(model_cfg, deploy_cfg, "cpu")
        backend = processor.build_backend_model([str(folder / "end2end.onnx")])
        expected, got = [], []
        for cloud in clouds:
            expected.append(
                as_detections(backend.test_step(processor.create_input(str(cloud))[0])[0].pred_instances_3d)
            )
            report = json.loads((out / f"{cloud.stem}.json").read_text())["detections"]
            got.append(
                Detections(
                    np.array([d["box"] for d in report], np.float32).reshape(-1, 7),
                    np.array([d["score"] for d in report], np.float32),
                    np.array([model_cfg.class_names.index(d["label"]) for d in report]),
                )
            )
            assert (out / f"{cloud.stem}.txt").is_file() and (out / f"{cloud.stem}.png").is_file()
        agreement = detection_agreement(expected, got, 1e-3)  # the JSON rounds to 1e-5
        assert agreement["frames_agreeing"] == 6 and agreement["boxes"] > 0, (target, agreement)


def test_evaluate_draws_bev_pictures_as_dvc_plots(clone: Path, tmp_path: Path) -> None:
    pictures = sorted((clone / PATHS.bev).glob("*.png"))
    assert [p.name for p in pictures] == ["000000.png", "000001.png", "000002.png", "000003.png"]  # evaluate.bev_frames
    out = sh([sys.executable, "-m", "dvc", "plots", "show", "--json", "-o", str(tmp_path / "plots")], clone)
    shown = json.loads(out[out.index("{") :])["data"]
    for picture in pictures:
        assert shown[f"metrics/bev/{picture.name}"][0]["type"] == "image"


def test_exp_show_has_the_deploy_columns(clone: Path) -> None:
    shown = json.loads(run_in(clone, [sys.executable, "-m", "dvc", "exp", "show", "--json"]).stdout)
    workspace = next(row for row in shown if row["rev"] == "workspace")
    metrics = workspace["data"]["metrics"]
    for target in DEPLOY_TARGETS:
        assert {"mAP", "mAP_delta", "runtime_mAP_delta"} <= set(metrics[f"metrics/deploy/{target}.json"]["data"])
        latency = metrics[f"metrics/deploy/{target}.latency.json"]["data"]
        assert {"latency_ratio", "runtime_latency_ratio"} <= set(latency)


@contextmanager
def experiment_then_restore(clone: Path, added_targets: tuple[str, ...]) -> Iterator[None]:
    """The block runs `dvc exp run -S deploy.targets=[...]` in the clone; afterwards the clone is as
    it was: the files the experiment rewrites (kept as this clone has them: its dvc.lock may differ
    from HEAD's), the added targets' folders and reports gone, and what DVC took out of the
    workspace for a dropped target back (its folder from the cache, its reports from git)."""
    before = tree_md5(clone / PATHS.deployed)
    kept = {name: (clone / name).read_bytes() for name in ("params.yaml", "dvc.lock", f"{PATHS.deployed}/.gitignore")}
    try:
        yield
    finally:
        sh(["git", "reset", "-q"], clone)  # dvc exp run leaves what it changed staged
        for name, content in kept.items():
            (clone / name).write_bytes(content)
        for target in added_targets:
            shutil.rmtree(clone / PATHS.deployed_dir(target), ignore_errors=True)
            for report_file in (PATHS.deploy_report(target), PATHS.latency_report(target)):
                (clone / report_file).unlink(missing_ok=True)
        deleted = sh(["git", "ls-files", "--deleted"], clone).split()
        if deleted:
            sh(["git", "checkout", "--", *deleted], clone)
        sh([*DVC, "checkout", "dvc.yaml"], clone)  # the root loop: the camera loop's outputs are not pulled here
    assert tree_md5(clone / PATHS.deployed) == before
    assert "Data and pipelines are up to date." in sh([*DVC, "status", "dvc.yaml"], clone)


def test_tensorrt_target_on_a_cpu_host_fails_alone_and_loses_nothing(clone: Path) -> None:
    """`dvc exp run -S 'deploy.targets=[onnxruntime-fp32,tensorrt-fp16]'` here: only the TensorRT stage
    fails, with its one-line message; what was built stays built. (DVC takes the dropped int8
    target's outputs out of the workspace: its folder, which the cache keeps and `dvc checkout`
    brings back, and its metrics files where git has them as they are, which `git checkout` does.)"""
    before = tree_md5(clone / PATHS.deployed)
    lock_before = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
    with experiment_then_restore(clone, ("tensorrt-fp16",)):
        result = run_in(clone, [*DVC, "exp", "run", "-S", "deploy.targets=[onnxruntime-fp32,tensorrt-fp16]"])
        out = result.stdout + result.stderr
        assert result.returncode != 0, out[-3000:]
        assert "Stage 'deploy@onnxruntime-fp32' didn't change, skipping" in out
        assert "Running stage 'deploy@tensorrt-fp16'" in out
        errors = [line for line in out.splitlines() if line.startswith("mmloop deploy: error:")]
        assert (
            len(errors) == 1 and "TensorRT is not installed" in errors[0] and "pip install tensorrt-cu12" in errors[0]
        )
        assert "Running stage 'deploy@onnxruntime-int8'" not in out and "Traceback" not in out
        kept = {name: md5 for name, md5 in before.items() if not name.startswith("onnxruntime-int8/")}
        assert tree_md5(clone / PATHS.deployed) == kept
        assert not (clone / PATHS.deployed_dir("tensorrt-fp16")).exists()
        assert yaml.safe_load((clone / "dvc.lock").read_text())["stages"] == lock_before
        deleted = sh(["git", "ls-files", "--deleted"], clone).split()
        int8_reports = {str(PATHS.deploy_report("onnxruntime-int8")), str(PATHS.latency_report("onnxruntime-int8"))}
        assert set(deleted) <= int8_reports


def test_openvino_targets_build_and_pass_the_gates(clone: Path) -> None:
    """`dvc exp run -S 'deploy.targets=[...,openvino-fp32,openvino-int8]'` here: the ONNX Runtime
    stages are skipped, the OpenVINO ones build their IR and pass the same gates (and the runtime's
    box-for-box check through OpenVINO); afterwards the clone is as it was."""
    openvino = ("openvino-fp32", "openvino-int8")
    targets = ",".join((*DEPLOY_TARGETS, *openvino))
    with experiment_then_restore(clone, openvino):
        out = sh([*DVC, "exp", "run", "-S", f"deploy.targets=[{targets}]"], clone)
        for target in DEPLOY_TARGETS:
            assert f"Stage 'deploy@{target}' didn't change, skipping" in out
        reports = {}
        for target in openvino:
            assert f"Running stage 'deploy@{target}'" in out
            files = sorted(path.name for path in (clone / PATHS.deployed_dir(target)).iterdir())
            assert files == ["deploy.py", "end2end.bin", "end2end.xml", "manifest.json", "model.py"]
            reports[target] = report = json.loads((clone / PATHS.deploy_report(target)).read_text())
            assert report["frames"] == 12 and report["runtime_frames_agreeing"] == 12, report
            assert report["runtime_box_max_abs_diff"] <= 1e-3 and abs(report["runtime_mAP_delta"]) <= 0.1
        fp32, int8 = reports["openvino-fp32"], reports["openvino-int8"]
        assert fp32["max_abs_diff"] <= 1e-4 and abs(fp32["mAP_delta"]) <= 0.1
        assert abs(int8["mAP_delta"]) <= 1.0 and int8["int8_layers"]["Conv"] >= 8
        assert (clone / PATHS.deployed_dir("openvino-int8") / "end2end.bin").stat().st_size < (
            clone / PATHS.deployed_dir("openvino-fp32") / "end2end.bin"
        ).stat().st_size


def test_bad_profile_and_parity_gate_fail_in_one_line(clone: Path) -> None:
    params_file = clone / "params.yaml"
    original = params_file.read_text()
    onnx_before = tree_md5(clone / PATHS.onnx)
    try:
        params = yaml.safe_load(original)
        params["deploy"]["voxels"] = {"min": 10, "opt": 50, "max": 100}
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        result = run_in(clone, [sys.executable, "-m", "stages.export"])
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            "mmloop export: error: params.yaml: deploy.voxels max is 100, below the model's test-time max_voxels "
            "20000; the engine must take every voxel count the voxelizer produces, so set deploy.voxels.max to "
            "at least 20000"
        ]
        assert tree_md5(clone / PATHS.onnx) == onnx_before

        params = yaml.safe_load(original)
        params["deploy"]["tolerance"]["fp32"]["max_abs_diff"] = 1e-12
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        result = run_in(clone, [sys.executable, "-m", "stages.deploy", "--target", "onnxruntime-fp32"])
        assert result.returncode == 1
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(
            "mmloop deploy: error: metrics/deploy/onnxruntime-fp32.json: head outputs differ from PyTorch by up to"
        ), result.stderr[-2000:]
        assert last.endswith("over deploy.tolerance.fp32.max_abs_diff 1e-12")
    finally:
        params_file.write_text(original)


def test_pull_restores_data_and_checkpoints_bit_for_bit(clone: Path) -> None:
    before = {name: tree_md5(clone / name) for name in ("data", "checkpoints")}
    assert before["data"] and before["checkpoints"]
    for name in (".dvc/cache", "data", "checkpoints"):
        shutil.rmtree(clone / name)
    pull_artifacts(clone)
    assert {name: tree_md5(clone / name) for name in ("data", "checkpoints")} == before
    # (work/prepared and work/train are `cache: false`: never in .dvc/cache, nothing to pull back)
    assert "Data and pipelines are up to date." in sh([*DVC, "status", "data.dvc", "checkpoints.dvc"], clone)


def test_shipped_sample_is_what_the_generator_makes(clone: Path, tmp_path: Path) -> None:
    """The demo remote holds our generator's output with its documented defaults, nothing hand-made."""
    from sample_data import generate_dataset

    generate_dataset(tmp_path / "kitti-sample")
    assert tree_md5(tmp_path / "kitti-sample") == tree_md5(clone / "data" / "kitti-sample")
