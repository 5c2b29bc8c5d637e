# worldengine_lab — two commands on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check
PYTEST_ARGS ?=

.PHONY: demo test install dev lab bench clean help

help:
	@echo "make demo   create .venv, install, run the main job on the embedded default"
	@echo "make test   create or reuse .venv, install the dev extras, run the whole suite"
	@echo "make lab    open JupyterLab on 127.0.0.1 with a token"
	@echo "make bench  print the data benchmark as JSON"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# core install; torch is pinned to the CPU build (see README for CUDA)
$(VENV)/.core: $(BIN)/python pyproject.toml setup.py
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.core
	$(PIP) install -q -e ".[dev]"
	@touch $@

install: $(VENV)/.core
dev: $(VENV)/.dev

demo: $(VENV)/.core
	$(BIN)/worldengine-lab demo

test: $(VENV)/.dev
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lab: $(VENV)/.dev
	$(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --ServerApp.root_dir=notebooks

bench: $(VENV)/.core
	$(BIN)/worldengine-lab bench data --json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
