"""Static int8 quantization of the exported graph with ONNX Runtime's quantization tools.

Calibration data are voxelized frames the pipeline prepared (parity.voxel_frames), so the
activation ranges are those of the data the model was trained on. The result is a Q/DQ graph:
ONNX Runtime fuses it into int8 kernels on the CPU, and TensorRT >= 11 builds int8 engines from
it (explicit quantization: its calibrator API is gone).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mmloop.core.stage import StageError
from mmloop.deploy.target import onnx_opset

#: The layers that carry the compute; the rest of the graph (pillar scatter, reshapes, casts)
#: moves or indexes data and stays float.
QUANTIZED_OPS = ("Conv", "ConvTranspose", "MatMul")


class FrameReader:
    """ONNX Runtime's CalibrationDataReader over voxelized frames, in the strided form
    (`__len__`, `set_range`) with which the calibrator folds in one frame's ranges at a time."""

    def __init__(self, frames: list[dict[str, np.ndarray]]) -> None:
        self.frames = frames
        self._window: Iterator[dict[str, np.ndarray]] = iter(frames)

    def __len__(self) -> int:
        return len(self.frames)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._window = iter(self.frames[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._window, None)


def quantize_int8(
    src: Path,
    dst: Path,
    frames: Iterable[dict[str, np.ndarray]],
    keep_float: Iterable[str] = (),
    symmetric: bool = False,
) -> dict[str, Any]:
    """Write the int8 Q/DQ model of `src` to `dst`, calibrated on `frames`; returns a report.

    Layers whose node name starts with a `keep_float` prefix stay float. Weights are int8 per
    output channel. Activations are uint8 with a zero point for ONNX Runtime on x86 (its fastest
    int8 convolution takes u8 activations, s8 weights), or int8 symmetric with float biases
    (`symmetric=True`) for TensorRT, which only takes that.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(src))
    opset = onnx_opset(model)
    if opset is None or opset < 13:
        # per-channel DequantizeLinear (its `axis`) arrived in opset 13
        raise StageError(f"{src}: opset {opset}; int8 needs opset >= 13: set params.yaml deploy.opset to 13 or more")
    reader = FrameReader(list(frames))  # voxels only: a few MB per frame
    if not reader.frames:
        raise StageError("no calibration frames; check params.yaml deploy.int8.calibration_frames and the train split")
    names = [node.name for node in model.graph.node]
    excluded = [name for name in names if any(name.startswith(prefix) for prefix in keep_float)]
    with tempfile.TemporaryDirectory(prefix="mmloop-quantize-") as scratch:
        # Shape inference and constant folding first, as ONNX Runtime's docs ask: the quantizer
        # needs every tensor's shape to place Q/DQ pairs.
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=False)
        quantize_static(
            str(prepared),
            str(dst),
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OPS),
            per_channel=True,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded,
            # Min/max ranges: ONNX Runtime's histogram calibrators (entropy, percentile) stack
            # every frame's activations and fail on the pillar encoder's per-frame voxel count.
            calibrate_method=CalibrationMethod.MinMax,
            # TensorRT's parser takes no int32 DequantizeLinear: it quantizes biases itself.
            extra_options={
                "ActivationSymmetric": symmetric,
                "WeightSymmetric": True,
                "QuantizeBias": not symmetric,
                # one frame at a time, its ranges folded in before the next: the
                # calibrator otherwise keeps every activation of every frame (a full
                # KITTI BEV map is 55 MB, dozens per frame) and runs out of memory
                "CalibStridedMinMax": 1,
            },
        )
    return {"calibration_frames": len(reader), **quantized_layers(dst)}


def quantized_layers(path: Path) -> dict[str, Any]:
    """How many of each compute layer ended up between Q/DQ pairs (i.e. run in int8): both its input
    and its weights dequantized. A kept-float layer can still read a dequantized input (its producer
    is quantized for another consumer) and then runs in float."""
    import onnx

    graph = onnx.load(str(path)).graph
    dequantized = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    counts: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for node in graph.node:
        if node.op_type in QUANTIZED_OPS:
            totals[node.op_type] += 1
            if len(node.input) > 1 and node.input[0] in dequantized and node.input[1] in dequantized:
                counts[node.op_type] += 1
    return {"int8_layers": dict(counts), "layers": dict(totals)}
