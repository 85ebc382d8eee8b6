# The two commands a fresh machine needs (see README.md):
#   make demo   installs, then gathers, trains and runs the demo end to end
#   make test   installs the test tools, then runs the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# make test runs the suite in this many processes (pytest-xdist), a test file to each at a
# time so its module fixtures are built once; 2 = the CI machine's cores.
TEST_WORKERS ?= 2

.PHONY: demo test bench clean-venv

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

demo: $(VENV)/.installed
	$(PY) quickstart.py $(ARGS)

test: $(VENV)/.dev-installed
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(ARGS)

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_pipeline.py $(ARGS)

clean-venv:
	rm -rf $(VENV)
