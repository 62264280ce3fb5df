# `make test`, `make test-slow` and `make demo` prepare the environment on first use (.venv in the repository root)
# and reuse it. `make test` runs every test not marked slow; `make test-slow` runs the slow ones (end-to-end
# training, Inductor compiles on the CPU, whole-config FLOP counts). CI (.ci/run) runs both.
# The environment is rebuilt when a requirements file, setup.py or the mmcv build script changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mlla-mm-installed
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: env test test-slow demo clean-env

env: $(STAMP)

$(STAMP): requirements/torch.txt requirements/runtime.txt requirements/tests.txt requirements/deploy.txt setup.py \
          tools/install_mmcv.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip wheel 'setuptools>=77.0.3,<82'
	$(PIP) -r requirements/torch.txt
	$(PIP) -r requirements/runtime.txt -r requirements/tests.txt -r requirements/deploy.txt
	PYTHON=$(PY) bash tools/install_mmcv.sh
	$(PIP) --no-build-isolation -e '.[det,seg,tests,deploy]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest tests -m slow

demo: $(STAMP)
	$(PY) tools/run_demo.py

clean-env:
	rm -rf $(VENV)
