# Two entry points: `make demo` and `make test`. Both create .venv when missing and install into it.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
DEMO_OUT ?= demo_out

.PHONY: demo test test-fast lint bench clean install viewer browser

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

# `mstar view`'s browser library (OpenSeadragon) from the npm registry into viewer/node_modules (git-ignored).
VIEWER_JS := viewer/node_modules/openseadragon/build/openseadragon/openseadragon.min.js
$(VIEWER_JS): viewer/package.json viewer/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix viewer --no-audit --no-fund --loglevel=error \
		|| echo "npm ci failed: mstar view will ask for OpenSeadragon"; \
	else echo "npm not found: mstar view needs OpenSeadragon (install Node.js, then make viewer)"; fi

viewer: $(VIEWER_JS)

# Debian's Chromium for the viewer's headless browser test (the test skips, saying why, without it).
browser:
	@command -v chromium >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium not installed: the viewer's browser test will skip"

demo: $(VENV)/.installed viewer
	$(VENV)/bin/mstar demo --out $(DEMO_OUT)

test: lint $(VENV)/.installed-dev viewer browser
	$(PY) -m pytest -q

test-fast: lint $(VENV)/.installed-dev viewer
	$(PY) -m pytest -q -m "not slow"

# ruff (line length 110, imports, pyflakes) and the import contracts of docs/architecture.md
lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/tile.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache viewer/node_modules
