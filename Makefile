# One entry point for every job. Everything is set up from nothing, idempotently, in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.setup-done
LAVA := lava-nc==0.10.0
LAVA_DL := lava-dl==0.6.0

.PHONY: setup test test-fast lint run bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	# lava-nc 0.10.0 declares python<3.11; its dependencies come from the dev extra above.
	$(PY) -m pip install -q --no-deps --ignore-requires-python $(LAVA)
	$(PY) -c "import compiler.lava.compat as l; l.import_lava(); print('lava importable')"
	# lava-dl 0.6.0 (netx, the reference of the netx cross-checks): no torch, see
	# compiler/lava/netx_compat.py
	$(PY) -m pip install -q --no-deps --ignore-requires-python $(LAVA_DL)
	$(PY) -c "import compiler.lava.netx_compat as n; n.import_netx(); print('netx importable')"
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check neurochip compiler emulator tools tests
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test: lint
	$(BIN)/pytest -q

test-fast: setup
	$(BIN)/pytest -q -m "not slow and not lava"

run: setup
	$(BIN)/neurochip quickstart

bench: setup
	$(PY) tools/bench_emulator.py
	$(PY) tools/bench_compiler.py
	$(PY) tools/bench_training.py
	$(PY) tools/bench_learning.py
	$(PY) tools/bench_board.py
	$(PY) tools/bench_mapping.py
	$(PY) tools/bench_sweep.py
	$(PY) tools/bench_verify.py
	$(PY) tools/bench_costs.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
