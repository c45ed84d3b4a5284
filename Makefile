# Two entry points: `make train` and `make test`. Both create the virtual environment first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=
# pipefail: a failed pip install must fail the target even though its output is filtered.
SHELL  := bash
.SHELLFLAGS := -eo pipefail -c
# pip's machine-wide config names index folders that may not exist; drop those warnings.
QUIET_PIP := { grep -v 'is ignored' || true; }

.PHONY: setup train test test-all bench clean

setup: $(STAMP)

# Re-install only when the project's dependencies change.
$(STAMP): pyproject.toml
	@echo "make: installing cnnexp and its dependencies (torch, lightning, hydra, …) into $(VENV); a few minutes the first time"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test,mlflow,wandb,export,dashboard,postgres]' 2>&1 | $(QUIET_PIP)
	touch $(STAMP)

train: $(STAMP)
	$(PY) -m cnnexp.train $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -m "" --hypothesis-profile=thorough $(ARGS)

bench: $(STAMP)
	$(PY) -m cnnexp.bench $(ARGS)

clean:
	rm -rf $(VENV) outputs .pytest_cache
