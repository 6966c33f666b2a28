# Fresh-machine entry points: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build is installed before skseg so that skseg's `torch>=2.1` is already
# satisfied; a bare torch requirement on an empty venv pulls a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.skseg-installed
# Every docstring example in skseg and every `>>>` example in docs/*.md runs with the
# unit tests, so an example that stops working fails `make test` like any test.
DOCTESTS := --doctest-modules --doctest-glob="*.md" --ignore=docs/_build --ignore=docs/conf.py
SPHINX := $(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

.PHONY: setup demo test test-fast test-gpu fuzz lint docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) -m skseg demo

test: setup
	$(PY) -m ruff check .
	$(SPHINX) -q
	$(PY) -m pytest tests skseg docs $(DOCTESTS)

# the edit-test loop: lint and every test and example not marked `slow` (no real
# network on real audio, no training, servers or fuzzing; tiny fixtures), in under
# 2 minutes on 2 quiet cores. `make test` (what CI runs) stays the whole suite.
test-fast: setup
	$(PY) -m ruff check .
	$(PY) -m pytest tests skseg docs $(DOCTESTS) -m "not slow and not gpu" -q

# on a machine with a GPU and a CUDA build of torch: CUDA matches CPU within 1e-4
test-gpu: setup
	$(PY) -m pytest tests -m gpu

# a release's longer fuzzing run (`make test` runs 60 examples per target, in
# under a minute): new random examples each time; see docs/hostile_inputs.md
FUZZ_EXAMPLES ?= 5000
fuzz: setup
	SKSEG_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m tests.fuzz

# HTML documentation in docs/_build/html (warnings are errors, as in `make test`)
docs: setup
	$(SPHINX)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache docs/_build
