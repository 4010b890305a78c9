# slothlab: `make demo` runs the offline tiny demo, `make test` runs the test suite.
# Both create .venv and install the project into it on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/slothlab --recipe demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_help.py
	$(BIN)/python tests/benchmarks/bench_overhead.py
	$(BIN)/python tests/benchmarks/bench_dataprep.py
	$(BIN)/python tests/benchmarks/bench_eval.py
	$(BIN)/python tests/benchmarks/bench_tui.py

clean:
	rm -rf $(VENV) runs .pytest_cache
