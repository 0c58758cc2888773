"""What TensorRT's ONNX parser takes: ops with their types and restrictions, opsets, tensor types.

A table from onnx/onnx-tensorrt's docs/operators.md, kept apart from the checks that read it
(readiness.py) so that a newer TensorRT's list is one edit here.
"""

from __future__ import annotations

# What TensorRT's ONNX parser takes, from onnx/onnx-tensorrt docs/operators.md for TensorRT 10.15
# (the newest stored version; TensorRT 10.0 took opsets 9..20, 10.15 takes 9..24). Types use the
# doc's short names (TYPE_NAMES maps them to ONNX's); notes are our summary of its restrictions.
# An op absent here is one the doc marks unsupported or does not list.
PARSER_SOURCE = "onnx/onnx-tensorrt docs/operators.md (TensorRT 10.15)"
PARSER_OPSETS = (9, 24)

# A table: its hand layout, several ops a line, reads better than the formatter's one op a line.
# fmt: off
_F = ("FP32", "FP16", "BF16")
_F16 = ("FP32", "FP16")
_I = ("INT32", "INT64")
_FI = _F + _I
_ALL = _F + _I + ("BOOL",)
_REDUCE = (_FI, "axes must be an initializer")
_RANDOM = (_F, "seed is ignored")

PARSER_OPS: dict[str, tuple[tuple[str, ...], str]] = {
    "Abs": (_FI, ""), "Acos": (_F, ""), "Acosh": (_F, ""), "Add": (_FI, ""), "And": (("BOOL",), ""),
    "ArgMax": (_FI, ""), "ArgMin": (_FI, ""), "Asin": (_F, ""), "Asinh": (_F, ""), "Atan": (_F, ""),
    "Atanh": (_F, ""),
    "Attention": (_F + ("INT8", "FP8"), "4D Q/K/V/mask; no KV-cache inputs or outputs, no softcap"),
    "AveragePool": (_F, "2D/3D only; no dilations"),
    "BatchNormalization": (_F, ""), "BlackmanWindow": (_F16, ""),
    "Cast": (_FI + ("UINT8", "BOOL"), ""), "CastLike": (_FI + ("UINT8", "BOOL"), ""),
    "Ceil": (_F, ""), "Celu": (_F, ""), "Clip": (_F, ""), "Concat": (_ALL, ""),
    "Constant": (_ALL + ("FP8", "FP4", "INT4"), "no sparse or string values"),
    "ConstantOfShape": (_ALL + ("FP8", "FP4", "INT4"), ""),
    "Conv": (_F, ""), "ConvTranspose": (_F, ""), "Cos": (_F, ""), "Cosh": (_F, ""),
    "CumSum": (_F, "axis must be a build-time constant"),
    "DeformConv": (_F16, "1D/2D spatial input; symmetric pads"),
    "DepthToSpace": (_FI, ""),
    "DequantizeLinear": (("INT8", "FP8", "FP4", "INT4"), "zero point must be 0"),
    "Div": (_FI, ""), "Dropout": (_F, "is_training must be a constant False"),
    "Einsum": (_F, ""), "Elu": (_F, ""), "Equal": (_FI, ""), "Erf": (_F, ""), "Exp": (_F, ""),
    "Expand": (_ALL, ""), "EyeLike": (_ALL, "static input shape"), "Flatten": (_ALL, ""),
    "Floor": (_F, ""), "Gather": (_ALL, ""), "GatherElements": (_ALL, ""), "GatherND": (_ALL, ""),
    "Gelu": (_FI + ("INT8",), ""), "Gemm": (_F, ""), "GlobalAveragePool": (_F, ""),
    "GlobalLpPool": (_F, ""), "GlobalMaxPool": (_F, ""), "Greater": (_FI, ""),
    "GreaterOrEqual": (_FI, ""), "GridSample": (_F16, "4D input"), "GroupNormalization": (_F, ""),
    "GRU": (_F, "bidirectional: same activations both ways"), "HammingWindow": (_F16, ""),
    "HannWindow": (_F16, ""), "HardSigmoid": (_F, ""), "HardSwish": (_F, ""),
    "Hardmax": (_F, "axis dimension must be a build-time constant"), "Identity": (_ALL, ""),
    "If": (_ALL, "branch outputs: same rank, distinct names"), "ImageScaler": (_F, ""),
    "InstanceNormalization": (_F, ""), "IsInf": (_F, ""), "IsNaN": (_FI, ""),
    "LayerNormalization": (_F, "output Y only"), "LeakyRelu": (_F, ""), "Less": (_FI, ""),
    "LessOrEqual": (_FI, ""), "Log": (_F, ""), "LogSoftmax": (_F, ""),
    "Loop": (_ALL, "static scan-output length; loop-carried shapes fixed"), "LRN": (_F, ""),
    "LSTM": (_F, "bidirectional: same activations; input_forget=0, layout=0"),
    "LpNormalization": (_F, ""), "LpPool": (_F, "no dilations"), "MatMul": (_F, ""),
    "Max": (_FI, ""), "MaxPool": (_F, "2D/3D only; no Indices output; no dilations"),
    "Mean": (_FI + ("FP8",), ""), "MeanVarianceNormalization": (_F, ""), "Min": (_FI, ""),
    "Mish": (_F16, ""), "Mod": (_FI, ""), "Mul": (_FI, ""), "Neg": (_FI, ""),
    "NonMaxSuppression": (_F16, ""), "NonZero": (_F16, ""), "Not": (("BOOL",), ""),
    "OneHot": (_ALL, "depth must be a build-time constant"), "Or": (("BOOL",), ""),
    "Pad": (_FI, ""), "ParametricSoftplus": (_F, ""), "Pow": (_FI, ""), "PRelu": (_F, ""),
    "QuantizeLinear": (_F, "zero point must be 0"),
    "RandomNormal": _RANDOM, "RandomNormalLike": _RANDOM, "RandomUniform": _RANDOM,
    "RandomUniformLike": _RANDOM, "Range": (_FI, ""), "Reciprocal": (_F, ""),
    "ReduceL1": _REDUCE, "ReduceL2": _REDUCE, "ReduceLogSum": _REDUCE, "ReduceLogSumExp": _REDUCE,
    "ReduceMax": _REDUCE, "ReduceMean": _REDUCE, "ReduceMin": _REDUCE, "ReduceProd": _REDUCE,
    "ReduceSum": _REDUCE, "ReduceSumSquare": _REDUCE, "Relu": (_FI, ""), "Reshape": (_ALL, ""),
    "Resize": (_F, "nearest/linear modes only; no antialias"), "ReverseSequence": (_ALL, ""),
    "RMSNormalization": (_F, ""), "RNN": (_F, "bidirectional: same activations both ways"),
    "RoiAlign": (_F16, ""), "RotaryEmbedding": (_F, "position_ids must be INT64"),
    "Round": (_F, ""), "STFT": (("FP32",), "real input; frame_step and window initializers"),
    "ScaledTanh": (_F, ""), "Scan": (_F, ""), "Scatter": (_FI, ""), "ScatterElements": (_FI, ""),
    "ScatterND": (_FI, "reduction must be none"), "Selu": (_F, ""), "Shape": (_ALL, ""),
    "Shrink": (_FI, ""), "Sigmoid": (_F, ""), "Sign": (_FI, ""), "Sin": (_F, ""), "Sinh": (_F, ""),
    "Size": (_ALL, ""), "Slice": (_ALL, ""), "Softmax": (_F, ""), "Softplus": (_F, ""),
    "Softsign": (_F, ""), "SpaceToDepth": (_FI, ""), "Split": (_ALL, ""), "Sqrt": (_F, ""),
    "Squeeze": (_ALL, "axes must resolve to a constant"), "Sub": (_FI, ""), "Sum": (_FI, ""),
    "Tan": (_F, ""), "Tanh": (_F, ""), "TensorScatter": (_F + ("INT32",), "4D tensors, axis -2"),
    "ThresholdedRelu": (_F, ""), "Tile": (_ALL, ""), "TopK": (_FI, "sorted=1; K < 3840"),
    "Transpose": (_ALL, ""), "Trilu": (_ALL, ""),
    "Unsqueeze": (_ALL, "axes must resolve to a constant"), "Upsample": (_F, ""), "Where": (_ALL, ""),
    "Xor": (("BOOL",), ""),
}

#: The doc's type names as ONNX TensorProto names (its FP8 is E4M3, its FP4 is E2M1).
TYPE_NAMES = {"FP32": "FLOAT", "FP16": "FLOAT16", "BF16": "BFLOAT16", "FP8": "FLOAT8E4M3FN",
              "FP4": "FLOAT4E2M1", "INT32": "INT32", "INT64": "INT64", "INT8": "INT8", "INT4": "INT4",
              "UINT8": "UINT8", "BOOL": "BOOL"}
#: Tensor types the parser takes anywhere in the graph; UINT8 only as a graph input or output.
PARSER_DTYPES = frozenset(TYPE_NAMES.values()) - {"UINT8"}
#: Taken but cast down to FLOAT (values clamped to +-FLT_MAX): worth knowing, not a blocker.
LIMITED_DTYPES = frozenset({"DOUBLE"})

# Ops whose listed types describe what they produce, not their first input (a window's input is
# its length; a *Like op's input only lends a shape).
OUTPUT_TYPED = frozenset({"BlackmanWindow", "HammingWindow", "HannWindow", "ConstantOfShape",
                           "RandomNormalLike", "RandomUniformLike"})
# fmt: on
