# Everything runs inside .venv, created on first use from pyproject.toml.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SOURCES := $(shell find guard timewheel locks ext -name '_*_py.py' -o -name '_*_c.pxd' 2>/dev/null)

.PHONY: run test lint build bench clean format system-deps

run: build
	$(BIN)/guard demo

test: build system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Headless Chromium for the dashboard test (Debian's package; the test fails without it).
system-deps:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { echo "installing chromium (dashboard test)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: build
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/bench_guard.py
	@for b in bench/bench_*.py; do [ "$$b" = bench/bench_guard.py ] || $(BIN)/python $$b || exit 1; done

# Compile the Cython twins in place; a no-op when nothing changed.
build: $(STAMP) .built

.built: $(STAMP) $(SOURCES) setup.py
	$(BIN)/python setup.py -q build_ext --inplace -j 2
	@touch .built

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

clean:
	rm -rf build .built $(VENV) *.egg-info
	find guard timewheel locks ext \( -name '*.so' -o -name '_*_py.c' \) -delete
