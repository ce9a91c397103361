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
DIST   ?= dist
WHEEL_VENV ?= .venv-wheel

.PHONY: setup test lint core-import demo docs wheel wheel-check clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install $(TORCH_PIN)
	$(PIP) install -e '.[torch,plot,dev,slurm,ray,fast,nwb,scipy,docs]'
	# NLB reference metrics for the tests: nlb-tools pins pandas <= 1.3.4 (no Python 3.11
	# wheels), but nlb_tools.evaluation needs only numpy, scipy, h5py and scikit-learn.
	$(PIP) install scikit-learn
	$(PIP) install --no-deps nlb-tools
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
	$(CORE_VENV)/bin/lfads-runs doctor >/dev/null

test: setup lint core-import
	$(PY) -m pytest -q

docs: setup
	$(VENV)/bin/mkdocs build --strict -d site
	$(PY) tools/run_doc_examples.py

demo: setup
	$(VENV)/bin/lfads-runs demo --out $(DEMO_OUT)

# sdist and wheel in $(DIST)/ (`python -m build`: an isolated build environment).
wheel: setup
	rm -rf $(DIST)
	$(PY) -m build --outdir $(DIST) .
	ls -l $(DIST)

# What a user of the wheel gets: a fresh venv with only the wheel and torch runs the quick demo,
# importing lfads_runs from site-packages (run from inside the venv, not the source tree).
wheel-check: wheel
	rm -rf $(WHEEL_VENV)
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip --disable-pip-version-check -q install $(TORCH_PIN) $(DIST)/*.whl
	cd $(WHEEL_VENV) && bin/python -c "import lfads_runs; assert 'site-packages' in lfads_runs.__file__, lfads_runs.__file__"
	cd $(WHEEL_VENV) && bin/lfads-runs doctor
	cd $(WHEEL_VENV) && bin/lfads-runs demo --quick --out demo_out

clean:
	rm -rf $(VENV) $(CORE_VENV) $(WHEEL_VENV) $(DIST) build *.egg-info $(DEMO_OUT)
