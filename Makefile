# Two entry points, documented at the top of the README:
#   make demo  - the main job end to end on the built-in demo project
#   make test  - every check and test (what CI runs)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-spark check lint typecheck pytest bench bench-scaling bench-update bench-report bench-profiles bench-query clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The first run installs about 780 MB (issue 15): say so first, and let pip show its progress
# when stdout is a terminal (quiet in pipes and CI logs).
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "Installing mixpanel_data[dev] (every extra and the test tools) into $(VENV); first run only, a minute or two..."
	@q=--quiet; if [ -t 1 ]; then q=; fi; \
	$(BIN)/python -m pip install $$q --upgrade pip && \
	$(BIN)/python -m pip install $$q -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mp demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy --strict src
	$(BIN)/python -m pytest -q -n auto -m 'not spark'

# The lake read by Spark (local mode): needs Java 17+ on PATH (Debian: apt-get install openjdk-17-jre-headless).
test-spark: $(STAMP)
	@command -v java >/dev/null || { echo "make test-spark needs Java 17+ on PATH: apt-get install openjdk-17-jre-headless" >&2; exit 1; }
	$(BIN)/python -m pip install --quiet pyspark
	$(BIN)/python -m pytest -q -m spark tests/lake

bench: $(STAMP)
	$(BIN)/python benchmarks/fetch_benchmark.py

# 1M and 10M events (the 10M project is 8.5 GB of JSONL, kept in MP_BENCH_CACHE).
bench-scaling: $(STAMP)
	$(BIN)/python benchmarks/memory_scaling.py --cache-dir $${MP_BENCH_CACHE:-/var/tmp/mp-bench}

# --update next to a fresh fetch of its days, at 1M and 10M events (mp against mp emulator serve).
bench-update: $(STAMP)
	$(BIN)/python benchmarks/update_benchmark.py --cache-dir $${MP_BENCH_CACHE:-/var/tmp/mp-bench}

# Each local report (ws.local) next to hand-written DuckDB SQL over typed columns, at 1M events.
bench-report: $(STAMP)
	$(BIN)/python benchmarks/report_benchmark.py --cache-dir $${MP_BENCH_CACHE:-/var/tmp/mp-bench}

# Peak RSS of `mp fetch profiles` at 100k and 1M profiles (each from its own emulator).
bench-profiles: $(STAMP)
	$(BIN)/python benchmarks/profile_benchmark.py

# Analyst queries on the fetched table vs a typed copy, and mp fetch vs read_json (issue 12).
bench-query: $(STAMP)
	$(BIN)/python benchmarks/query_benchmark.py --cache-dir $${MP_BENCH_CACHE:-/var/tmp/mp-bench}

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
