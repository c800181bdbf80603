# xfer: `make demo` runs the offline demo sweep, `make test` runs the test suite. Each sets up what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch by default; on a GPU machine: make setup TORCH_SPEC='torch>=2.4' (a CUDA build).
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: setup demo test clean
.DEFAULT_GOAL := demo

$(BIN)/xfer: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

setup: $(BIN)/xfer ## create .venv with xfer and its test tools

demo: setup ## run the offline demo sweep; writes reports/demo/
	$(BIN)/xfer run configs/demo.yaml

test: setup ## run the test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean: ## remove the demo's store, scratch and report (keeps .venv)
	rm -rf .xfer reports

-include Makefile.cluster
