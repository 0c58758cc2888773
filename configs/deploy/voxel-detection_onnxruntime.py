# The ONNX model run by ONNX Runtime (CPU): targets onnxruntime-fp32 and onnxruntime-int8.
_base_ = ['./voxel-detection_onnx_dynamic.py']

backend_config = dict(type='onnxruntime')
