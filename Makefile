# Two entry points: `make demo` and `make test`. Both create .venv when missing and install into it.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
DEMO_OUT ?= demo_out

.PHONY: demo test test-fast lint bench clean install

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Stamp files: reinstall only when the project metadata changes.
$(VENV)/.installed: $(VENV)/bin/activate pyproject.toml constraints.txt
	$(PIP) install -q -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -c constraints.txt -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/mstar demo --out $(DEMO_OUT)

test: lint $(VENV)/.installed-dev
	$(PY) -m pytest -q

test-fast: lint $(VENV)/.installed-dev
	$(PY) -m pytest -q -m "not slow"

# ruff (line length 110, imports, pyflakes) and the import contracts of docs/architecture.md
lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/tile.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
