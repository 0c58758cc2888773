"""int8 quantization of a small graph (mmloop.deploy.quantize): calibrated and close to fp32,
`keep_float` honoured, the TensorRT variant symmetric with float biases, opset < 13 and no frames
rejected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmloop.core.stage import StageError


def small_conv_graph(path: Path, opset: int = 13) -> None:
    """x -> Conv -> Relu -> Conv (named like the exported head) -> y, with fixed random weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)
        for name, shape in (("w1", (8, 4, 3, 3)), ("b1", (8,)), ("w2", (6, 8, 1, 1)), ("b2", (6,)))
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="/backbone/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="/backbone/Relu"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["y"], name="/conv_cls/Conv"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 6, 8, 8])],
        weights,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))


def frames(count: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{"x": rng.normal(size=(1, 4, 8, 8)).astype(np.float32)} for _ in range(count)]


def test_int8_quantization_is_calibrated_and_close(tmp_path: Path) -> None:
    import onnxruntime as ort

    from mmloop.deploy.quantize import quantize_int8

    small_conv_graph(tmp_path / "fp32.onnx")
    report = quantize_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", frames(16))
    assert report == {"calibration_frames": 16, "int8_layers": {"Conv": 2}, "layers": {"Conv": 2}}
    kept = quantize_int8(tmp_path / "fp32.onnx", tmp_path / "kept.onnx", frames(16), keep_float=["/conv_cls/"])
    assert kept["int8_layers"] == {"Conv": 1}
    x = frames(1)[0]
    y32, y8 = (
        ort.InferenceSession(str(tmp_path / name), providers=["CPUExecutionProvider"]).run(None, x)[0]
        for name in ("fp32.onnx", "int8.onnx")
    )
    assert 0 < np.abs(y8 - y32).max() < 0.1 * np.abs(y32).max()  # int8, but close


def test_int8_for_tensorrt_is_symmetric_with_float_biases(tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    from mmloop.deploy.quantize import quantize_int8

    small_conv_graph(tmp_path / "fp32.onnx")
    quantize_int8(tmp_path / "fp32.onnx", tmp_path / "qdq.onnx", frames(8), symmetric=True)
    graph = onnx.load(str(tmp_path / "qdq.onnx")).graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    zero_points = [
        constants[node.input[2]] for node in graph.node if node.op_type == "QuantizeLinear" and len(node.input) > 2
    ]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)
    assert not any(value.dtype == np.int32 for value in constants.values())  # biases stay float


def test_int8_needs_opset_13_and_frames(tmp_path: Path) -> None:
    from mmloop.deploy.quantize import quantize_int8

    small_conv_graph(tmp_path / "old.onnx", opset=11)
    with pytest.raises(StageError, match="deploy.opset to 13"):
        quantize_int8(tmp_path / "old.onnx", tmp_path / "int8.onnx", frames(2))
    small_conv_graph(tmp_path / "fp32.onnx")
    with pytest.raises(StageError, match="calibration_frames"):
        quantize_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", [])
