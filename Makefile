# One virtualenv, created on first use; every target installs what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: up test check bench soak clean

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

up: $(STAMP)
	$(PY) -m devtools.up

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

check: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) ../shared/tools/check_railway_ops.py . || [ ! -f ../shared/tools/check_railway_ops.py ]
	bash scripts/lint-ship.sh

bench: $(STAMP)
	$(PY) -m bench

soak: $(STAMP)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
