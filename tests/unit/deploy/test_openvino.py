"""The OpenVINO backend (mmloop/deploy/backends/openvino.py) and the runtime's OpenVINONetwork: the
IR keeps fp32 weights and gives ONNX Runtime's outputs, mmdeploy's backend manager builds our
wrapper inside the block only, and a host without OpenVINO fails in one line."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from mmloop.core.stage import StageError


def small_graph(path: Path) -> Path:
    """Conv + ReLU with a dynamic batch, exported by torch (TorchScript exporter)."""
    import torch

    from mmloop.deploy.export import torchscript_onnx_exporter

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 16, 3, padding=1), torch.nn.ReLU()).eval()
    with torchscript_onnx_exporter():
        torch.onnx.export(
            model,
            (torch.zeros(1, 4, 12, 10),),
            str(path),
            opset_version=13,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
        )
    return path


def test_ir_keeps_fp32_weights_and_matches_onnxruntime(tmp_path: Path) -> None:
    from mmloop.deploy.backends.openvino import save_ir
    from mmloop_runtime.backends import OnnxRuntimeNetwork, OpenVINONetwork, open_network

    onnx_file = small_graph(tmp_path / "end2end.onnx")
    folder = tmp_path / "openvino-fp32"
    folder.mkdir()
    save_ir(onnx_file, folder / "end2end.xml")
    weights = (16 * 4 * 3 * 3 + 16) * 4  # float32 bytes: not halved to fp16
    assert (folder / "end2end.bin").stat().st_size >= weights
    x = np.random.default_rng(0).standard_normal((3, 4, 12, 10)).astype(np.float32)
    expected = OnnxRuntimeNetwork(onnx_file, ("y",), threads=1)({"x": x})["y"]
    network = open_network(folder, ("y",), threads=1)
    assert isinstance(network, OpenVINONetwork) and network.name.startswith("openvino 2026")
    got = network({"x": x})["y"]
    assert got.shape == (3, 4 * 4, 12, 10)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # the outputs are copies: the next frame does not overwrite them
    network({"x": np.zeros_like(x)})
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_mmdeploy_builds_our_wrapper_only_inside_the_block(tmp_path: Path) -> None:
    import torch
    from mmdeploy.backend.base import get_backend_manager

    from mmloop.deploy.backends.openvino import openvino_backend_model, save_ir

    # why the wrapper is ours: mmdeploy 1.3.1's imports an API OpenVINO 2023.1 removed
    with pytest.raises(ImportError):
        import openvino.inference_engine  # noqa: F401
    save_ir(small_graph(tmp_path / "end2end.onnx"), tmp_path / "end2end.xml")
    manager = get_backend_manager("openvino")
    original = manager.__dict__["build_wrapper"]
    x = torch.randn(2, 4, 12, 10)
    with openvino_backend_model(threads=1):
        wrapper = manager.build_wrapper([str(tmp_path / "end2end.xml")], "cpu", ["x"], ["y"], None)
        y = wrapper({"x": x})["y"]
    assert manager.__dict__["build_wrapper"] is original
    assert isinstance(y, torch.Tensor) and y.shape == (2, 16, 12, 10) and bool((y >= 0).all())
    assert wrapper.output_names == ["y"]


def test_host_without_openvino_fails_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmloop.deploy.backends.openvino import BACKEND

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    with pytest.raises(StageError, match=r"^deploy target openvino-int8: OpenVINO is not installed; pip install"):
        BACKEND.check_host("openvino-int8")


def test_runtime_without_openvino_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmloop_runtime.backends import open_network

    (tmp_path / "end2end.xml").write_text("<net/>")
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(RuntimeError, match=r"mmloop-runtime\[openvino\]"):
        open_network(tmp_path, ("y",))
