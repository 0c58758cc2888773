# The 2D detector's ONNX model run by ONNX Runtime (CPU): camera targets onnxruntime-fp32 and
# onnxruntime-int8 (int8: mmloop's Q/DQ model of the same graph, NMS kept float).
_base_ = ['./detection_onnx_static.py']

backend_config = dict(type='onnxruntime')
