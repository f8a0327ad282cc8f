# Arena: `make demo` and `make test` work on a fresh machine with python3.11 and pip (no conda needed).
# The virtual environment is rebuilt only when pyproject.toml changes (its hash names the stamp file).

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)
export MPLCONFIGDIR := $(CURDIR)/.arena/matplotlib

.PHONY: help venv demo test lint format typecheck unit bench sample clean

help:
	@echo "make demo   - install (if needed) and run the offline baseline competition on the bundled sample"
	@echo "make test   - install (if needed), lint, type-check and run the whole test suite"
	@echo "make bench  - speed benchmarks: engine vs vectorbt/backtesting.py, arena rounds, features (ratios from one run)"
	@echo "make sample - rebuild data/sample from ../shared/data"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

demo: venv
	$(BIN)/arena demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q

test: lint typecheck unit

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: venv
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/arena.py
	$(BIN)/python benchmarks/features.py

sample: venv
	$(BIN)/python data/build_sample.py

clean:
	rm -rf runs .arena .pytest_cache .mypy_cache .ruff_cache
