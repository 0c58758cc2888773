# The 2D detector's ONNX model built into a TensorRT engine: camera targets tensorrt-fp32/fp16/int8.
# The engine is built from the graph export_2d wrote with the ONNX Runtime config, whose NMS is
# ONNX's NonMaxSuppression, an op TensorRT's parser takes: mmdeploy's own TensorRT export would put
# its TRTBatchedNMS plugin there, a TensorRT 8 library mmloop never loads. export_2d reports whether
# the parser takes the graph (metrics/export.json, tensorrt_readiness); deploy_2d fills the static
# profile below from the graph's input size and the workspace from deploy.tensorrt.
_base_ = ['./detection_onnx_static.py']

backend_config = dict(
    type='tensorrt',
    common_config=dict(fp16_mode=False, int8_mode=False, max_workspace_size=1 << 31),
    model_inputs=[
        dict(input_shapes=dict(
            input=dict(min_shape=[1, 3, 192, 640], opt_shape=[1, 3, 192, 640], max_shape=[1, 3, 192, 640]),
        ))
    ])
