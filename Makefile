# Two commands set everything up: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export QT_QPA_PLATFORM ?= $(if $(DISPLAY)$(WAYLAND_DISPLAY),,offscreen)

.PHONY: setup run test test-fast lint format bench demo package selftest clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/qdq-studio --demo

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q
	$(BIN)/lint-imports

test-fast: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check core app tests
	$(BIN)/ruff format --check core app tests
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format core app tests
	$(BIN)/ruff check --fix core app tests

bench: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m tests.bench

demo: $(STAMP)
	$(BIN)/python resources/demo/make_demo.py

selftest: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/qdq-studio --self-test selftest-out

package: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[package]'
	$(BIN)/python packaging/build.py

clean:
	rm -rf build dist selftest-out .pytest_cache
