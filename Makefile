# musicrec: `make demo` runs the whole system end to end, `make test` runs the tests, `make bench` the benchmarks.
# Each target creates .venv and installs what is missing (system packages too, when run as root).

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# pytest-xdist processes (`auto`: one per CPU); `make test TEST_WORKERS=0` runs the tests in one process
TEST_WORKERS ?= auto
BENCH_ARGS ?=

.PHONY: demo test bench lint install clean

$(STAMP): pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh $(VENV)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/musicrec demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf var .pytest_cache
