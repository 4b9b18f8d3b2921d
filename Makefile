# Two entry points, documented at the top of the README:
#   make demo  - the main job end to end on the built-in demo project
#   make test  - every check and test (what CI runs)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint typecheck pytest bench bench-scaling bench-profiles clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mp demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy --strict src
	$(BIN)/python -m pytest -q -n auto

bench: $(STAMP)
	$(BIN)/python benchmarks/fetch_benchmark.py

# 1M and 10M events (the 10M project is 8.5 GB of JSONL, kept in MP_BENCH_CACHE).
bench-scaling: $(STAMP)
	$(BIN)/python benchmarks/memory_scaling.py --cache-dir $${MP_BENCH_CACHE:-/var/tmp/mp-bench}

# Peak RSS of `mp fetch profiles` at 100k and 1M profiles (each from its own emulator).
bench-profiles: $(STAMP)
	$(BIN)/python benchmarks/profile_benchmark.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
