# Two commands for a fresh machine (Python 3.9+, a C compiler, access to the package index):
#   make demo   set up .venv, build the kernels, walk the simulated wearer on the controller
#   make test   set up .venv, build the kernels, run the test suite (not the wall-clock tests)
#   make test-realtime   the tests whose outcome depends on wall-clock timing (marker `realtime`)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_ARGS ?= --scenario steady --speed 1.25 --duration 20

.PHONY: demo test test-realtime build bench docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.py pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=64" wheel "Cython>=3.0" "numpy>=1.24"
	$(PY) -m pip install --quiet --no-build-isolation -e '.[test,plot]'
	touch $@

# Rebuild the Cython kernels in place (only what changed).
build: $(STAMP)
	$(PY) setup.py --quiet build_ext --inplace

demo: build
	$(VENV)/bin/ankle sim $(DEMO_ARGS)

# The deterministic suite: what it says does not depend on how busy the machine is.
test: build
	$(PY) -m pytest -q -m "not realtime"

# Real-time runs (the simulated wearer walking on the wall clock, rates, waits for walking): they
# need a machine that keeps time, so a failure here on a loaded machine is not a failure of the code.
test-realtime: build
	$(PY) -m pytest -q -m realtime

bench: build
	$(PY) -m bench.sim_speed
	$(PY) -m bench.codec
	$(PY) -m bench.phase
	$(PY) -m bench.pushoff
	$(PY) -m bench.faults
	$(PY) -m bench.loop
	$(PY) -m bench.console
	$(PY) -m bench.symmetry
	$(PY) -m bench.retune

docs: build
	$(VENV)/bin/ankle params --markdown > docs/parameters.md
	$(PY) -m controller.kernels.codegen --readme README.md
	$(PY) -m controller.console.guide docs/console.md

clean:
	rm -rf build *.egg-info $(VENV)
	find controller hal sim -name '*.so' -delete -o -name '_*.c' -delete
	rm -f controller/kernels/_tables.pxd
