# mmdeploy deploy config for mmdet3d voxel detectors (PointPillars, SECOND): the ONNX the `export`
# stage writes. mmdeploy 1.3.1's wheel ships no deploy configs; this follows the layout of its
# repo's configs/mmdet3d/voxel-detection/voxel-detection_dynamic.py. The graph starts after
# voxelization (inputs: the voxelizer's outputs) and ends before box decoding and NMS (outputs:
# the anchor head's raw maps); mmdeploy's backend model does both ends in PyTorch.
codebase_config = dict(type='mmdet3d', task='VoxelDetection', model_type='end2end')

onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=11,  # params.yaml deploy.opset overrides it
    save_file='end2end.onnx',
    input_names=['voxels', 'num_points', 'coors'],
    output_names=['cls_score0', 'bbox_pred0', 'dir_cls_pred0'],
    input_shape=None,
    # mmdeploy's graph optimizer needs its TorchScript extension, which the wheel lacks; ONNX
    # Runtime and TensorRT optimize the graph themselves.
    optimize=False,
    # The number of non-empty voxels changes every frame.
    dynamic_axes={
        'voxels': {0: 'voxels_num'},
        'num_points': {0: 'voxels_num'},
        'coors': {0: 'voxels_num'},
    })
