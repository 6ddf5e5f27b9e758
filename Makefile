# `make run`: set up and run rtvc on the default voice.   `make test`: set up and run the tests.
# Each makes its own virtual environment (.venv) and installs the system packages it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench clean

# python3-venv first (Debian and Ubuntu ship Python without it); a half-made .venv is removed, so the
# next make starts it again instead of finding a python without pip
$(BIN)/python:
	$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || scripts/system-deps.sh venv
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }
	$(BIN)/pip install -q --upgrade pip || { rm -rf $(VENV); exit 1; }

$(VENV)/.run: pyproject.toml setup.py rtvc/_rt.c | $(BIN)/python
	scripts/system-deps.sh run
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test: pyproject.toml setup.py rtvc/_rt.c | $(BIN)/python
	scripts/system-deps.sh test
	$(BIN)/pip install -q -e ".[dev]"
	touch $@ $(VENV)/.run

run: $(VENV)/.run
	$(BIN)/rtvc run $(ARGS)

lint: $(VENV)/.test
	$(BIN)/ruff check rtvc tests bench
	$(BIN)/ruff format --check rtvc tests bench

test: $(VENV)/.test lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.test
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/latency.py --voice pitch --periods 128 256 --blocks-ms 10 20
	$(BIN)/python bench/voice_cpu.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .hypothesis
