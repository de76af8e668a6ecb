# Each target bootstraps its own virtual environment on a fresh machine: `make test` (and
# lint, bench) the full toolchain in .venv; `make demo` only what the demo needs (quotaflow,
# its demo extra and The Odds API plugin) in .venv-demo.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_VENV := .venv-demo
DEMO_STAMP := $(DEMO_VENV)/.installed

.PHONY: test demo bench lint clean

$(STAMP): pyproject.toml plugins/theoddsapi/pyproject.toml plugins/espn/pyproject.toml plugins/apisports/pyproject.toml plugins/ratelimit_headers/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]" -e plugins/theoddsapi -e plugins/espn -e plugins/apisports -e plugins/ratelimit_headers
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/python .ci/unasync.py --check
	$(BIN)/ruff format --check src plugins tests benchmarks .ci
	$(BIN)/ruff check src plugins tests benchmarks .ci
	$(BIN)/mypy src $(wildcard plugins/*/quotaflow_*)

test: lint
	$(BIN)/pytest

$(DEMO_STAMP): pyproject.toml plugins/theoddsapi/pyproject.toml
	test -x $(DEMO_VENV)/bin/python || $(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install --quiet -e ".[demo]" -e plugins/theoddsapi
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(DEMO_VENV)/bin/quotaflow demo

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/concurrency.py
	$(BIN)/python benchmarks/processes.py
	$(BIN)/python benchmarks/quota_day.py
	$(BIN)/python benchmarks/month.py
	$(BIN)/python benchmarks/limiter_accuracy.py
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/streaming.py
	$(BIN)/python benchmarks/cold.py
	$(BIN)/python benchmarks/profile.py
	$(BIN)/python benchmarks/instructions.py --kinds bare,ready,hot,warm,miss,plain,get,plainpost,post,pplain,ppost,abare,amiss

clean:
	rm -rf $(VENV) $(DEMO_VENV) .mypy_cache .ruff_cache .pytest_cache
