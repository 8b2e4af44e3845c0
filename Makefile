# ddsp-beam: `make demo` and `make test` create .venv on first use and install
# from the pinned constraints; later runs reuse it (reinstalling when
# constraints.txt or setup.py change).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out
PYTEST_ARGS ?=

.PHONY: venv demo test test-all bench lint clean

venv: $(STAMP)

$(STAMP): constraints.txt setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q --upgrade "pip>=24"
	$(PY) -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[test,dask,studio]'
	$(PY) -m pip check
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m jobs.demo --output $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest -q -rs --durations=20 $(PYTEST_ARGS) tests

# Everything, the slow cases included.
test-all: $(STAMP)
	$(PY) -m pytest -q --run-slow $(PYTEST_ARGS) tests

# Instrument corpora and their models (development time: FluidSynth and the soundfonts, see
# instruments/render.py): renders instruments/corpus/<name> when missing or out of date, then
# runs its corpus job (instruments/<name>.toml), resuming from the shipped model's checkpoint
# when instruments/out has none, and ships the result into ddsp_core/instruments/<name>
# (instruments/ship.py). `make instruments INSTRUMENTS=violin` for one; train longer with
# `INSTRUMENT_ARGS='--set models.violin.steps=3000'`.
INSTRUMENTS ?= violin flute flute2 trumpet tenor_saxophone
INSTRUMENT_ARGS ?=
.PHONY: instruments
instruments: $(STAMP)
	@for name in $(INSTRUMENTS); do \
	  $(PY) -m instruments.render --if-missing $$name && \
	  $(PY) -m instruments.ship --restore $$name && \
	  $(VENV)/bin/ddsp-beam run instruments/$$name.toml $(INSTRUMENT_ARGS) && \
	  $(PY) -m instruments.ship $$name || exit $$?; \
	done

bench: $(STAMP)
	$(PY) -m bench.run

lint: $(STAMP)
	$(VENV)/bin/ruff check ddsp_core pipelines jobs tests bench instruments

clean:
	rm -rf $(DEMO_OUT) .pytest_cache build *.egg-info
