# Two commands on a fresh clone: `make run` (the local stack) and `make test` (the whole suite).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.lock pyproject.toml | sha256sum | cut -c1-12)
PACKAGES := core trainer predictor functions devstack

.PHONY: venv lock run test test-fast docs lint fmt train drop bench bench-trainer bench-predictor bench-drop bench-soak bench-loop clean

PROTO := predictor/protos/grpc_predict_v2.proto
STUBS := $(PROTO:.proto=_pb2.py)

venv: $(STAMP) $(STUBS)

$(STAMP): requirements-dev.lock pyproject.toml
	command -v uv >/dev/null || python3 -m pip install --quiet uv
	test -x $(PY) || uv venv --quiet --python python3.11 $(VENV) || uv venv --quiet $(VENV)
	VIRTUAL_ENV=$(VENV) uv pip install --quiet -r requirements-dev.lock
	VIRTUAL_ENV=$(VENV) uv pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

$(STUBS): $(PROTO) $(STAMP)  ## gRPC stubs, generated (git-ignored): predictor/protos/*_pb2.py, *_pb2.pyi, *_pb2_grpc.py
	$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. $(PROTO)

lock:  ## regenerate each deployable's lock from pyproject.toml's extras (versions already pinned stay unless an extra needs another)
	for extra in trainer predictor ingest dev; do \
		uv pip compile pyproject.toml --extra $$extra -o requirements-$$extra.lock --python-version 3.11 >/dev/null; \
	done

run: venv  ## the local stack: emulators, trainer, predictor, function (Ctrl-C stops all)
	$(PY) -m devstack.run

test: venv lint  ## lint, types and the whole pytest suite
	$(VENV)/bin/pytest

# tests that need no emulator, stack, browser or container tools (tests/conftest.py marks emulator users integration)
FAST := not integration and not e2e and not faults and not browser and not images

test-fast: venv  ## the unit subset of pytest only (no lint, no types): under a minute on an idle 2-core machine
	$(VENV)/bin/pytest -q -m "$(FAST)"

docs: venv  ## write docs/reference/ (settings, HTTP, gRPC) from the code
	$(PY) -m devstack.reference

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(PACKAGES)

fmt: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

train: venv  ## one trainer run against the running local stack
	set -a && source .stack/env && $(PY) -m trainer

drop: venv  ## make drop CSV=file.csv: upload a training CSV to incoming/ of the running local stack
	set -a && source .stack/env && $(PY) -m devstack.drop "$(CSV)"

bench: bench-trainer bench-predictor

bench-trainer: venv
	$(PY) bench/trainer_bench.py

bench-predictor: venv
	$(PY) bench/predictor_bench.py

clean:
	rm -rf .stack .stack-soak test-output .pytest_cache .mypy_cache .ruff_cache

bench-drop: venv  ## drop a CSV until every worker serves a model that learned from it (starts its own local stack)
	$(PY) bench/drop_bench.py

bench-loop: venv  ## serve a model that never saw part of iris, label its traffic as feedback, time until one that learned serves
	$(PY) bench/loop_bench.py $(if $(FAST),--fast)

bench-soak: venv  ## the local stack under load, drops and faults for SOAK_MINUTES (default 30); PASS/FAIL per target
	$(PY) bench/soak_bench.py $(if $(SOAK_MINUTES),--minutes $(SOAK_MINUTES))
