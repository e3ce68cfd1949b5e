# Two commands do all the set-up on a fresh machine (see README):
#   make quickstart   the main job end to end on the embedded workspace
#   make test         lint, type check and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# One distribution per role folder (see README, Layout); the root project is the umbrella.
ROLES := core trainer runtime packager collector cli server batch
EDITABLE := $(foreach role,$(ROLES),-e ./$(role))

.PHONY: quickstart test lint typecheck pytest install install-dev clean ui

$(VENV)/.installed-all: pyproject.toml $(foreach role,$(ROLES) edge-agent,$(role)/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(EDITABLE) -e '.[all]'
	touch $@

# PyTorch: the CPU build (torch 2.13.0 is the release this machine's pip serves as a CPU wheel;
# an unpinned torch would pull several GB of CUDA wheels).
$(VENV)/.installed-dev: $(VENV)/.installed-all
	$(BIN)/python -m pip install -q 'torch==2.13.0'
	$(BIN)/python -m pip install -q $(EDITABLE) -e ./edge-agent -e '.[dev]'
	touch $@

install: $(VENV)/.installed-all

install-dev: $(VENV)/.installed-dev

quickstart: $(VENV)/.installed-all
	$(BIN)/amlpkg quickstart

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

pytest: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# The web UI bundle (server/ui -> server/src/amlpkg/server/static, committed): only needed after
# editing server/ui; installs and tests use the committed bundle, so they need no node.
ui:
	cd server/ui && npm ci --no-audit --no-fund && npm run build

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
