"""mmengine/mmdet3d glue: shipped tools, configs, params as cfg-options, the dvclive backend, the Runner."""
