# sparseae: the two README commands are `make run` and `make test`.
# Both bootstrap a virtual environment in .venv with pip, so a fresh machine needs only
# Python >= 3.10 (with venv) and make.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= 2
# MLflow UI: loopback only (the store holds everything a run logged).
UI_HOST ?= 127.0.0.1
UI_PORT ?= 5000

.PHONY: run test ui lint format report bench clean help

help:
	@echo "make run     set up .venv and run the default experiment (offline)"
	@echo "make test    set up .venv and run the test suite"
	@echo "make ui      open the MLflow UI for the local store on http://$(UI_HOST):$(UI_PORT)"
	@echo "make report  write report.html (snakemake --report) after a run"
	@echo "make lint    ruff, snakefmt --check and snakemake --lint"
	@echo "make bench   run the benchmarks under bench/"

# The stamp depends on pyproject.toml so editing dependencies reinstalls.
$(BIN)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10) and "sparseae needs Python >= 3.10")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

venv: $(BIN)/.installed

# Another config file merged over config/config.yaml: make run CONFIG=config/stl-t10k.yaml
# (checked first: a missing or broken file gets one message). Extra snakemake arguments:
# ARGS, e.g. make run ARGS=-n for a dry run (no report then).
CONFIG ?=
ARGS   ?=
CONFIGFILE = $(if $(CONFIG),--configfile $(CONFIG))
DRYRUN     = $(filter -n --dry-run --dryrun,$(ARGS))

run: $(BIN)/.installed
	$(BIN)/sparseae -q check-config $(CONFIG)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --profile profiles/default --cores $(CORES) $(ARGS) $(CONFIGFILE)
	$(if $(DRYRUN),@true,PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --profile profiles/default --cores 1 \
		--report report.html $(CONFIGFILE) >/dev/null 2>&1 || echo "(report.html could not be written; see snakemake --report)")
	@$(if $(DRYRUN),true,printf '\n%s\n%s\n%s\n' \
		"Filter grid:  results/natural/filters.png" \
		"Report:       report.html (open in a browser)" \
		"MLflow UI:    make ui, then http://$(UI_HOST):$(UI_PORT) (store: mlflow.db)")

test: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

# Prints each experiment's runs table in the model-training view (MLflow 3 opens others in
# its GenAI view), then serves the UI.
ui: $(BIN)/.installed
	@echo "MLflow UI on http://$(UI_HOST):$(UI_PORT); open your experiment's runs:"
	@$(BIN)/sparseae ui-url --tracking-uri sqlite:///$(CURDIR)/mlflow.db \
		--base-url http://$(UI_HOST):$(UI_PORT)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db \
		--host $(UI_HOST) --port $(UI_PORT)

report: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --profile profiles/default --report report.html

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench workflow/scripts
	$(BIN)/ruff format --check src tests bench workflow/scripts
	$(BIN)/snakefmt --check Snakefile workflow
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --lint

format: $(BIN)/.installed
	$(BIN)/ruff format src tests bench workflow/scripts
	$(BIN)/snakefmt Snakefile workflow

bench: $(BIN)/.installed
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf results logs benchmarks .snakemake report.html
