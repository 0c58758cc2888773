# mmloop: `make demo` runs the whole loop on the sample dataset (the LiDAR loop, then the camera loop), `make test` runs the test suite.
# Both build .venv once (torch, mmcv built from source with CPU ops, open-mmlab, DVC) and reuse it:
# the set-up reruns only when requirements*.txt, constraints.txt, pyproject.toml, runtime/pyproject.toml or this Makefile change.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV ?= .venv
# A GPU host brings its own CUDA build, e.g. TORCH_SPEC="torch==2.13.0 --index-url <CUDA wheel index>"
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.mmloop-setup
# dvc runs stage commands through the shell: `python` there must be this venv's.
export PATH := $(BIN):$(PATH)

# The artifacts `make demo` fetches: datasets and pretrained checkpoints (every top-level .dvc
# file), so that its `dvc repro` runs the whole loop. (A bare `dvc pull` also brings main's trained
# and deployed models from the demo remote.)
ARTIFACTS := $(wildcard *.dvc)

.PHONY: setup pull demo publish-demo lint test clean-venv

setup: $(STAMP)
	@echo "mmloop setup: $(VENV) is ready ($$($(BIN)/python -c 'import torch, mmcv, mmdet3d; print(f"torch {torch.__version__}, mmcv {mmcv.__version__}, mmdet3d {mmdet3d.__version__}")'))"

$(STAMP): requirements.txt requirements-build.txt constraints.txt pyproject.toml runtime/pyproject.toml scripts/progress.py Makefile
	@echo "mmloop setup: [1/5] virtualenv $(VENV) with $$($(PYTHON) --version)"
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade 'pip>=24,<25'
	@echo "mmloop setup: [2/5] $(TORCH_SPEC) and mmcv's build tools"
	$(BIN)/pip install --quiet $(TORCH_SPEC) -r requirements-build.txt
	@echo "mmloop setup: [3/5] mmcv 2.1.0 with ops (the first time it is built from source, about 11 min on 2 cores; then pip's wheel cache serves it)"
	MMCV_WITH_OPS=1 $(BIN)/python scripts/progress.py --label "mmcv 2.1.0" -- $(BIN)/pip install -v --no-build-isolation mmcv==2.1.0
	@echo "mmloop setup: [4/5] open-mmlab, DVC, ONNX Runtime (+ quantization tools), ruff and test packages"
	$(BIN)/pip install --quiet -r requirements.txt
	@echo "mmloop setup: [5/5] mmloop itself, editable (pip install -e .)"
	$(BIN)/pip install --quiet --no-build-isolation --no-deps -e .
	@touch $@

pull: setup
	@echo "mmloop pull: $(ARTIFACTS) from the default remote"
	dvc pull $(ARTIFACTS)

demo: pull
	@echo "mmloop demo: dvc repro"
	dvc repro
	@# The plots page (training curves, AP bars, BEV pictures), then the figures a person reads after
	@# a run in a terminal's width (every metric: dvc metrics show, dvc exp show).
	dvc plots show --out dvc_plots
	python scripts/summary.py
	@# The figures in README.md and docs/ follow the metrics this run wrote (commit them together).
	python scripts/write_docs.py
	@echo "mmloop demo: the camera loop (a 2D detector on image_2): cd pipelines/kitti-camera && dvc repro"
	cd pipelines/kitti-camera && dvc repro && dvc metrics show

# After `dvc repro` on main: its models and deployed models into the demo remote (a folder git
# carries), and out of it whatever main's dvc.lock and .dvc files no longer name, so the folder
# stays small (tests/unit/test_repo_size.py bounds it).
publish-demo: setup
	dvc push
	dvc gc --workspace --cloud --force

lint: setup
	ruff check .
	ruff format --check .

test: lint
	pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
