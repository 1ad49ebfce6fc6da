# The two commands of the README. Each bootstraps .venv on first use (and again when pyproject.toml changes).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# 2 workers: CI has 2 cores.
PYTEST_WORKERS ?= 2

.PHONY: demo test lint bench clean podresources

demo: $(STAMP)
	$(PY) -m scheduler.cli demo --out out

test: $(STAMP) lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -q

lint: $(STAMP)
	$(VENV)/bin/ruff check $(wildcard scheduler simulator tests benchmarks)
	$(VENV)/bin/lint-imports

# The kubelet pod-resources v1 gRPC client, generated from its proto; commit the result
# (tests/agent/test_podresources.py fails when the committed modules and the proto differ).
podresources: $(STAMP)
	$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. scheduler/agent/podresources/api.proto

bench: $(STAMP)
	$(PY) -m benchmarks.extender_latency

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "gpusched needs Python >= 3.11 (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
