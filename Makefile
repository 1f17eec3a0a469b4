# ccanalytics — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench lint lab systools clean distclean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit("Error: Python 3.11+ is required (found %s)" % sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

## install: create .venv if missing and install the project with its test extras
install: $(STAMP)

## demo: embedded database + demo data + jobs + reports, then serve the admin (Ctrl-C stops)
demo: install
	$(VENV)/bin/ccanalytics demo

## lab: JupyterLab from the project's virtualenv on notebooks/, same database as the demo
lab: install
	cd notebooks && $(abspath $(VENV))/bin/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

## lint: ruff over the code and the tests, mypy over the code (pyproject.toml [tool.mypy])
lint: install
	$(VENV)/bin/ruff check ccanalytics webapp scheduler tests
	$(VENV)/bin/mypy

## systools: the system tools the tests run (promtool, prometheus, alertmanager, chromium); installs them as root
systools:
	@scripts/system-tools.sh

## test: lint, then the whole test suite against real components
test: lint systools
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

## bench: benchmarks; results go to docs/benchmarks.md
bench: install
	$(PY) tests/bench/run.py $(BENCH)

clean:
	rm -rf .pytest_cache .hypothesis build *.egg-info

## distclean: also remove the virtualenv and the embedded database
distclean: clean
	rm -rf $(VENV) .ccanalytics
