# worldengine_lab — two commands on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check
PYTEST_ARGS ?=

.PHONY: demo test install dev browser lab bench clean help

help:
	@echo "make demo     create .venv, install, run the main job on the embedded default"
	@echo "make test     create or reuse .venv, install the dev extras and chromium, run the whole suite"
	@echo "make browser  install Debian's chromium for the browser tests (as root with apt-get)"
	@echo "make lab      open JupyterLab on 127.0.0.1 with a token"
	@echo "make bench    print the data benchmark as JSON"

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

# Debian's chromium for tests/browser (Playwright drives /usr/bin/chromium; no browser is downloaded).
# Installs only as root with apt-get; otherwise, or if apt fails, the browser tests are skipped.
CHROMIUM := /usr/bin/chromium
browser:
	@if [ -x $(CHROMIUM) ]; then \
	  echo "browser tests: $$($(CHROMIUM) --version 2>/dev/null | tail -n 1)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "browser tests: installing Debian's chromium with apt-get ..."; \
	  log=$$(mktemp); \
	  if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	       -o DPkg::Lock::Timeout=120 chromium; } >"$$log" 2>&1 && [ -x $(CHROMIUM) ]; then \
	    echo "browser tests: installed $$($(CHROMIUM) --version 2>/dev/null | tail -n 1)"; \
	  else \
	    tail -n 15 "$$log"; \
	    echo "browser tests: chromium could not be installed; they will be skipped"; \
	  fi; \
	  rm -f "$$log"; \
	else \
	  echo "browser tests: $(CHROMIUM) not found and no root apt-get here; they will be skipped"; \
	fi

test: $(VENV)/.dev browser
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lab: $(VENV)/.dev
	$(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --ServerApp.root_dir=notebooks

bench: $(VENV)/.core
	$(BIN)/worldengine-lab bench data --json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache test-artifacts
