"""Benchmark (not a test): every CPU backend against this host's fp32 roof, full-size PointPillars.

One run: export mmdet3d's full-size 3-class KITTI PointPillars (configs/models/pointpillars_kitti-
3class.py, 432 x 496 pillars) with random weights, quantize it as the int8 targets do (params.yaml
`deploy.int8`, calibrated on the benchmark's own frames: latency does not depend on the weights),
convert both to OpenVINO IR; then

- the roof: each of the graph's own Conv/ConvTranspose shapes run by PyTorch (fp32, the same
  threads), the best GFLOP/s of them, and the FLOP-weighted rate of all of them (measured before,
  between and after the backends' passes, the best kept: the host may be shared);
- per backend (PyTorch eager, ONNX Runtime fp32/int8, OpenVINO fp32/int8): the network alone on
  the same voxelized frames (ms, GFLOP/s from the graph's FLOPs, % of the roof), then whole frames
  split into voxelize / network / decode (PyTorch: mmcv's voxelizer and mmdet3d's predict_by_feat;
  the others: mmloop_runtime), and the frame's ratio to PyTorch eager and to the best other backend.

FLOPs are counted from the exported graph's shapes (OpenVINO's shape inference at each frame's
voxel count): 2 x MACs of Conv, ConvTranspose and MatMul. Real clouds: ../shared/fixtures/
kitti-real (six KITTI frames). --nncf DIR adds a row for an OpenVINO IR quantized elsewhere (NNCF;
docs/deploy.md says how); --keep DIR keeps the built files (DIR/calibration.npz for NNCF).

    .venv/bin/python benchmarks/cpu_roof.py [--clouds DIR] [--rounds 3] [--threads 2] [--keep DIR] [--nncf DIR]

Prints a markdown table (docs/deploy.md takes it as it is). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

FULL_SIZE = "configs/models/pointpillars_kitti-3class.py"
CLOUDS = Path("../shared/fixtures/kitti-real/training/velodyne")
STEPS = ("voxelize", "network", "decode")


def best_ms(run: Callable[[], Any], calls: int) -> float:
    """The fastest of `calls` calls (after a warm-up), in ms: on a shared host, the least disturbed."""
    run()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run()
        times.append(1000 * (time.perf_counter() - start))
    return min(times)


def timed_ms(run: Callable[[], Any]) -> dict[str, float]:
    start = time.perf_counter()
    run()
    return {"network": 1000 * (time.perf_counter() - start)}


def interleaved(runs: dict[str, Callable[[int], dict[str, float]]], frames: int, rounds: int) -> dict[str, dict]:
    """Milliseconds per step of every run on every frame, the runs taking turns round by round (load
    from other processes spreads over all of them): per frame the best round, then the median frame."""
    for run in runs.values():
        run(0)  # warm-up: first-call allocations and kernel picks
    timed: dict[str, list[list[dict[str, float]]]] = {name: [[] for _ in range(frames)] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            for index in range(frames):
                timed[name][index].append(run(index))
    result = {}
    for name, per_frame in timed.items():
        steps = {
            step: statistics.median(min(r[step] for r in rounds_) for rounds_ in per_frame) for step in per_frame[0][0]
        }
        steps["total"] = statistics.median(min(sum(r.values()) for r in rounds_) for rounds_ in per_frame)
        result[name] = steps
    return result


def export_full_size(folder: Path, cloud: Path) -> tuple[Any, Any]:
    """(PyTorch model, model config): the full-size model with seeded random weights, exported to
    folder/end2end.onnx with its runtime manifest."""
    import torch

    from mmloop.deploy.export import export_model_folder
    from mmloop.deploy.parity import pytorch_model
    from mmloop.deploy.target import load_deploy_config
    from mmloop.openmmlab.config import load_config

    torch.manual_seed(0)
    model_cfg = load_config(FULL_SIZE)
    model = pytorch_model(model_cfg, None, "cpu")
    with torch.no_grad():
        model.bbox_head.conv_cls.bias.fill_(-0.5)  # scores around 0.4: NMS gets a trained model's load
    checkpoint = folder / "random.pth"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    export_model_folder(cloud, folder, load_deploy_config("onnxruntime", 13), model_cfg, checkpoint)
    return model, model_cfg


def graph_flops(onnx_file: Path, voxels: dict[str, np.ndarray]) -> dict[str, tuple[str, float]]:
    """FLOPs (2 x MACs) of each compute layer of the exported graph at this frame's input shapes, by
    ONNX node name: {name: (op, FLOPs)}. Read by OpenVINO for its shape inference; not the saved IR,
    whose layers carry fused names."""
    import openvino as ov

    model = ov.Core().read_model(str(onnx_file))
    model.reshape({name: list(value.shape) for name, value in voxels.items()})
    flops: dict[str, tuple[str, float]] = {}
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind not in ("Convolution", "ConvolutionBackpropData", "MatMul"):
            continue
        a, b = (list(op.input(i).get_shape()) for i in (0, 1))
        out = list(op.output(0).get_shape())
        if kind == "Convolution":  # weights (Cout, Cin, kh, kw)
            macs = np.prod(out) * np.prod(b[1:])
        elif kind == "ConvolutionBackpropData":  # weights (Cin, Cout, kh, kw): every input pixel
            macs = np.prod(a) * np.prod(b[1:])
        else:
            macs = np.prod(out) * a[-1]
        flops[op.get_friendly_name()] = (kind, 2.0 * float(macs))
    return flops


def float_layers(qdq: Path) -> list[str]:
    """The compute layers of a Q/DQ model whose weights are not quantized: they run in float."""
    import onnx

    from mmloop.deploy.quantize import QUANTIZED_OPS

    graph = onnx.load(str(qdq)).graph
    dequantized = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    return [node.name for node in graph.node if node.op_type in QUANTIZED_OPS and node.input[1] not in dequantized]


def conv_shapes(model_file: Path, voxels: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The graph's Conv/ConvTranspose layers at this frame's shapes: input, weights, stride, padding."""
    import openvino as ov

    model = ov.Core().read_model(str(model_file))
    model.reshape({name: list(value.shape) for name, value in voxels.items()})
    layers = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in ("Convolution", "ConvolutionBackpropData"):
            continue
        attributes = op.get_attributes()
        layers.append(
            {
                "name": op.get_friendly_name(),
                "transposed": op.get_type_name() == "ConvolutionBackpropData",
                "input": list(op.input(0).get_shape()),
                "weight": list(op.input(1).get_shape()),
                "stride": tuple(attributes["strides"]),
                "padding": tuple(attributes["pads_begin"]),
            }
        )
    return layers


def layer_rate(layer: dict[str, Any], rounds: int) -> tuple[float, float]:
    """(FLOPs, median ms) of one conv layer's shape in PyTorch fp32, on random data."""
    import torch
    import torch.nn.functional as F

    x, w = torch.randn(layer["input"]), torch.randn(layer["weight"])
    conv = F.conv_transpose2d if layer["transposed"] else F.conv2d
    with torch.no_grad():
        out = conv(x, w, stride=layer["stride"], padding=layer["padding"])
        # a deconvolution's MACs follow its input, a convolution's its output
        macs = (x if layer["transposed"] else out).numel() * int(np.prod(layer["weight"][1:]))
        ms = best_ms(lambda: conv(x, w, stride=layer["stride"], padding=layer["padding"]), max(rounds, 3))
    return 2.0 * macs, ms


def roof(layers: list[dict[str, Any]], rounds: int) -> tuple[float, float, dict[str, Any]]:
    """(best GFLOP/s of one layer shape, FLOP-weighted GFLOP/s of all, the best layer): PyTorch fp32."""
    rates = [(layer, *layer_rate(layer, rounds)) for layer in layers]
    best_layer, flops, ms = max(rates, key=lambda rate: rate[1] / rate[2])
    weighted = sum(rate[1] for rate in rates) / sum(rate[2] for rate in rates) / 1e6
    return flops / ms / 1e6, weighted, best_layer


def pytorch_network(model: Any) -> Callable[[dict[str, Any]], Any]:
    """The exported part of the model in PyTorch eager: pillar encoder to head maps."""

    def network(voxels: dict[str, Any]) -> Any:
        features = model.voxel_encoder(voxels["voxels"], voxels["num_points"], voxels["coors"])
        canvas = model.middle_encoder(features, voxels["coors"], 1)
        return model.bbox_head(model.neck(model.backbone(canvas)))

    return network


def pytorch_frame(model: Any, points: Any) -> dict[str, float]:
    """One whole frame in PyTorch eager, timed per step (mmdet3d's own test_step splits the same way)."""
    from mmdet3d.structures import Det3DDataSample, LiDARInstance3DBoxes

    start = time.perf_counter()
    voxels = model.data_preprocessor.voxelize([points], [Det3DDataSample()])
    voxelized = time.perf_counter()
    maps = pytorch_network(model)(voxels)
    ran = time.perf_counter()
    model.bbox_head.predict_by_feat(*maps, batch_input_metas=[{"box_type_3d": LiDARInstance3DBoxes}])
    done = time.perf_counter()
    return {"voxelize": 1000 * (voxelized - start), "network": 1000 * (ran - voxelized), "decode": 1000 * (done - ran)}


def build(folder: Path, model: Any, model_cfg: Any, calibration: list[dict[str, np.ndarray]]) -> dict[str, Path]:
    """The backend folders: onnxruntime-fp32/int8 (ONNX), openvino-fp32/int8 (IR), each with the manifest."""
    import shutil

    from mmloop.core.stage import load_params
    from mmloop.deploy.backends.openvino import save_ir
    from mmloop.deploy.quantize import quantize_int8

    folders = {
        name: folder / name for name in ("onnxruntime-fp32", "onnxruntime-int8", "openvino-fp32", "openvino-int8")
    }
    for target in folders.values():
        target.mkdir(exist_ok=True)
        shutil.copyfile(folder / "manifest.json", target / "manifest.json")
    shutil.copyfile(folder / "end2end.onnx", folders["onnxruntime-fp32"] / "end2end.onnx")
    keep_float = load_params("deploy")["int8"]["keep_float"]
    int8 = quantize_int8(folder / "end2end.onnx", folders["onnxruntime-int8"] / "end2end.onnx", calibration, keep_float)
    print(f"int8 Q/DQ: {int8['int8_layers']} of {int8['layers']} run in int8 (deploy.int8.keep_float: {keep_float})")
    save_ir(folder / "end2end.onnx", folders["openvino-fp32"] / "end2end.xml")
    save_ir(folders["onnxruntime-int8"] / "end2end.onnx", folders["openvino-int8"] / "end2end.xml")
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clouds", type=Path, default=CLOUDS, help="a folder of KITTI .bin clouds")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the clouds per backend")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of every backend")
    parser.add_argument("--keep", type=Path, help="build in (and keep) this folder")
    parser.add_argument("--nncf", type=Path, help="a folder with an NNCF-quantized end2end.xml of the kept build")
    options = parser.parse_args()
    clouds = sorted(options.clouds.glob("*.bin"))
    if not clouds:
        raise SystemExit(f"{options.clouds}: no .bin clouds; pass --clouds (../shared/fixtures/kitti-real)")

    from mmloop.core.device import select_device

    select_device("cpu")
    import torch

    from mmloop_runtime import Detector
    from mmloop_runtime.backends import OnnxRuntimeNetwork, OpenVINONetwork
    from mmloop_runtime.kitti import read_cloud
    from mmloop_runtime.manifest import load_manifest
    from mmloop_runtime.voxelize import voxelize

    torch.set_num_threads(options.threads)
    scratch = tempfile.TemporaryDirectory(prefix="mmloop-bench-roof-")
    folder = options.keep or Path(scratch.name)
    folder.mkdir(parents=True, exist_ok=True)
    model, model_cfg = export_full_size(folder, clouds[0])
    manifest = load_manifest(folder)
    points = [read_cloud(path) for path in clouds]
    frames = [dict(zip(manifest.inputs, voxelize(cloud, manifest.voxelizer))) for cloud in points]
    np.savez(folder / "calibration.npz", **{f"{i}/{k}": v for i, frame in enumerate(frames) for k, v in frame.items()})
    folders = build(folder, model, model_cfg, frames)
    if options.nncf:
        folders["openvino-int8 (NNCF)"] = options.nncf
        (options.nncf / "manifest.json").write_bytes((folder / "manifest.json").read_bytes())

    layers = conv_shapes(folder / "end2end.onnx", frames[0])
    roofs = [roof(layers, options.rounds)]  # measured again between and after the backends: the best counts
    layer_flops = [graph_flops(folder / "end2end.onnx", frame) for frame in frames]
    gflop = statistics.mean(sum(value for _, value in f.values()) for f in layer_flops) / 1e9
    split: dict[str, float] = {}
    for kind, value in layer_flops[0].values():
        split[kind] = split.get(kind, 0.0) + value / 1e9
    floats = float_layers(folders["onnxruntime-int8"] / "end2end.onnx")
    float_gflop = sum(v for n, (_, v) in layer_flops[0].items() if any(n.startswith(f) for f in floats)) / 1e9
    voxel_counts = [len(frame["num_points"]) for frame in frames]

    tensors = [
        {k: torch.from_numpy(v).long() if k == "coors" else torch.from_numpy(v) for k, v in f.items()} for f in frames
    ]
    torch_points = [torch.from_numpy(cloud) for cloud in points]
    with torch.no_grad():
        eager = pytorch_network(model)
        networks: dict[str, Callable[[int], dict[str, float]]] = {
            "PyTorch eager": lambda i: timed_ms(lambda: eager(tensors[i]))
        }
        frames_run: dict[str, Callable[[int], dict[str, float]]] = {
            "PyTorch eager": lambda i: pytorch_frame(model, torch_points[i])
        }
        for name, path in folders.items():
            if name.startswith("onnxruntime"):
                net: Any = OnnxRuntimeNetwork(path / "end2end.onnx", manifest.outputs, options.threads)
            else:
                net = OpenVINONetwork(path / "end2end.xml", manifest.outputs, options.threads)
            networks[name] = lambda i, net=net: timed_ms(lambda: net(frames[i]))
            detector = Detector(path, threads=options.threads)

            def run(i: int, detector: Any = detector) -> dict[str, float]:
                detector.predict(points[i])
                return dict(detector.timings)

            frames_run[name] = run
        network_ms = {
            name: steps["network"] for name, steps in interleaved(networks, len(frames), options.rounds).items()
        }
        roofs.append(roof(layers, options.rounds))
        whole = interleaved(frames_run, len(frames), options.rounds)
    roofs.append(roof(layers, options.rounds))
    best, _, best_layer = max(roofs, key=lambda measured: measured[0])
    weighted = max(measured[1] for measured in roofs)

    print(
        f"\nFull-size KITTI PointPillars, random weights, {len(frames)} real KITTI clouds "
        f"({statistics.mean(len(p) for p in points):.0f} points, {statistics.mean(voxel_counts):.0f} pillars each), "
        f"{options.threads} threads, per frame the best of {options.rounds} interleaved passes, then the median frame. Network: {gflop:.1f} GFLOP/frame "
        f"({', '.join(f'{kind} {value:.1f}' for kind, value in split.items())}). Roof (PyTorch fp32, the graph's "
        f"own {len(layers)} conv layers): best {best:.0f} GFLOP/s ({best_layer['name']}, "
        f"{'x'.join(map(str, best_layer['input']))}), all layers FLOP-weighted {weighted:.0f} GFLOP/s; "
        f"at the roof the network takes {gflop / best * 1000:.0f} ms. int8 targets: {float_gflop:.1f} of "
        f"{sum(split.values()):.1f} GFLOP (first frame) stay float, in {', '.join(floats)}.\n"
    )
    print(
        "| backend | network ms | GFLOP/s | % of roof | voxelize ms | network ms (frame) | decode ms | "
        "frame ms | voxelize+decode % | vs PyTorch eager | vs best other |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, ms in network_ms.items():
        steps = whole[name]
        others = [whole[other]["total"] for other in whole if other not in (name, "PyTorch eager")]
        outside = 100 * (steps["voxelize"] + steps["decode"]) / steps["total"]
        print(
            f"| {name} | {ms:.0f} | {gflop / ms * 1000:.0f} | {100 * gflop / ms * 1000 / best:.0f} % | "
            f"{steps['voxelize']:.1f} | {steps['network']:.0f} | {steps['decode']:.1f} | {steps['total']:.0f} | "
            f"{outside:.1f} % | {steps['total'] / whole['PyTorch eager']['total']:.3f} | "
            f"{steps['total'] / min(others):.3f} |"
        )


if __name__ == "__main__":
    main()
