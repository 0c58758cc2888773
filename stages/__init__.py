"""mmloop's DVC stages: one module per stage in `dvc.yaml`, run as `python -m stages.<name>`."""
