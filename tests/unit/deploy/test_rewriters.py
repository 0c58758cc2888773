"""Our pillar scatter rewrite (mmloop.deploy.rewriters): the same canvas as mmdet3d's scatter, and
an exported graph without mmdeploy's zero canvas constant (at most 1.1 x its weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FULL_SIZE = "configs/models/pointpillars_kitti-3class.py"


def initializer_bytes(model: object) -> int:
    from onnx import numpy_helper

    return sum(numpy_helper.to_array(tensor).nbytes for tensor in model.graph.initializer)  # type: ignore[attr-defined]


def test_rewrite_scatters_like_mmdet3d() -> None:
    import torch
    from mmdet3d.models.middle_encoders import PointPillarsScatter

    from mmloop.deploy.rewriters import pillar_scatter_runtime_canvas

    scatter = PointPillarsScatter(in_channels=8, output_shape=[6, 10])
    generator = torch.Generator().manual_seed(0)
    cells = torch.randperm(60, generator=generator)[:25]
    coors = torch.stack([torch.zeros_like(cells), torch.zeros_like(cells), cells // 10, cells % 10], 1).int()
    features = torch.randn(25, 8, generator=generator)
    expected = scatter.forward_batch(features, coors, batch_size=1)
    got = pillar_scatter_runtime_canvas(scatter, features, coors)
    assert got.shape == expected.shape == (1, 8, 6, 10)
    assert torch.equal(got, expected)


def random_cloud(path: Path, points: int = 20000) -> Path:
    """A cloud in the full-size model's range ([0, -39.68, -3, 69.12, 39.68, 1]): x, y, z, intensity."""
    rng = np.random.default_rng(0)
    low, high = np.array([0, -39.68, -3, 0]), np.array([69.12, 39.68, 1, 1])
    rng.uniform(low, high, (points, 4)).astype(np.float32).tofile(path)
    return path


def test_full_size_export_has_no_zero_canvas(tmp_path: Path) -> None:
    """mmdeploy's own rewrite makes this graph 74 MB for 19 MB of weights (a 55 MB canvas)."""
    import onnx
    import torch

    from mmloop.core.device import select_device
    from mmloop.deploy.export import export_onnx
    from mmloop.deploy.parity import pytorch_model
    from mmloop.deploy.target import load_deploy_config
    from mmloop.openmmlab.config import load_config

    select_device("cpu")
    model_cfg = load_config(FULL_SIZE)
    checkpoint = tmp_path / "random.pth"
    torch.save({"state_dict": pytorch_model(model_cfg, None, "cpu").state_dict()}, checkpoint)
    deploy_cfg = load_deploy_config("onnxruntime", 13)
    onnx_file = export_onnx(random_cloud(tmp_path / "cloud.bin"), tmp_path, deploy_cfg, model_cfg, checkpoint)
    model = onnx.load(str(onnx_file))
    weights = initializer_bytes(model)
    assert weights > 15e6  # the full-size backbone and head
    assert onnx_file.stat().st_size <= 1.1 * weights, (onnx_file.stat().st_size, weights)
    # the canvas is made at run time, from a shape computed in the graph (not a constant)
    canvas = [node for node in model.graph.node if node.op_type == "ConstantOfShape"]
    constants = {node.output[0] for node in model.graph.node if node.op_type == "Constant"}
    assert canvas and all(node.input[0] not in constants for node in canvas)
