# attnlab: `make demo` installs and runs the main job; `make test` installs and runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
BOOK_STAMP := $(VENV)/.installed-book
PYTEST_ARGS ?=
export NUMBA_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1

.PHONY: install install-book demo book test-book test test-all lint bench mutation clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q 'torch==2.13.0'
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

# The book's extra: Jupyter Book 1.x, jupytext and Playwright (which drives the system Chromium).
install-book: $(BOOK_STAMP)

$(BOOK_STAMP): $(STAMP)
	$(PIP) install -q -e '.[dev,book]'
	touch $(BOOK_STAMP)

demo: install-book
	$(VENV)/bin/attnlab forms
	$(VENV)/bin/attnlab verify
	$(VENV)/bin/attnlab book --quick

# The Jupyter Book from quick results (fills results/ where missing), built offline; prints its index page.
book: install-book
	$(VENV)/bin/attnlab book --quick

# Tests that read the built book (HTML and headless Chromium); `make book` first.
test-book: install-book
	$(VENV)/bin/pytest -q tests/book $(PYTEST_ARGS)

# pytest-xdist spreads the tests over the cores (TEST_WORKERS=0 runs them in one process).
TEST_WORKERS ?= auto
test: install
	$(VENV)/bin/pytest -q -m "not slow" -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-all: install
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy attnlab reference theory synthetic fastpath proofs_checks
	# import-linter reads the package from disk: lint the installed layout (the mapped folders under attnlab/)
	rm -rf build/lint && $(PIP) install -q --no-deps --no-build-isolation --target build/lint .
	cd build/lint && $(abspath $(VENV))/bin/lint-imports --config $(CURDIR)/pyproject.toml

# Mutation testing of the references (mutmut) against the form invariants, bad inputs, reference tests
# and the claims' checks, on the installed layout (mutmut needs file paths that match module names).
MUTATION_DIR ?= build/mutation
# A rerun resumes: killed mutants of unchanged functions keep their result, the rest are tried again
# (MUTATION_FRESH=1 starts over). The map from functions to the tests that reach them is collected anew
# each run: a map kept from older tests would leave out tests added since, and a mutant they kill would
# count as a survivor.
mutation: install
	mkdir -p $(MUTATION_DIR)
	rm -rf $(MUTATION_DIR)/site $(MUTATION_DIR)/attnlab $(MUTATION_DIR)/tests $(MUTATION_DIR)/mutants/tests
	rm -f $(MUTATION_DIR)/mutants/mutmut-stats.json
	$(if $(MUTATION_FRESH),rm -rf $(MUTATION_DIR)/mutants)
	$(PIP) install -q --no-deps --no-build-isolation --target $(MUTATION_DIR)/site .
	mv $(MUTATION_DIR)/site/attnlab $(MUTATION_DIR)/attnlab && rm -rf $(MUTATION_DIR)/site
	cp -r tests $(MUTATION_DIR)/tests && cp tests/mutation.toml $(MUTATION_DIR)/pyproject.toml
	cd $(MUTATION_DIR) && $(abspath $(PY)) $(CURDIR)/tests/mutation_resume.py
	# mutmut forks each mutant's test run from a process that has already run Numba kernels; Numba's
	# OpenMP threading layer refuses a fork (it raises SIGTERM in the child), its workqueue layer does not.
	cd $(MUTATION_DIR) && CI=true NUMBA_THREADING_LAYER=workqueue $(abspath $(PY)) -m mutmut run > mutmut.log 2>&1 || true
	cd $(MUTATION_DIR) && $(abspath $(PY)) $(CURDIR)/tests/mutation_report.py

bench: install
	$(VENV)/bin/attnlab bench --quick

clean:
	rm -rf $(VENV) build *.egg-info .hypothesis .benchmarks book/_build
