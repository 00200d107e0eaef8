# The README's two commands: `make demo` (a real small sweep) and `make test` (the test suite).
# Both create .venv with Python 3.11 and the pinned dependencies first (once; again when a requirements file changes).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "rnnsweep needs Python 3.11 (torch 2.14.1 wheels)"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

# a sweep of 8 trials (ASHA + Optuna TPE) on the copying-memory task, local Ray, MLflow in ./mlruns.db
demo: $(STAMP)
	$(BIN)/python run_search.py sweep --space demo/copy --samples 8 --confirm-top 2 --confirm-seeds 2

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf rnnsweep_results mlruns.db mlartifacts .pytest_cache
