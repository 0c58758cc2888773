# A small PointPillars for the sample dataset: the same architecture as mmdet3d's KITTI 3-class
# PointPillars (inherited below) with a shorter range, coarser pillars and fewer channels, so it
# trains on 2 CPU cores in minutes. Everything not set here is mmdet3d's.
_base_ = ['./pointpillars_kitti-3class.py']

# 46.08 m ahead, +-23.04 m to the sides, 0.32 m pillars: a 144 x 144 grid (the shipped model has
# 432 x 496 at 0.16 m). Objects farther than ~45 m are "hard" in KITTI's difficulty anyway.
point_cloud_range = [0, -23.04, -3, 46.08, 23.04, 1]
voxel_size = [0.32, 0.32, 4]
data_root = 'work/prepared/'
backend_args = None

model = dict(
    data_preprocessor=dict(
        voxel_layer=dict(
            max_num_points=32,
            point_cloud_range=point_cloud_range,
            voxel_size=voxel_size,
            max_voxels=(12000, 20000))),
    voxel_encoder=dict(
        feat_channels=[32], voxel_size=voxel_size, point_cloud_range=point_cloud_range),
    middle_encoder=dict(in_channels=32, output_shape=[144, 144]),
    backbone=dict(
        in_channels=32, layer_nums=[1, 2, 2], layer_strides=[2, 2, 2], out_channels=[32, 64, 128]),
    neck=dict(in_channels=[32, 64, 128], upsample_strides=[1, 2, 4], out_channels=[64, 64, 64]),
    bbox_head=dict(
        in_channels=192,
        feat_channels=192,
        anchor_generator=dict(ranges=[
            [0, -23.04, -0.6, 46.08, 23.04, -0.6],
            [0, -23.04, -0.6, 46.08, 23.04, -0.6],
            [0, -23.04, -1.78, 46.08, 23.04, -1.78],
        ])))

db_sampler = dict(
    data_root=data_root,
    info_path=data_root + 'kitti_dbinfos_train.pkl',
    rate=1.0,
    prepare=dict(
        filter_by_difficulty=[-1],
        filter_by_min_points=dict(Car=5, Pedestrian=5, Cyclist=5)),
    classes={{_base_.class_names}},
    # A sample street holds fewer objects than a KITTI scene: paste fewer.
    sample_groups=dict(Car=8, Pedestrian=6, Cyclist=6),
    points_loader=dict(
        type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4,
        backend_args=backend_args),
    backend_args=backend_args)

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
test_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4,
         backend_args=backend_args),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='Pack3DDetInputs', keys=['points']),
]

# 2 cores: one loader worker each way is as fast as four and keeps the trainer's core free.
train_dataloader = dict(
    batch_size=4, num_workers=1,
    dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(num_workers=1, dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(num_workers=1, dataset=dict(pipeline=test_pipeline))

lr = 0.002
epoch_num = 20
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=epoch_num * 0.4, eta_min=lr * 10, begin=0,
         end=epoch_num * 0.4, by_epoch=True, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=epoch_num * 0.6, eta_min=lr * 1e-4,
         begin=epoch_num * 0.4, end=epoch_num * 1, by_epoch=True, convert_to_iter_based=True),
    dict(type='CosineAnnealingMomentum', T_max=epoch_num * 0.4, eta_min=0.85 / 0.95, begin=0,
         end=epoch_num * 0.4, by_epoch=True, convert_to_iter_based=True),
    dict(type='CosineAnnealingMomentum', T_max=epoch_num * 0.6, eta_min=1,
         begin=epoch_num * 0.4, end=epoch_num * 1, by_epoch=True, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=epoch_num, val_interval=5)
