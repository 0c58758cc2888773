"""Parameter sweeps as many parallel `dvc exp run`s: on a Slurm cluster (one array job, a task per
point) or here, one point after another (docs/sweep.md).

    __main__.py     the CLI: checks, the grid, skip what is done, submit, wait, report, dvc exp pull
    grid.py         -S overrides -> points (DVC's hydra sweep expansion), each point's experiment name
    checks.py       what must hold before submitting (clean tree, HEAD pushed, a DVC remote clones reach)
    spec.py         sweep.json and the sweep folder's layout
    executors.py    slurm (sbatch array) and local, behind one interface
    task.py         one point: clone, dvc exp run --pull, dvc exp push, status.json
    experiments.py  the experiments on the git remote: list (skip) and pull
    report.py       one line per point
    commands.py     the one place git and dvc are run
"""
