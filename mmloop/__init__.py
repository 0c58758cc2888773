"""mmloop: the library behind the DVC stages (`python -m stages.<name>`).

One folder per concern: `core` (stage plumbing, paths, device), `openmmlab` (mmengine/mmdet3d
glue), `datasets/<format>`, `models/<family>`, `deploy` (export, parity, quantization and one
module per backend under `deploy/backends`). The torch-free `mmloop_runtime` package (runtime/)
never imports this one; this one may import it.
"""
