# Arena: `make demo` and `make test` work on a fresh machine with python3.11 and pip (no conda needed).
# The virtual environment is rebuilt only when pyproject.toml changes (its hash names the stamp file).

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)
export MPLCONFIGDIR := $(CURDIR)/.arena/matplotlib

.PHONY: help venv browser demo test lint format typecheck unit bench sample lab mlflow flows monitor clean

help:
	@echo "make demo   - install (if needed) and run the offline baseline competition on the bundled sample"
	@echo "make test   - install (if needed), lint, type-check and run the whole test suite"
	@echo "make bench  - speed benchmarks: engine vs peers, arena rounds, features, models, Dask sweep, monitor pages"
	@echo "make sample - rebuild data/sample from ../shared/data"
	@echo "make lab    - JupyterLab on notebooks/ (kernel 'Arena (Python 3.11)') on 127.0.0.1:8888"
	@echo "make mlflow - the MLflow UI on the project's store (mlruns/mlflow.db) on 127.0.0.1:5000"
	@echo "make flows  - a local Prefect server on 127.0.0.1:4200 serving ingest, trade, retrain and report on schedule"
	@echo "make monitor - the Streamlit monitor over the arena store and MLflow on 127.0.0.1:8501"

# llama-cpp-python (the offline local LLM) compiles llama.cpp here. A native build (-march=native) picked up AMX on
# some hosts and segfaulted on its first completion, so it is built for portable x86-64 features, never from a
# wheel another build left in pip's cache.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --quiet --no-cache-dir \
	  "$$(grep -o '"llama-cpp-python[^"]*"' pyproject.toml | tr -d '"')"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name arena --display-name "Arena (Python 3.11)" >/dev/null
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

# The monitor's end-to-end test drives Debian's Chromium (never a downloaded browser); installed once when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)); \
	  else echo "chromium is not installed and cannot be installed here: the browser test will be skipped"; fi; }

demo: venv
	$(BIN)/arena demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

unit: venv browser
	$(BIN)/pytest -q

test: lint typecheck unit

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: venv
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/arena.py
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/models.py
	$(BIN)/python benchmarks/sweep.py
	$(BIN)/python benchmarks/monitor.py
	$(BIN)/python benchmarks/monitor_store.py
	$(BIN)/python benchmarks/live.py

lab: venv
	$(BIN)/jupyter lab --notebook-dir=notebooks --ip=127.0.0.1 --port=8888 --no-browser

mlflow: venv
	$(BIN)/mlflow ui --backend-store-uri "$$($(BIN)/arena mlflow uri)" --host 127.0.0.1 --port 5000

flows: venv
	$(BIN)/arena flows serve --start-server

monitor: venv
	$(BIN)/arena monitor

sample: venv
	$(BIN)/python data/build_sample.py

clean:
	rm -rf runs .arena .pytest_cache .mypy_cache .ruff_cache
