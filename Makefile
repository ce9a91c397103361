# Two commands that work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
CORE_VENV ?= .venv-core
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
# CPU build of torch pinned for CI and this machine; the project itself accepts a range.
TORCH_PIN ?= torch==2.13.0
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo_out

.PHONY: setup test lint core-import demo docs clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install $(TORCH_PIN)
	$(PIP) install -e '.[torch,plot,dev,slurm,ray,fast,nwb,scipy,docs]'
	touch $(STAMP)

# The native kernels ahead of time; where they cannot be built the engine uses torch code.
setup: $(STAMP)
	$(VENV)/bin/lfads-runs build-kernels || echo "native kernels not built: the engine will use its pure-torch code"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# `import lfads_runs` and the management CLI with the core dependencies only.
core-import:
	test -x $(CORE_VENV)/bin/python || $(PYTHON) -m venv $(CORE_VENV)
	$(CORE_VENV)/bin/python -m pip --disable-pip-version-check -q install .
	cd /tmp && $(abspath $(CORE_VENV))/bin/python -c "import lfads_runs, sys; \
	bad = [m for m in ('torch', 'matplotlib', 'submitit', 'ray', 'pynwb') if m in sys.modules]; \
	assert not bad, bad; print('core import ok', lfads_runs.__version__)"
	$(CORE_VENV)/bin/lfads-runs --help >/dev/null

test: setup lint core-import
	$(PY) -m pytest -q

docs: setup
	$(VENV)/bin/mkdocs build --strict -d site
	$(PY) tools/run_doc_examples.py

demo: setup
	$(VENV)/bin/lfads-runs demo --out $(DEMO_OUT)

clean:
	rm -rf $(VENV) $(CORE_VENV) build *.egg-info $(DEMO_OUT)
