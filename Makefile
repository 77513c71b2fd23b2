# Everything a fresh machine needs: `make demo` and `make test` create .venv themselves.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench proto clean install

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python >= 3.11 is required; set PYTHON=...)" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m simulations demo --out out/demo

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check scaler simulations tests
	$(VENV)/bin/ruff format --check scaler simulations tests
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy scaler simulations

# make bench BENCH_ARGS=--quick: a 2-minute smoke of the same benchmarks (1 round, 20 s soak)
bench: $(STAMP)
	$(PY) -m tests.bench.run --out out/bench $(BENCH_ARGS)

# Regenerate the Python stubs from proto/externalscaler.proto (KEDA's proto, verbatim).
proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -Iproto --python_out=scaler/_generated --pyi_out=scaler/_generated \
		--grpc_python_out=scaler/_generated proto/externalscaler.proto
	# protoc emits an absolute import; make it relative so the stubs live inside the package.
	sed -i 's/^import externalscaler_pb2 as/from . import externalscaler_pb2 as/' scaler/_generated/externalscaler_pb2_grpc.py

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache .mypy_cache .ruff_cache
