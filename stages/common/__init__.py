"""Code that several stages share: KITTI file formats, params, errors, mmdet3d's shipped tools."""
