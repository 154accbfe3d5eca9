# Two entry points for a fresh machine: `make serve` (demo server) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: serve test test-fast test-without-speedups lint bench fuzz clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/activate setup.cfg setup.py
	$(BIN)/pip install -q -e '.[test]'
	touch $@

serve: $(VENV)/.installed
	$(BIN)/zipwsgi serve zipwsgi/demo --host $(HOST) --port $(PORT)

test: $(VENV)/.installed
	$(BIN)/python -m pytest tests
	$(BIN)/ruff check zipwsgi tests examples benchmarks
	$(BIN)/mypy zipwsgi

test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest tests -m "not slow and not browser"

# The install without isal/zlib-ng (platforms with no wheels for them): the engine,
# deflate and middleware tests in a process where both cannot be imported.
test-without-speedups: $(VENV)/.installed
	$(BIN)/python tests/without_speedups.py -p no:cacheprovider -m "not slow and not browser" \
		tests/test_engine_shapes.py tests/test_engine_ranges.py tests/test_engine_failures.py \
		tests/test_engine_zip64.py tests/test_deflate.py tests/test_precompute_crc.py \
		tests/test_middleware.py

lint: $(VENV)/.installed
	$(BIN)/ruff check zipwsgi tests examples benchmarks
	$(BIN)/mypy zipwsgi

# Issue #16's property tests, long: 50,000 cases per property (manifests through the
# middleware, names through ZipStream.add and normalise_name, paths through the app),
# counting escapes instead of stopping at the first; prints the totals.
fuzz: $(VENV)/.installed
	HYPOTHESIS_PROFILE=fuzz ZIPWSGI_FUZZ_REPORT=1 $(BIN)/python -m pytest tests/test_fuzz.py -q -s \
		-p no:cacheprovider -W ignore::hypothesis.errors.HypothesisWarning

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
