# KITTI 3-class PointPillars exactly as mmdet3d ships it, reading mmloop's prepared data. Train it
# on real KITTI (see the README, "Training the full model"):
#   dvc exp run -S model.config=configs/models/pointpillars_kitti-3class.py \
#     -S 'model.point_cloud_range=[0,-39.68,-3,69.12,39.68,1]' -S 'model.voxel_size=[0.16,0.16,4]' \
#     -S train.epochs=80 -S train.batch_size=6 -S train.lr=0.001 -S model.load_from=null
_base_ = ['mmdet3d::pointpillars/pointpillars_hv_secfpn_8xb6-160e_kitti-3d-3class.py']

# `prepare` writes mmdet3d's KITTI data_root layout here (the train stage points every path in the
# config at it, so this only matters when the config is run by mmdet3d's tools/train.py directly).
data_root = 'work/prepared/'
backend_args = None
point_cloud_range = [0, -39.68, -3, 69.12, 39.68, 1]
class_names = ['Pedestrian', 'Cyclist', 'Car']

db_sampler = dict(
    data_root=data_root,
    info_path=data_root + 'kitti_dbinfos_train.pkl',
    rate=1.0,
    prepare=dict(
        filter_by_difficulty=[-1],
        filter_by_min_points=dict(Car=5, Pedestrian=5, Cyclist=5)),
    classes=class_names,
    sample_groups=dict(Car=15, Pedestrian=15, Cyclist=15),
    points_loader=dict(
        type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4,
        backend_args=backend_args),
    backend_args=backend_args)

# The only change to mmdet3d's pipeline: `use_ground_plane=False`. The shipped config samples GT
# objects onto KITTI's fitted road planes, which `prepare` does not produce (and custom datasets
# do not have); without planes, sampled objects keep their own height.
train_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4,
         backend_args=backend_args),
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True),
    dict(type='ObjectSample', db_sampler=db_sampler, use_ground_plane=False),
    dict(type='RandomFlip3D', flip_ratio_bev_horizontal=0.5),
    dict(type='GlobalRotScaleTrans', rot_range=[-0.78539816, 0.78539816],
         scale_ratio_range=[0.95, 1.05]),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='PointShuffle'),
    dict(type='Pack3DDetInputs', keys=['points', 'gt_labels_3d', 'gt_bboxes_3d']),
]

train_dataloader = dict(
    dataset=dict(dataset=dict(data_root=data_root, pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
val_evaluator = dict(ann_file=data_root + 'kitti_infos_val.pkl')
test_evaluator = val_evaluator
