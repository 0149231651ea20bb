# Every target creates .venv and installs what it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test migrate bench gen protolint contract client clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

# The server, and the web console next to it (http://127.0.0.1:8080); Ctrl-C stops both.
run: $(STAMP)
	@$(BIN)/jobtask console --listen 127.0.0.1:8080 --development-identity & console=$$!; \
	trap 'kill $$console 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python -m server serve --auth-mode headers --log-format text --metrics-listen 127.0.0.1:9464

migrate: $(STAMP)
	$(BIN)/python -m server migrate

gen: $(STAMP)
	rm -rf generated/jobtask
	$(BIN)/python -m grpc_tools.protoc -I protos --python_out=generated --grpc_python_out=generated \
		--pyi_out=generated $(sort $(wildcard protos/jobtask/v1/*.proto))
	touch generated/jobtask/__init__.py generated/jobtask/v1/__init__.py

# buf lint, buf format and buf breaking against the released contract (npm @bufbuild/buf,
# pinned in package-lock.json); skipped without npm.
protolint:
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --silent --no-audit --no-fund && npx buf lint && npx buf format --exit-code -d >/dev/null \
		&& npx buf breaking --against contract/jobtask-v1.binpb \
		&& echo "buf lint, buf format and buf breaking: clean"; \
	else echo "npm not found: buf lint skipped"; fi

# The stubs-only client package (jobtask-api: jobtask.v1 and the protos) into dist/.
client: $(STAMP)
	$(BIN)/python clients/python/build.py dist

# Record the current protos as the released contract that `buf breaking` compares with:
# run it when a release ships (a breaking change then needs a new package, jobtask.v2).
contract:
	npm ci --silent --no-audit --no-fund && npx buf build --exclude-source-info -o contract/jobtask-v1.binpb

test: $(STAMP) protolint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/coverage combine --quiet || true
	$(BIN)/coverage report

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m tests.benchmarks.table

clean:
	rm -rf $(VENV) .coverage .coverage.* .pytest_cache .mypy_cache .ruff_cache .hypothesis
