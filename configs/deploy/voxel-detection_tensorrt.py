# The ONNX model built into a TensorRT engine: targets tensorrt-fp32/fp16/int8. The `deploy` stage
# fills the optimization profile (model_inputs) from params.yaml deploy.voxels and the workspace
# from deploy.tensorrt; mmdeploy's TensorRT 8 builder is not used (mmloop/deploy/tensorrt/engine.py).
_base_ = ['./voxel-detection_onnx_dynamic.py']

backend_config = dict(
    type='tensorrt',
    common_config=dict(fp16_mode=False, int8_mode=False, max_workspace_size=1 << 31),
    model_inputs=[
        dict(input_shapes=dict(
            voxels=dict(min_shape=[1000, 32, 4], opt_shape=[12000, 32, 4], max_shape=[20000, 32, 4]),
            num_points=dict(min_shape=[1000], opt_shape=[12000], max_shape=[20000]),
            coors=dict(min_shape=[1000, 4], opt_shape=[12000, 4], max_shape=[20000, 4]),
        ))
    ])
